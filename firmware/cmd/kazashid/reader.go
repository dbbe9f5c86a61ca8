package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/firmware/frontend"
	"github.com/kazashi/kazashi/gateway/uplink"
	"github.com/kazashi/kazashi/hw/board"
)

// hostBuses opens the kiosk's real buses; tests replace it with the
// simulator's.
var hostBuses board.Buses = board.Host{}

// newReader composes the frontend from the configuration: the bus, the
// reset line and the reader's lifecycle (firmware/frontend).
func newReader(cfg *Config, b board.Buses, log *slog.Logger) (*frontend.Reader, error) {
	bc := cfg.Reader.PN532Config
	fc := frontend.Config{
		Open: func(context.Context) (*frontend.Link, error) {
			l, err := board.OpenPN532(b, bc, false)
			if err != nil {
				return nil, err
			}
			return &frontend.Link{Transport: l.Transport, Bus: l.Bus, Close: l.Close}, nil
		},
		Opts:     pn532.DefaultOpts,
		Baud:     cfg.Reader.Baud,
		ISODEP:   frontend.ISODEP(cfg.Reader.ISODEP),
		TypeA:    cfg.Reader.TypeA,
		Poll:     time.Duration(cfg.Reader.PollInterval),
		Presence: 200 * time.Millisecond,
		Logger:   log.With("component", "reader"),
	}
	fc.Opts.Logger = log.With("component", "pn532")
	if cfg.Reader.ACKTimeout > 0 {
		fc.Opts.ACKTimeout = time.Duration(cfg.Reader.ACKTimeout)
	}
	if cfg.Reader.ResetGPIO != "" {
		pin, err := b.OpenPin(cfg.Reader.ResetGPIO)
		if err != nil {
			return nil, err
		}
		rl, err := board.NewResetLine(pin)
		if err != nil {
			return nil, err
		}
		fc.Reset = rl.Pulse
	}
	return frontend.New(fc), nil
}

// readerHealth adapts the frontend's health to telemetry.
func readerHealth(r *frontend.Reader) func() uplink.ReaderHealth {
	return func() uplink.ReaderHealth {
		h := r.Health()
		return uplink.ReaderHealth{State: string(h.State), Resets: h.Resets, Errors: h.Errors}
	}
}
