package pn532

// The PN532 SPI host link (UM0701-02 §6.2.5; PN532 datasheet, SPI
// interface).
//
// Every transfer, from NSS going low to NSS going high, starts with one
// byte saying what the transfer is:
//
//	01 DW  data write: a whole frame follows
//	02 SR  status read: the chip answers one status byte, 01 when a frame
//	       is ready for the host (bit 0, RDY)
//	03 DR  data read: the chip clocks out its pending frame
//
// The chip speaks mode 0 (CPOL 0, CPHA 0; the C106 dropped modes 1–3,
// AN10609_3 §1) and shifts every byte LSB first. Many controllers, the
// Raspberry Pi's among them, shift MSB first only: the transport then
// reverses each byte's bits in software, in both directions.
//
// What the host must read per transfer, and what the chip does when a read
// is shorter or longer than its frame:
//
//   - libnfc (libnfc/drivers/pn532_spi.c, pn532_spi_receive_next_chunk)
//     notes that the datasheet wants the whole frame read in one
//     operation. A frame may be read in several DR transfers, but the chip
//     does not rewind: it goes on from where the previous transfer
//     stopped, and it shifts the first byte of each continuation out while
//     the host is still sending the DR byte, so a half-duplex host loses
//     it (libnfc's transfer log shows it).
//   - A transfer longer than the frame is harmless: hosts routinely read a
//     fixed oversized buffer (Adafruit-PN532 inDataExchange reads its
//     whole 64-byte packet buffer); what the chip clocks out after the
//     postamble is not frame data.
//   - The byte the chip shifts out during the DR byte itself is not frame
//     data (the status byte, 01, in libnfc's log); frame bytes follow
//     right after it, the preamble sometimes left out (00 FF ... rather
//     than 00 00 FF ...).
//
// So this transport reads each frame in one DR transfer. ReadFrame waits
// for RDY, then makes one full-duplex transfer: DR and zeros out, and in:
// one ignored byte, the frame from its first byte, then whatever follows
// it. Right after the host wrote an information frame, the frame due is
// the 6-byte ACK, and the transfer is DR and 6 bytes, as libnfc's
// pn532_spi_send reads it; any other read is spiReadLen bytes, DR and 275
// zeros, which hold the longest frame the chip sends (an extended frame
// with 264 data bytes). If the short read finds the start of a longer
// frame instead (a stale answer, an error frame), one continuation
// transfer of spiReadLen bytes fetches the rest, its first byte included.
// A frame that still does not decode is an error wrapping ErrChecksum or
// ErrLength: the engine answers it with NACK and the chip sends the frame
// again from its start (UM0701-02 §6.2.1.4). Once a frame has been read,
// RDY stays 0 until the chip has the next one (the ACK and the response
// are two frames, two waits for RDY: libnfc pn532_spi_send and
// pn532_spi_receive).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"
)

// SPI prefix bytes (UM0701-02 §6.2.5).
const (
	spiDataWrite  byte = 0x01
	spiStatusRead byte = 0x02
	spiDataRead   byte = 0x03
)

// busStatusReady is the status byte of a chip with a frame for the host, on
// SPI (SR answer) and I2C (first byte of every read). UM0701-02 defines
// only bit 0 (RDY); like libnfc's pn532_spi_wait_for_data and
// Adafruit-PN532's isready we want the whole byte to be 01, so that a
// floating MISO or SDA (FF) never passes for a ready chip.
const busStatusReady byte = 0x01

// busMaxFrame is the longest frame the chip sends: an extended frame
// 00 00 FF FF FF LENm LENl LCS, TFI, 264 data bytes, DCS, 00
// (UM0701-02 §6.2.1.2).
const busMaxFrame = 8 + 1 + MaxFrameData + 2

// spiReadLen is the length of every DR transfer: the DR byte and room for
// the longest frame.
const spiReadLen = 1 + busMaxFrame

