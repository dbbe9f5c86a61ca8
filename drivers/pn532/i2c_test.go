package pn532

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// I2C ops (UM0701-02 §6.2.4); Addr 0 plays at I2CAddr.

func i2cOpWrite(frame []byte) Op { return Op{W: frame} }

// i2cOpStatus is a one-byte read of the status byte.
func i2cOpStatus(ready bool) Op {
	if ready {
		return Op{R: []byte{busStatusReady}}
	}
	return Op{R: []byte{0x00}}
}

// i2cOpRead is a frame read: the status byte, the frame, zeros.
func i2cOpRead(status byte, frame []byte) Op {
	r := make([]byte, i2cReadLen)
	r[0] = status
	copy(r[1:], frame)
	return Op{R: r}
}

func i2cFirmwareRecording(t testing.TB) *Recording {
	return &Recording{Bus: BusI2C, Ops: []Op{
		i2cOpWrite(busCmd(t, "02")),
		i2cOpStatus(false),
		i2cOpStatus(true),
		i2cOpRead(busStatusReady, ACK),
		i2cOpStatus(true),
		i2cOpRead(busStatusReady, busRsp(t, busFW)),
	}}
}

// busClock is a fake clock: sleeping moves it on, nothing else does.
type busClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *busClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *busClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}

// i2cStamps is an i2c.Bus that notes the fake time each transaction
// starts at and can fail chosen transactions (counted from 0) without
// passing them on, as a NACK from a busy chip does.
type i2cStamps struct {
	i2c.Bus
	clk    *busClock
	fail   func(n int, w, r []byte) error
	mu     sync.Mutex
	n      int
	starts []time.Time
}

func (b *i2cStamps) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	n := b.n
	b.n++
	b.starts = append(b.starts, b.clk.now())
	b.mu.Unlock()
	if b.fail != nil {
		if err := b.fail(n, w, r); err != nil {
			return err
		}
	}
	return b.Bus.Tx(addr, w, r)
}

// newTestI2C puts the transport on bus with a fake clock.
func newTestI2C(t *testing.T, bus i2c.Bus, opts *I2COpts) *I2C {
	t.Helper()
	i, err := NewI2C(bus, opts)
	if err != nil {
		t.Fatal(err)
	}
	clk := &busClock{t: time.Unix(1_700_000_000, 0)}
	i.now, i.sleep = clk.now, clk.sleep
	return i
}

// newStampedI2C is newTestI2C with the bus wrapped in i2cStamps sharing
// the transport's clock.
func newStampedI2C(t *testing.T, bus i2c.Bus, opts *I2COpts, fail func(n int, w, r []byte) error) (*I2C, *i2cStamps) {
	t.Helper()
	clk := &busClock{t: time.Unix(1_700_000_000, 0)}
	sb := &i2cStamps{Bus: bus, clk: clk, fail: fail}
	i, err := NewI2C(sb, opts)
	if err != nil {
		t.Fatal(err)
	}
	i.now, i.sleep = clk.now, clk.sleep
	return i, sb
}

func TestI2CGetFirmwareVersion(t *testing.T) {
	p := i2cFirmwareRecording(t).I2CPlayback()
	i, sb := newStampedI2C(t, p, nil, nil)
	busGetFirmware(t, i)
	if err := p.Close(); err != nil {
		t.Errorf("unused recorded transactions: %v", err)
	}
	// Every transaction starts at least the bus-free time after the one
	// before (fake clock: transactions take no time).
	for k := 1; k < len(sb.starts); k++ {
		if gap := sb.starts[k].Sub(sb.starts[k-1]); gap < i2cBusFree {
			t.Errorf("transaction %d started %v after the one before, want ≥ %v", k, gap, i2cBusFree)
		}
	}
}

func TestI2CPlaybackReportsUnusedOps(t *testing.T) {
	rec := i2cFirmwareRecording(t)
	rec.Ops = append(rec.Ops, i2cOpStatus(false))
	p := rec.I2CPlayback()
	busGetFirmware(t, newTestI2C(t, p, nil))
	if err := p.Close(); err == nil {
		t.Fatal("Close = nil with a recorded transaction unused")
	}
}

