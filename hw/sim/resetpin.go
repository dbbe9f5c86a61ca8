package sim

import (
	"errors"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// ResetPin is the chip's RSTPD_N input (reset and power-down, active low)
// as a periph.io gpio.PinIO driven by the host: Out(gpio.Low) holds the
// chip in reset, a hard power-down in which it answers nothing on any link
// (UART bytes are lost, SPI's MISO reads FF, I2C does not acknowledge);
// Out(gpio.High) lets it start again as after power-on: LowVbat, HSU at
// 115200 baud, nothing pending, no longer hung. A watchdog pulses it to
// recover a locked-up chip (protocols.md §1: "Wire RSTPD_N to a GPIO:
// cheap boards lock up after hours; a watchdog pulses reset and
// re-initialises").
//
// The chip's start-up time after RSTPD_N goes high is not modelled: it
// listens at once (a host should still wait a few ms, as on hardware).
type ResetPin struct {
	hold func(low bool)

	mu    sync.Mutex
	level gpio.Level
}

var _ gpio.PinIO = (*ResetPin)(nil)

func newResetPin(hold func(low bool)) *ResetPin {
	return &ResetPin{hold: hold, level: gpio.High}
}

// Out implements gpio.PinOut. Low resets the chip and holds it; High
// releases it. Driving the level the pin already has does nothing.
func (p *ResetPin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.level {
		return nil
	}
	p.level = l
	p.hold(l == gpio.Low)
	return nil
}

// Pulse drives the pin low for d (no wait when d ≤ 0), then high: a reset.
func (p *ResetPin) Pulse(d time.Duration) error {
	if err := p.Out(gpio.Low); err != nil {
		return err
	}
	if d > 0 {
		time.Sleep(d)
	}
	return p.Out(gpio.High)
}

// PWM implements gpio.PinOut; RSTPD_N takes levels only.
func (p *ResetPin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("sim: RSTPD_N: no PWM")
}

// In implements gpio.PinIn; RSTPD_N is the host's output.
func (p *ResetPin) In(gpio.Pull, gpio.Edge) error {
	return errors.New("sim: RSTPD_N is driven by the host (an output)")
}

// Read implements gpio.PinIn: the level the host drives.
func (p *ResetPin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge implements gpio.PinIn; the pin is an output: false.
func (p *ResetPin) WaitForEdge(time.Duration) bool { return false }

// Pull implements gpio.PinIn.
func (p *ResetPin) Pull() gpio.Pull { return gpio.PullNoChange }

// DefaultPull implements gpio.PinIn: boards pull RSTPD_N up, so a floating
// line runs the chip.
func (p *ResetPin) DefaultPull() gpio.Pull { return gpio.PullUp }

// String implements pin.Pin.
func (p *ResetPin) String() string { return "sim-RSTPD_N" }

// Halt implements conn.Resource.
func (p *ResetPin) Halt() error { return nil }

// Name implements pin.Pin.
func (p *ResetPin) Name() string { return "RSTPD_N" }

// Number implements pin.Pin.
func (p *ResetPin) Number() int { return -1 }

// Function implements pin.Pin.
func (p *ResetPin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *ResetPin) Func() pin.Func {
	if p.Read() == gpio.Low {
		return gpio.OUT_LOW
	}
	return gpio.OUT_HIGH
}
