// Package frontend runs the kiosk's NFC frontend, a PN532 on UART, SPI or
// I2C, as a tap.Reader: it opens and initialises the chip lazily, polls
// for cards (Type B, and Type A when enabled), carries APDUs with the
// chip's own ISO-DEP or with the host's (drivers/isodep over
// InCommunicateThru), checks card presence the way a PN532 supports, and
// recovers from faults by aborting, pulsing RSTPD_N and initialising the
// chip again. It keeps health counters for telemetry.
//
// Lifecycle, per fault: the link is closed, the next Next pulses the
// reset line (when there is one), reopens the bus and initialises the
// chip; failed starts back off (gateway/backoff). A session whose card
// I/O failed because of the chip, not because the card left, leaves the
// reader owing a removal: the card still on the field is not read again
// until it has been seen gone, so one tap never gives two events.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kazashi/kazashi/drivers/isodep"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/backoff"
)

// Link is an opened bus to the chip.
type Link struct {
	Transport pn532.Transport
	// Bus describes it for logs and the probe tool, e.g. "uart
	// /dev/ttyAMA0", "spi /dev/spidev0.0 @ 1MHz".
	Bus string
	// Close releases the bus; it must stop any goroutine of Transport.
	Close func() error
}

// ISODEP selects who runs ISO/IEC 14443-4 for Type B cards.
type ISODEP string

const (
	// ISODEPFirmware: the chip's firmware (InDataExchange, CID 1, 64-byte
	// frames from the card).
	ISODEPFirmware ISODEP = "firmware"
	// ISODEPSoftware: the host, over InCommunicateThru, after its own
	// ATTRIB with FSD 256 (fewer RF round trips for long answers).
	ISODEPSoftware ISODEP = "software"
)

// Config configures a Reader.
type Config struct {
	// Open opens the bus. Called at the first Next and after each fault.
	Open func(ctx context.Context) (*Link, error)
	// Reset pulses RSTPD_N; nil when the pin is not wired.
	Reset func(ctx context.Context) error
	// Opts are the driver's options.
	Opts pn532.Opts
	// Baud, on UART, is the speed to switch to after initialisation
	// (SetSerialBaudRate); 0 or 115200 stays at the power-on speed.
	Baud int
	// ISODEP chooses the ISO-DEP path for Type B (default software, the
	// faster one measured by make bench).
	ISODEP ISODEP
	// TypeA also polls for Type A targets (phones).
	TypeA bool
	// Poll is the pause between two polls finding nothing (default
	// 150 ms); Presence the pause between two presence checks (default
	// 200 ms).
	Poll, Presence time.Duration
	// StartBackoff spaces failed starts (default 200 ms up to 10 s).
	StartBackoff backoff.Policy
	// Logger gets lifecycle logs; nil is quiet. Card IDs are never logged.
	Logger *slog.Logger
}

// State is where the reader is in its lifecycle.
type State string

const (
	StateStopped  State = "stopped"  // not started yet, or closed
	StateStarting State = "starting" // opening the bus, initialising the chip
	StateReady    State = "ready"    // polling for cards
	StateCard     State = "card"     // a session is open
	StateFault    State = "fault"    // the last start failed; retrying
)

// Error kinds counted in Health.Errors.
const (
	ErrKindNoACK    = "no_ack"    // the chip did not acknowledge a command
	ErrKindTimeout  = "timeout"   // no response in time; the command was aborted
	ErrKindFrame    = "frame"     // bad checksum or length, after NACKs
	ErrKindSyntax   = "syntax"    // the chip answered the error frame
	ErrKindStatus   = "rf_status" // an In* command's error status other than card lost
	ErrKindCardLost = "card_lost" // the card left during a read
	ErrKindOpen     = "open"      // the bus could not be opened
	ErrKindInit     = "init"      // the chip did not initialise
	ErrKindBaud     = "baud"      // the speed switch failed
	ErrKindLink     = "link"      // the bus itself failed (device gone)
	ErrKindResponse = "response"  // a malformed answer
)

