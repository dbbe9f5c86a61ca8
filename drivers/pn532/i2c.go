package pn532

// The PN532 I2C host link (UM0701-02 §6.2.4).
//
//   - The chip answers at the 7-bit address 0x24 (0x48 to write, 0x49 to
//     read in the manual's 8-bit notation).
//   - A host write is one transaction carrying one whole frame.
//   - Every read transaction starts with a status byte, 01 when the chip
//     has a frame for the host; the frame follows in the same transaction.
//     "After having sent a command, the host controller must wait for bit
//     0 of Status byte equals 1 before reading the data from the PN532"
//     (UM0701-02 §6.2.4, as quoted in esphome pn532_i2c).
//
// What the host reads per transaction:
//
//   - While the chip is busy the transport polls with one-byte reads, the
//     status byte alone, as Adafruit-PN532 (isready) and dotnet/iot's
//     Pn532 do. Such a read leaves the frame in place: those stacks then
//     read the frame in a new transaction, again status byte first.
//   - Once the status byte says ready (or the IRQ line is low), the
//     transport reads the status byte and the longest frame the chip
//     sends, 1 + 275 bytes, in one transaction, like libnfc
//     (libnfc/drivers/pn532_i2c.c, pn532_i2c_wait_rdyframe reads status
//     and a whole buffer at once) and dotnet/iot (status and a 1024-byte
//     buffer). A read longer than the frame is harmless; what follows the
//     postamble is not frame data. The manual does not say what a read
//     shorter than the frame leaves behind, so the transport never makes
//     one. If the status byte of that read is not 01 after all, the
//     transport goes back to polling.
//   - A frame that does not decode is an error wrapping ErrChecksum or
//     ErrLength; the engine answers it with NACK and the chip sends the
//     frame again (UM0701-02 §6.2.1.4).
//
// Timing and errors:
//
//   - Transactions are at least i2cBusFree apart, measured from the end of
//     one to the start of the next: libnfc keeps 5 ms (PN532_BUS_FREE_TIME,
//     citing t_BUF in the PN532 datasheet §12.25, table 320).
//   - The chip NACKs its address while it cannot serve the bus (polled
//     right after a command: Adafruit_CircuitPython_PN532 pull request 40
//     found the OSError to be a NACK). A failed read is read again, up to
//     ReadRetries times in a row; a failed write is sent again, WriteRetries
//     times in all (libnfc PN532_SEND_RETRIES: "the pn532 occasionally
//     fails to respond in time").
//   - Wake needs no bytes: the chip wakes on its address and stretches the
//     clock while it starts (libnfc pn532_i2c_wakeup: "PN532 holds SCL
//     during wakeup time"; Adafruit-PN532 wakeup likewise). Wake makes one
//     status read and ignores its outcome.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
)

// I2CAddr is the PN532's 7-bit I2C address (UM0701-02 §6.2.4).
const I2CAddr uint16 = 0x24

// i2cBusFree is the least time between two I2C transactions (libnfc
// PN532_BUS_FREE_TIME). It also paces the status polls.
const i2cBusFree = 5 * time.Millisecond

// i2cReadLen is the length of a frame read: the status byte and room for
// the longest frame.
const i2cReadLen = 1 + busMaxFrame

// I2COpts configures an I2C transport. Zero fields take the value in
// DefaultI2COpts.
type I2COpts struct {
	// Addr is the chip's 7-bit address.
	Addr uint16
	// IRQ is the chip's P70_IRQ line (active low), or nil to poll the
	// status byte. NewI2C sets it up as an input with a pull-up,
	// detecting falling edges.
	IRQ gpio.PinIn
	// ReadRetries is how many failed read transactions in a row (a NACK
	// from a busy chip, a bus error) are read again before ReadFrame
	// gives up; at i2cBusFree apart, 20 tries span 100 ms.
	ReadRetries int
	// WriteRetries is how many times a frame is sent in all before
	// WriteFrame gives up.
	WriteRetries int
}

// DefaultI2COpts are libnfc's choices for a PN532 on I2C.
var DefaultI2COpts = I2COpts{Addr: I2CAddr, ReadRetries: 20, WriteRetries: 3}