func TestI2CReadsAgainAfterNACK(t *testing.T) {
	nack := errors.New("i2c-1: remote I/O error")
	for _, tc := range []struct {
		name string
		fail map[int]bool // transactions the chip NACKs
	}{
		{"status read", map[int]bool{1: true}},
		{"status read twice", map[int]bool{1: true, 2: true}},
		{"frame read", map[int]bool{2: true}},
		{"write", map[int]bool{0: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := (&Recording{Bus: BusI2C, Ops: []Op{
				i2cOpWrite(busCmd(t, "02")),
				i2cOpStatus(true),
				i2cOpRead(busStatusReady, ACK),
			}}).I2CPlayback()
			i, _ := newStampedI2C(t, p, nil, func(n int, w, r []byte) error {
				if tc.fail[n] {
					return nack
				}
				return nil
			})
			ctx := context.Background()
			if err := i.WriteFrame(ctx, busCmd(t, "02")); err != nil {
				t.Fatal(err)
			}
			if f, err := i.ReadFrame(ctx); err != nil || f.Kind != KindACK {
				t.Fatalf("ReadFrame = %+v, %v; want the ACK", f, err)
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestI2CGivesUpAfterRetries(t *testing.T) {
	nack := errors.New("i2c-1: remote I/O error")
	p := (&Recording{Bus: BusI2C}).I2CPlayback()
	i, sb := newStampedI2C(t, p, &I2COpts{ReadRetries: 3, WriteRetries: 2}, func(int, []byte, []byte) error { return nack })
	ctx := context.Background()
	_, err := i.ReadFrame(ctx)
	if !errors.Is(err, nack) || !strings.HasPrefix(err.Error(), "pn532: i2c: ") {
		t.Fatalf("ReadFrame = %v, want %v wrapped with the pn532: i2c: prefix", err, nack)
	}
	if sb.n != 4 {
		t.Errorf("%d reads, want 1 + 3 retries", sb.n)
	}
	err = i.WriteFrame(ctx, ACK)
	if !errors.Is(err, nack) || !strings.HasPrefix(err.Error(), "pn532: i2c: ") {
		t.Fatalf("WriteFrame = %v, want %v wrapped", err, nack)
	}
	if sb.n != 6 {
		t.Errorf("%d transactions, want 4 reads and 2 writes", sb.n)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestI2CReadErrors(t *testing.T) {
	bad := busRsp(t, busFW)
	bad[len(bad)-2]++
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"bad DCS", bad, ErrChecksum},
		{"no frame", nil, ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := (&Recording{Bus: BusI2C, Ops: []Op{i2cOpStatus(true), i2cOpRead(busStatusReady, tc.frame)}}).I2CPlayback()
			i := newTestI2C(t, p, nil)
			_, err := i.ReadFrame(context.Background())
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "pn532: i2c: ") {
				t.Fatalf("ReadFrame error = %v, want %v with the pn532: i2c: prefix", err, tc.want)
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A frame read whose status byte says busy after all sends the host back
// to polling.
func TestI2CFrameReadNotReady(t *testing.T) {
	p := (&Recording{Bus: BusI2C, Ops: []Op{
		i2cOpStatus(true),
		i2cOpRead(0x00, nil),
		i2cOpStatus(false),
		i2cOpStatus(true),
		i2cOpRead(busStatusReady, ACK),
	}}).I2CPlayback()
	i := newTestI2C(t, p, nil)
	if f, err := i.ReadFrame(context.Background()); err != nil || f.Kind != KindACK {
		t.Fatalf("ReadFrame = %+v, %v; want the ACK", f, err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestI2CNeverReady(t *testing.T) {
	polls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := &i2cFake{tx: func(addr uint16, w, r []byte) error {
		if len(r) != 1 {
			t.Errorf("read of %d bytes, want only status reads", len(r))
		}
		clear(r)
		if polls++; polls == 5 {
			cancel()
		}
		return nil
	}}
	i := newTestI2C(t, bus, nil)
	if f, err := i.ReadFrame(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadFrame = %+v, %v; want ctx's error", f, err)
	}

	// With a deadline, the same.
	i = newTestI2C(t, &i2cFake{tx: func(addr uint16, w, r []byte) error { clear(r); return nil }}, nil)
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer dcancel()
	if f, err := i.ReadFrame(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame = %+v, %v; want the ctx deadline", f, err)
	}
}

func TestI2CIRQ(t *testing.T) {
	pin := &gpiotest.Pin{N: "P70_IRQ", EdgesChan: make(chan gpio.Level, 1)}
	// The line is low: the host reads the frame straight away.
	p := (&Recording{Bus: BusI2C, Ops: []Op{i2cOpRead(busStatusReady, ACK)}}).I2CPlayback()
	i := newTestI2C(t, p, &I2COpts{IRQ: pin})
	_ = pin.Out(gpio.Low)
	if f, err := i.ReadFrame(context.Background()); err != nil || f.Kind != KindACK {
		t.Fatalf("ReadFrame = %+v, %v; want the ACK", f, err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestI2CDrain(t *testing.T) {
	p := (&Recording{Bus: BusI2C, Ops: []Op{
		i2cOpStatus(true),
		i2cOpRead(busStatusReady, busRsp(t, busFW)),
		i2cOpStatus(false),
	}}).I2CPlayback()
	if err := newTestI2C(t, p, nil).Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestI2CWake(t *testing.T) {
	// A waking chip may NACK: Wake does not mind.
	p := (&Recording{Bus: BusI2C}).I2CPlayback()
	i, sb := newStampedI2C(t, p, nil, func(int, []byte, []byte) error { return errors.New("nack") })
	if err := i.Wake(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sb.n != 1 {
		t.Errorf("Wake made %d transactions, want 1", sb.n)
	}
	if got := i.String(); !strings.Contains(got, "0x24") {
		t.Errorf("String() = %q, want the address", got)
	}
}

func TestNewI2COpts(t *testing.T) {
	if _, err := NewI2C(nil, nil); err == nil {
		t.Error("NewI2C(nil) succeeded")
	}
	if _, err := NewI2C(&i2cFake{}, &I2COpts{Addr: 0x90}); err == nil {
		t.Error("NewI2C accepted an 8-bit address")
	}
	i, err := NewI2C(&i2cFake{}, &I2COpts{})
	if err != nil {
		t.Fatal(err)
	}
	if i.opts.Addr != I2CAddr || i.opts.ReadRetries != DefaultI2COpts.ReadRetries || i.opts.WriteRetries != DefaultI2COpts.WriteRetries {
		t.Errorf("zero opts became %+v, want the defaults", i.opts)
	}
}

// FuzzI2CRead feeds arbitrary chip bytes to ReadFrame as the frame after
// a ready status byte: it must return a frame or an error wrapping
// ErrChecksum or ErrLength, never panic.
func FuzzI2CRead(f *testing.F) {
	f.Add(ACK)
	f.Add(NACK)
	f.Add(ErrorFrame)
	f.Add(busRsp(f, busFW))
	f.Add(busRsp(f, "41 00"+strings.Repeat(" 90", 258)))
	f.Add([]byte{0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x09, 0xF6})
	f.Add([]byte{0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		bus := &i2cFake{tx: func(addr uint16, w, r []byte) error {
			clear(r)
			r[0] = busStatusReady
			if len(r) > 1 {
				copy(r[1:], data)
			}
			return nil
		}}
		i, err := NewI2C(bus, nil)
		if err != nil {
			t.Fatal(err)
		}
		clk := &busClock{t: time.Unix(1_700_000_000, 0)}
		i.now, i.sleep = clk.now, clk.sleep
		fr, err := i.ReadFrame(context.Background())
		if err != nil {
			if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrLength) {
				t.Fatalf("ReadFrame error %v wraps neither ErrChecksum nor ErrLength", err)
			}
			return
		}
		if len(fr.Data) > MaxFrameData {
			t.Fatalf("frame with %d data bytes", len(fr.Data))
		}
		if fr.Kind == KindInfo {
			if _, err := Encode(fr.TFI, fr.Data); err != nil {
				t.Fatalf("decoded frame does not encode: %v", err)
			}
		}
	})
}

// i2cFake is an i2c.Bus whose transactions a test function answers.
type i2cFake struct {
	mu sync.Mutex
	tx func(addr uint16, w, r []byte) error
}

func (b *i2cFake) String() string { return "i2cfake" }

func (b *i2cFake) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tx == nil {
		return nil
	}
	return b.tx(addr, w, r)
}

func (b *i2cFake) SetSpeed(physic.Frequency) error { return nil }
