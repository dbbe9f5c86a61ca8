package board

import (
	"errors"
	"fmt"
	"io"

	"github.com/kazashi/kazashi/drivers/pn532"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
)

// PN532Config names the bus a PN532 hangs on, as the daemon's "reader"
// configuration and kazashictl probe give it.
type PN532Config struct {
	// Driver is "pn532-uart", "pn532-spi" or "pn532-i2c".
	Driver string `json:"driver"`
	// Port is the serial device (pn532-uart), e.g. /dev/ttyAMA0.
	Port string `json:"port"`
	// SPIDevice and SPIHz (pn532-spi), e.g. /dev/spidev0.0 at 1 MHz.
	SPIDevice string `json:"spi_device"`
	SPIHz     int    `json:"spi_hz"`
	// I2CBus (pn532-i2c), e.g. "1".
	I2CBus string `json:"i2c_bus"`
	// IRQGPIO is the GPIO wired to P70_IRQ (SPI, I2C); empty: poll.
	IRQGPIO string `json:"irq_gpio"`
}

// PN532Link is an opened bus wrapped in its PN532 transport.
type PN532Link struct {
	Transport pn532.Transport
	Bus       string // for logs: "spi /dev/spidev0.0 @ 1000000 Hz"
	// Close stops the transport and releases the bus.
	Close func() error
	// Recording returns the bus transactions so far when the link was
	// opened with record; nil otherwise.
	Recording func(note string) *pn532.Recording
}

// OpenPN532 opens the bus of c on b and wraps it in the matching
// transport. The UART always starts at 115200 baud, the chip's power-on
// speed. With record every bus transaction is kept for a playback test
// (pn532.Recording); a recorded UART cannot switch speed.
func OpenPN532(b Buses, c PN532Config, record bool) (*PN532Link, error) {
	switch c.Driver {
	case "pn532-uart":
		port, err := b.OpenUART(c.Port, DefaultBaud)
		if err != nil {
			return nil, err
		}
		var rw io.ReadWriter = port
		l := &PN532Link{Bus: "uart " + c.Port}
		if record {
			rec := pn532.NewUARTRecorder(port)
			rw, l.Recording = rec, rec.Recording
		}
		u := pn532.NewUART(rw)
		l.Transport = u
		l.Close = func() error { u.Close(); return port.Close() }
		return l, nil
	case "pn532-spi":
		irq, err := irqPin(b, c.IRQGPIO)
		if err != nil {
			return nil, err
		}
		conn, closer, err := b.OpenSPI(c.SPIDevice, c.SPIHz)
		if err != nil {
			return nil, err
		}
		l := &PN532Link{Bus: fmt.Sprintf("spi %s @ %d Hz", c.SPIDevice, c.SPIHz), Close: closer.Close}
		if record {
			rec := pn532.NewSPIRecorder(conn, true)
			conn, l.Recording = rec, rec.Recording
		}
		o := pn532.DefaultSPIOpts
		o.IRQ = irq
		t, err := pn532.NewSPI(conn, &o)
		if err != nil {
			return nil, errors.Join(err, closer.Close())
		}
		l.Transport = t
		return l, nil
	case "pn532-i2c":
		irq, err := irqPin(b, c.IRQGPIO)
		if err != nil {
			return nil, err
		}
		bus, err := b.OpenI2C(c.I2CBus)
		if err != nil {
			return nil, err
		}
		l := &PN532Link{Bus: "i2c " + c.I2CBus, Close: bus.Close}
		var ib i2c.Bus = bus
		if record {
			rec := pn532.NewI2CRecorder(bus)
			ib, l.Recording = rec, rec.Recording
		}
		o := pn532.DefaultI2COpts
		o.IRQ = irq
		t, err := pn532.NewI2C(ib, &o)
		if err != nil {
			return nil, errors.Join(err, bus.Close())
		}
		l.Transport = t
		return l, nil
	}
	return nil, fmt.Errorf("board: reader driver %q: one of pn532-uart, pn532-spi, pn532-i2c", c.Driver)
}

func irqPin(b Buses, name string) (gpio.PinIn, error) {
	if name == "" {
		return nil, nil
	}
	p, err := b.OpenPin(name)
	if err != nil {
		return nil, fmt.Errorf("board: IRQ pin: %w", err)
	}
	return p, nil
}
