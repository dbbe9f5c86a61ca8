package sim

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// The I2C host here is written by hand from UM0701-02 §6.2.4 (address
// 0x24; a write carries a frame; every read starts with the status byte,
// 01 ready) and libnfc's pn532_i2c.c (5 ms between transactions),
// independently of drivers/pn532.

type i2cHost struct {
	t    *testing.T
	b    *I2CBus
	clk  *fakeClock
	hz   int
	busy time.Duration // the last transaction's length on the bus
}

func startI2C(t *testing.T, opts Options) (*Sim, *i2cHost) {
	t.Helper()
	clk := newFakeClock()
	opts.Bus = BusI2C
	opts.Now = clk.Now
	s := startSim(t, opts)
	return s, &i2cHost{t: t, b: s.I2C(), clk: clk, hz: 100_000}
}

// pause waits for the end of the last transaction and the bus-free time.
func (h *i2cHost) pause() {
	h.clk.Advance(h.busy + I2CBusFreeTime)
	h.busy = 0
}

// tx is one transaction after the bus-free time.
func (h *i2cHost) tx(w []byte, n int) ([]byte, error) {
	h.pause()
	k := 1 + len(w) + n
	if len(w) > 0 && n > 0 {
		k++
	}
	h.busy = time.Duration(k) * I2CByteTime(h.hz)
	var r []byte
	if n > 0 {
		r = make([]byte, n)
	}
	err := h.b.Tx(I2CAddr, w, r)
	return r, err
}

func (h *i2cHost) write(frame []byte) {
	h.t.Helper()
	if _, err := h.tx(frame, 0); err != nil {
		h.t.Fatalf("write: %v", err)
	}
}

func (h *i2cHost) read(n int) []byte {
	h.t.Helper()
	r, err := h.tx(nil, n)
	if err != nil {
		h.t.Fatalf("read: %v", err)
	}
	return r
}

// waitReady polls the status byte alone.
func (h *i2cHost) waitReady() {
	h.t.Helper()
	for deadline := time.Now().Add(3 * time.Second); h.read(1)[0] != 0x01; {
		if time.Now().After(deadline) {
			h.t.Fatal("chip never ready")
		}
		time.Sleep(time.Millisecond)
	}
}

// frame reads one frame of n bytes after its status byte.
func (h *i2cHost) frame(n int) []byte {
	h.t.Helper()
	h.waitReady()
	r := h.read(1 + n)
	if r[0] != 0x01 {
		h.t.Fatalf("status %02X", r[0])
	}
	return r[1:]
}

func (h *i2cHost) exchange(command, answer string) {
	h.t.Helper()
	h.write(cmd(command))
	if got := h.frame(6); !bytes.Equal(got, pn532.ACK) {
		h.t.Fatalf("%s: ACK % X", command, got)
	}
	want := rsp(answer)
	if got := h.frame(len(want)); !bytes.Equal(got, want) {
		h.t.Fatalf("%s\n got % X\nwant % X", command, got, want)
	}
}

// TestI2CExchange: byte-exact status, ACK and answer; reading more than
// the frame gives 00s; the meter counts 9 clocks per byte with the
// address at the bus speed.
func TestI2CExchange(t *testing.T) {
	noLeak(t)
	m := &Meter{}
	s, hs := startI2C(t, Options{Awake: true, Meter: m})
	if got := hs.read(4); !bytes.Equal(got, h("00 00 00 00")) {
		t.Fatalf("not ready: % X", got)
	}
	n, d := meterDelta(m, func() { hs.write(h("00 00 FF 02 FE D4 02 2A 00")) })
	if n != 10 || d != 10*90*time.Microsecond {
		t.Fatalf("meter for a 9-byte write at 100 kHz: %d bytes %v", n, d)
	}
	if s.IRQ().Read() != gpio.Low {
		t.Fatal("IRQ high with the ACK ready")
	}
	if got := hs.read(1); !bytes.Equal(got, h("01")) {
		t.Fatalf("status: % X", got)
	}
	// The status alone does not take the frame.
	if got := hs.read(7); !bytes.Equal(got, h("01 00 00 FF 00 FF 00")) {
		t.Fatalf("ACK: % X", got)
	}
	hs.waitReady()
	if got := hs.read(1 + 13 + 3); !bytes.Equal(got, h("01 00 00 FF 06 FA D5 03 32 01 06 07 E8 00 00 00 00")) {
		t.Fatalf("answer: % X", got)
	}
	if got := hs.read(2); !bytes.Equal(got, h("00 00")) || s.IRQ().Read() != gpio.High {
		t.Fatalf("after the answer: % X", got)
	}
	if err := hs.b.SetSpeed(400 * physic.KiloHertz); err != nil {
		t.Fatal(err)
	}
	hs.hz = 400_000
	// Write and read in one transaction: two address bytes.
	if n, d := meterDelta(m, func() {
		if _, err := hs.tx(pn532.ACK, 1); err != nil {
			t.Fatal(err)
		}
	}); n != 2+6+1 || d != 9*I2CByteTime(400_000) {
		t.Fatalf("meter at 400 kHz: %d bytes %v", n, d)
	}
}

