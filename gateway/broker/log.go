package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// quietHandler passes only records at or above min to inner, and redacts
// attributes that would carry message contents: mochi logs whole packets
// ("pk", "packet") and wills on some errors, and payloads may hold card
// holders' identifiers.
type quietHandler struct {
	inner slog.Handler
	min   slog.Level
}

func (h *quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.inner.Enabled(ctx, l)
}

func (h *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	closed := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, net.ErrClosed) {
			closed = true
		}
		out.AddAttrs(redact(a))
		return true
	})
	if closed {
		// A read on a connection closed by our own shutdown or by the
		// client: routine, not worth a warning on the kiosk's log.
		return nil
	}
	return h.inner.Handle(ctx, out)
}

func (h *quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redact(a)
	}
	return &quietHandler{inner: h.inner.WithAttrs(red), min: h.min}
}

func (h *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{inner: h.inner.WithGroup(name), min: h.min}
}

func redact(a slog.Attr) slog.Attr {
	switch a.Key {
	case "pk", "packet", "will", "payload":
		return slog.String(a.Key, "[redacted]")
	}
	if a.Value.Kind() == slog.KindAny {
		switch a.Value.Any().(type) {
		case packets.Packet, *packets.Packet:
			return slog.String(a.Key, "[redacted]")
		}
	}
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = redact(ga)
		}
		return slog.Group(a.Key, red...)
	}
	return a
}
