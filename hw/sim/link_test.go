package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// TestLinkExchange: byte-exact command → ACK → answer on the wire.
func TestLinkExchange(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	hs := serve(t, c)
	hs.write(h("00 00 FF 02 FE D4 02 2A 00")) // GetFirmwareVersion as libnfc sends it
	hs.expectBytes(h("00 00 FF 00 FF 00"))
	hs.expectBytes(h("00 00 FF 06 FA D5 03 32 01 06 07 E8 00"))
	hs.exchange("4A 01 03 00", atqbAnswer)
	hs.exchange("40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
}

// TestLinkPreambleAndGarbage: wake-up bytes, noise, a missing postamble and
// two frames in one write are all tolerated.
func TestLinkPreambleAndGarbage(t *testing.T) {
	c, _ := newTestChip(t, nil)
	hs := serve(t, c)
	hs.write(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	hs.write(append(h("13 37 FF 00 00"), cmd("02")...))
	hs.expectBytes(pn532.ACK)
	hs.expectBytes(rsp("03 32 01 06 07"))
	noPost := cmd("12 14")
	hs.write(noPost[:len(noPost)-1])
	hs.expectBytes(pn532.ACK)
	hs.expectBytes(rsp("13"))
	hs.exchange("14 01", "15")
	// A frame split across writes.
	f := cmd("00 00 6C 69 62 6E 66 63")
	hs.write(f[:4])
	hs.write(f[4:9])
	hs.write(f[9:])
	hs.expectBytes(pn532.ACK)
	hs.expectBytes(rsp("01 00 6C 69 62 6E 66 63"))
}

// TestLinkBadChecksum: a frame with a wrong LCS or DCS gets no ACK (the
// chip drops it and waits for the host's retry); the next good frame works.
func TestLinkBadChecksum(t *testing.T) {
	c, _ := newTestChip(t, nil)
	hs := serve(t, c)
	bad := cmd("02")
	bad[len(bad)-2]++ // DCS
	hs.write(bad)
	hs.expectSilence(100 * time.Millisecond)
	badLCS := cmd("02")
	badLCS[4]++
	hs.write(badLCS)
	hs.expectSilence(100 * time.Millisecond)
	hs.exchange("02", "03 32 01 06 07")
}

// TestLinkSyntaxError: an unknown command is ACKed, then answered with the
// error frame.
func TestLinkSyntaxError(t *testing.T) {
	c, _ := newTestChip(t, nil)
	hs := serve(t, c)
	hs.write(cmd("FE 01"))
	hs.expectBytes(pn532.ACK)
	hs.expectBytes(h("00 00 FF 01 FF 7F 81 00"))
}

// TestLinkAbortByACK: InListPassiveTarget with MaxRetries FF blocks until
// the host sends ACK; the chip then answers nothing and takes the next
// command at once.
func TestLinkAbortByACK(t *testing.T) {
	c, f := newTestChip(t, nil)
	hs := serve(t, c)
	hs.exchange("32 05 FF FF FF", "33")
	hs.write(cmd("4A 01 03 00"))
	hs.expectBytes(pn532.ACK)
	hs.expectSilence(100 * time.Millisecond)
	hs.write(pn532.ACK)
	// Frames are handled in order: once GetFirmwareVersion is answered,
	// the abort has happened.
	hs.exchange("02", "03 32 01 06 07")
	// A card arriving now must not produce a stale answer.
	f.Place(newTestCard(t), 0)
	hs.expectSilence(100 * time.Millisecond)
	hs.exchange("02", "03 32 01 06 07")
}

// TestLinkWaitEndsWhenCardArrives: the blocked InListPassiveTarget answers
// once a card is placed.
func TestLinkWaitEndsWhenCardArrives(t *testing.T) {
	c, f := newTestChip(t, nil)
	hs := serve(t, c)
	hs.write(cmd("4A 01 03 00"))
	hs.expectBytes(pn532.ACK)
	hs.expectSilence(60 * time.Millisecond)
	f.Place(newTestCard(t), 0)
	hs.expectBytes(rsp(atqbAnswer))
}

// TestLinkNACK: a host NACK makes the chip resend its last answer.
func TestLinkNACK(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	hs := serve(t, c)
	hs.exchange("4A 01 03 00", atqbAnswer)
	hs.write(pn532.NACK)
	hs.expectBytes(rsp(atqbAnswer))
	hs.write(pn532.NACK)
	hs.expectBytes(rsp(atqbAnswer))
}

// TestLinkNewCommandReplacesRunning: a command sent while another waits
// aborts the first; only the second is answered.
func TestLinkNewCommandReplacesRunning(t *testing.T) {
	c, _ := newTestChip(t, nil)
	hs := serve(t, c)
	hs.write(cmd("4A 01 03 00"))
	hs.expectBytes(pn532.ACK)
	hs.exchange("02", "03 32 01 06 07")
	hs.expectSilence(50 * time.Millisecond)
}

// TestLinkPowerDownAndWake: after PowerDown the chip ignores frames until
// the HSU wake-up preamble; libnfc's close/reopen cycle works.
func TestLinkPowerDownAndWake(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	hs := serve(t, c)
	hs.exchange("16 F0", "17 00")
	hs.write(cmd("02"))
	hs.expectSilence(100 * time.Millisecond)
	hs.write(h("55 55 00 00 00"))
	hs.exchange("14 01", "15")
	hs.exchange("02", "03 32 01 06 07")
}

// TestLinkLowVbatAtStart: a new chip needs the wake-up preamble first.
func TestLinkLowVbatAtStart(t *testing.T) {
	c := NewChip(NewField(), &ChipOptions{Timing: fastTiming})
	hs := serve(t, c)
	hs.write(cmd("02"))
	hs.expectSilence(100 * time.Millisecond)
	hs.write(append(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00"), cmd("14 01 14 01")...))
	hs.expectBytes(pn532.ACK)
	hs.expectBytes(rsp("15"))
}

// TestLinkTimeoutAfterRemoval: over the wire, an exchange with a removed
// card answers 41 01 after the simulated FWT.
func TestLinkTimeoutAfterRemoval(t *testing.T) {
	c, f := newTestChip(t, newTestCard(t))
	hs := serve(t, c)
	hs.exchange("4A 01 03 00", atqbAnswer)
	f.Remove()
	hs.exchange("40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 01")
	hs.exchange("42 BA 01", "43 01") // libnfc's presence check on a PN532
}

func TestRedactedHex(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"40 01 00 20 00 80 04 31 32 33 34", "d44001002000800" + "4**"},
		{"40 01 00 20 00 80", "d4400100200080"},
		{"42 02 00 20 00 80 04 31 32 33 34", "d44202002000800" + "4**"},
		{"42 0A 01 00 20 00 80 04 31 32 33 34", "d4420a01002000800" + "4**"},
		{"40 01 00 B0 00 00 04", "d4400100b0000004"},
		{"40 01 00 20 00 92 0E 35 35 30 32 31 37 32 30 33 35 32 32 38 35", "d44001002000920e**"},            // B by SFI
		{"40 01 00 24 01 80 04 31 31 31 31", "d440010024018004**"},                                          // CHANGE REFERENCE DATA
		{"40 01 80 20 00 80 04 31 32 33 34", "d440018020008004**"},                                          // any CLA
		{"42 1A 01 00 20 00 80 0E 35 35", "d4421a01002000800e**"},                                           // first chunk of a chained VERIFY
		{"40 01 00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 02", "d4400100a4040c0ad392100031000101040" + "2"}, // not a secret
	} {
		got := redactedHex(pn532.Frame{Kind: pn532.KindInfo, TFI: pn532.TFIHost, Data: h(tc.data)})
		if got != tc.want {
			t.Errorf("redactedHex(%s) = %s, want %s", tc.data, got, tc.want)
		}
	}
}

// TestHostRedactorChaining: the later chunks of a host-chained VERIFY are
// masked entirely, over InDataExchange (Tg 41) and ISO-DEP (PCB chaining
// bit); the state ends with the last chunk.
func TestHostRedactorChaining(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames [][2]string
	}{
		{"InDataExchange", [][2]string{
			{"40 41 00 20 00 80 0E 35 35 30", "d44041002000800e**"},
			{"40 41 32 31 37 32", "d44041**"},
			{"40 01 30 33 35 32 32 38 35", "d44001**"},
			{"40 01 00 B0 00 00 04", "d4400100b0000004"}, // chain over
		}},
		{"header split", [][2]string{
			{"40 41 00", "d4404100"},    // the CLA alone shows nothing; the INS is not known yet
			{"40 41 20 00", "d44041**"}, // from here on masked
			{"40 01 80 04 31 32 33 34", "d44001**"},
			{"40 01 00 20 00 80", "d4400100200080"}, // a retry query has nothing to mask
		}},
		{"chained non-secret", [][2]string{
			{"40 41 00 D6 00 00 04", "d44041" + "00d6000004"},
			{"40 01 01 02 03 04", "d44001" + "01020304"},
		}},
		{"ISO-DEP", [][2]string{
			{"42 1A 01 00 20 00 80 0E 35", "d4421a01002000800e**"},
			{"42 AA 01", "d442aa01"}, // an R-block is not an APDU chunk
			{"42 1B 01 30 32 31 37", "d4421b01**"},
			{"42 0A 01 32 30 33 35 32 32 38 35", "d4420a01**"},
			{"42 0B 01 00 B0 00 00 04", "d4420b0100b0000004"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r hostRedactor
			for _, f := range tc.frames {
				got := r.hex(pn532.Frame{Kind: pn532.KindInfo, TFI: pn532.TFIHost, Data: h(f[0])})
				if got != f[1] {
					t.Fatalf("hex(%s) = %s, want %s", f[0], got, f[1])
				}
			}
		})
	}
}

func TestMaskedReplyHex(t *testing.T) {
	short := rspBytes(h("41 00 01 02 03 90 00"))
	if got, want := maskedReplyHex(short), "0000ff08f8d54100**"; got != want {
		t.Errorf("maskedReplyHex(normal) = %s, want %s", got, want)
	}
	long := rspBytes(append(append(h("41 00"), make([]byte, 256)...), 0x90, 0x00))
	if got, want := maskedReplyHex(long), hex.EncodeToString(long[:8])+"d54100**"; got != want {
		t.Errorf("maskedReplyHex(extended) = %s, want %s", got, want)
	}
}

// serveHSU runs chip.ServeHSU with opts on one end of an in-memory pipe
// and returns the other end; the server stops with the test.
func serveHSU(t testing.TB, c *Chip, opts *HSUOptions) *host {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ServeHSU(ctx, a, opts) }()
	t.Cleanup(func() {
		cancel()
		a.Close()
		b.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeHSU: %v", err)
		}
	})
	return &host{t: t, conn: b}
}

