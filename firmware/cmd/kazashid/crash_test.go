package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/outbox"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/backend"
)

// Acceptance (issue 7): 50 trials killing the daemon with SIGKILL at
// random points during bursts of taps; every event whose tap was shown as
// done on the screen reaches the backend, and none is duplicated in the
// backend's store.
//
// The daemon is the real binary (built without the race detector, so a
// trial costs what it costs on a kiosk), a separate process so that
// SIGKILL is a real crash: no deferred function, no flush, no Close. Its
// stdout and stderr share one pipe, so the log line "tap event_id=…"
// (written before the event is recorded) and the screen line that
// follows it (written only after the outbox fsynced the event) keep their
// order: a result screen names the tap whose log line precedes it.
//
// The simulator (on its pty) and Mosquitto outlive every daemon; the
// backend is provisioning/backend's Listener and SQLite store, connected
// throughout.

const crashTrials = 50

var (
	tapLine    = regexp.MustCompile(`msg=tap .*event_id=([0-9a-f-]{36})`)
	resultLine = regexp.MustCompile(`^\[screen\] (accepted|rejected|error) \(`)
)

func TestCrashSIGKILLDuringTaps(t *testing.T) {
	bin := buildDaemon(t)
	mosq := mqtttest.StartMosquittoConf(t, func(port int, dir string) string {
		return mqtttest.AnonymousConf(port, dir) + "max_queued_messages 100000\n"
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pki, s, card, link := simWithValidCard(t, ctx, dir)
	cfgPath := writeConfig(t, dir, pki, link, mosq.URL(), filepath.Join(dir, "run", "holder.sock"), rigOptions{profile: "card-check", inputTimeout: "10s", poll: "1s"})

	store, err := backend.Open(ctx, filepath.Join(dir, "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	listening := make(chan struct{})
	l := &backend.Listener{
		MQTT:        mqtt.Options{Broker: mosq.URL(), ClientID: "it-crash-backend", MaxReconnectInterval: 500 * time.Millisecond},
		Store:       store,
		Group:       "it",
		OnListening: func() { close(listening) },
	}
	lctx, stopListener := context.WithCancel(ctx)
	ldone := make(chan error, 1)
	go func() { ldone <- l.Run(lctx) }()
	defer func() {
		stopListener()
		if err := <-ldone; err != nil {
			t.Errorf("backend listener: %v", err)
		}
	}()
	select {
	case <-listening:
	case <-time.After(15 * time.Second):
		t.Fatal("backend not subscribed within 15 s")
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (set KAZASHI_CRASH_SEED to replay)", seed)
	if v := os.Getenv("KAZASHI_CRASH_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 0))

	done := map[string]bool{}   // taps shown as done
	logged := map[string]bool{} // taps the daemon started to record
	kinds := map[string]int{}   // where the kills fell
	for trial := range crashTrials {
		// A third of the kills come at a uniformly random time after the
		// start (start-up, idle, card removal, delivery); a third while a
		// card is being read; a third just after a tap's log line, while
		// its event is written and fsynced or its screen shown.
		var k kill
		switch trial % 3 {
		case 0:
			k.after = time.Duration(rng.Int64N(int64(2500 * time.Millisecond)))
		case 1:
			k.tap, k.line, k.after = 1+rng.IntN(5), "[screen] reading", time.Duration(rng.Int64N(int64(3*time.Millisecond)))
		case 2:
			k.tap, k.line = 1+rng.IntN(5), "msg=tap "
		}
		out := runUntilKilled(t, ctx, bin, cfgPath, s, card, k)
		d, lg, where := parseTaps(out)
		for id := range d {
			done[id] = true
		}
		for id := range lg {
			logged[id] = true
		}
		kinds[where]++
		if os.Getenv("KAZASHI_CRASH_DEBUG") != "" {
			t.Logf("trial %d kill %+v: %d done, %d logged, killed %s\n%s", trial, k, len(d), len(lg), where, out)
		}
	}
	if len(done) < crashTrials {
		t.Fatalf("only %d taps shown as done in %d trials: the bursts did not exercise the daemon", len(done), crashTrials)
	}
	if kinds[whereReading]+kinds[whereRecording] < crashTrials/4 {
		t.Fatalf("kills fell %v: too few during a tap", kinds)
	}
	t.Logf("%d trials: %d taps shown as done, %d started; kills fell %v", crashTrials, len(done), len(logged), kinds)

	// A last daemon, not killed, delivers what the others left in the
	// outbox.
	final := startDaemon(t, ctx, bin, cfgPath)
	// Up (its signal handler installed) before it may be stopped.
	final.waitLine(t, "[screen] ready")
	deadline := time.Now().Add(60 * time.Second)
	for {
		have := storedIDs(t, store)
		missing := 0
		for id := range done {
			if !have[id] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			final.stop(t)
			var ids []string
			for id := range done {
				if !have[id] {
					ids = append(ids, id)
				}
			}
			diag := ""
			if ob, err := outbox.Open(filepath.Join(dir, "state", "outbox.db"), outbox.Options{}); err != nil {
				diag = fmt.Sprintf("outbox: %v", err)
			} else {
				st, _ := ob.Stats()
				q, _ := ob.Quarantined()
				diag = fmt.Sprintf("outbox %+v, quarantined %d", st, len(q))
				for _, m := range q {
					diag += fmt.Sprintf("\n  %s: %s", m.ID, m.Reason)
				}
				ob.Close()
			}
			t.Fatalf("%d of %d taps shown as done never reached the backend: %v\n%s\nbackend %+v\nfinal daemon:\n%s",
				missing, len(done), ids, diag, l.Stats(), final.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	final.stop(t)
	rows, err := store.Query(ctx, backend.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.EventID]++
		if !logged[r.EventID] {
			t.Errorf("backend holds event %s that no daemon logged as a tap", r.EventID)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	// Events recorded but killed before their screen may arrive too; the
	// ones whose recording was cut short must not be half-stored.
	st := l.Stats()
	if len(st.Rejected) != 0 || st.StorageErrors != 0 {
		t.Errorf("backend stats %+v: rejected or failed events", st)
	}
	t.Logf("backend: %d events stored (%d shown as done), %d re-deliveries discarded", len(rows), len(done), st.Duplicates)
}

func storedIDs(t *testing.T, s *backend.Store) map[string]bool {
	t.Helper()
	rows, err := s.Query(context.Background(), backend.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool, len(rows))
	for _, r := range rows {
		ids[r.EventID] = true
	}
	return ids
}

// Where a kill fell, as parseTaps reads it from the output.
const (
	whereReading   = "while a card was read"                        // after "reading", before the tap's log line
	whereRecording = "while an event was recorded"                  // after the tap's log line, before its screen
	whereElsewhere = "elsewhere (start-up, idle, removal, sending)" // no tap under way
)

// parseTaps reads one daemon's merged output: the taps shown as done, the
// taps it logged, and where the kill fell.
func parseTaps(out string) (done, logged map[string]bool, where string) {
	done, logged = map[string]bool{}, map[string]bool{}
	current := ""
	reading := false
	for _, line := range strings.Split(out, "\n") {
		switch m := tapLine.FindStringSubmatch(line); {
		case strings.HasPrefix(line, "[screen] reading"):
			reading = true
		case m != nil:
			current, reading = m[1], false
			logged[current] = true
		case resultLine.MatchString(line):
			if current != "" {
				done[current] = true
			}
			current = ""
		case strings.HasPrefix(line, "[screen] not-saved"):
			current = ""
		}
	}
	switch {
	case current != "":
		return done, logged, whereRecording
	case reading:
		return done, logged, whereReading
	}
	return done, logged, whereElsewhere
}

// daemon is one child process.
type daemon struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	read  chan struct{} // closed when the pipe is drained
	lines chan string   // every line, as it arrives (dropped if nobody reads)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

func startDaemon(t *testing.T, ctx context.Context, bin, cfgPath string) *daemon {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = pw, pw // one pipe: the order of lines is kept
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	d := &daemon{cmd: cmd, read: make(chan struct{}), lines: make(chan string, 4096)}
	go func() {
		defer close(d.read)
		br := bufio.NewReader(pr)
		for {
			line, err := br.ReadString('\n')
			d.mu.Lock()
			d.out.WriteString(line)
			d.mu.Unlock()
			select {
			case d.lines <- line:
			default:
			}
			if err != nil {
				if err != io.EOF {
					d.mu.Lock()
					fmt.Fprintf(&d.out, "(pipe: %v)\n", err)
					d.mu.Unlock()
				}
				pr.Close()
				return
			}
		}
	}()
	return d
}

// waitLine waits for a line starting with prefix.
func (d *daemon) waitLine(t *testing.T, prefix string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case line := <-d.lines:
			if strings.HasPrefix(line, prefix) {
				return
			}
		case <-timeout:
			t.Fatalf("daemon did not print %q within 15 s:\n%s", prefix, d.output())
		}
	}
}

// kill sends SIGKILL and waits for the process and its output.
func (d *daemon) kill(t *testing.T) string {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
	<-d.read
	return d.output()
}

// stop ends the daemon the way systemd does (SIGTERM) and checks it exits
// cleanly.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	err := d.cmd.Wait()
	<-d.read
	if err != nil {
		t.Errorf("daemon after SIGTERM: %v\n%s", err, d.output())
	}
}

// kill says when a trial's daemon is killed: after the given time since
// its start (tap 0), or that long after the tap-th line starting with (or,
// for the log line, containing) line.
type kill struct {
	tap   int
	line  string
	after time.Duration
}

// runUntilKilled starts a daemon, taps the card again and again (placed
// when the screen says ready, removed when it shows the result) and kills
// the daemon with SIGKILL as k says. It returns the daemon's output.
func runUntilKilled(t *testing.T, ctx context.Context, bin, cfgPath string, s *sim.Sim, card sim.Target, k kill) string {
	t.Helper()
	d := startDaemon(t, ctx, bin, cfgPath)
	var fire <-chan time.Time
	if k.tap == 0 {
		fire = time.After(k.after)
	}
	// A targeted kill that never comes (the daemon stopped tapping) is
	// bounded too.
	bound := time.After(10 * time.Second)
	seen := 0
	for {
		select {
		case <-fire:
			out := d.kill(t)
			s.Remove()
			return out
		case <-bound:
			out := d.kill(t)
			s.Remove()
			t.Fatalf("kill %+v did not come within 10 s; output:\n%s", k, out)
		case line := <-d.lines:
			switch {
			case strings.HasPrefix(line, "[screen] ready"):
				s.Field().Place(card, 0)
			case resultLine.MatchString(line) || strings.HasPrefix(line, "[screen] not-saved"):
				s.Remove()
			}
			if k.tap > 0 && fire == nil && strings.Contains(line, k.line) {
				if seen++; seen == k.tap {
					if k.after == 0 {
						out := d.kill(t)
						s.Remove()
						return out
					}
					fire = time.After(k.after)
				}
			}
		}
	}
}

// buildDaemon builds this package's daemon (without -race) once per test
// binary.
func buildDaemon(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kazashid-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "kazashid")
		cmd := exec.Command("go", "build", "-o", buildBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)
