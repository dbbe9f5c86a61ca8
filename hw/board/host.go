package board

import (
	"fmt"
	"io"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"
	"periph.io/x/host/v3"
)

// Buses opens the hardware a PN532 hangs on. The daemon takes a Buses so
// tests substitute a simulator; Host is the real one.
type Buses interface {
	// OpenUART opens a serial port 8N1 at baud (0: DefaultBaud) whose
	// reads time out after about 100 ms with (0, nil). If the returned
	// port also has a SetBaud(int) error method, the PN532 link speed
	// can be switched (SetSerialBaudrate); pn532.NewUART detects it.
	OpenUART(name string, baud int) (io.ReadWriteCloser, error)
	// OpenSPI opens an SPI device (e.g. "/dev/spidev0.0") in mode 0, 8
	// bits, at hz (0: DefaultSPIHz). Close the io.Closer when done.
	OpenSPI(dev string, hz int) (spi.Conn, io.Closer, error)
	// OpenI2C opens an I2C bus by periph name ("1", "I2C1" or
	// "/dev/i2c-1").
	OpenI2C(bus string) (i2c.BusCloser, error)
	// OpenPin returns the named GPIO ("GPIO17").
	OpenPin(name string) (gpio.PinIO, error)
}

// Host opens the real buses: periph.io host drivers for SPI, I2C and
// GPIO, OpenSerial for the UART.
type Host struct{}

var _ Buses = Host{}

// OpenUART opens a switchable port with OpenSerial.
func (Host) OpenUART(name string, baud int) (io.ReadWriteCloser, error) {
	s, err := OpenSerial(name, baud)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenSPI calls the package's OpenSPI.
func (Host) OpenSPI(dev string, hz int) (spi.Conn, io.Closer, error) { return OpenSPI(dev, hz) }

// OpenI2C calls the package's OpenI2C.
func (Host) OpenI2C(bus string) (i2c.BusCloser, error) { return OpenI2C(bus) }

// OpenPin calls the package's OpenPin.
func (Host) OpenPin(name string) (gpio.PinIO, error) { return OpenPin(name) }

// hostInit loads periph's host drivers once per process. host.Init is
// itself idempotent, but the error should be reported the same way each
// time and the driver scan not repeated.
var hostInit = sync.OnceValue(func() error {
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("board: periph host: %w", err)
	}
	return nil
})

// OpenSPI opens the spidev device dev ("/dev/spidev0.0" or periph's alias
// "SPI0.0") at hz in SPI mode 0 with 8-bit words.
//
// The PN532 wants LSB-first bytes but the Raspberry Pi's SPI controller
// only shifts MSB first, so the driver (pn532) reverses the bits of every
// byte in software and the port is connected in plain Mode0. Do not add
// spi.LSBFirst: the Pi's SPI driver lists no LSB-first mode
// (raspberrypi/documentation spi-bus-on-raspberry-pi.adoc, "Supported mode
// bits") and the kernel rejects unsupported mode bits.
func OpenSPI(dev string, hz int) (spi.Conn, io.Closer, error) {
	if dev == "" {
		return nil, nil, fmt.Errorf("board: no SPI device named")
	}
	if hz == 0 {
		hz = DefaultSPIHz
	}
	if hz < 0 || hz > MaxSPIHz {
		return nil, nil, fmt.Errorf("board: SPI %s at %d Hz: the PN532 allows 1..%d Hz", dev, hz, MaxSPIHz)
	}
	if err := hostInit(); err != nil {
		return nil, nil, err
	}
	p, err := spireg.Open(dev)
	if err != nil {
		return nil, nil, fmt.Errorf("board: open SPI %s: %w", dev, err)
	}
	c, err := p.Connect(physic.Frequency(hz)*physic.Hertz, spi.Mode0, 8)
	if err != nil {
		_ = p.Close()
		return nil, nil, fmt.Errorf("board: SPI %s mode 0 at %d Hz: %w", dev, hz, err)
	}
	return c, p, nil
}

// OpenI2C opens the I2C bus named bus ("1" for /dev/i2c-1, the header's
// GPIO2/GPIO3). The bus clock is set by the kernel
// (dtparam=i2c_arm_baudrate), not here.
func OpenI2C(bus string) (i2c.BusCloser, error) {
	if bus == "" {
		return nil, fmt.Errorf("board: no I2C bus named")
	}
	if err := hostInit(); err != nil {
		return nil, err
	}
	b, err := i2creg.Open(bus)
	if err != nil {
		return nil, fmt.Errorf("board: open I2C %s: %w", bus, err)
	}
	return b, nil
}

// OpenPin returns the GPIO called name ("GPIO17"). On the Pi 5 the names
// come from the gpio character device's line names, which are "GPIO0" ..
// "GPIO27" on the header (bcm2712-rpi-5-b.dts), so the same names work on
// every profile.
func OpenPin(name string) (gpio.PinIO, error) {
	if err := hostInit(); err != nil {
		return nil, err
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("board: no GPIO named %q on this host", name)
	}
	return p, nil
}