// Health is a snapshot for telemetry and the probe tool.
type Health struct {
	State    State
	Bus      string
	Firmware string // e.g. "PN532 v1.6 (support 07)"
	Baud     int    // HSU speed in use, 0 on SPI/I2C
	Starts   int    // successful initialisations
	Resets   int    // RSTPD_N pulses
	Sessions int    // cards activated and handed to the pipeline
	// AwaitingRemoval: a chip fault cut a read short and the reader has
	// not yet seen the field empty; no card is read until it has.
	AwaitingRemoval bool
	Errors          map[string]int
}

// Reader is a PN532 frontend as a tap.Reader. Next, sessions and Close
// are used from one goroutine (the pipeline) except that WaitRemoved may
// run while the holder is typing; the chip serialises its commands.
type Reader struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards health
	health Health

	dev     *pn532.Dev
	link    *Link
	faulted bool // the chip must be reset before the next start
	// owed: a session ended by a chip fault; the card on the field, if
	// any, is the one it was reading and must be seen gone first.
	owed bool
	// owedFlag mirrors owed for Health (guarded by mu).
	owedFlag bool
	backoff  *backoff.Backoff
}

// New returns a Reader; nothing is opened before the first Next.
func New(cfg Config) *Reader {
	if cfg.Poll <= 0 {
		cfg.Poll = 150 * time.Millisecond
	}
	if cfg.Presence <= 0 {
		cfg.Presence = 200 * time.Millisecond
	}
	if cfg.ISODEP == "" {
		cfg.ISODEP = ISODEPSoftware
	}
	if cfg.StartBackoff.Initial <= 0 {
		cfg.StartBackoff = backoff.Policy{Initial: 200 * time.Millisecond, Max: 10 * time.Second}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reader{cfg: cfg, log: log, health: Health{State: StateStopped, Errors: map[string]int{}}}
	r.backoff = cfg.StartBackoff.New()
	return r
}

// Health returns a snapshot of the counters.
func (r *Reader) Health() Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.health
	h.AwaitingRemoval = r.owedFlag
	h.Errors = make(map[string]int, len(r.health.Errors))
	for k, v := range r.health.Errors {
		h.Errors[k] = v
	}
	return h
}

func (r *Reader) setState(s State) {
	r.mu.Lock()
	r.health.State = s
	r.mu.Unlock()
}

func (r *Reader) setOwed(v bool) {
	r.owed = v
	r.mu.Lock()
	r.owedFlag = v
	r.mu.Unlock()
}

func (r *Reader) count(kind string) {
	r.mu.Lock()
	r.health.Errors[kind]++
	r.mu.Unlock()
}

// Kind classifies a driver error for the health counters.
func Kind(err error) string {
	var se *pn532.StatusError
	switch {
	case errors.Is(err, pn532.ErrTargetLost):
		return ErrKindCardLost
	case errors.Is(err, pn532.ErrNoACK):
		return ErrKindNoACK
	case errors.Is(err, pn532.ErrTimeout):
		return ErrKindTimeout
	case errors.Is(err, pn532.ErrChecksum), errors.Is(err, pn532.ErrLength):
		return ErrKindFrame
	case errors.Is(err, pn532.ErrSyntax):
		return ErrKindSyntax
	case errors.As(err, &se):
		return ErrKindStatus
	case errors.Is(err, pn532.ErrResponse), errors.Is(err, isodep.ErrProtocol):
		return ErrKindResponse
	}
	return ErrKindLink
}