// spiACKRead is the DR transfer after an information frame was written:
// the DR byte and the 6-byte ACK, as libnfc reads it (pn532_spi_send:
// pn532_spi_receive_next_chunk of 6 bytes, then pn53x_check_ack_frame).
// Clocking a whole frame's length for 6 bytes would cost 270 bytes of
// bus time per command.
const spiACKRead = 1 + 6

// spiWakeDelay is how long the host waits after the transfer that wakes
// the chip: NSS going low starts its oscillator, which needs about 2 ms
// before the chip takes a byte (the datasheet's T_osc_start, as
// dart_periphery's PN532 SPI wakeUp cites it). Other hosts hold NSS low
// that long (Adafruit-PN532 and Seeed PN532 wakeup: 2 ms; UM0701-02
// p. 61 as cited in dotnet/iot issue 583: NSS low "for couple of
// milliseconds"); a periph spi.Conn cannot hold NSS without clocking, so
// the transport makes a one-byte transfer and waits instead. The command
// engine's first command after Wake has a long ACK timeout and one retry
// for a chip that is still waking.
const spiWakeDelay = 2 * time.Millisecond

// busIRQSlice bounds one WaitForEdge on the IRQ line: how late a cancelled
// ctx is noticed, and how long a lost edge goes unnoticed before the
// transport falls back to one status read.
const busIRQSlice = 10 * time.Millisecond

// busMaxDrain bounds Drain against a chip that never stops being ready.
const busMaxDrain = 8

// SPIOpts configures an SPI transport.
type SPIOpts struct {
	// HardwareLSBFirst says the port was connected with spi.LSBFirst and
	// the controller honours it. False (the default) means the transport
	// reverses each byte's bits in software, both ways: the Raspberry Pi's
	// SPI controller shifts MSB first only.
	HardwareLSBFirst bool
	// IRQ is the chip's P70_IRQ line (active low: low while a frame is
	// ready for the host), or nil to poll the status byte. NewSPI sets it
	// up as an input with a pull-up, detecting falling edges.
	IRQ gpio.PinIn
	// PollInterval is the pause between status reads while the chip is
	// busy; 0 means 1 ms. libnfc polls every 10 ms; an ACK comes within
	// about 15 ms, so 1 ms costs little bus time and little latency.
	PollInterval time.Duration
}

// DefaultSPIOpts suit a PN532 breakout on a Raspberry Pi SPI port, polled.
var DefaultSPIOpts = SPIOpts{PollInterval: time.Millisecond}

// SPI is the SPI transport. It takes a connection the caller made with
// spi.Mode0 (| spi.LSBFirst with HardwareLSBFirst) and 8 bits per word,
// at most 5 MHz; it never closes it. Its methods are safe for concurrent
// use.
type SPI struct {
	mu      sync.Mutex
	c       spi.Conn
	opts    SPIOpts
	reverse bool
	// pending holds what a data read brought after its frame: when the
	// next frame (the answer after an ACK) was ready while the host still
	// clocked, the chip shifts it out in the same read (the output is a
	// byte stream that a data read resumes: libnfc pn532_spi.c,
	// pn532_spi_receive_next_chunk), so it must not be thrown away.
	pending []byte
	// expectACK is set by an information frame written and cleared by the
	// next ReadFrame, which then clocks only an ACK's worth (spiACKRead).
	expectACK bool
	// sleep waits d or until ctx is done; a seam for tests.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewSPI returns the transport over c. It does no bus transfer.
func NewSPI(c spi.Conn, opts *SPIOpts) (*SPI, error) {
	if c == nil {
		return nil, errors.New("pn532: spi: nil connection")
	}
	o := DefaultSPIOpts
	if opts != nil {
		o = *opts
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultSPIOpts.PollInterval
	}
	if o.IRQ != nil {
		if err := o.IRQ.In(gpio.PullUp, gpio.FallingEdge); err != nil {
			return nil, fmt.Errorf("pn532: spi: IRQ pin %s: %w", o.IRQ, err)
		}
	}
	return &SPI{c: c, opts: o, reverse: !o.HardwareLSBFirst, sleep: busSleep}, nil
}

func (s *SPI) String() string {
	order := "software LSB-first"
	if !s.reverse {
		order = "LSB-first"
	}
	irq := "polled"
	if s.opts.IRQ != nil {
		irq = "IRQ " + s.opts.IRQ.String()
	}
	return fmt.Sprintf("pn532 spi(%s, %s, %s)", s.c, order, irq)
}

// Wake wakes the chip from power-down or LowVbat, where SPI is a wake-up
// source (UM0701-02 §7.2.11 PowerDown): NSS going low wakes it ("SPI
// wakeup is basically activating chipselect", libnfc pn532_spi_wakeup).
// A one-byte transfer of 00, whose answer is ignored (libnfc reads one
// byte the same way), makes NSS go low; then Wake waits for the
// oscillator (spiWakeDelay).
func (s *SPI) Wake(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pn532: spi: wake: %w", err)
	}
	var r [1]byte
	if err := s.tx([]byte{0x00}, r[:]); err != nil {
		return fmt.Errorf("pn532: spi: wake: %w", err)
	}
	if err := s.sleep(ctx, spiWakeDelay); err != nil {
		return fmt.Errorf("pn532: spi: wake: %w", err)
	}
	return nil
}

