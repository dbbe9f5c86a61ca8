package main

import (
	"errors"
	"io"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// simBuses opens the simulator's SPI port and I2C bus instead of the
// host's: the daemon's composition from configuration to transport runs
// unchanged, only the bus under it is the simulated chip.
type simBuses struct {
	s   *sim.Sim
	spi *spi.Conn // periph ports connect once (like spireg's): kept across reopens
}

func (b simBuses) OpenUART(name string, baud int) (io.ReadWriteCloser, error) {
	return board.Host{}.OpenUART(name, baud) // the simulator's pty
}

func (b simBuses) OpenSPI(dev string, hz int) (spi.Conn, io.Closer, error) {
	if b.s.SPI() == nil {
		return nil, nil, errors.New("simulator has no SPI")
	}
	if *b.spi == nil {
		c, err := b.s.SPI().Connect(physic.Frequency(hz)*physic.Hertz, spi.Mode0, 8)
		if err != nil {
			return nil, nil, err
		}
		*b.spi = c
	}
	return *b.spi, io.NopCloser(nil), nil
}

// keptBus is the simulator's bus with a Close that leaves it usable: the
// reader closes its bus after every fault and opens it again.
type keptBus struct{ i2c.Bus }

func (keptBus) Close() error { return nil }

func (b simBuses) OpenI2C(string) (i2c.BusCloser, error) {
	if b.s.I2C() == nil {
		return nil, errors.New("simulator has no I2C")
	}
	return keptBus{b.s.I2C()}, nil
}

func (b simBuses) OpenPin(name string) (gpio.PinIO, error) {
	return nil, errors.New("no GPIO " + name + " on the simulator")
}

func useSimBuses(t *testing.T, s *sim.Sim) {
	old := hostBuses
	hostBuses = simBuses{s: s, spi: new(spi.Conn)}
	t.Cleanup(func() { hostBuses = old })
}

// readerJSON gives the reader members for the simulator's bus.
func readerJSON(bus string) string {
	switch bus {
	case sim.BusSPI:
		return `, "driver": "pn532-spi", "spi_device": "sim", "spi_hz": 5000000`
	case sim.BusI2C:
		return `, "driver": "pn532-i2c", "i2c_bus": "sim"`
	}
	return ""
}

// TestDaemonOverEveryBus runs the daemon's tap path over the simulated
// chip on SPI and I2C as the end-to-end test does over the UART: valid and
// revoked cards verified and published, a card pulled mid-read reported
// as removed, and the reader fine afterwards.
func TestDaemonOverEveryBus(t *testing.T) {
	for _, bus := range []string{sim.BusSPI, sim.BusI2C} {
		t.Run(bus, func(t *testing.T) {
			r := newRig(t, rigOptions{bus: bus})
			if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "ok" || e.Outcome != tap.Accepted || e.Tech != "iso14443-4b" {
				t.Fatalf("valid card over %s: %s", bus, raw)
			}
			if e, raw := r.tap(testpki.KindRevoked, 0); e.Reason != "revoked" {
				t.Fatalf("revoked card over %s: %s", bus, raw)
			}
			if e, raw := r.tap(testpki.KindValid, 5); e.Reason != tap.ReasonRemoved {
				t.Fatalf("card pulled over %s: %s", bus, raw)
			}
			if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "ok" {
				t.Fatalf("tap after a pulled card over %s: %s", bus, raw)
			}
		})
	}
}