// I2C is the I2C transport. It takes the bus and never closes it; other
// devices may share the bus. Its methods are safe for concurrent use.
type I2C struct {
	mu   sync.Mutex
	b    i2c.Bus
	opts I2COpts
	// last is when the previous transaction ended; hasLast is false
	// before the first one.
	last    time.Time
	hasLast bool
	// now and sleep are the clock; seams for tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// NewI2C returns the transport over b. It does no bus transaction.
func NewI2C(b i2c.Bus, opts *I2COpts) (*I2C, error) {
	if b == nil {
		return nil, errors.New("pn532: i2c: nil bus")
	}
	o := DefaultI2COpts
	if opts != nil {
		o = *opts
	}
	if o.Addr == 0 {
		o.Addr = DefaultI2COpts.Addr
	}
	if o.Addr > 0x7F {
		return nil, fmt.Errorf("pn532: i2c: address %#x is not a 7-bit address", o.Addr)
	}
	if o.ReadRetries <= 0 {
		o.ReadRetries = DefaultI2COpts.ReadRetries
	}
	if o.WriteRetries <= 0 {
		o.WriteRetries = DefaultI2COpts.WriteRetries
	}
	if o.IRQ != nil {
		if err := o.IRQ.In(gpio.PullUp, gpio.FallingEdge); err != nil {
			return nil, fmt.Errorf("pn532: i2c: IRQ pin %s: %w", o.IRQ, err)
		}
	}
	return &I2C{b: b, opts: o, now: time.Now, sleep: busSleep}, nil
}

func (i *I2C) String() string {
	irq := "polled"
	if i.opts.IRQ != nil {
		irq = "IRQ " + i.opts.IRQ.String()
	}
	return fmt.Sprintf("pn532 i2c(%s, %#x, %s)", i.b, i.opts.Addr, irq)
}

// Wake makes one status read so that the chip sees its address, and
// ignores the outcome: a waking chip stretches the clock or NACKs.
func (i *I2C) Wake(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	var r [1]byte
	if err := i.tx(ctx, nil, r[:]); err != nil && ctx.Err() != nil {
		return fmt.Errorf("pn532: i2c: wake: %w", ctx.Err())
	}
	return nil
}

// WriteFrame writes the frame in one transaction, again after a failure
// up to WriteRetries times in all.
func (i *I2C) WriteFrame(ctx context.Context, frame []byte) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n := 1; ; n++ {
		err := i.tx(ctx, frame, nil)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pn532: i2c: write: %w", ctx.Err())
		}
		if n >= i.opts.WriteRetries {
			return fmt.Errorf("pn532: i2c: write failed %d times: %w", n, err)
		}
	}
}

// ReadFrame waits until the chip has a frame, then reads the status byte
// and the frame in one transaction (see the top of this file).
func (i *I2C) ReadFrame(ctx context.Context) (Frame, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for {
		if err := i.waitReady(ctx); err != nil {
			return Frame{}, err
		}
		r := make([]byte, i2cReadLen)
		if err := i.read(ctx, r, "frame read"); err != nil {
			return Frame{}, err
		}
		if r[0] != busStatusReady {
			continue // not ready after all: poll again
		}
		return busDecode("i2c", r[1:])
	}
}

// Drain reads and discards ready frames until the chip has none.
func (i *I2C) Drain(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	for range busMaxDrain {
		ready, err := i.status(ctx)
		if err != nil || !ready {
			return err
		}
		r := make([]byte, i2cReadLen)
		if err := i.read(ctx, r, "frame read"); err != nil {
			return err
		}
	}
	return nil
}

// waitReady returns when the chip has a frame for the host, or with ctx's
// error (wrapped). With an IRQ line it waits for the line to go low and
// reads the status byte only when no edge came within busIRQSlice.
func (i *I2C) waitReady(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pn532: i2c: waiting for the chip: %w", err)
		}
		if i.opts.IRQ != nil {
			if i.opts.IRQ.Read() == gpio.Low {
				return nil
			}
			if busWaitEdge(ctx, i.opts.IRQ) {
				continue
			}
		}
		ready, err := i.status(ctx)
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		// The next poll waits i2cBusFree in tx: that is the poll interval.
	}
}

// status reads the status byte alone.
func (i *I2C) status(ctx context.Context) (bool, error) {
	var r [1]byte
	if err := i.read(ctx, r[:], "status read"); err != nil {
		return false, err
	}
	return r[0] == busStatusReady, nil
}

// read fills r in one read transaction, reading again after a failed one
// up to ReadRetries times in a row.
func (i *I2C) read(ctx context.Context, r []byte, what string) error {
	for fails := 0; ; {
		err := i.tx(ctx, nil, r)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pn532: i2c: %s: %w", what, ctx.Err())
		}
		if fails++; fails > i.opts.ReadRetries {
			return fmt.Errorf("pn532: i2c: %s failed %d times: %w", what, fails, err)
		}
	}
}

// tx makes one transaction, at least i2cBusFree after the previous one ended.
func (i *I2C) tx(ctx context.Context, w, r []byte) error {
	if i.hasLast {
		if d := i2cBusFree - i.now().Sub(i.last); d > 0 {
			if err := i.sleep(ctx, d); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := i.b.Tx(i.opts.Addr, w, r)
	i.last, i.hasLast = i.now(), true
	return err
}
