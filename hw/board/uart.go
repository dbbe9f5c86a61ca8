// Package board opens the kiosk's hardware: the serial port of a PN532 on
// HSU today; SPI/I2C buses, GPIO reset lines and board profiles later.
// Together with main packages it is the only code that touches devices.
package board

import (
	"fmt"
	"io"
	"time"

	"github.com/tarm/serial"
)

// DefaultBaud is the PN532 HSU speed after power-on.
const DefaultBaud = 115200

// OpenUART opens a serial port 8N1 at baud with a 100 ms read timeout
// (tarm/serial counts in 100 ms steps; a timeout reads as n == 0), which
// pn532.UART expects.
func OpenUART(name string, baud int) (io.ReadWriteCloser, error) {
	if baud == 0 {
		baud = DefaultBaud
	}
	p, err := serial.OpenPort(&serial.Config{Name: name, Baud: baud, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("board: open %s: %w", name, err)
	}
	return p, nil
}
