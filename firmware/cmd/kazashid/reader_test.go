package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// TestReaderRecoversFromChipLockUp runs the reader adapter against the
// simulator over a real pty. The chip stops answering mid-session (it is
// knocked back into LowVbat, where it ignores every frame, as a locked-up
// board does); the read fails without hanging, and the next poll pulses
// the reset line, wakes the chip and finds the card again.
func TestReaderRecoversFromChipLockUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pki, err := testpki.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := pki.Cards[testpki.KindValid]
	card, err := sim.NewJPKICard(sim.JPKIConfig{Token: c.Token, AuthCert: c.Cert, AuthCACert: c.CACert})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(ctx, sim.Options{Card: card})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	pulses := 0
	r := &pn532Reader{
		open:     func() (io.ReadWriteCloser, error) { return board.OpenUART(s.Path(), 0) },
		opts:     pn532.DefaultOpts,
		poll:     20 * time.Millisecond,
		presence: 20 * time.Millisecond,
		log:      slog.New(slog.DiscardHandler),
		pulseReset: func(context.Context) error {
			pulses++
			s.Chip().Reset() // the simulator's RSTPD_N
			return nil
		},
	}
	r.opts.ACKTimeout = 300 * time.Millisecond
	defer r.Close()

	sess, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpki.ReadToken(ctx, sess); err != nil {
		t.Fatalf("first read: %v", err)
	}

	s.Chip().Reset() // lock-up: the chip ignores the host from now on
	start := time.Now()
	_, err = jpki.ReadCertificate(ctx, sess, jpki.EFAuthCert)
	if !errors.Is(err, pn532.ErrNoACK) {
		t.Fatalf("read from a hung chip: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("hung chip noticed after %v", time.Since(start))
	}
	if err := sess.WaitRemoved(ctx); err == nil {
		t.Fatal("WaitRemoved reported removal on a reset frontend")
	}
	_ = sess.Close()
	if pulses != 0 {
		t.Fatalf("reset pulsed %d times before the next poll", pulses)
	}

	sess, err = r.Next(ctx)
	if err != nil {
		t.Fatalf("poll after lock-up: %v", err)
	}
	if pulses != 1 {
		t.Fatalf("reset pulsed %d times, want 1", pulses)
	}
	tok, err := jpki.ReadToken(ctx, sess)
	if err != nil || tok.Holder != jpki.HolderCard {
		t.Fatalf("read after recovery: %+v %v", tok, err)
	}
	if _, err := jpki.ReadCertificate(ctx, sess, jpki.EFAuthCert); err != nil {
		t.Fatalf("certificate after recovery: %v", err)
	}
}