// TestI2CPartialReadTakesTheFrame: a read that stops inside the frame
// still takes it (the next read says not ready); NACK gets it again,
// whole, as Seeed-Studio's PN532_I2C does.
func TestI2CPartialReadTakesTheFrame(t *testing.T) {
	_, hs := startI2C(t, Options{Awake: true, Card: newTestCard(t)})
	hs.write(cmd("4A 01 03 00"))
	if got := hs.frame(6); !bytes.Equal(got, pn532.ACK) {
		t.Fatalf("ACK: % X", got)
	}
	hs.waitReady()
	head := hs.read(6) // status + 00 00 FF LEN LCS
	want := rsp(atqbAnswer)
	if !bytes.Equal(head, append([]byte{0x01}, want[:5]...)) {
		t.Fatalf("header: % X", head)
	}
	if got := hs.read(1); got[0] != 0x00 {
		t.Fatalf("status after a partial read: %02X", got[0])
	}
	hs.write(pn532.NACK)
	if got := hs.frame(len(want)); !bytes.Equal(got, want) {
		t.Fatalf("after NACK\n got % X\nwant % X", got, want)
	}
}

// TestI2CWrongAddress: only 0x24 answers.
func TestI2CWrongAddress(t *testing.T) {
	_, hs := startI2C(t, Options{Awake: true})
	for _, a := range []uint16{0x48, 0x25, 0x28} {
		hs.pause()
		hs.busy = time.Millisecond
		if err := hs.b.Tx(a, cmd("02"), nil); !errors.Is(err, ErrI2CNACK) {
			t.Errorf("address %02X: %v", a, err)
		}
	}
	hs.exchange("02", "03 32 01 06 07")
}

// TestI2CBusFreeTime: a transaction that starts before the bus-free time
// is over is not acknowledged, and the frame it carried is lost.
func TestI2CBusFreeTime(t *testing.T) {
	_, hs := startI2C(t, Options{Awake: true})
	hs.write(cmd("02"))
	hs.clk.Advance(hs.busy + I2CBusFreeTime - time.Millisecond)
	hs.busy = time.Millisecond // the NACKed address byte, rounded up
	if err := hs.b.Tx(I2CAddr, nil, make([]byte, 7)); !errors.Is(err, ErrI2CNACK) {
		t.Fatalf("read 4 ms after the write: %v", err)
	}
	if got := hs.frame(6); !bytes.Equal(got, pn532.ACK) {
		t.Fatalf("ACK: % X", got)
	}
	hs.frame(13)
	// A command written too early never reaches the chip.
	if err := hs.b.Tx(I2CAddr, cmd("02"), nil); !errors.Is(err, ErrI2CNACK) {
		t.Fatalf("write at once: %v", err)
	}
	if got := hs.read(1); got[0] != 0x00 {
		t.Fatalf("the early command was taken: %02X", got[0])
	}
	hs.exchange("02", "03 32 01 06 07") // the host's retry
}

// TestI2CWakeFromLowVbat: the address wakes a chip in LowVbat, which holds
// SCL until it is ready: the waking transaction goes through.
func TestI2CWakeFromLowVbat(t *testing.T) {
	s, hs := startI2C(t, Options{})
	if !s.Chip().Asleep() {
		t.Fatal("awake at start")
	}
	hs.exchange("14 01", "15")
	// PowerDown for HSU only: the address no longer wakes it.
	hs.exchange("16 10", "17 00")
	hs.pause()
	if err := hs.b.Tx(I2CAddr, cmd("02"), nil); !errors.Is(err, ErrI2CNACK) {
		t.Fatalf("powered down for HSU only: %v", err)
	}
}
