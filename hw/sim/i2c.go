package sim

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// The PN532's I2C slave, as a periph.io I2C bus.
//
// What the model follows, and where from:
//
//   - 7-bit address 0x24 (the datasheet's 0x48/0x49 with the R/W bit;
//     libnfc pn532_i2c.c PN532_I2C_ADDR 0x24). Another address is not
//     acknowledged: Tx fails with ErrI2CNACK.
//   - A write carries a frame (UM0701-02 §6.2.4; libnfc pn532_i2c_send
//     writes the whole frame in one transaction).
//   - Every read starts with a status byte (UM0701-02 §6.2.4): 01 when a
//     frame (ACK or response) is ready, 00 when not. When ready the frame
//     follows from its first byte. A read of more than the status byte
//     takes the frame, whether the host read all of it or not: the next
//     read gets the next frame, or 00 (not ready). Seeed-Studio's
//     PN532_I2C relies on this: getResponseLength polls 6-byte reads
//     (status and header) and, once ready, sends NACK to get the frame
//     again, whole ("request for last respond msg again"). A read of the
//     status byte alone leaves the frame in place: ESPHome's pn532_i2c
//     read_data polls 1-byte reads until 01, then reads status and frame
//     (and its read_response reads the header, then the whole frame). What
//     follows the status byte when not ready, and the frame when the host
//     reads more (libnfc reads its whole buffer, pn532_i2c_wait_rdyframe),
//     is not documented: the model sends 00.
//   - Bus-free time: a transaction that starts less than I2CBusFreeTime
//     after the previous one ended (STOP to START) is not acknowledged.
//   - LowVbat and PowerDown: the address wakes the chip (when I2C is a
//     wake-up source, UM0701-02 §7.2.11), which holds SCL low until it is
//     ready, so the waking transaction goes through (libnfc
//     pn532_i2c_wakeup: "PN532 holds SCL during wakeup time").
//   - A hung chip stretches SCL for ever: Tx fails with ErrI2CTimeout.
//     RSTPD_N low: no acknowledge.
//
// Each transaction adds its bytes, 9 clock cycles each (8 data bits and
// the acknowledge), the address byte included (twice with a repeated
// start), at the SetSpeed clock to the chip's Meter.

// I2CAddr is the PN532's 7-bit I2C address.
const I2CAddr = 0x24

// I2CBusFreeTime is the bus-free time the model demands between a STOP and
// the next START. The datasheet's tBUF (§12.25, table 320, cited by libnfc)
// was too tight: libnfc commit e946f7a ("Errata on i2c timing", 2016)
// reports NXP confirming that, 4 and 5 ms working, and sets
// PN532_BUS_FREE_TIME to 5 ms.
const I2CBusFreeTime = 5 * time.Millisecond

// i2cDefaultHz is the bus clock before SetSpeed: standard mode.
const i2cDefaultHz = 100 * physic.KiloHertz

// ErrI2CNACK is returned by I2CBus.Tx when the address is not
// acknowledged: another address, the bus-free time not respected, a chip in
// reset or powered down without I2C wake-up.
var ErrI2CNACK = errors.New("sim-i2c: address not acknowledged")

// ErrI2CTimeout is returned by I2CBus.Tx when the chip holds SCL low (a
// hung chip): the host controller gives up.
var ErrI2CTimeout = errors.New("sim-i2c: clock stretched too long")

// I2CBus is the simulated PN532's I2C bus, a periph.io i2c.BusCloser. Get
// it from Sim.I2C.
type I2CBus struct {
	s   *i2cSlave
	now func() time.Time

	mu     sync.Mutex
	hz     physic.Frequency
	closed bool
}

var _ i2c.BusCloser = (*I2CBus)(nil)

// String implements i2c.Bus.
func (b *I2CBus) String() string { return "sim-i2c(PN532@0x24)" }

// Close ends the host's use of the bus (Tx fails afterwards); the chip
// keeps running and Sim.I2C opens the bus again.
func (b *I2CBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *I2CBus) reopen() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = false
}

// SetSpeed implements i2c.Bus: the clock for the Meter (default 100 kHz,
// standard mode; the PN532 also does fast mode, 400 kHz; a clock beyond
// what the chip supports is not modelled).
func (b *I2CBus) SetSpeed(f physic.Frequency) error {
	if f <= 0 {
		return fmt.Errorf("sim-i2c: invalid speed %s", f)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hz = f
	return nil
}

// Tx implements i2c.Bus: one transaction, a write of w then, after a
// repeated start, a read into r.
func (b *I2CBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	closed, hz := b.closed, b.hz
	b.mu.Unlock()
	if closed {
		return errors.New("sim-i2c: bus closed")
	}
	start := b.now()
	var err error
	s := b.s
	if cerr := s.e.call(func() { err = s.tx(addr, w, r, start, hz) }); cerr != nil {
		return fmt.Errorf("sim-i2c: %w", cerr)
	}
	return err
}

// i2cSlave is the chip's I2C interface. It lives in the engine's goroutine.
type i2cSlave struct {
	e   *engine
	irq *IRQPin

	frames  [][]byte // ready for the host
	lastEnd time.Time
	used    bool
}

// emit implements linkPort.
func (s *i2cSlave) emit(b []byte) error {
	s.frames = append(s.frames, bytes.Clone(b))
	s.irq.set(true)
	return nil
}

// reset implements linkPort.
func (s *i2cSlave) reset() {
	s.frames = nil
	s.irq.set(false)
}

func (s *i2cSlave) tx(addr uint16, w, r []byte, start time.Time, hz physic.Frequency) error {
	bt := I2CByteTime(int(hz / physic.Hertz))
	early := s.used && start.Before(s.lastEnd.Add(I2CBusFreeTime))
	s.used = true
	nack := func(why string) error {
		s.e.c.meter.Link(1, bt)
		s.lastEnd = start.Add(bt)
		return fmt.Errorf("%w (0x%02X: %s)", ErrI2CNACK, addr, why)
	}
	if early {
		return nack("bus-free time not respected")
	}
	if addr != I2CAddr {
		return nack("no such device")
	}
	s.e.syncChip()
	if s.e.isHeld() {
		return nack("held in reset")
	}
	// A chip that went to sleep after PowerDown still hands out its
	// answer, which it can only send when the host reads.
	if len(s.frames) == 0 && !s.e.wakeBy(wakeI2C) {
		return nack("powered down")
	}
	n := 1 + len(w) + len(r)
	if len(w) > 0 && len(r) > 0 {
		n++ // the address again after the repeated start
	}
	d := time.Duration(n) * bt
	s.e.c.meter.Link(n, d)
	s.lastEnd = start.Add(d)
	if s.e.c.Hung() {
		return ErrI2CTimeout
	}
	if len(w) > 0 {
		_ = s.e.hostBytes(w, false) // only fails when the engine stops
	}
	if len(r) == 0 {
		return nil
	}
	clear(r)
	if len(s.frames) == 0 {
		return nil // status 00: not ready
	}
	r[0] = 0x01
	copy(r[1:], s.frames[0])
	if len(r) > 1 {
		s.frames = s.frames[1:]
		s.irq.set(len(s.frames) > 0)
	}
	return nil
}
