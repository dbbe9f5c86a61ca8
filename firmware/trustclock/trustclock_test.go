package trustclock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is an injected system clock, monotonic clock and sync flag.
type fake struct {
	mu     sync.Mutex
	sys    time.Time
	mono   time.Duration
	synced bool
}

func (f *fake) System() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sys
}

func (f *fake) Mono() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mono
}

func (f *fake) Synced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

// run advances both clocks by d (a board whose clock runs normally).
func (f *fake) run(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sys = f.sys.Add(d)
	f.mono += d
}

func (f *fake) setSys(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sys = t
}

func (f *fake) opts(path string) Options {
	return Options{Path: path, System: f.System, Mono: f.Mono, Synced: f.Synced}
}

var (
	t2026   = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	t1970   = time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)
	bgCtx   = context.Background()
	tickNow = time.Time{}
)

func statePath(t *testing.T) string { return filepath.Join(t.TempDir(), "trustclock.json") }

func mustOpen(t *testing.T, o Options) *Clock {
	t.Helper()
	c, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

// runner drives Run with an injected ticker and waits for every tick.
type runner struct {
	ticks  chan time.Time
	done   chan struct{}
	cancel context.CancelFunc
	exited chan error
}

func startRun(t *testing.T, o Options) (*Clock, *runner) {
	t.Helper()
	r := &runner{ticks: make(chan time.Time), done: make(chan struct{}), exited: make(chan error, 1)}
	var period time.Duration
	o.Ticker = func(d time.Duration) (<-chan time.Time, func()) { period = d; return r.ticks, func() {} }
	c := mustOpen(t, o)
	c.tickDone = func() { r.done <- struct{}{} }
	ctx, cancel := context.WithCancel(bgCtx)
	r.cancel = cancel
	go func() { r.exited <- c.Run(ctx) }()
	r.tick()
	if period != DefaultPersistEvery {
		t.Fatalf("ticker period %v, want %v", period, DefaultPersistEvery)
	}
	return c, r
}

func (r *runner) tick() {
	r.ticks <- tickNow
	<-r.done
}

// powerOff stops Run without any final write (a power cut).
func (r *runner) powerOff(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.exited; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
}

func persisted(t *testing.T, path string) time.Time {
	t.Helper()
	st, err := readState(path)
	if err != nil || st == nil {
		t.Fatalf("readState: %v, %v", st, err)
	}
	return st.bound
}

func TestFreshInstallBelievesSystemClock(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	c := mustOpen(t, f.opts(path))
	r := c.Now()
	if !r.Believed || !r.Time.Equal(t2026) || !r.System.Equal(t2026) || r.Why != "" {
		t.Fatalf("fresh install: %+v, want believed 2026", r)
	}
	// Not written on Now.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file written by Now: %v", err)
	}
	f.run(30 * time.Second)
	if err := c.Persist(bgCtx); err != nil {
		t.Fatal(err)
	}
	if got, want := persisted(t, path), t2026.Add(30*time.Second); !got.Equal(want) {
		t.Fatalf("persisted %v, want %v", got, want)
	}
	st, _ := readState(path)
	if st.source != SourceSystem {
		t.Fatalf("source %q, want %q", st.source, SourceSystem)
	}
}

func TestPersistWithoutMarkWritesNothing(t *testing.T) {
	path := statePath(t)
	c := mustOpen(t, (&fake{}).opts(path))
	if err := c.Persist(bgCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file written without a mark: %v", err)
	}
}

