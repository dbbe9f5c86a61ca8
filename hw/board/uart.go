// Package board opens the kiosk's hardware: the PN532's serial port (HSU),
// SPI and I2C buses and GPIOs (RSTPD_N, IRQ) through periph.io and
// tarm/serial, and knows the Raspberry Pi board profiles (which device and
// pins to use where). Together with main packages it is the only code that
// touches devices; Buses is the seam tests replace with a simulator.
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
// pn532.UART expects. Its speed is fixed: tarm/serial neither changes the
// speed of an open port nor exposes the descriptor to do it with, so the
// HSU SetSerialBaudrate switch needs OpenSerial.
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
