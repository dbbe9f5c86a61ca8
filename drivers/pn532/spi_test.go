package pn532

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spitest"
)

// SPI ops as the chip means them (UM0701-02 §6.2.5); SPIPlayback reverses
// them for a recording with ReverseBits.

// spiOpWrite is DW and a frame.
func spiOpWrite(frame []byte) Op { return Op{W: append([]byte{spiDataWrite}, frame...)} }

// spiOpStatus is SR answered by the status byte, 01 when ready.
func spiOpStatus(ready bool) Op {
	st := byte(0x00)
	if ready {
		st = busStatusReady
	}
	return Op{W: []byte{spiStatusRead, 0x00}, R: []byte{0x00, st}}
}

// spiOpRead is one DR transfer carrying frame: DR and zeros out; in, the
// byte clocked during DR (01 in libnfc's log), the frame, zeros.
func spiOpRead(frame []byte) Op { return spiOpReadN(frame, spiReadLen) }

// spiOpReadN is a DR transfer of n bytes (DR included).
func spiOpReadN(frame []byte, n int) Op {
	w := make([]byte, n)
	w[0] = spiDataRead
	r := make([]byte, n)
	r[0] = 0x01
	copy(r[1:], frame)
	return Op{W: w, R: r}
}

// spiOpACK is the DR transfer after a command: DR and the 6-byte ACK.
func spiOpACK() Op { return spiOpReadN(ACK, spiACKRead) }

// spiFirmwareRecording is GetFirmwareVersion over SPI: the command, a busy
// status, a ready status, the ACK, a ready status, the answer.
func spiFirmwareRecording(t testing.TB, reverse bool) *Recording {
	return &Recording{Bus: BusSPI, ReverseBits: reverse, Ops: []Op{
		spiOpWrite(busCmd(t, "02")),
		spiOpStatus(false),
		spiOpStatus(true),
		spiOpACK(),
		spiOpStatus(true),
		spiOpRead(busRsp(t, busFW)),
	}}
}

// newTestSPI connects a playback and puts the transport on it, without
// real sleeps between status polls.
func newTestSPI(t *testing.T, p *spitest.Playback, opts *SPIOpts) *SPI {
	t.Helper()
	c, err := p.Connect(physic.MegaHertz, spi.Mode0, 8)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSPI(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.sleep = busNoSleep
	return s
}

func TestSPIGetFirmwareVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hardware bool
		// firstW is the command transfer's first bytes on the controller.
		firstW []byte
		// statusW is a status read on the controller.
		statusW []byte
	}{
		{"software bit reversal", false, []byte{0x80, 0x00, 0x00, 0xFF, 0x40, 0x7F, 0x2B, 0x40, 0x54, 0x00}, []byte{0x40, 0x00}},
		{"hardware LSB first", true, []byte{0x01, 0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00}, []byte{0x02, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := spiFirmwareRecording(t, !tc.hardware).SPIPlayback()
			if !bytes.Equal(p.Ops[0].W, tc.firstW) || !bytes.Equal(p.Ops[1].W, tc.statusW) {
				t.Fatalf("on the controller: command % X, status % X; want % X, % X", p.Ops[0].W, p.Ops[1].W, tc.firstW, tc.statusW)
			}
			s := newTestSPI(t, p, &SPIOpts{HardwareLSBFirst: tc.hardware})
			busGetFirmware(t, s)
			if err := p.Close(); err != nil {
				t.Errorf("unused recorded transfers: %v", err)
			}
		})
	}
}

func TestSPIPlaybackReportsUnusedOps(t *testing.T) {
	rec := spiFirmwareRecording(t, true)
	rec.Ops = append(rec.Ops, spiOpStatus(false)) // a poll the host never makes
	p := rec.SPIPlayback()
	busGetFirmware(t, newTestSPI(t, p, nil))
	if err := p.Close(); err == nil {
		t.Fatal("Close = nil with a recorded transfer unused")
	}
}