func TestReboot1970(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	c := mustOpen(t, f.opts(path))
	thisUpdate := t2026.Add(-time.Hour)
	if err := c.Raise(bgCtx, thisUpdate, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	// Reboot: no RTC, the clock reads 1970, Mono restarts at 0.
	f = &fake{sys: t1970}
	c = mustOpen(t, f.opts(path))
	f.run(10 * time.Minute)
	r := c.Now()
	want := thisUpdate.Add(10 * time.Minute)
	if r.Believed || !r.Time.Equal(want) || !r.Bound.Equal(want) || !r.System.Equal(t1970.Add(10*time.Minute)) {
		t.Fatalf("1970 after reboot: %+v, want Time=Bound=%v not believed", r, want)
	}
	if !strings.Contains(r.Why, stamp(want)) || !strings.Contains(r.Why, "1970-01-01T00:10:05Z") || !strings.Contains(r.Why, "behind") {
		t.Fatalf("Why %q does not name the clock, the bound and the direction", r.Why)
	}
	if got := c.Time(); !got.Equal(want) {
		t.Fatalf("Time() = %v, want %v", got, want)
	}
}

func TestClockJumpsBackwards(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	c := mustOpen(t, f.opts(path))
	if r := c.Now(); !r.Believed {
		t.Fatalf("%+v", r)
	}
	f.run(5 * time.Minute)
	before := c.Time()
	// Within tolerance: still believed, Time does not go back.
	f.setSys(f.System().Add(-time.Minute))
	r := c.Now()
	if !r.Believed || !r.Time.Equal(before) {
		t.Fatalf("1m back (within tolerance): %+v, want believed, Time %v", r, before)
	}
	// An hour back: not believed, Time keeps advancing with Mono.
	f.setSys(f.System().Add(-time.Hour))
	last := r.Time
	for i := 0; i < 5; i++ {
		f.run(time.Minute)
		r = c.Now()
		want := before.Add(time.Duration(i+1) * time.Minute)
		if r.Believed || !r.Time.Equal(want) || !r.Time.After(last) {
			t.Fatalf("step %d after jump back: %+v, want not believed, Time %v", i, r, want)
		}
		if !strings.Contains(r.Why, "behind the trusted lower bound "+stamp(want)) {
			t.Fatalf("Why %q", r.Why)
		}
		last = r.Time
	}
	// Back to within tolerance of the bound: believed again.
	f.setSys(last.Add(-time.Minute))
	if r := c.Now(); !r.Believed || !r.Time.Equal(last) {
		t.Fatalf("clock restored: %+v", r)
	}
}

func TestThreeRebootsAccumulate(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	c0 := mustOpen(t, f.opts(path))
	if err := c0.Raise(bgCtx, t2026, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	want := t2026
	prev := t2026
	for boot := 1; boot <= 3; boot++ {
		f := &fake{sys: t1970} // no RTC
		c, r := startRun(t, f.opts(path))
		// The first tick (at Mono 0) persisted the bound as read at Open.
		if got := persisted(t, path); !got.Equal(want) {
			t.Fatalf("boot %d: first tick persisted %v, want %v", boot, got, want)
		}
		run := time.Duration(boot) * 7 * time.Minute
		for d := time.Duration(0); d < run; d += time.Minute {
			f.run(time.Minute)
			r.tick()
			got := persisted(t, path)
			if got.Before(prev) {
				t.Fatalf("boot %d: persisted bound went back from %v to %v", boot, prev, got)
			}
			prev = got
		}
		want = want.Add(run)
		if got := persisted(t, path); !got.Equal(want) {
			t.Fatalf("boot %d: persisted %v, want %v", boot, got, want)
		}
		if rd := c.Now(); rd.Believed || !rd.Time.Equal(want) {
			t.Fatalf("boot %d: %+v", boot, rd)
		}
		// 40 s after the last tick, the power goes: those 40 s are lost.
		f.run(40 * time.Second)
		r.powerOff(t)
	}
	if want != t2026.Add(42*time.Minute) {
		t.Fatalf("test arithmetic: %v", want)
	}
	c := mustOpen(t, (&fake{sys: t1970}).opts(path))
	if got := c.Bound(); !got.Equal(want) {
		t.Fatalf("after 3 boots: bound %v, want %v", got, want)
	}
}

func TestRaise(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t1970}
	c := mustOpen(t, f.opts(path))
	if err := c.Raise(bgCtx, t2026, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	content1, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.run(time.Minute)
	// Earlier (and equal to the bound): no-op, nothing written.
	for _, early := range []time.Time{t2026.Add(-time.Hour), t2026.Add(time.Minute), {}} {
		if err := c.Raise(bgCtx, early, "crl-thisUpdate"); err != nil {
			t.Fatal(err)
		}
	}
	if content, _ := os.ReadFile(path); string(content) != string(content1) {
		t.Fatalf("no-op Raise rewrote the file:\n%s\n%s", content1, content)
	}
	if got := c.Bound(); !got.Equal(t2026.Add(time.Minute)) {
		t.Fatalf("bound after no-op raises %v", got)
	}
	// Later: persisted before Raise returns.
	later := t2026.Add(3 * time.Hour).Add(123456789 * time.Nanosecond)
	if err := c.Raise(bgCtx, later, "crl-thisUpdate"); err != nil {
		t.Fatal(err)
	}
	c2 := mustOpen(t, (&fake{sys: t1970, mono: 5 * time.Hour}).opts(path))
	if got := c2.Bound(); !got.Equal(later) {
		t.Fatalf("re-Open bound %v, want %v (nanoseconds kept)", got, later)
	}
	if c2.source != SourceCRLThisUpdate {
		t.Fatalf("source %q", c2.source)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left behind: %v", err)
	}
	// A cancelled context: nothing happens.
	ctx, cancel := context.WithCancel(bgCtx)
	cancel()
	if err := c.Raise(ctx, later.Add(time.Hour), "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Raise with cancelled ctx: %v", err)
	}
}

func TestAheadRule(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	c := mustOpen(t, f.opts(path))
	if err := c.Raise(bgCtx, t2026, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	far := t2026.Add(30 * 24 * time.Hour)
	f.setSys(far)
	r := c.Now()
	if r.Believed || !r.Time.Equal(t2026) {
		t.Fatalf("unsynced +30d: %+v, want not believed, Time = bound", r)
	}
	if !strings.Contains(r.Why, "ahead of the trusted lower bound "+stamp(t2026)) || !strings.Contains(r.Why, "not synchronised") {
		t.Fatalf("Why %q", r.Why)
	}
	// Within MaxUnsyncedAhead: believed without sync.
	near := t2026.Add(6 * 24 * time.Hour)
	f.setSys(near)
	if r := c.Now(); !r.Believed || !r.Time.Equal(near) {
		t.Fatalf("unsynced +6d: %+v", r)
	}
	// Synced far ahead: believed, and it raises the mark.
	f.mu.Lock()
	f.synced = true
	f.sys = near.Add(30 * 24 * time.Hour)
	f.mu.Unlock()
	if r := c.Now(); !r.Believed || !r.Time.Equal(near.Add(30*24*time.Hour)) {
		t.Fatalf("synced +30d: %+v", r)
	}
	if got := c.Bound(); !got.Equal(near.Add(30 * 24 * time.Hour)) {
		t.Fatalf("bound not raised by the believed clock: %v", got)
	}
}

func TestCustomLimits(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	o := f.opts(path)
	o.Tolerance = -1 // none
	o.MaxUnsyncedAhead = time.Hour
	c := mustOpen(t, o)
	if err := c.Raise(bgCtx, t2026, "crl-thisUpdate"); err != nil {
		t.Fatal(err)
	}
	f.setSys(t2026.Add(-time.Second))
	if r := c.Now(); r.Believed {
		t.Fatalf("1s behind with no tolerance believed: %+v", r)
	}
	f.setSys(t2026.Add(2 * time.Hour))
	if r := c.Now(); r.Believed {
		t.Fatalf("2h ahead with a 1h limit believed: %+v", r)
	}
}

func TestFloor(t *testing.T) {
	path := statePath(t)
	floor := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &fake{sys: t1970}
	o := f.opts(path)
	o.Floor = floor
	c := mustOpen(t, o)
	f.run(time.Minute)
	r := c.Now()
	if r.Believed || !r.Time.Equal(floor.Add(time.Minute)) {
		t.Fatalf("1970 on a fresh install with a floor: %+v", r)
	}
	if err := c.Persist(bgCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the floor alone was persisted")
	}
	// The floor is not a mark: an unsynced 2026 clock, far ahead of it, is believed.
	f.setSys(t2026)
	if r := c.Now(); !r.Believed || !r.Time.Equal(t2026) {
		t.Fatalf("2026 with a 2025 floor: %+v", r)
	}
}

func TestCorruptStateFile(t *testing.T) {
	good, err := encodeState(state{bound: t2026, source: SourceCRLThisUpdate})
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(good), "2026-05-01", "2027-05-01", 1)
	cases := map[string]string{
		"empty":         "",
		"truncated":     string(good[:len(good)/2]),
		"one byte less": string(good[:len(good)-3]) + "\n",
		"tampered":      tampered,
		"garbage":       "\x00\x01\x02",
		"version":       strings.Replace(string(good), `"version":1`, `"version":2`, 1),
		"unknown field": strings.Replace(string(good), `{`, `{"x":1,`, 1),
		"trailing":      string(good) + "{}",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := statePath(t)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Open((&fake{sys: t1970}).opts(path))
			if err == nil {
				t.Fatalf("Open succeeded (bound %v)", c.Bound())
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q: want ErrCorrupt naming %s", err, path)
			}
		})
	}
	// The good one opens.
	path := statePath(t)
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := mustOpen(t, (&fake{sys: t1970}).opts(path)); !c.Bound().Equal(t2026) {
		t.Fatalf("bound %v", c.Bound())
	}
}

