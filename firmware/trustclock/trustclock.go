// Package trustclock provides a lower bound on the current time that a
// kiosk board can trust even without a battery-backed real-time clock.
//
// A Raspberry Pi without an RTC boots with its clock at 1970 (or at the
// last fake-hwclock value) until NTP answers, and a clock can be set
// backwards by anyone with the right privileges or by a bad time source. A
// CRL whose freshness is judged against such a clock always looks current.
// The issue calls for "a persisted high-water mark of trusted time ... a
// lower bound on now that survives a board without an RTC" (issue 6,
// Trustworthy time); this package is that bound.
//
// # Model
//
// The clock keeps a high-water mark M of trusted time, and the monotonic
// time elapsed since M was set. The lower bound on now is
//
//	Bound = M + (Mono() − Mono at the moment M was set)
//
// M is raised by Raise (the thisUpdate of every CRL whose signature
// verified: the CA signed that time, so now ≥ thisUpdate) and by a believed
// system clock. The bound is persisted by Persist (Run calls it every
// PersistEvery), so the running time of every boot accumulates across
// reboots: after a power cut the new process starts from the last persisted
// bound, which is at most PersistEvery (plus the time the board was off)
// behind the true time. A bound that lags makes a CRL look fresh a little
// longer than it is, by at most that lag; it never makes an expired CRL
// look current indefinitely, which is what judging freshness against a
// 1970 clock or the CRL's own thisUpdate does.
//
// The bound never decreases within a process, and the persisted bound never
// decreases: Raise with an earlier time is a no-op, the elapsed part only
// grows (a Mono reading below the one at which M was set counts as zero
// elapsed time), and writes are serialised so that a later write never
// carries an earlier bound. After a reboot the bound restarts from the last
// persisted value, so the running time since the last write is lost.
//
// # When the system clock is believed
//
// Now reads the system clock S and the bound B. S is believed iff
//
//	S ≥ B − Tolerance, and
//	Synced() is true, or S ≤ B + MaxUnsyncedAhead
//
// A believed clock gives Time = max(S, B) and raises M to S in memory (it is
// written at the next Persist, not on every Now). A clock that is not
// believed gives Time = B, Believed = false and Why, a sentence naming both
// timestamps (no personal data). Before the first mark exists (a fresh
// install with no state file and no Floor) there is nothing to compare with
// and the system clock is believed.
//
// The ahead rule exists because a clock that is far ahead and not
// synchronised is as untrustworthy as one that is behind; the price is that
// a board that was switched off for longer than MaxUnsyncedAhead reports
// its bound (the time it was switched off) until NTP synchronises or a new
// CRL raises the mark. Small forward steps are believed and ratchet the
// mark: someone who can set the system clock forward can make CRLs look
// stale (fail closed), never fresh.
//
// # State file
//
// One small JSON object (see stateFile), written to Path+".tmp", fsynced,
// renamed over Path and the directory fsynced (so a power cut leaves either
// the old or the new file). It carries a SHA-256 of its content: a torn or
// corrupt file is an error at Open naming the file (ErrCorrupt), never a
// silent reset to zero, since a reset would remove the very protection the
// file exists for. A missing file means a fresh install.
package trustclock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/kazashi/kazashi/firmware/atomicfile"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxUnsyncedAhead = 7 * 24 * time.Hour
	DefaultTolerance        = 2 * time.Minute
	DefaultPersistEvery     = time.Minute
)

