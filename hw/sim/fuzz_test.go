package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// fuzzTiming keeps every simulated wait at a millisecond.
var fuzzTiming = Timing{Timeout: time.Millisecond, PollAttempt: time.Millisecond}

// seqSeed joins commands as length-prefixed records, the input format of
// FuzzChip.
func seqSeed(cmds ...string) []byte {
	var out []byte
	for _, c := range cmds {
		b := h(c)
		out = append(out, byte(len(b)))
		out = append(out, b...)
	}
	return out
}

var fuzzSeqs = [][]string{
	{"00 00 6C 69 62 6E 66 63", "02", "04", "12 14", "14 01"},
	{"06 63 02 63 03 63 0D", "08 63 05 40 63 3C 10", "32 01 00", "32 01 01"},
	{"32 05 00 01 02", "4A 01 03 00", "40 01 " + selectJPKI, "40 01 " + selectAuth, "40 01 00 B0 00 00 00"},
	{"32 05 00 01 02", "4A 01 03 00", "40 41 00 A4 04 0C", "40 01 0A D3 92 F0 00 26 01 00 00 00 01", "00 06"},
	{"4A 01 03 00", "44 01", "54 01", "52 00", "4A 01 03 00", "32 01 00", "32 01 01", "4A 01 03 00"},
	{"4A 01 03 00", "42 CA 01", "42 05 00 08", "42 1D 12 34 56 78 00 08 01 00", "42 02 " + selectJPKI, "42 A3", "42 B2", "42 C2"},
	{"60 01 01 23", "16 F0", "02"},
	{"08 63 02 03 63 03 03", "32 01 01", "42 05 00 00", "42 50 12 34 56 78", "42 05 00 08"},
}

// FuzzChip runs arbitrary command sequences on the chip model: it must
// never panic, never block past the host's deadline, and always produce an
// answer that fits a frame and carries the right response code.
func FuzzChip(f *testing.F) {
	for _, s := range fuzzSeqs {
		f.Add(seqSeed(s...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		field := NewField()
		field.Place(newTestCard(t), 3)
		c := NewChip(field, &ChipOptions{Awake: true, Timing: fuzzTiming})
		for len(in) > 0 {
			n := min(int(in[0]), len(in)-1)
			cmd := in[1 : 1+n]
			in = in[1+n:]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			start := time.Now()
			out, err := c.Process(ctx, cmd)
			cancel()
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("command % X took %v", cmd, d)
			}
			switch {
			case errors.Is(err, ErrSyntax), errors.Is(err, context.DeadlineExceeded):
			case err != nil:
				t.Fatalf("command % X: unexpected error %v", cmd, err)
			default:
				if len(out) == 0 || out[0] != cmd[0]+1 {
					t.Fatalf("command % X answered % X", cmd, out)
				}
				if _, err := pn532.Encode(pn532.TFIChip, out); err != nil {
					t.Fatalf("command % X: answer does not fit a frame: %v", cmd, err)
				}
			}
		}
	})
}

// FuzzServe feeds arbitrary host bytes to the link layer: it must never
// panic or hang, and everything the chip sends must be whole valid frames
// (ACK, D5 information frames or the error frame).
func FuzzServe(f *testing.F) {
	f.Add([]byte{})
	f.Add(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	for _, s := range fuzzSeqs {
		var b []byte
		for _, c := range s {
			b = append(b, cmd(c)...)
		}
		f.Add(b)
	}
	f.Add(append(cmd("4A 01 03 00"), pn532.ACK...))
	f.Add(append(cmd("02"), pn532.NACK...))
	f.Add(h("00 00 FF FF FF 01 05 FA D4 40 01"))
	f.Add(h("00 FF 80 80 00 FF 00 FF 00 FF FF 00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		field := NewField()
		field.Place(newTestCard(t), 2)
		c := NewChip(field, &ChipOptions{Awake: len(in) == 0 || in[0] != 0x55, Timing: fuzzTiming})
		a, b := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Serve(ctx, a) }()
		var got bytes.Buffer
		readDone := make(chan struct{})
		go func() {
			io.Copy(&got, b)
			close(readDone)
		}()
		b.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := b.Write(in); err != nil {
			t.Fatalf("Serve stopped reading: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // let pending commands answer
		cancel()
		a.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Serve did not stop")
		}
		b.Close()
		<-readDone
		for out := got.Bytes(); len(out) > 0; {
			fr, n, err := pn532.Decode(out)
			if err != nil || !bytes.HasPrefix(out, []byte{0x00, 0x00, 0xFF}) {
				// The pipe may have been closed in the middle of a write.
				if errors.Is(err, pn532.ErrIncomplete) {
					break
				}
				t.Fatalf("chip sent a bad frame: %v in % X", err, out)
			}
			if fr.Kind == pn532.KindNACK || fr.Kind == pn532.KindInfo && fr.TFI != pn532.TFIChip {
				t.Fatalf("chip sent %v TFI %02X", fr.Kind, fr.TFI)
			}
			out = out[n:]
			// Decode stops after the checksum; a real chip always sends
			// the 00 postamble, and so must the simulator.
			if len(out) == 0 || out[0] != 0x00 {
				t.Fatalf("chip frame without postamble, followed by % X", out)
			}
			out = out[1:]
		}
	})
}

// FuzzJPKI sends arbitrary APDUs to a virtual card with all three APs: it
// always answers with at most 256 data bytes and a status word.
func FuzzJPKI(f *testing.F) {
	for _, s := range []string{selectJPKI, selectAuth, selectPIN, "00 B0 00 00 00", "00 20 00 80", "00 20 00 80 04 31 32 33 34", "80 2A 00 80 03 01 02 03 00", "00 A4 04 0C 00", "00 B0 00 00 00 00"} {
		f.Add(seqSeed(selectJPKI, s))
	}
	for _, s := range []string{"00 A4 02 0C 02 00 12", "00 20 00 92", "00 84 00 00 10", "80 2A 00 00 03 01 02 03 00", "00 88 00 00 01 00", "00 A4 02 0C 02 00 02"} {
		f.Add(seqSeed(selectSurface, s, "00 B0 00 00 00"))
		f.Add(seqSeed(selectSupport, s, "00 20 00 80 04 39 38 37 36"))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, c := testCard(t, testpki.KindValid)
		for len(in) > 0 {
			n := min(int(in[0]), len(in)-1)
			apdu := in[1 : 1+n]
			in = in[1+n:]
			out, err := c.Transmit(context.Background(), apdu)
			if err != nil || len(out) < 2 || len(out) > 258 {
				t.Fatalf("APDU % X answered % X, %v", apdu, out, err)
			}
		}
	})
}
