package frontend

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

var (
	pkiOnce sync.Once
	pki     *testpki.PKI
	pkiErr  error
)

func testCard(t testing.TB) (*sim.JPKICard, []byte) {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = testpki.Generate(time.Now()) })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	c := pki.Cards[testpki.KindValid]
	card, err := sim.NewJPKICard(sim.JPKIConfig{Token: c.Token, AuthCert: c.Cert, AuthCACert: c.CACert})
	if err != nil {
		t.Fatal(err)
	}
	return card, c.Cert
}

// uartLink opens the simulator's pty the way the daemon opens a real port.
func uartLink(s *sim.Sim) func(context.Context) (*Link, error) {
	return func(context.Context) (*Link, error) {
		port, err := board.OpenUART(s.Path(), 0)
		if err != nil {
			return nil, err
		}
		u := pn532.NewUART(port)
		return &Link{Transport: u, Bus: "uart " + s.Path(), Close: func() error {
			u.Close()
			return port.Close()
		}}, nil
	}
}

func testConfig(s *sim.Sim, mode ISODEP) Config {
	opts := pn532.DefaultOpts
	opts.ACKTimeout = 300 * time.Millisecond // a loaded CI machine
	return Config{
		Open:     uartLink(s),
		Reset:    func(context.Context) error { s.Chip().Reset(); return nil },
		Opts:     opts,
		ISODEP:   mode,
		Poll:     10 * time.Millisecond,
		Presence: 10 * time.Millisecond,
	}
}

// settle waits until the goroutine count is back to at most n.
func settle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want ≤ %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadCertificateBothPaths reads the authentication certificate over
// the chip's ISO-DEP and over the host's, checks the bytes, the
// technology, the presence check across a removal (R(NAK), not Diagnose
// 06, which the simulated PN532 answers "present" regardless) and that
// Close leaves no goroutine behind.
func TestReadCertificateBothPaths(t *testing.T) {
	for _, mode := range []ISODEP{ISODEPFirmware, ISODEPSoftware} {
		t.Run(string(mode), func(t *testing.T) {
			base := runtime.NumGoroutine()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			card, cert := testCard(t)
			s, err := sim.Start(ctx, sim.Options{Card: card})
			if err != nil {
				t.Fatal(err)
			}
			r := New(testConfig(s, mode))
			sess, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sess.Tech() != "iso14443-4b" {
				t.Errorf("tech %q", sess.Tech())
			}
			if _, err := jpki.ReadToken(ctx, sess); err != nil {
				t.Fatal(err)
			}
			der, err := jpki.ReadCertificate(ctx, sess, jpki.EFAuthCert)
			if err != nil || !bytes.Equal(der, cert) {
				t.Fatalf("certificate: %d bytes, %v", len(der), err)
			}
			s.Remove()
			if err := sess.WaitRemoved(ctx); err != nil {
				t.Fatalf("WaitRemoved: %v", err)
			}
			if err := sess.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if st := s.Chip().State(); st.RF || st.Target {
				t.Errorf("between taps the chip has RF %v, target %v; want both off", st.RF, st.Target)
			}
			h := r.Health()
			if h.State != StateReady || h.Starts != 1 || h.Sessions != 1 || h.Resets != 0 || len(h.Errors) != 0 {
				t.Errorf("health %+v", h)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("reader Close: %v", err)
			}
			if st := s.Chip().State(); st.Asleep || st.RF {
				t.Errorf("after Close: %+v (want awake, RF off: no PowerDown)", st)
			}
			s.Close()
			settle(t, base)
		})
	}
}

// TestChipFaultDoesNotReadTheCardTwice: the chip locks up in the middle
// of a read (the simulator's chip drops back to LowVbat and ignores every
// frame, as a wedged board does). The read fails without hanging; the
// reader pulses RSTPD_N, starts the chip again and finds the same card
// still on the field, but does not hand it to the pipeline a second time:
// it checks presence until the card leaves, and only a card put down
// after that is read.
func TestChipFaultDoesNotReadTheCardTwice(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	card, _ := testCard(t)
	s, err := sim.Start(ctx, sim.Options{Card: card})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := New(testConfig(s, ISODEPFirmware))
	defer r.Close()

	sess, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpki.ReadToken(ctx, sess); err != nil {
		t.Fatalf("first read: %v", err)
	}
	s.Chip().Reset() // lock-up: the chip ignores the host from now on
	if _, err := jpki.ReadCertificate(ctx, sess, jpki.EFAuthCert); !errors.Is(err, pn532.ErrNoACK) {
		t.Fatalf("read from a hung chip: %v", err)
	}
	if err := sess.WaitRemoved(ctx); err == nil {
		t.Fatal("WaitRemoved reported a removal it cannot have seen")
	}
	_ = sess.Close()
	apdus := s.Field().State().APDUs

	next := make(chan error, 1)
	go func() {
		sess2, err := r.Next(ctx)
		if err == nil {
			sess = sess2
		}
		next <- err
	}()
	// Wait until the chip has been reset, started again and is checking
	// the card's presence (InCommunicateThru R(NAK)s reach the card's
	// contactless front end; the field counts APDUs only).
	for r.Health().Starts < 2 || !s.Chip().State().Target {
		select {
		case err := <-next:
			t.Fatalf("Next returned %v while the card that was being read is still on the field", err)
		case <-ctx.Done():
			t.Fatal("reader did not restart")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if got := s.Field().State().APDUs; got != apdus {
		t.Fatalf("the still-present card got %d more APDUs after the fault", got-apdus)
	}
	h := r.Health()
	if h.Resets != 1 || h.Errors[ErrKindNoACK] == 0 {
		t.Errorf("health after the fault %+v", h)
	}
	s.Remove()
	// The reader sees the removal (its presence check times out) and
	// releases the target; only then is the card put down again.
	for s.Chip().State().Target {
		select {
		case err := <-next:
			t.Fatalf("Next returned %v with an empty field", err)
		case <-ctx.Done():
			t.Fatal("removal not seen")
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.Place(card)
	select {
	case err := <-next:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no session after the card was put back")
	}
	tok, err := jpki.ReadToken(ctx, sess)
	if err != nil || tok.Holder != jpki.HolderCard {
		t.Fatalf("read after recovery: %+v %v", tok, err)
	}
	_ = sess.Close()
	_ = r.Close()
	s.Close()
	settle(t, base)
}