// WriteFrame sends DW and the frame in one transfer.
func (s *SPI) WriteFrame(ctx context.Context, frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pn532: spi: write: %w", err)
	}
	w := make([]byte, 0, 1+len(frame))
	w = append(w, spiDataWrite)
	w = append(w, frame...)
	if err := s.tx(w, nil); err != nil {
		return fmt.Errorf("pn532: spi: write: %w", err)
	}
	s.expectACK = !bytes.Equal(frame, ACK) && !bytes.Equal(frame, NACK)
	return nil
}

// ReadFrame waits until the chip has a frame (IRQ line or status reads),
// then reads it in one DR transfer (see the top of this file): of an
// ACK's length right after an information frame was written, else of the
// longest frame's.
func (s *SPI) ReadFrame(ctx context.Context) (Frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := spiReadLen
	if s.expectACK {
		n = spiACKRead
	}
	s.expectACK = false
	if len(s.pending) > 0 {
		f, n, err := Decode(s.pending)
		if err == nil {
			s.keep(s.pending[n:])
			return f, nil
		}
		s.pending = nil // part of a frame: the chip resends it on NACK
	}
	if err := s.waitReady(ctx); err != nil {
		return Frame{}, err
	}
	return s.read(n)
}

// keep stores rest for the next ReadFrame when it holds a frame start.
func (s *SPI) keep(rest []byte) {
	if bytes.Contains(rest, []byte{0x00, 0xFF}) {
		s.pending = append(s.pending[:0:0], rest...)
	} else {
		s.pending = nil
	}
}

// Drain reads and discards ready frames until the chip has none.
func (s *SPI) Drain(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = nil
	for range busMaxDrain {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pn532: spi: drain: %w", err)
		}
		ready, err := s.status()
		if err != nil || !ready {
			return err
		}
		if _, err := s.read(spiReadLen); err != nil && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrLength) {
			return err
		}
	}
	return nil
}

// waitReady returns when the chip has a frame for the host, or with ctx's
// error (wrapped). With an IRQ line it waits for the line to go low and
// reads the status byte only when no edge came within busIRQSlice, in case
// the edge was lost.
func (s *SPI) waitReady(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pn532: spi: waiting for the chip: %w", err)
		}
		if s.opts.IRQ != nil {
			if s.opts.IRQ.Read() == gpio.Low {
				return nil
			}
			if busWaitEdge(ctx, s.opts.IRQ) {
				continue
			}
		}
		ready, err := s.status()
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		if s.opts.IRQ == nil {
			if err := s.sleep(ctx, s.opts.PollInterval); err != nil {
				return fmt.Errorf("pn532: spi: waiting for the chip: %w", err)
			}
		}
	}
}

