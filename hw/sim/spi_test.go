package sim

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// The SPI host here is written by hand from UM0701-02 §6.2.5 (prefix 01
// data write, 02 status read, 03 data read; LSB first, the host reverses
// the bits), independently of drivers/pn532.

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rev reverses the bit order of every byte: what a host whose controller
// shifts MSB first does for the PN532's LSB-first SPI (libnfc buses/spi.c).
func rev(b []byte) []byte {
	out := make([]byte, len(b))
	for i, x := range b {
		var y byte
		for j := range 8 {
			y |= (x >> j & 1) << (7 - j)
		}
		out[i] = y
	}
	return out
}

type spiHost struct {
	t       testing.TB
	c       spi.Conn
	reverse bool // reverse bits in software
}

// startSPI starts a simulator on SPI and connects at 1 MHz, Mode 0.
func startSPI(t *testing.T, opts Options) (*Sim, *spiHost, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	opts.Bus = BusSPI
	opts.Now = clk.Now
	s := startSim(t, opts)
	c, err := s.SPI().Connect(physic.MegaHertz, spi.Mode0, 8)
	if err != nil {
		t.Fatal(err)
	}
	return s, &spiHost{t: t, c: c, reverse: true}, clk
}

// tx is one NSS-low transaction: w, then zeros up to n bytes.
func (h *spiHost) tx(w []byte, n int) []byte {
	h.t.Helper()
	out := make([]byte, max(n, len(w)))
	copy(out, w)
	if h.reverse {
		out = rev(out)
	}
	r := make([]byte, len(out))
	if err := h.c.Tx(out, r); err != nil {
		h.t.Fatalf("Tx: %v", err)
	}
	if h.reverse {
		r = rev(r)
	}
	return r
}

func (h *spiHost) status() byte { return h.tx([]byte{0x02}, 2)[1] }

func (h *spiHost) write(frame []byte) {
	h.t.Helper()
	h.tx(append([]byte{0x01}, frame...), 0)
}

// read is a data read of n bytes; it returns them without the prefix slot.
func (h *spiHost) read(n int) []byte {
	h.t.Helper()
	return h.tx([]byte{0x03}, n+1)[1:]
}

// waitReady polls the status until a frame is ready.
func (h *spiHost) waitReady() {
	h.t.Helper()
	for deadline := time.Now().Add(3 * time.Second); h.status() != 0x01; {
		if time.Now().After(deadline) {
			h.t.Fatal("chip never ready")
		}
		time.Sleep(time.Millisecond)
	}
}