// TestFailedWrite makes the write fail (a read-only directory when not
// root; for root, which ignores permissions, a non-empty directory where the
// state file should be, so that the rename fails).
func TestFailedWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f := &fake{sys: t1970}
	c := mustOpen(t, f.opts(path))
	var restore func()
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		restore = func() { os.Chmod(dir, 0o755) }
	} else {
		if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		restore = func() { os.RemoveAll(path) }
	}
	t.Cleanup(restore)
	err := c.Raise(bgCtx, t2026, SourceCRLThisUpdate)
	if err == nil || !strings.Contains(err.Error(), "persisting "+path) {
		t.Fatalf("Raise with an unwritable state file: %v", err)
	}
	if c.Err() == nil {
		t.Fatal("Err() nil after a failed write")
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left behind: %v", err)
	}
	// Decision: the verified time is kept in memory regardless.
	if got := c.Bound(); !got.Equal(t2026) {
		t.Fatalf("in-memory bound %v, want %v", got, t2026)
	}
	// Writable again: the next Persist succeeds and clears Err.
	restore()
	f.run(time.Minute)
	if err := c.Persist(bgCtx); err != nil || c.Err() != nil {
		t.Fatalf("Persist after recovery: %v, %v", err, c.Err())
	}
	if got := persisted(t, path); !got.Equal(t2026.Add(time.Minute)) {
		t.Fatalf("persisted %v", got)
	}
}