func TestSPIBitReversal(t *testing.T) {
	for _, tc := range []struct{ chip, wire byte }{
		{0x00, 0x00}, {0x01, 0x80}, {0x02, 0x40}, {0x03, 0xC0},
		{0xD4, 0x2B}, {0xD5, 0xAB}, {0xFF, 0xFF}, {0x0F, 0xF0}, {0xFE, 0x7F},
	} {
		var got []byte
		c := &spiFake{tx: func(w, r []byte) error {
			got = append([]byte(nil), w...)
			return nil
		}}
		s, err := NewSPI(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WriteFrame(context.Background(), []byte{tc.chip}); err != nil {
			t.Fatal(err)
		}
		if want := []byte{0x80, tc.wire}; !bytes.Equal(got, want) {
			t.Errorf("writing %02X sends % X, want % X", tc.chip, got, want)
		}
		// And back: what the controller reads is reversed into chip bytes.
		b := []byte{tc.wire}
		busReverse(b)
		if b[0] != tc.chip {
			t.Errorf("reading %02X gives %02X, want %02X", tc.wire, b[0], tc.chip)
		}
	}
}

func TestSPIReadErrors(t *testing.T) {
	good := busRsp(t, busFW)
	badDCS := append([]byte(nil), good...)
	badDCS[len(badDCS)-2] ^= 0xFF
	badLCS := append([]byte(nil), good...)
	badLCS[4]++
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"bad DCS", badDCS, ErrChecksum},
		{"bad LCS", badLCS, ErrChecksum},
		{"no frame", nil, ErrLength},
		{"LEN 0", []byte{0x00, 0x00, 0xFF, 0x00, 0x00, 0x00}, ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := (&Recording{Bus: BusSPI, ReverseBits: true, Ops: []Op{spiOpStatus(true), spiOpRead(tc.frame)}}).SPIPlayback()
			s := newTestSPI(t, p, nil)
			f, err := s.ReadFrame(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame = %+v, %v; want %v", f, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "pn532: spi: ") {
				t.Errorf("error %q lacks the pn532: spi: prefix", err)
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSPINeverReady(t *testing.T) {
	c := &spiFake{tx: func(w, r []byte) error {
		clear(r) // status 00: busy
		return nil
	}}
	s, err := NewSPI(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if f, err := s.ReadFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame = %+v, %v; want the ctx deadline", f, err)
	}
}

// A floating MISO reads FF: that is not a ready chip.
func TestSPIStatusFFIsNotReady(t *testing.T) {
	polls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &spiFake{tx: func(w, r []byte) error {
		if len(r) != 2 {
			t.Errorf("transfer of %d bytes, want only status reads", len(r))
		}
		for i := range r {
			r[i] = 0xFF
		}
		if polls++; polls == 3 {
			cancel()
		}
		return nil
	}}
	s, err := NewSPI(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.sleep = busNoSleep
	if _, err := s.ReadFrame(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadFrame error = %v, want ctx canceled", err)
	}
}

func TestSPIBusError(t *testing.T) {
	boom := errors.New("spidev: broken")
	s, err := NewSPI(&spiFake{tx: func(w, r []byte) error { return boom }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.WriteFrame(ctx, ACK); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "pn532: spi: ") {
		t.Errorf("WriteFrame = %v, want %v wrapped", err, boom)
	}
	if _, err := s.ReadFrame(ctx); !errors.Is(err, boom) {
		t.Errorf("ReadFrame = %v, want %v wrapped", err, boom)
	}
}

func TestSPIIRQ(t *testing.T) {
	ack := spiOpRead(ACK)
	for _, tc := range []struct {
		name  string
		setup func(pin *gpiotest.Pin)
		ops   []Op
	}{
		// The line is already low: no status read at all.
		{"low", func(pin *gpiotest.Pin) { _ = pin.Out(gpio.Low) }, []Op{ack}},
		// A falling edge comes while the host waits.
		{"edge", func(pin *gpiotest.Pin) { pin.EdgesChan <- gpio.Low }, []Op{ack}},
		// No edge (lost): after a while the host reads the status byte.
		{"lost edge", func(pin *gpiotest.Pin) {}, []Op{spiOpStatus(true), ack}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pin := &gpiotest.Pin{N: "P70_IRQ", EdgesChan: make(chan gpio.Level, 1)}
			p := (&Recording{Bus: BusSPI, ReverseBits: true, Ops: tc.ops}).SPIPlayback()
			s := newTestSPI(t, p, &SPIOpts{IRQ: pin})
			if pin.Read() != gpio.High {
				t.Fatal("NewSPI did not set up the IRQ pin with a pull-up")
			}
			tc.setup(pin)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if f, err := s.ReadFrame(ctx); err != nil || f.Kind != KindACK {
				t.Fatalf("ReadFrame = %+v, %v; want the ACK", f, err)
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSPIDrain(t *testing.T) {
	p := (&Recording{Bus: BusSPI, ReverseBits: true, Ops: []Op{
		spiOpStatus(true),
		spiOpRead(busRsp(t, busFW)), // a stale answer to a previous host
		spiOpStatus(true),
		spiOpRead(nil), // garbage is dropped too
		spiOpStatus(false),
	}}).SPIPlayback()
	s := newTestSPI(t, p, nil)
	if err := s.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestSPIWake(t *testing.T) {
	// One byte, 00, whatever comes back (FF from a sleeping chip).
	p := (&Recording{Bus: BusSPI, Ops: []Op{{W: []byte{0x00}, R: []byte{0xFF}}}}).SPIPlayback()
	s := newTestSPI(t, p, nil)
	var slept []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}
	if err := s.Wake(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(slept) != 1 || slept[0] != spiWakeDelay {
		t.Errorf("Wake waited %v, want once %v", slept, spiWakeDelay)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	if got := s.String(); !strings.Contains(got, "spi") {
		t.Errorf("String() = %q", got)
	}
}

func TestNewSPIRejectsNil(t *testing.T) {
	if _, err := NewSPI(nil, nil); err == nil {
		t.Error("NewSPI(nil) succeeded")
	}
}

// FuzzSPIRead feeds arbitrary chip bytes to ReadFrame as the content of a
// DR transfer: it must return a frame or an error wrapping ErrChecksum or
// ErrLength, never panic.
func FuzzSPIRead(f *testing.F) {
	f.Add(ACK)
	f.Add(NACK)
	f.Add(ErrorFrame)
	f.Add(busRsp(f, busFW))
	f.Add(busRsp(f, "41 00"+strings.Repeat(" 90", 258)))
	f.Add([]byte{0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x09, 0xF6})
	f.Add([]byte{0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &spiFake{tx: func(w, r []byte) error {
			switch len(r) {
			case 2: // status read
				r[1] = busStatusReady
			case spiReadLen:
				clear(r)
				copy(r[1:], data)
			}
			return nil
		}}
		s, err := NewSPI(c, &SPIOpts{HardwareLSBFirst: true})
		if err != nil {
			t.Fatal(err)
		}
		fr, err := s.ReadFrame(context.Background())
		if err != nil {
			if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrLength) {
				t.Fatalf("ReadFrame error %v wraps neither ErrChecksum nor ErrLength", err)
			}
			return
		}
		if len(fr.Data) > MaxFrameData {
			t.Fatalf("frame with %d data bytes", len(fr.Data))
		}
	})
}

// spiFake is an spi.Conn whose transfers a test function answers.
type spiFake struct {
	mu sync.Mutex
	tx func(w, r []byte) error
}

func (c *spiFake) String() string { return "spifake" }

func (c *spiFake) Tx(w, r []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tx(w, r)
}

func (c *spiFake) Duplex() conn.Duplex { return conn.Full }

func (c *spiFake) TxPackets(p []spi.Packet) error { return errors.New("spifake: no packets") }

// TestSPIShortACKRead: after a command the host clocks only DR and the
// 6-byte ACK (as libnfc does); when the chip has a stale answer there
// instead, the frame's start is in those 6 bytes and one continuation
// transfer gets the rest, the chip shifting its next byte out during the
// DR byte (libnfc pn532_spi_receive_next_chunk). The frame comes back
// whole, so the engine can tell it is not the ACK it waits for.
func TestSPIShortACKRead(t *testing.T) {
	stale := busRsp(t, busFW) // 00 00 FF 06 FA D5 03 32 01 06 07 E8 00
	cont := make([]byte, spiReadLen)
	copy(cont, stale[6:])
	p := (&Recording{Bus: BusSPI, ReverseBits: true, Ops: []Op{
		spiOpWrite(busCmd(t, "02")),
		spiOpStatus(true),
		spiOpReadN(stale[:6], spiACKRead),
		{W: append([]byte{spiDataRead}, make([]byte, spiReadLen-1)...), R: cont},
		spiOpStatus(true),
		spiOpACK(), // a second command's ACK: the short read again
	}}).SPIPlayback()
	s := newTestSPI(t, p, nil)
	ctx := context.Background()
	if err := s.WriteFrame(ctx, busCmd(t, "02")); err != nil {
		t.Fatal(err)
	}
	f, err := s.ReadFrame(ctx)
	if err != nil || f.Kind != KindInfo || f.TFI != 0xD5 || !bytes.Equal(f.Data, stale[6:11]) {
		t.Fatalf("ReadFrame = %+v, %v; want the stale answer % X", f, err, stale[6:11])
	}
	s.expectACK = true // as after the engine's next command
	if f, err := s.ReadFrame(ctx); err != nil || f.Kind != KindACK {
		t.Fatalf("ReadFrame = %+v, %v; want the ACK", f, err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}