// start opens the bus and initialises the chip, after a reset pulse when
// the last chip failed.
func (r *Reader) start(ctx context.Context) error {
	if r.dev != nil {
		return nil
	}
	r.setState(StateStarting)
	if r.faulted && r.cfg.Reset != nil {
		if err := r.cfg.Reset(ctx); err != nil {
			return fmt.Errorf("frontend: reset pulse: %w", err)
		}
		r.mu.Lock()
		r.health.Resets++
		r.mu.Unlock()
		r.log.Info("frontend reset by RSTPD_N after a fault")
	}
	link, err := r.cfg.Open(ctx)
	if err != nil {
		r.count(ErrKindOpen)
		r.faulted = true
		return fmt.Errorf("frontend: open: %w", err)
	}
	// 5 s covers the wake-up, the drain and two tries of each init
	// command with the first-contact ACK timeout.
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := pn532.New(ictx, link.Transport, &r.cfg.Opts)
	if err == nil && r.cfg.Baud != 0 && r.cfg.Baud != pn532.DefaultBaud {
		if berr := d.SetBaud(ictx, r.cfg.Baud); berr != nil {
			r.count(ErrKindBaud)
			err = berr
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			r.count(ErrKindInit)
		}
		_ = link.Close()
		r.faulted = true
		return fmt.Errorf("frontend: %s: %w", link.Bus, err)
	}
	r.dev, r.link, r.faulted = d, link, false
	r.mu.Lock()
	r.health.Starts++
	r.health.Bus, r.health.Firmware, r.health.Baud = link.Bus, d.Firmware().String(), d.Baud()
	r.health.State = StateReady
	r.mu.Unlock()
	r.log.Info("reader ready", "bus", link.Bus, "frontend", d.String(), "baud", d.Baud())
	return nil
}

// fault drops the chip after err; the next Next starts it over with a
// reset pulse.
func (r *Reader) fault(err error) {
	r.count(Kind(err))
	r.drop()
	r.faulted = true
}

func (r *Reader) drop() {
	if r.link != nil {
		_ = r.link.Close()
	}
	r.dev, r.link = nil, nil
}