func TestOpenNeedsPath(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open without a path succeeded")
	}
}

// TestScenarioCRLStale is the clock half of acceptance point 4 of issue 6:
// a CRL valid until T was imported (its thisUpdate raised the mark), then
// the board reboots with its clock at 1970 and keeps running; the trusted
// time passes T after exactly T − thisUpdate of running time, and a clock
// set back by an hour does not hold it back either.
func TestScenarioCRLStale(t *testing.T) {
	thisUpdate := t2026.Add(-time.Hour)
	nextUpdate := thisUpdate.Add(48 * time.Hour) // T
	path := statePath(t)

	f := &fake{sys: t2026}
	c := mustOpen(t, f.opts(path))
	if err := c.Raise(bgCtx, thisUpdate, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	// Reboot at 1970; run with persistence ticks.
	f = &fake{sys: t1970}
	c, r := startRun(t, f.opts(path))
	defer r.powerOff(t)
	need := nextUpdate.Sub(thisUpdate) // T − bound
	for ran := time.Duration(0); ran < need-time.Hour; ran += time.Hour {
		f.run(time.Hour)
		r.tick()
		if got := c.Time(); got.After(nextUpdate) {
			t.Fatalf("after %v: %v already past nextUpdate %v", ran+time.Hour, got, nextUpdate)
		}
	}
	f.run(time.Hour - time.Second)
	if got := c.Time(); got.After(nextUpdate) {
		t.Fatalf("1 s before: %v past %v", got, nextUpdate)
	}
	f.run(2 * time.Second)
	rd := c.Now()
	if !rd.Time.After(nextUpdate) || rd.Believed {
		t.Fatalf("past T: %+v, want Time after %v, not believed", rd, nextUpdate)
	}

	// The other board: its clock is right, then jumps back by an hour
	// shortly before T. Staleness is still noticed at T.
	path2 := statePath(t)
	g := &fake{sys: thisUpdate.Add(time.Minute)}
	c2 := mustOpen(t, g.opts(path2))
	if err := c2.Raise(bgCtx, thisUpdate, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	g.run(need - 2*time.Minute) // sys = T − 1m
	if rd := c2.Now(); !rd.Believed || rd.Time.After(nextUpdate) {
		t.Fatalf("%+v", rd)
	}
	g.setSys(g.System().Add(-time.Hour))
	g.run(2 * time.Minute) // sys = T − 59m, true time T + 1m
	rd = c2.Now()
	if rd.Believed || !rd.Time.After(nextUpdate) {
		t.Fatalf("clock set back: %+v, want not believed, Time after %v", rd, nextUpdate)
	}
}

func TestConcurrent(t *testing.T) {
	path := statePath(t)
	f := &fake{sys: t2026}
	c := mustOpen(t, f.opts(path))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			last := time.Time{}
			for i := 0; i < 200; i++ {
				f.run(time.Millisecond)
				tm := c.Time()
				if tm.Before(last) {
					t.Errorf("Time went back: %v < %v", tm, last)
					return
				}
				last = tm
				if i%50 == 0 {
					if err := c.Raise(bgCtx, tm.Add(time.Second), "crl-thisUpdate"); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if got, b := persisted(t, path), c.Bound(); got.After(b) {
		t.Fatalf("persisted %v after the bound %v", got, b)
	}
}

func TestSyncedFromAdjtimex(t *testing.T) {
	// The answer depends on the host; it must not panic or need privileges.
	_ = SyncedFromAdjtimex()()
}

// TestWallClockComparison: a System func returning time.Now values (with a
// monotonic reading) is judged by the wall clock.
func TestWallClockComparison(t *testing.T) {
	path := statePath(t)
	mono := time.Duration(0)
	start := time.Now() // carries a monotonic reading
	sys := start
	c := mustOpen(t, Options{Path: path, System: func() time.Time { return sys }, Mono: func() time.Duration { return mono }})
	if err := c.Raise(bgCtx, start, SourceCRLThisUpdate); err != nil {
		t.Fatal(err)
	}
	// A wall-clock step back by an hour: time.Now's monotonic reading
	// would not move back, so emulate a value with wall time only.
	sys = start.Add(-time.Hour).Round(0)
	if r := c.Now(); r.Believed {
		t.Fatalf("an hour back believed: %+v", r)
	}
	sys = start.Add(time.Second)
	mono = time.Second
	if r := c.Now(); !r.Believed || r.Time.Sub(start) != time.Second {
		t.Fatalf("%+v", r)
	}
}
