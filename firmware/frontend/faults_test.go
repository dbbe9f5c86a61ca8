package frontend

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
)

// readCert reads the token and the authentication certificate.
func readCert(ctx context.Context, s tap.Session) ([]byte, error) {
	if _, err := jpki.ReadToken(ctx, s); err != nil {
		return nil, err
	}
	return jpki.ReadCertificate(ctx, s, jpki.EFAuthCert)
}

// The corrupted byte is the 15th chip→host byte from the injection: after
// the 6-byte ACK of the next command, a data byte of its answer (00 00 FF
// LEN LCS D5 43 status …), so the DCS fails and the host's NACK gets the
// answer again.

// TestRecoversFromEachFault injects each fault of the simulator into a
// session in progress and checks how the reader comes out of it: faults
// the protocol repairs (a corrupted byte: NACK) leave the read intact;
// faults of the chip or the link fail the read, make the reader reset the
// chip (the simulator's RSTPD_N pin) and start it again, and the next
// placement of the card is read in full; a card pulled mid-exchange is
// "card lost", not a chip fault. Every placement gives at most one
// session, and no goroutine outlives the reader.
func TestRecoversFromEachFault(t *testing.T) {
	cases := []struct {
		name   string
		inject func(s *sim.Sim)
		// repaired: the read in progress survives the fault.
		repaired bool
		// kind is the error kind the health counters must show (for the
		// faults that fail the read).
		kind string
		// reset: the fault needs RSTPD_N, the chip's starts go up.
		reset bool
	}{
		{name: "corrupted byte", inject: func(s *sim.Sim) { s.Faults().CorruptChipByte(14, 0x10) }, repaired: true},
		{name: "dropped host bytes", inject: func(s *sim.Sim) { s.Faults().DropHostBytes(4) }, kind: ErrKindNoACK, reset: true},
		{name: "dropped chip bytes", inject: func(s *sim.Sim) { s.Faults().DropChipBytes(9) }, reset: true},
		{name: "hung chip", inject: func(s *sim.Sim) { s.Chip().Hang() }, kind: ErrKindNoACK, reset: true},
		{name: "serial device unplugged", inject: func(s *sim.Sim) {
			s.Unplug()
			if err := s.Replug(); err != nil {
				panic(err)
			}
		}, reset: true},
		{name: "card removed mid-exchange", inject: func(s *sim.Sim) { s.Field().RemoveAfter(1) }, kind: ErrKindCardLost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			card, cert := testCard(t)
			s, err := sim.Start(ctx, sim.Options{Card: card})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cfg := testConfig(s, ISODEPSoftware)
			if testing.Verbose() {
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
				cfg.Opts.Logger = cfg.Logger
			}
			rl, err := board.NewResetLine(s.ResetPin())
			if err != nil {
				t.Fatal(err)
			}
			cfg.Reset = rl.Pulse
			r := New(cfg)
			defer r.Close()

			sess, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jpki.ReadToken(ctx, sess); err != nil {
				t.Fatalf("before the fault: %v", err)
			}
			tc.inject(s)
			der, err := jpki.ReadCertificate(ctx, sess, jpki.EFAuthCert)
			if tc.repaired {
				if err != nil || !bytes.Equal(der, cert) {
					t.Fatalf("read through a repaired fault: %d bytes, %v", len(der), err)
				}
			} else if err == nil {
				t.Fatal("the read went on through the fault")
			}
			s.Remove()
			if err := sess.WaitRemoved(ctx); err == nil && !tc.repaired && tc.kind != ErrKindCardLost {
				t.Error("WaitRemoved saw a removal through a reset chip")
			}
			_ = sess.Close()
			next := make(chan tap.Session, 1)
			go func() {
				for ctx.Err() == nil {
					if s, err := r.Next(ctx); err == nil {
						next <- s
						return
					}
				}
			}()
			if tc.reset {
				// The reader restarts the chip and sees the field empty
				// (until then a card put down counts as the one whose read
				// failed, and is not read).
				for h := r.Health(); h.Starts < 2 || h.AwaitingRemoval; h = r.Health() {
					select {
					case <-next:
						t.Fatal("a session on an empty field")
					case <-ctx.Done():
						t.Fatalf("no restart: %+v", r.Health())
					case <-time.After(5 * time.Millisecond):
					}
				}
			}
			s.Place(card)
			select {
			case sess = <-next:
			case <-ctx.Done():
				t.Fatal("no session after the card was put back")
			}
			if der, err := readCert(ctx, sess); err != nil || !bytes.Equal(der, cert) {
				t.Fatalf("after recovery: %d bytes, %v", len(der), err)
			}
			_ = sess.Close()
			h := r.Health()
			if tc.kind != "" && h.Errors[tc.kind] == 0 {
				t.Errorf("health %+v: no %s error counted", h, tc.kind)
			}
			if tc.reset && (h.Resets == 0 || h.Starts < 2) || !tc.reset && (h.Resets != 0 || h.Starts != 1) {
				t.Errorf("health %+v (reset expected: %v)", h, tc.reset)
			}
			if h.Sessions != 2 {
				t.Errorf("%d sessions for two placements", h.Sessions)
			}
			_ = r.Close()
			s.Close()
			settle(t, base)
		})
	}
}

// TestStaleFrameAtStart: a previous session's InListPassiveTarget answer
// waits on the line when the reader opens it; the reader drains it and
// reads the card normally.
func TestStaleFrameAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	card, cert := testCard(t)
	stale, err := pn532.Encode(pn532.TFIChip, []byte{0x4B, 0x01, 0x01, 0x50, 1, 2, 3, 4, 0, 0, 0, 0, 0xB3, 0x81, 0xA1, 0x01, 0x01})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(ctx, sim.Options{Card: card, Faults: sim.FaultOptions{StaleFrames: [][]byte{stale}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := New(testConfig(s, ISODEPSoftware))
	defer r.Close()
	sess, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if der, err := readCert(ctx, sess); err != nil || !bytes.Equal(der, cert) {
		t.Fatalf("read: %d bytes, %v", len(der), err)
	}
	if _, _, _, n := s.Faults().Pending(); n != 0 {
		t.Fatalf("%d stale frames never sent", n)
	}
}