// Next polls until a card enters the field and returns its session. It
// returns an error when the chip cannot be started (the pipeline shows
// the fault and calls again) and ctx's error when ctx ends.
func (r *Reader) Next(ctx context.Context) (tap.Session, error) {
	for {
		if err := r.start(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.setState(StateFault)
			if werr := r.backoff.Wait(ctx); werr != nil {
				return nil, werr
			}
			return nil, err
		}
		r.backoff.Reset()
		s, err := r.poll(ctx)
		switch {
		case err == nil && s != nil:
			if r.owed {
				// The card the faulted session was reading, or one put
				// down in its place before we could tell: wait for the
				// field to empty before anything is read again.
				r.log.Info("card still present after a reader fault: waiting for removal before reading again")
				if werr := s.WaitRemoved(ctx); werr != nil {
					_ = s.Close()
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					continue // fault handled by the session
				}
				r.setOwed(false)
				_ = s.Close()
				continue
			}
			r.mu.Lock()
			r.health.Sessions++
			r.health.State = StateCard
			r.mu.Unlock()
			return s, nil
		case errors.Is(err, pn532.ErrNoTarget):
			r.setOwed(false) // the field is empty: the debt is paid
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			r.fault(err)
			r.log.Warn("reader fault while polling", "err", err, "kind", Kind(err))
			continue
		}
		t := time.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// poll polls once per enabled technology and opens a session on the
// first target found.
func (r *Reader) poll(ctx context.Context) (*session, error) {
	tb, err := r.dev.ListTypeB(ctx)
	switch {
	case err == nil:
		return r.openB(ctx, tb)
	case !errors.Is(err, pn532.ErrNoTarget):
		return nil, err
	}
	if !r.cfg.TypeA {
		return nil, pn532.ErrNoTarget
	}
	ta, err := r.dev.ListTypeA(ctx)
	if err != nil {
		return nil, err
	}
	if !ta.ISO14443_4() {
		// A MIFARE or other ISO/IEC 14443-3-only target: nothing to read.
		r.log.Debug("type A target without ISO/IEC 14443-4 ignored")
		_ = r.dev.Release(ctx)
		return nil, pn532.ErrNoTarget
	}
	return &session{r: r, dev: r.dev, card: &pn532.Card{Dev: r.dev, Target: ta}, tech: ta.Tech()}, nil
}

// openB opens a Type B session on the configured ISO-DEP path.
func (r *Reader) openB(ctx context.Context, tb *pn532.TargetB) (*session, error) {
	s := &session{r: r, dev: r.dev, tech: tb.Tech()}
	if !tb.ISO14443_4() {
		_ = r.dev.Release(ctx)
		return nil, fmt.Errorf("frontend: %w", pn532.ErrNotISODEP)
	}
	if r.cfg.ISODEP == ISODEPFirmware {
		s.card = &pn532.Card{Dev: r.dev, Target: tb}
		return s, nil
	}
	conn, err := pn532.SoftwareISODEP(ctx, r.dev, tb, nil)
	if err != nil {
		if errors.Is(err, pn532.ErrTargetLost) || errors.Is(err, isodep.ErrNoResponse) {
			// Gone during activation: nothing to read.
			return nil, pn532.ErrNoTarget
		}
		return nil, err
	}
	s.conn = conn
	return s, nil
}

// Close halts the chip (targets released, RF off, UART back to 115200)
// and closes the bus.
func (r *Reader) Close() error {
	var err error
	if r.dev != nil {
		err = r.dev.Halt()
	}
	r.drop()
	r.faulted = false
	r.setOwed(false)
	r.setState(StateStopped)
	return err
}

// session is one card on the field.
type session struct {
	r    *Reader
	dev  *pn532.Dev // the chip this session was opened on
	tech string
	card *pn532.Card  // firmware ISO-DEP
	conn *isodep.Conn // software ISO-DEP
	dead bool         // the chip faulted under this session
}

// alive reports whether the chip this session runs on is still the
// reader's.
func (s *session) alive() bool { return !s.dead && s.r.dev == s.dev && s.dev != nil }

func (s *session) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	if !s.alive() {
		return nil, errors.New("frontend: reader was reset during this read")
	}
	var (
		b   []byte
		err error
	)
	if s.conn != nil {
		b, err = s.conn.Transmit(ctx, apdu)
	} else {
		b, err = s.card.Transmit(ctx, apdu)
	}
	if err != nil && ctx.Err() == nil {
		if errors.Is(err, pn532.ErrTargetLost) {
			s.r.count(ErrKindCardLost)
		} else {
			// The chip misbehaved, not the card: start the chip over, and
			// do not read this card again before it has left.
			s.r.log.Warn("reader fault during a read", "err", err, "kind", Kind(err))
			s.dead = true
			s.r.setOwed(true)
			s.r.fault(err)
		}
	}
	return b, err
}

func (s *session) Tech() string { return s.tech }

// WaitRemoved checks presence until the card is gone. After a chip fault
// it returns at once with an error: the reader then waits for the
// removal itself before it reads again (see Reader.owed).
func (s *session) WaitRemoved(ctx context.Context) error {
	for {
		if !s.alive() {
			return errors.New("frontend: reader was reset; removal is awaited before the next read")
		}
		var (
			present bool
			err     error
		)
		if s.conn != nil {
			present, err = s.conn.Present(ctx)
		} else {
			present, err = s.dev.Present(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.dead = true
			s.r.setOwed(true)
			s.r.fault(err)
			return fmt.Errorf("frontend: presence check: %w", err)
		}
		if !present {
			return nil
		}
		t := time.NewTimer(s.r.cfg.Presence)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close releases the target and switches the field off until the next
// poll (InRelease + RF off; never PowerDown).
func (s *session) Close() error {
	if !s.alive() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.dev.Release(ctx)
	if ferr := s.dev.RFField(ctx, false); err == nil {
		err = ferr
	}
	s.r.setState(StateReady)
	return err
}
