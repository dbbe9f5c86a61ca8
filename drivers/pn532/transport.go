package pn532

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Transport moves whole frames between host and chip. UART, SPI and I2C
// wrap the same frames differently; the command engine does not care.
type Transport interface {
	// Wake brings the chip out of power-down (LowVbat on HSU).
	Wake(ctx context.Context) error
	// WriteFrame sends one encoded frame (ACK, NACK or information frame).
	WriteFrame(ctx context.Context, frame []byte) error
	// ReadFrame returns the next frame from the chip. A frame with a bad
	// checksum is reported as an error wrapping ErrChecksum (the engine
	// answers it with NACK). It gives up with ctx's error.
	ReadFrame(ctx context.Context) (Frame, error)
	// Drain discards whatever the chip already sent: stale responses after
	// a host restart are common.
	Drain(ctx context.Context) error
}

// UART is the HSU transport: frames on a byte stream at 115200 8N1.
//
// It reads the stream in a goroutine, so ReadFrame honours ctx even over
// ports whose Read blocks (pipes, sockets). Ports with a read timeout that
// return (0, nil) or (0, io.EOF) on timeout, as github.com/tarm/serial does,
// work too.
type UART struct {
	w io.Writer
	// speed changes the port's line speed; nil when the port cannot.
	speed func(int) error
	in    chan []byte
	errc  chan error
	done  chan struct{}
	once  sync.Once
	buf   []byte
}

// hsuWakeUp wakes a PN532 from LowVbat/power-down on HSU: 55 55 and then
// enough zeros to give the chip time to start its oscillator (UM0701-02
// §3.1.3.1 / the HSU wake-up condition; 14 zeros as field practice).
var hsuWakeUp = []byte{0x55, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// NewUART starts reading rw. Call Close when done; it does not close rw.
func NewUART(rw io.ReadWriter) *UART {
	u := &UART{
		w:    rw,
		in:   make(chan []byte, 64),
		errc: make(chan error, 1),
		done: make(chan struct{}),
	}
	if s, ok := rw.(interface{ SetBaud(int) error }); ok {
		u.speed = s.SetBaud
	}
	go u.readLoop(rw)
	return u
}

// CanSetBaud reports whether the port can change its line speed.
func (u *UART) CanSetBaud() bool { return u.speed != nil }

// SetBaud changes the port's line speed (after SetSerialBaudRate; see
// Dev.SetBaud). It needs a port with a SetBaud method (board.Serial).
func (u *UART) SetBaud(baud int) error {
	if u.speed == nil {
		return ErrNoBaudSwitch
	}
	u.buf = u.buf[:0] // bytes half-read at the old speed are garbage
	return u.speed(baud)
}

func (u *UART) readLoop(r io.Reader) {
	b := make([]byte, 512)
	for {
		n, err := r.Read(b)
		if n > 0 {
			chunk := append([]byte(nil), b[:n]...)
			select {
			case u.in <- chunk:
			case <-u.done:
				return
			}
		}
		switch {
		case err == nil || errors.Is(err, io.EOF):
			if n == 0 {
				// A read timeout (tarm/serial) or a closed write end. Do not
				// spin: one character time at 115200 is ~87 µs, so 5 ms
				// costs nothing in latency.
				select {
				case <-u.done:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		default:
			select {
			case u.errc <- fmt.Errorf("pn532: uart read: %w", err):
			default:
			}
			return
		}
		select {
		case <-u.done:
			return
		default:
		}
	}
}

// Close stops the reader goroutine at its next read.
func (u *UART) Close() error {
	u.once.Do(func() { close(u.done) })
	return nil
}

// Wake sends the HSU wake-up sequence.
func (u *UART) Wake(ctx context.Context) error {
	return u.WriteFrame(ctx, hsuWakeUp)
}

// WriteFrame writes b in full.
func (u *UART) WriteFrame(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := u.w.Write(b); err != nil {
		return fmt.Errorf("pn532: uart write: %w", err)
	}
	return nil
}

// ReadFrame returns the next frame on the stream.
func (u *UART) ReadFrame(ctx context.Context) (Frame, error) {
	for {
		if len(u.buf) > 0 {
			f, n, err := Decode(u.buf)
			u.buf = u.buf[n:]
			if err == nil {
				return f, nil
			}
			if !errors.Is(err, ErrIncomplete) {
				return Frame{}, err
			}
		}
		select {
		case chunk := <-u.in:
			u.buf = append(u.buf, chunk...)
		case err := <-u.errc:
			u.errc <- err // stays broken
			return Frame{}, err
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// drainQuiet is how long the line must stay silent before Drain returns:
// longer than one maximal extended frame at 115200 baud (~23 ms).
const drainQuiet = 30 * time.Millisecond

// Drain discards buffered input until the line has been quiet for a while.
func (u *UART) Drain(ctx context.Context) error {
	u.buf = u.buf[:0]
	t := time.NewTimer(drainQuiet)
	defer t.Stop()
	for {
		select {
		case <-u.in:
			t.Reset(drainQuiet)
		case err := <-u.errc:
			u.errc <- err
			return err
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