// spiPending waits until the chip has at least n bytes ready for the host
// (the answer of a fast command queued behind its ACK).
func spiPending(t *testing.T, s *Sim, n int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; {
		var k int
		if err := s.eng.call(func() { k = len(s.spi.s.out) }); err != nil {
			t.Fatal(err)
		}
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes pending, want %d", k, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// exchange runs a fast command: write it, wait until its answer is queued
// behind the ACK, read the ACK, then the answer, whose first preamble byte
// the register took after the ACK (see TestSPIGetFirmwareVersion).
func (h *spiHost) exchange(s *Sim, command, answer string) {
	h.t.Helper()
	want := rsp(answer)
	h.write(cmd(command))
	spiPending(h.t.(*testing.T), s, len(pn532.ACK)+len(want))
	if got := h.read(6); !bytes.Equal(got, pn532.ACK) {
		h.t.Fatalf("%s: ACK % X", command, got)
	}
	if got := h.read(len(want) - 1); !bytes.Equal(got, want[1:]) {
		h.t.Fatalf("%s\n got % X\nwant % X", command, got, want[1:])
	}
}

// TestSPIGetFirmwareVersion: byte-exact status, ACK and answer, bits
// reversed by the host. The answer was ready before the host read the
// ACK, so the chip's register already took its first preamble byte: the
// answer reads as 00 FF 06 FA D5 03 32 01 06 07 E8 00, as on a published
// logic trace of a real PN532.
func TestSPIGetFirmwareVersion(t *testing.T) {
	noLeak(t)
	m := &Meter{}
	s, hs, _ := startSPI(t, Options{Awake: true, Meter: m})
	irq := s.IRQ()
	if got := hs.tx([]byte{0x02}, 2); !bytes.Equal(got, h("00 00")) {
		t.Fatalf("status before any command: % X", got)
	}
	if irq.Read() != gpio.High {
		t.Fatal("IRQ low with nothing to read")
	}
	hs.write(h("00 00 FF 02 FE D4 02 2A 00"))
	if got := hs.tx([]byte{0x02}, 2); !bytes.Equal(got, h("FF 01")) {
		// slot 0 carries the register left by the write (MISO FF), then
		// the status: ACK ready.
		t.Fatalf("status after the command: % X", got)
	}
	if irq.Read() != gpio.Low {
		t.Fatal("IRQ high with the ACK ready")
	}
	spiPending(t, s, 6+13)
	if got := hs.tx([]byte{0x03}, 7); !bytes.Equal(got, h("01 00 00 FF 00 FF 00")) {
		t.Fatalf("ACK read: % X", got)
	}
	if got := hs.tx([]byte{0x02}, 2); !bytes.Equal(got, h("00 01")) {
		t.Fatalf("status with the answer ready: % X", got)
	}
	if got := hs.read(12); !bytes.Equal(got, h("00 FF 06 FA D5 03 32 01 06 07 E8 00")) {
		t.Fatalf("answer: % X", got)
	}
	if hs.status() != 0x00 || irq.Read() != gpio.High {
		t.Fatal("still ready after the answer was read")
	}
	// 2+10+2+7+2+13+2 bytes clocked at 1 MHz, 8 µs each.
	got := m.Snapshot()
	if n := 2 + 10 + 2 + 7 + 2 + 13 + 2; got.LinkBytes != n || got.LinkTime != time.Duration(n)*8*time.Microsecond {
		t.Fatalf("meter: %d bytes %v", got.LinkBytes, got.LinkTime)
	}
}

// TestSPIAnswerLater: the answer comes after the host read the ACK (the
// command waits for a card): the status reads 00 until then and the whole
// frame, preamble included, comes out; P70_IRQ falls for the ACK and
// again for the answer.
func TestSPIAnswerLater(t *testing.T) {
	noLeak(t)
	s, hs, _ := startSPI(t, Options{Awake: true})
	irq := s.IRQ()
	if err := irq.In(gpio.PullNoChange, gpio.FallingEdge); err != nil {
		t.Fatal(err)
	}
	hs.write(cmd("4A 01 03 00")) // MaxRetries FF: waits for a card
	if !irq.WaitForEdge(time.Second) {
		t.Fatal("no IRQ for the ACK")
	}
	if got := hs.read(6); !bytes.Equal(got, pn532.ACK) {
		t.Fatalf("ACK: % X", got)
	}
	if hs.status() != 0x00 || irq.Read() != gpio.High {
		t.Fatal("ready before the card came")
	}
	if irq.WaitForEdge(20 * time.Millisecond) {
		t.Fatal("IRQ edge with nothing ready")
	}
	s.Place(newTestCard(t))
	if !irq.WaitForEdge(3 * time.Second) {
		t.Fatal("no IRQ for the answer")
	}
	want := rsp(atqbAnswer)
	if got := hs.read(len(want) + 2); !bytes.Equal(got, append(bytes.Clone(want), 0, 0)) {
		// Past the frame the chip shifts out 00.
		t.Fatalf("answer: % X", got)
	}
}

// TestSPIChunkedRead reads an answer the way libnfc's pn532_spi.c does, in
// chunks: 03 + 4 bytes, then for each further chunk one byte without a
// prefix (the register: the next byte, not shifted) and 03 + the rest.
func TestSPIChunkedRead(t *testing.T) {
	s, hs, _ := startSPI(t, Options{Awake: true})
	hs.write(cmd("4A 01 03 00"))
	hs.waitReady()
	if got := hs.read(6); !bytes.Equal(got, pn532.ACK) {
		t.Fatalf("ACK: % X", got)
	}
	s.Place(newTestCard(t))
	hs.waitReady()
	want := rsp(atqbAnswer)
	got := hs.read(4)
	for len(got) < len(want) {
		next := hs.tx(nil, 1)            // the register
		rest := hs.tx([]byte{0x03}, 1+3) // 03 + up to 3 bytes
		if rest[0] != next[0] {
			t.Fatalf("prefix slot % X, register % X", rest[0], next[0])
		}
		got = append(got, next[0])
		got = append(got, rest[1:]...)
	}
	if !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("chunked answer\n got % X\nwant % X", got, want)
	}
}

// TestSPIWrongBitOrder: a host that forgets the PN532 shifts LSB first
// sends 80 for 01 and so on: the chip understands nothing, no ACK ever
// comes. The same host setting spi.LSBFirst on the port talks fine.
func TestSPIWrongBitOrder(t *testing.T) {
	s, hs, _ := startSPI(t, Options{Awake: true})
	hs.reverse = false
	hs.write(cmd("02"))
	if got := hs.read(6); bytes.Equal(got, pn532.ACK) || bytes.Equal(rev(got), pn532.ACK) {
		t.Fatalf("ACK without bit reversal: % X", got)
	}
	hs.reverse = true
	if st := hs.status(); st != 0x00 {
		t.Fatalf("status %02X: the chip took a frame", st)
	}

	s.SPI().Close()
	c, err := s.SPI().Connect(physic.MegaHertz, spi.Mode0|spi.LSBFirst, 8)
	if err != nil {
		t.Fatal(err)
	}
	lsb := &spiHost{t: t, c: c}
	lsb.write(cmd("02"))
	lsb.waitReady()
	if got := lsb.read(6); !bytes.Equal(got, pn532.ACK) {
		t.Fatalf("ACK with LSBFirst: % X", got)
	}
}

// TestSPIWrongMode: Mode 1 clocks every bit one edge off: no ACK.
func TestSPIWrongMode(t *testing.T) {
	s, _, _ := startSPI(t, Options{Awake: true})
	s.SPI().Close()
	c, err := s.SPI().Connect(physic.MegaHertz, spi.Mode1, 8)
	if err != nil {
		t.Fatal(err)
	}
	hs := &spiHost{t: t, c: c, reverse: true}
	hs.write(cmd("02"))
	time.Sleep(20 * time.Millisecond)
	if got := hs.read(6); bytes.Equal(got, pn532.ACK) {
		t.Fatal("ACK in Mode 1")
	}
	if _, err := s.SPI().Connect(physic.MegaHertz, spi.Mode0, 8); err == nil {
		t.Fatal("second Connect accepted")
	}
	for _, m := range []spi.Mode{spi.Mode0 | spi.HalfDuplex, spi.Mode0 | spi.NoCS} {
		s.SPI().Close()
		if _, err := s.SPI().Connect(physic.MegaHertz, m, 8); err == nil {
			t.Errorf("Connect(%s) accepted", m)
		}
	}
}

// TestSPIWakeFromLowVbat: asleep, MISO is not driven (FF); NSS low wakes
// the chip, which understands transactions only SPIWakeDelay later.
func TestSPIWakeFromLowVbat(t *testing.T) {
	s, hs, clk := startSPI(t, Options{})
	if got := hs.tx([]byte{0x02}, 2); !bytes.Equal(got, h("FF FF")) {
		t.Fatalf("asleep: % X", got)
	}
	if s.Chip().Asleep() {
		t.Fatal("NSS did not wake the chip")
	}
	hs.write(cmd("14 01")) // too early: lost
	clk.Advance(SPIWakeDelay)
	if st := hs.status(); st != 0x00 {
		t.Fatalf("status after the wake-up delay: %02X (the early frame was taken)", st)
	}
	hs.exchange(s, "14 01", "15")

	// PowerDown without SPI as a wake-up source (WakeUpEnable 10: HSU
	// only): NSS does not wake it.
	hs.exchange(s, "16 10", "17 00")
	if !s.Chip().Asleep() {
		t.Fatal("PowerDown did not put the chip to sleep")
	}
	if got := hs.tx([]byte{0x02}, 2); !bytes.Equal(got, h("FF FF")) || !s.Chip().Asleep() {
		t.Fatalf("NSS woke a chip powered down for HSU only: % X", got)
	}
}

// TestSPIPortTxPackets: a frame written over two packets with KeepCS is
// one transaction; a closed port refuses Tx.
func TestSPIPortTxPackets(t *testing.T) {
	s, hs, _ := startSPI(t, Options{Awake: true})
	f := rev(append([]byte{0x01}, cmd("02")...))
	if err := hs.c.TxPackets([]spi.Packet{{W: f[:4], KeepCS: true}, {W: f[4:]}}); err != nil {
		t.Fatal(err)
	}
	hs.waitReady()
	if got := hs.read(6); !bytes.Equal(got, pn532.ACK) {
		t.Fatalf("ACK: % X", got)
	}
	if err := hs.c.Tx(make([]byte, 2), make([]byte, 3)); err == nil {
		t.Fatal("Tx with w and r of different sizes")
	}
	s.SPI().Close()
	if err := hs.c.Tx([]byte{0x40}, nil); err == nil {
		t.Fatal("Tx on a closed port")
	}
}
