package board

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// ResetLine drives the PN532's RSTPD_N pin (active low). Cheap PN532
// boards lock up after hours of polling; pulsing RSTPD_N and starting the
// chip over is the only cure short of a power cycle.
type ResetLine struct {
	pin gpio.PinOut
	// Hold is how long the line is held low; Boot is how long to wait
	// after releasing it before the chip is spoken to.
	Hold, Boot time.Duration
}

// Reset timing. The PN532 needs far less than this (its reset pulse is
// specified in nanoseconds and its oscillator starts within a few ms), but
// a tap happens seconds apart and a watchdog reset is rare, so be generous.
const (
	defaultHold = 20 * time.Millisecond
	defaultBoot = 50 * time.Millisecond
)

// NewResetLine uses pin as RSTPD_N and drives it high (chip running).
func NewResetLine(pin gpio.PinOut) (*ResetLine, error) {
	if err := pin.Out(gpio.High); err != nil {
		return nil, fmt.Errorf("board: RSTPD_N %s: %w", pin, err)
	}
	return &ResetLine{pin: pin, Hold: defaultHold, Boot: defaultBoot}, nil
}

// OpenResetLine initialises the host's GPIO drivers and takes the named
// pin (e.g. "GPIO17") as RSTPD_N.
func OpenResetLine(name string) (*ResetLine, error) {
	p, err := OpenPin(name)
	if err != nil {
		return nil, err
	}
	return NewResetLine(p)
}

// Pulse resets the chip: low for Hold, high, then Boot to start. The chip
// comes back in LowVbat mode and needs the HSU wake-up again.
func (r *ResetLine) Pulse(ctx context.Context) error {
	if err := r.pin.Out(gpio.Low); err != nil {
		return fmt.Errorf("board: RSTPD_N low: %w", err)
	}
	if err := sleep(ctx, r.Hold); err != nil {
		// Never leave the chip held in reset.
		_ = r.pin.Out(gpio.High)
		return err
	}
	if err := r.pin.Out(gpio.High); err != nil {
		return fmt.Errorf("board: RSTPD_N high: %w", err)
	}
	return sleep(ctx, r.Boot)
}

func (r *ResetLine) String() string { return "RSTPD_N on " + r.pin.String() }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
