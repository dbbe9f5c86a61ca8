package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Host interfaces of the PN532 (Options.Bus). A board selects one with the
// chip's I0/I1 pins (the SEL0/SEL1 switches of common breakout boards).
const (
	BusUART = "uart" // HSU on a pseudo-terminal (default)
	BusSPI  = "spi"  // SPI slave, see SPIPort
	BusI2C  = "i2c"  // I2C slave at 0x24, see I2CBus
)

// Options configures Start.
type Options struct {
	// Bus is the host interface: BusUART (default), BusSPI or BusI2C. On
	// SPI and I2C there is no pty: the host talks through Sim.SPI or
	// Sim.I2C, and can watch Sim.IRQ.
	Bus string
	// Link, when set, is a symlink made to the pty slave (e.g.
	// /tmp/kazashi-pn532) and removed by Close. An existing symlink there
	// is replaced; any other file is an error. UART only.
	Link string
	// Card, when non-nil, is placed on the field at start.
	Card Target
	// RemoveAfterAPDUs makes Card leave the field after answering that
	// many APDUs (0: never).
	RemoveAfterAPDUs int
	// Awake starts the chip in normal mode instead of LowVbat.
	Awake  bool
	Timing Timing
	// Meter, when set, receives the modelled link, RF and chip time.
	Meter *Meter
	// Faults are injected from the start; Sim.Faults changes them later.
	Faults FaultOptions
	// Now is the clock of the bus timing rules (the I2C bus-free time, the
	// SPI wake-up delay); nil: time.Now. Tests step a fake clock.
	Now func() time.Time
	// Logger receives the simulator's log; frames are logged at Debug
	// level with secrets and personal data masked (see the package
	// documentation). nil: quiet.
	Logger *slog.Logger
}

// Sim is a running simulated PN532 on one host interface.
type Sim struct {
	chip   *Chip
	field  *Field
	log    *slog.Logger
	bus    string
	faults *Faults
	reset  *ResetPin
	held   atomic.Bool // RSTPD_N low, or no power (unplugged)

	// SPI and I2C: one engine for the simulator's life.
	spi *SPIPort
	i2c *I2CBus
	irq *IRQPin

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu            sync.Mutex
	master, slave *os.File
	path, link    string
	eng           *engine // the link's engine (HSU: the current pty's)
	serveCancel   context.CancelFunc
	serveDone     chan struct{}
	unplugged     bool
	rstLow        bool // RSTPD_N driven low
	closed        bool

	closeOnce sync.Once
	closeErr  error
}

// Start starts a simulated PN532 on opts.Bus and serves it until ctx is
// done or Close is called.
//
// On BusUART (the default) it opens a pty and serves the chip's HSU on its
// master side; the simulator keeps the slave side open for its whole life,
// so hosts may open, close and reopen Path (or Link) freely. On BusSPI and
// BusI2C the host uses Sim.SPI or Sim.I2C (periph.io interfaces) instead.
func Start(ctx context.Context, opts Options) (*Sim, error) {
	log := opts.Logger
	if log == nil {
		log = discard
	}
	bus := opts.Bus
	if bus == "" {
		bus = BusUART
	}
	switch bus {
	case BusUART, BusSPI, BusI2C:
	default:
		return nil, fmt.Errorf("sim: unknown bus %q (want %s, %s or %s)", bus, BusUART, BusSPI, BusI2C)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Sim{
		field:  NewField(),
		log:    log,
		bus:    bus,
		faults: newFaults(opts.Faults),
		done:   make(chan struct{}),
	}
	s.chip = NewChip(s.field, &ChipOptions{Awake: opts.Awake, Timing: opts.Timing, Meter: opts.Meter, Logger: log})
	s.reset = newResetPin(s.hold)
	if opts.Faults.Hung {
		s.chip.Hang()
	}
	if opts.Card != nil {
		s.field.Place(opts.Card, opts.RemoveAfterAPDUs)
	}
	s.ctx, s.cancel = context.WithCancel(ctx)

	switch bus {
	case BusUART:
		master, slave, err := openPTY()
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.master, s.slave, s.path = master, slave, slave.Name()
		if opts.Link != "" {
			if err := replaceSymlink(s.path, opts.Link); err != nil {
				master.Close()
				slave.Close()
				s.cancel()
				return nil, err
			}
			s.link = opts.Link
		}
		s.mu.Lock()
		s.startServeLocked()
		s.mu.Unlock()
		go func() {
			<-s.ctx.Done()
			s.mu.Lock()
			s.stopServeLocked()
			s.mu.Unlock()
			close(s.done)
		}()
	case BusSPI, BusI2C:
		s.irq = newIRQPin()
		cfg := &linkConfig{faults: s.faults, held: &s.held}
		var port linkPort
		if bus == BusSPI {
			sl := &spiSlave{irq: s.irq}
			port = sl
			s.spi = &SPIPort{s: sl, now: now}
			s.eng = newEngine(s.ctx, s.chip, cfg, port)
			sl.e = s.eng
		} else {
			sl := &i2cSlave{irq: s.irq}
			port = sl
			s.i2c = &I2CBus{s: sl, now: now, hz: i2cDefaultHz}
			s.eng = newEngine(s.ctx, s.chip, cfg, port)
			sl.e = s.eng
		}
		go func() {
			defer close(s.done)
			if err := s.eng.run(); err != nil {
				log.Error("serve", "err", err)
			}
			s.cancel()
		}()
	}
	return s, nil
}

// startServeLocked serves the chip's HSU on the current pty. s.mu is held.
func (s *Sim) startServeLocked() {
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	s.serveCancel, s.serveDone = cancel, done
	master := s.master
	h := s.chip.newHSULink(ctx, &linkConfig{faults: s.faults, held: &s.held, hostBaud: ptyBaud(s.slave)})
	s.eng = h.e
	go func() {
		defer close(done)
		if err := h.serve(master); err != nil {
			s.log.Error("serve", "err", err)
		}
		if ctx.Err() == nil {
			// The link failed on its own: the simulator has stopped.
			s.cancel()
		}
	}()
	go func() {
		<-ctx.Done()
		// Unblock the reader: the link stops once ctx is done and its
		// Read fails.
		master.Close()
	}()
}

// stopServeLocked stops serving the current pty and waits. s.mu is held.
func (s *Sim) stopServeLocked() {
	if s.serveCancel == nil {
		return
	}
	s.serveCancel()
	<-s.serveDone
	s.serveCancel, s.serveDone = nil, nil
	s.eng = nil
}

// ptyBaud returns a function reading the line speed the host set on the
// pty: termios is per terminal, so the simulator's own descriptor on the
// slave shows what the host's tcsetattr (TCSETS, TCSETS2 with BOTHER) set.
// It returns 0 once the descriptor is closed.
func ptyBaud(slave *os.File) func() int {
	rc, err := slave.SyscallConn()
	if err != nil {
		return func() int { return 0 }
	}
	return func() int {
		speed := 0
		if err := rc.Control(func(fd uintptr) {
			if t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS2); err == nil {
				speed = int(t.Ospeed)
			}
		}); err != nil {
			return 0
		}
		return speed
	}
}

