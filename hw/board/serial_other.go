//go:build !linux

package board

import (
	"errors"
	"time"
)

// ReadTimeout is how long Serial.Read waits for a byte (see the Linux
// implementation).
const ReadTimeout = 100 * time.Millisecond

// ErrHangup: the serial device went away.
var ErrHangup = errors.New("board: serial port hung up")

// errNoSerial: the switchable port drives termios2 ioctls, which only
// Linux has. OpenUART (tarm/serial) works everywhere.
var errNoSerial = errors.New("board: switchable serial ports (OpenSerial) need Linux; use OpenUART")

// Serial is a serial port whose speed can change; Linux only.
type Serial struct{}

// OpenSerial fails on this OS.
func OpenSerial(name string, baud int) (*Serial, error) { return nil, errNoSerial }

// SetBaud fails on this OS.
func (*Serial) SetBaud(baud int) error { return errNoSerial }

// Baud is 0 on this OS.
func (*Serial) Baud() int { return 0 }

// Read fails on this OS.
func (*Serial) Read([]byte) (int, error) { return 0, errNoSerial }

// Write fails on this OS.
func (*Serial) Write([]byte) (int, error) { return 0, errNoSerial }

// Close does nothing on this OS.
func (*Serial) Close() error { return nil }

// Name is empty on this OS.
func (*Serial) Name() string { return "" }