// noLeak fails the test if goroutines started during it are still running
// a few seconds after its cleanups (register it first: cleanups run last
// in, first out).
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// drain returns everything the chip sends until it is silent for quiet.
func (hs *host) drain(quiet time.Duration) []byte {
	hs.t.Helper()
	out := hs.buf
	hs.buf = nil
	tmp := make([]byte, 512)
	for {
		hs.conn.SetReadDeadline(time.Now().Add(quiet))
		n, err := hs.conn.Read(tmp)
		out = append(out, tmp[:n]...)
		if err != nil {
			return out
		}
	}
}

// meterDelta runs f and returns the link bytes and time it added.
func meterDelta(m *Meter, f func()) (int, time.Duration) {
	before := m.Snapshot()
	f()
	after := m.Snapshot()
	return after.LinkBytes - before.LinkBytes, after.LinkTime - before.LinkTime
}

// TestLinkHungChipAnswersNothing: a hung chip ACKs nothing and answers
// nothing, also to NACK, until a reset; after Chip.Reset it is in LowVbat
// and the usual wake-up brings it back.
func TestLinkHungChipAnswersNothing(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	hs := serve(t, c)
	hs.exchange("02", "03 32 01 06 07")
	c.Hang()
	hs.write(cmd("02"))
	hs.expectSilence(100 * time.Millisecond)
	hs.write(pn532.NACK)
	hs.expectSilence(50 * time.Millisecond)
	c.Reset()
	hs.write(cmd("02")) // LowVbat: ignored until 55
	hs.expectSilence(50 * time.Millisecond)
	hs.write(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	hs.exchange("14 01", "15")
	// The reset also forgot the last answer: NACK has nothing to resend
	// but SAMConfiguration's.
	hs.write(pn532.NACK)
	hs.expectBytes(rsp("15"))
}

// TestHSUSetSerialBaudRate: the chip answers SetSerialBaudRate at the old
// speed and switches after the host's ACK (UM0701-02 §7.2.8); a host
// whose port stays at the old speed is not understood, one that switched
// is; the meter counts 10 bit times per byte at the speed in use; a chip
// reset goes back to 115200.
func TestHSUSetSerialBaudRate(t *testing.T) {
	noLeak(t)
	m := &Meter{}
	f := NewField()
	f.Place(newTestCard(t), 0)
	c := NewChip(f, &ChipOptions{Awake: true, Timing: fastTiming, Meter: m})
	var hostBaud atomic.Int64
	hostBaud.Store(115200)
	faults := &Faults{}
	hs := serveHSU(t, c, &HSUOptions{Faults: faults, HostBaud: func() int { return int(hostBaud.Load()) }})

	n, d := meterDelta(m, func() { hs.exchange("02", "03 32 01 06 07") })
	want := len(cmd("02")) + len(pn532.ACK) + len(rsp("03 32 01 06 07"))
	if n != want || d != time.Duration(want)*UARTByteTime(115200) {
		t.Fatalf("meter at 115200: %d bytes %v, want %d bytes %v", n, d, want, time.Duration(want)*UARTByteTime(115200))
	}

	// BR 06 = 460800: ACK and answer still at 115200.
	hs.exchange("10 06", "11")
	// Until the host's ACK the chip stays at 115200.
	hs.exchange("02", "03 32 01 06 07")
	hs.exchange("10 06", "11")
	hs.write(pn532.ACK) // at 115200: now both sides switch
	hs.expectSilence(30 * time.Millisecond)

	// The host forgot to switch: the chip samples garbage.
	hs.write(cmd("02"))
	hs.expectSilence(100 * time.Millisecond)
	// Frames from the chip at 460800 are garbage at 115200.
	stale := rsp("4B 00")
	faults.InjectStale(stale)
	if got := hs.drain(100 * time.Millisecond); len(got) == 0 || bytes.Contains(got, h("00 FF")) {
		t.Fatalf("host at the wrong speed read % X", got)
	}

	hostBaud.Store(460800)
	n, d = meterDelta(m, func() { hs.exchange("02", "03 32 01 06 07") })
	if n != want || d != time.Duration(want)*UARTByteTime(460800) {
		t.Fatalf("meter at 460800: %d bytes %v, want %d bytes %v", n, d, want, time.Duration(want)*UARTByteTime(460800))
	}

	// A reset: LowVbat at 115200 again; the host still at 460800 cannot
	// even wake it.
	c.Reset()
	hs.write(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	hs.write(cmd("14 01"))
	hs.expectSilence(100 * time.Millisecond)
	hostBaud.Store(115200)
	hs.write(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	hs.exchange("14 01", "15")
}

// TestResampleUART: a receiver at the sender's speed gets the bytes back;
// at another speed it gets something else; at a quarter of the speed 0x00
// bytes become framing errors read as 00.
func TestResampleUART(t *testing.T) {
	in := cmd("4A 01 03 00")
	if got := resampleUART(in, 115200, 115200); !bytes.Equal(got, in) {
		t.Fatalf("same speed: % X", got)
	}
	if got := resampleUART(in, 115200, 116000); !bytes.Equal(got, in) {
		t.Fatalf("0.7%% off: % X", got) // within a UART's tolerance
	}
	for _, rates := range [][2]int{{115200, 460800}, {460800, 115200}, {115200, 9600}, {921600, 115200}} {
		if got := resampleUART(in, rates[0], rates[1]); bytes.Equal(got, in) {
			t.Errorf("%d → %d: bytes survived", rates[0], rates[1])
		}
	}
	if got := resampleUART([]byte{0x00}, 115200, 460800); !bytes.Equal(got, []byte{0x00}) {
		t.Errorf("00 at 4× speed: % X", got)
	}
	if !sameBaud(115200, 117000) || sameBaud(115200, 121000) || sameBaud(0, 115200) {
		t.Error("sameBaud tolerance")
	}
}
