package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/firmware/tap"
)

// pn532Reader adapts a PN532 on a serial port to tap.Reader. It opens and
// initialises the chip lazily and starts over after any fault, so a
// replugged or locked-up frontend recovers without restarting the daemon.
type pn532Reader struct {
	open     func() (io.ReadWriteCloser, error)
	opts     pn532.Opts
	poll     time.Duration
	presence time.Duration // pause between two presence checks
	// pulseReset, when set, pulses the chip's RSTPD_N before the chip is
	// initialised again after a fault (the watchdog for boards that lock up).
	pulseReset func(ctx context.Context) error
	log        *slog.Logger

	faulted bool

	port io.ReadWriteCloser
	uart *pn532.UART
	dev  *pn532.Dev
}

func (r *pn532Reader) ensure(ctx context.Context) error {
	if r.dev != nil {
		return nil
	}
	if r.faulted && r.pulseReset != nil {
		if err := r.pulseReset(ctx); err != nil {
			return fmt.Errorf("reset pulse: %w", err)
		}
		r.log.Info("frontend reset by RSTPD_N after a fault")
	}
	port, err := r.open()
	if err != nil {
		return err
	}
	u := pn532.NewUART(port)
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := pn532.New(ictx, u, &r.opts)
	if err != nil {
		u.Close()
		port.Close()
		r.faulted = true
		return err
	}
	r.port, r.uart, r.dev, r.faulted = port, u, d, false
	r.log.Info("reader ready", "frontend", d.String())
	return nil
}

// reset drops the chip after a fault; the next poll starts it over.
func (r *pn532Reader) reset() {
	r.faulted = true
	if r.uart != nil {
		r.uart.Close()
	}
	if r.port != nil {
		r.port.Close()
	}
	r.port, r.uart, r.dev = nil, nil, nil
}

// Next polls for a Type B card.
func (r *pn532Reader) Next(ctx context.Context) (tap.Session, error) {
	for {
		if err := r.ensure(ctx); err != nil {
			return nil, fmt.Errorf("reader: %w", err)
		}
		tg, err := r.dev.ListTypeB(ctx)
		switch {
		case err == nil:
			return &session{r: r, card: pn532.Card{Dev: r.dev, Target: tg}}, nil
		case errors.Is(err, pn532.ErrNoTarget):
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			r.reset()
			return nil, fmt.Errorf("reader: poll: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(r.poll):
		}
	}
}

// Close releases the port.
func (r *pn532Reader) Close() {
	if r.dev != nil {
		_ = r.dev.Halt()
	}
	r.reset()
	r.faulted = false
}

type session struct {
	r    *pn532Reader
	card pn532.Card
}

func (s *session) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	b, err := s.card.Transmit(ctx, apdu)
	if err != nil && !errors.Is(err, pn532.ErrTargetLost) && ctx.Err() == nil {
		// The chip itself misbehaved: start it over on the next poll.
		s.r.reset()
	}
	return b, err
}

func (s *session) Tech() string { return "iso14443-4b" }

// WaitRemoved checks card presence until the card is gone.
func (s *session) WaitRemoved(ctx context.Context) error {
	for {
		if s.r.dev == nil {
			return errors.New("reader: frontend reset while waiting for removal")
		}
		present, err := s.r.dev.Present(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.r.reset()
			}
			return err
		}
		if !present {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.r.presence):
		}
	}
}

func (s *session) Close() error {
	if s.r.dev == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.r.dev.Release(ctx)
}
