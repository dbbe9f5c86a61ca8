package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestQuietHandlerRedactsPackets(t *testing.T) {
	var buf bytes.Buffer
	inner := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	l := slog.New(&quietHandler{inner: inner, min: slog.LevelWarn}).With("listener", "loopback")

	secret := "holder-4711"
	pk := packets.Packet{TopicName: "kazashi/dev/events", Payload: []byte(secret)}
	l.Info("chatter", "pk", pk)
	l.Warn("error processing packet", "pk", pk, "client", "kz-1")
	l.Error("publish packet error", "packet", pk)
	l.Error("other name", "x", pk, "y", &pk)
	l.WithGroup("g").Warn("grouped", slog.Group("inner", "will", secret))

	out := buf.String()
	if strings.Contains(out, secret) {
		t.Errorf("payload leaked into log:\n%s", out)
	}
	if strings.Contains(out, "chatter") {
		t.Errorf("info record passed the Warn floor:\n%s", out)
	}
	for _, want := range []string{"error processing packet", "client=kz-1", "listener=loopback", "[redacted]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