// hold is the RSTPD_N line: low holds the chip in reset (hard power-down:
// it answers nothing on any link), high lets it start again in LowVbat
// (PN532 datasheet, RSTPD_N "reset and power-down, active low").
func (s *Sim) hold(low bool) {
	s.mu.Lock()
	s.rstLow = low
	if low {
		s.held.Store(true)
	}
	s.mu.Unlock()
	s.chip.Reset()
	s.resetLink()
	if !low {
		s.mu.Lock()
		s.held.Store(s.unplugged) // no power while unplugged
		s.mu.Unlock()
	}
}

// resetLink tells the link that the chip was reset.
func (s *Sim) resetLink() {
	s.mu.Lock()
	e := s.eng
	s.mu.Unlock()
	if e != nil {
		_ = e.call(e.chipReset)
	}
}

// replaceSymlink makes link point to target, replacing an older symlink.
func replaceSymlink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("sim: link %s exists and is not a symlink", link)
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("sim: replace link: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: link: %w", err)
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("sim: link: %w", err)
	}
	return nil
}

// Bus returns the host interface (BusUART, BusSPI or BusI2C).
func (s *Sim) Bus() string { return s.bus }

// Path returns the pty slave path (e.g. /dev/pts/3) a host opens; "" on
// SPI and I2C. It changes with Replug.
func (s *Sim) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// Link returns the symlink made to Path, or "".
func (s *Sim) Link() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link
}

// SPI returns the simulator's SPI port (nil unless Options.Bus is BusSPI),
// reopened if the host closed it.
func (s *Sim) SPI() *SPIPort {
	if s.spi != nil {
		s.spi.reopen()
	}
	return s.spi
}

// I2C returns the simulator's I2C bus (nil unless Options.Bus is BusI2C),
// reopened if the host closed it.
func (s *Sim) I2C() *I2CBus {
	if s.i2c != nil {
		s.i2c.reopen()
	}
	return s.i2c
}

// IRQ returns the chip's P70_IRQ output on SPI and I2C (nil on UART).
func (s *Sim) IRQ() *IRQPin { return s.irq }

// ResetPin returns the chip's RSTPD_N input.
func (s *Sim) ResetPin() *ResetPin { return s.reset }

// Faults returns the simulator's fault injector.
func (s *Sim) Faults() *Faults { return s.faults }

// Chip returns the simulated chip.
func (s *Sim) Chip() *Chip { return s.chip }

// Field returns the RF field.
func (s *Sim) Field() *Field { return s.field }

// Place puts card on the field, replacing any card there.
func (s *Sim) Place(card Target) { s.field.Place(card, 0) }

// Remove takes the card off the field.
func (s *Sim) Remove() { s.field.Remove() }

// Done is closed when the simulator has stopped.
func (s *Sim) Done() <-chan struct{} { return s.done }

// Close stops the simulator, closes the pty and removes the link.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		var errs []error
		if s.slave != nil && !s.unplugged {
			if err := s.slave.Close(); err != nil {
				errs = append(errs, fmt.Errorf("sim: close pty: %w", err))
			}
		}
		if !s.unplugged {
			if err := s.removeLinkLocked(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