// status makes one SR transfer: SR and a dummy byte out; the status byte
// comes in with the dummy.
func (s *SPI) status() (bool, error) {
	var r [2]byte
	if err := s.tx([]byte{spiStatusRead, 0x00}, r[:]); err != nil {
		return false, fmt.Errorf("pn532: spi: status read: %w", err)
	}
	return r[1] == busStatusReady, nil
}

// read makes one DR transfer of n bytes (DR included) and decodes the
// frame in it. A short read (n < spiReadLen) that holds only the start of
// a longer frame (the host expected an ACK and the chip had a stale
// answer, or an error frame) is completed by one more DR transfer of the
// longest frame's length: the chip keeps the rest pending and shifts its
// next byte out during that transfer's DR byte (libnfc pn532_spi.c,
// pn532_spi_receive_next_chunk; the simulator's model, hw/sim/spi.go).
func (s *SPI) read(n int) (Frame, error) {
	r, err := s.dataRead(n)
	if err != nil {
		return Frame{}, err
	}
	got := r[1:]
	if n < spiReadLen {
		if _, _, err := Decode(got); errors.Is(err, ErrIncomplete) {
			more, err := s.dataRead(spiReadLen)
			if err != nil {
				return Frame{}, err
			}
			got = append(got, more...)
		}
	}
	f, k, err := Decode(got)
	if err == nil {
		s.keep(got[k:])
		return f, nil
	}
	return busDecode("spi", got)
}

// dataRead makes one DR transfer of n bytes and returns what came in,
// the byte clocked during DR first.
func (s *SPI) dataRead(n int) ([]byte, error) {
	w := make([]byte, n)
	w[0] = spiDataRead
	r := make([]byte, n)
	if err := s.tx(w, r); err != nil {
		return nil, fmt.Errorf("pn532: spi: data read: %w", err)
	}
	return r, nil
}

// tx makes one transfer, reversing bit order in software when needed. w
// is not modified.
func (s *SPI) tx(w, r []byte) error {
	if s.reverse {
		rw := make([]byte, len(w))
		for i, b := range w {
			rw[i] = bits.Reverse8(b)
		}
		w = rw
	}
	if err := s.c.Tx(w, r); err != nil {
		return err
	}
	if s.reverse {
		busReverse(r)
	}
	return nil
}

// busReverse reverses the bit order of every byte of b in place: the
// PN532 shifts LSB first, an MSB-first controller sees 01 as 80, D4 as 2B.
func busReverse(b []byte) {
	for i, v := range b {
		b[i] = bits.Reverse8(v)
	}
}

// busDecode decodes the one frame a whole-frame read (SPI DR transfer,
// I2C read after the status byte) carries; the bytes after it are not
// frame data. A read with no whole frame in it is an error wrapping
// ErrLength, so that the engine asks for the frame again with NACK.
func busDecode(bus string, b []byte) (Frame, error) {
	f, _, err := Decode(b)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, ErrIncomplete):
		return Frame{}, fmt.Errorf("pn532: %s: %w: no whole frame in the %d bytes read", bus, ErrLength, len(b))
	default:
		return Frame{}, fmt.Errorf("pn532: %s: read frame: %w", bus, err)
	}
}

// busWaitEdge waits for an edge on the IRQ line for at most busIRQSlice, less
// when ctx's deadline is nearer. WaitForEdge cannot be cancelled, so the
// slice bounds how late a cancelled ctx is seen.
func busWaitEdge(ctx context.Context, pin gpio.PinIn) bool {
	d := busIRQSlice
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = left
		}
	}
	if d <= 0 {
		return false
	}
	return pin.WaitForEdge(d)
}

// busSleep waits d, or until ctx is done.
func busSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