// Sources of a raised mark, as written to the state file. Callers may pass
// other short strings to Raise.
const (
	SourceCRLThisUpdate = "crl-thisUpdate"
	SourceSystem        = "system"
	SourceFloor         = "floor"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// maxSource is the longest source string kept (longer ones are cut).
const maxSource = 64

// ErrCorrupt reports a state file that exists but cannot be trusted: not
// valid JSON, an unknown version, a bad timestamp or a checksum mismatch.
var ErrCorrupt = errors.New("trustclock: state file corrupt")

// Options configure a Clock. Only Path is required.
type Options struct {
	Path   string               // state file, fsynced (temp+fsync+rename+dir fsync)
	System func() time.Time     // wall clock; nil: time.Now
	Mono   func() time.Duration // monotonic elapsed since process start; nil: time.Since(package init), monotonic
	// Synced reports that the system clock is NTP-synchronised (see
	// SyncedFromAdjtimex). Nil: unknown, treated as false.
	Synced func() bool
	// MaxUnsyncedAhead: an unsynchronised system clock more than this ahead
	// of the bound is not believed (0: DefaultMaxUnsyncedAhead).
	MaxUnsyncedAhead time.Duration
	// Tolerance: the system clock may be this much behind the bound and
	// still be believed (0: DefaultTolerance; negative: no tolerance).
	Tolerance time.Duration
	// PersistEvery is the period of Run (0: DefaultPersistEvery).
	PersistEvery time.Duration
	// Floor, when not zero, is a time known to be in the past at every
	// start (e.g. the build date of the firmware): the bound is at least
	// Floor + the time elapsed since Open. It only lifts the bound (so a
	// 1970 system clock is not believed on a fresh install); it is not a
	// mark, so it does not make the ahead rule apply and is not persisted
	// on its own.
	Floor time.Time
	// Ticker makes the ticker of Run: it returns the tick channel and a
	// stop function. Nil: time.NewTicker. Tests inject their own.
	Ticker func(d time.Duration) (<-chan time.Time, func())
}

// Reading is one answer of Now.
type Reading struct {
	Time     time.Time // the trusted time: max(believed system clock, bound), else the bound
	Bound    time.Time // lower bound: high-water mark + monotonic elapsed since it was set (accumulated across restarts)
	System   time.Time // what the system clock said
	Believed bool      // the system clock was believed (then Time == max(System, Bound))
	Why      string    // when not believed: why, e.g. "system clock 1970-01-01T00:00:05Z is behind the trusted lower bound 2026-…"
}

// Clock is the trusted clock. It is safe for concurrent use.
type Clock struct {
	opts Options

	mu       sync.Mutex
	mark     time.Time     // high-water mark (zero: none yet)
	markMono time.Duration // Mono() when mark was set
	hasMark  bool          // mark came from the state file, Raise or a believed system clock
	floor    time.Time     // Options.Floor, as of Open
	openMono time.Duration // Mono() at Open
	source   string        // source of the current mark
	lastErr  error         // result of the last write

	writeMu sync.Mutex // serialises writes of the state file

	tickDone func() // test hook: called after every tick of Run
}

var processStart = time.Now()

// Open loads the state file (missing: a fresh install with no mark;
// corrupt: an error wrapping ErrCorrupt and naming the file) and starts the
// bound at the persisted value.
func Open(opts Options) (*Clock, error) {
	if opts.Path == "" {
		return nil, errors.New("trustclock: Options.Path is required")
	}
	if opts.System == nil {
		opts.System = time.Now
	}
	if opts.Mono == nil {
		opts.Mono = func() time.Duration { return time.Since(processStart) }
	}
	if opts.MaxUnsyncedAhead == 0 {
		opts.MaxUnsyncedAhead = DefaultMaxUnsyncedAhead
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = DefaultTolerance
	} else if opts.Tolerance < 0 {
		opts.Tolerance = 0
	}
	if opts.PersistEvery <= 0 {
		opts.PersistEvery = DefaultPersistEvery
	}
	if opts.Ticker == nil {
		opts.Ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	c := &Clock{opts: opts, floor: opts.Floor.Round(0)}
	st, err := readState(opts.Path)
	if err != nil {
		return nil, err
	}
	mono := opts.Mono()
	c.openMono = mono
	if st != nil {
		c.mark, c.markMono, c.hasMark, c.source = st.bound, mono, true, st.source
	}
	return c, nil
}

// elapsed is Mono() − since, never negative.
func elapsed(now, since time.Duration) time.Duration {
	if now < since {
		return 0
	}
	return now - since
}

// boundLocked returns the bound at monotonic time mono. c.mu held.
func (c *Clock) boundLocked(mono time.Duration) time.Time {
	var b time.Time
	if c.hasMark {
		b = c.mark.Add(elapsed(mono, c.markMono))
	}
	if !c.floor.IsZero() {
		if f := c.floor.Add(elapsed(mono, c.openMono)); f.After(b) {
			b = f
		}
	}
	return b
}

// raiseLocked sets the mark to t at monotonic time mono if t is later than
// the bound; it reports whether it did. c.mu held.
func (c *Clock) raiseLocked(t time.Time, mono time.Duration, source string) bool {
	if t.IsZero() || (c.hasMark || !c.floor.IsZero()) && !t.After(c.boundLocked(mono)) {
		return false
	}
	c.mark, c.markMono, c.hasMark, c.source = t, mono, true, source
	return true
}

// Now reads the system clock and judges it against the bound (see the
// package documentation). A believed system clock later than the bound
// raises the mark in memory; Persist (Run) writes it.
func (c *Clock) Now() Reading {
	// Strip the monotonic reading time.Now carries: comparisons must use
	// the wall clock, or a wall-clock step would go unnoticed (time
	// package, "Monotonic Clocks").
	sys := c.opts.System().Round(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	mono := c.opts.Mono()
	bound := c.boundLocked(mono)
	r := Reading{Time: bound, Bound: bound, System: sys}
	compare := c.hasMark || !c.floor.IsZero()
	switch {
	case compare && sys.Before(bound.Add(-c.opts.Tolerance)):
		r.Why = fmt.Sprintf("system clock %s is behind the trusted lower bound %s by more than %s",
			stamp(sys), stamp(bound), c.opts.Tolerance)
	case c.hasMark && sys.After(bound.Add(c.opts.MaxUnsyncedAhead)) && !c.synced():
		r.Why = fmt.Sprintf("system clock %s is more than %s ahead of the trusted lower bound %s and not synchronised",
			stamp(sys), c.opts.MaxUnsyncedAhead, stamp(bound))
	default:
		r.Believed = true
		if sys.After(bound) {
			r.Time = sys
			c.raiseLocked(sys, mono, SourceSystem)
		}
	}
	return r
}

func (c *Clock) synced() bool { return c.opts.Synced != nil && c.opts.Synced() }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Time returns Now().Time, for func() time.Time seams.
func (c *Clock) Time() time.Time { return c.Now().Time }

// Bound returns the current lower bound without reading the system clock.
func (c *Clock) Bound() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boundLocked(c.opts.Mono())
}

// Raise lifts the high-water mark to t if t is later than the current bound
// (the thisUpdate of a verified CRL, source SourceCRLThisUpdate) and writes
// the state file (fsync) before returning. An earlier t is a no-op and
// writes nothing.
//
// If the write fails, the mark stays raised in memory (the CRL did verify:
// the time is true whether or not it reached the disk) and the error
// reports the persistence failure; Run retries at its next tick.
func (c *Clock) Raise(ctx context.Context, t time.Time, source string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(source) > maxSource {
		source = source[:maxSource]
	}
	t = t.Round(0) // wall clock only
	c.mu.Lock()
	raised := c.raiseLocked(t, c.opts.Mono(), source)
	c.mu.Unlock()
	if !raised {
		return nil
	}
	return c.Persist(ctx)
}

// Persist writes the current bound to the state file, so that the running
// time survives a reboot. It writes nothing while there is no mark (a fresh
// install whose system clock was never believed and no Raise). Called by Run.
func (c *Clock) Persist(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	// Snapshot under writeMu so that successive writes carry
	// non-decreasing bounds.
	c.mu.Lock()
	if !c.hasMark {
		c.mu.Unlock()
		return nil
	}
	st := state{bound: c.boundLocked(c.opts.Mono()), source: c.source}
	c.mu.Unlock()
	err := writeState(c.opts.Path, st)
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	return err
}

// Err returns the error of the last state-file write (nil after a
// successful one), so that status can report a clock that cannot persist.
func (c *Clock) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Run ticks every PersistEvery until ctx is done: each tick reads Now (so a
// believed system clock raises the mark) and persists the bound. Write
// errors do not stop it (see Err). It returns ctx.Err(). It does not write
// on exit: call Persist at an orderly shutdown if wanted.
func (c *Clock) Run(ctx context.Context) error {
	ticks, stop := c.opts.Ticker(c.opts.PersistEvery)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
			c.Now()
			_ = c.Persist(ctx) // recorded in c.lastErr
			if c.tickDone != nil {
				c.tickDone()
			}
		}
	}
}

// state is the content of the state file.
type state struct {
	bound  time.Time
	source string
}

// stateFile is the JSON form:
//
//	{"version":1,"bound":"2026-05-01T10:00:00.5Z","source":"crl-thisUpdate","sha256":"<hex>"}
//
// sha256 is the SHA-256 of "kazashi-trustclock\n" ‖ version ‖ "\n" ‖ bound ‖
// "\n" ‖ source ‖ "\n" (the decimal version and the two strings exactly as
// they appear in the JSON values).
type stateFile struct {
	Version int    `json:"version"`
	Bound   string `json:"bound"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
}

func (f *stateFile) sum() string {
	h := sha256.New()
	h.Write([]byte("kazashi-trustclock\n" + strconv.Itoa(f.Version) + "\n" + f.Bound + "\n" + f.Source + "\n"))
	return hex.EncodeToString(h.Sum(nil))
}

func encodeState(st state) ([]byte, error) {
	f := stateFile{Version: stateVersion, Bound: stamp(st.bound), Source: st.source}
	f.SHA256 = f.sum()
	b, err := json.Marshal(&f)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// readState returns nil, nil for a missing file.
func readState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trustclock: state file %s: %w", path, err)
	}
	corrupt := func(why string) error { return fmt.Errorf("%w: %s: %s", ErrCorrupt, path, why) }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f stateFile
	if err := dec.Decode(&f); err != nil {
		return nil, corrupt("not a valid state object (torn write?)")
	}
	if dec.More() {
		return nil, corrupt("trailing data")
	}
	if f.Version != stateVersion {
		return nil, corrupt(fmt.Sprintf("unknown version %d", f.Version))
	}
	if f.SHA256 != f.sum() {
		return nil, corrupt("checksum mismatch")
	}
	t, err := time.Parse(time.RFC3339Nano, f.Bound)
	if err != nil {
		return nil, corrupt("bad bound timestamp")
	}
	return &state{bound: t, source: f.Source}, nil
}

// writeState writes path atomically: temp file in the same directory,
// fsync, rename, fsync of the directory.
func writeState(path string, st state) error {
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("trustclock: persisting %s: %w", path, err)
	}
	return nil
}
