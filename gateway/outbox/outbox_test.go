package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/backoff"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

func open(t *testing.T, path string, o Options) *Outbox {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	ob, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

func TestOrderAckDuplicateAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob := open(t, path, Options{})
	ctx := context.Background()
	for i := range 5 {
		seq, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), "kazashi/k/events", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("enqueue %d: seq %d, %v", i, seq, err)
		}
	}
	if seq, err := ob.Enqueue(ctx, "ev-2", "kazashi/k/events", []byte("other")); err != nil || seq != 3 {
		t.Fatalf("the same event id again: seq %d, %v; want the stored 3", seq, err)
	}
	ms, err := ob.Peek(10)
	if err != nil || len(ms) != 5 {
		t.Fatalf("peek: %d messages, %v", len(ms), err)
	}
	for i, m := range ms {
		if m.Seq != uint64(i+1) || m.ID != fmt.Sprintf("ev-%d", i) || string(m.Payload) != fmt.Sprintf(`{"n":%d}`, i) || !m.Enqueued.Equal(t0) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	if err := ob.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := ob.Ack(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second ack: %v, want ErrNotFound", err)
	}
	if n, err := ob.Failed(2, "connection refused"); err != nil || n != 1 {
		t.Fatalf("failed: %d, %v", n, err)
	}
	if n, _ := ob.Failed(2, "timeout"); n != 2 {
		t.Fatalf("second failure counted %d", n)
	}
	ob.Close()

	// Reopen: the queue, the attempts and the sequence survive.
	ob = open(t, path, Options{})
	ms, _ = ob.Peek(10)
	if len(ms) != 4 || ms[0].Seq != 2 || ms[0].Attempts != 2 || ms[0].LastErr != "timeout" {
		t.Fatalf("after reopen: %+v", ms)
	}
	if seq, _ := ob.Enqueue(ctx, "ev-new", "kazashi/k/events", []byte("x")); seq != 6 {
		t.Fatalf("sequence after reopen %d, want 6", seq)
	}
	// An acknowledged id may come again (a new message).
	if seq, _ := ob.Enqueue(ctx, "ev-0", "kazashi/k/events", []byte("again")); seq != 7 {
		t.Fatalf("acked id enqueued again: seq %d, want 7", seq)
	}
}

func TestQuarantineLetsTheRestFlow(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	ctx := context.Background()
	for i := range 3 {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), "t", []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Quarantine(1, "broker refused: not authorised"); err != nil {
		t.Fatal(err)
	}
	ms, _ := ob.Peek(1)
	if len(ms) != 1 || ms[0].ID != "ev-1" {
		t.Fatalf("head after quarantine: %+v, want ev-1", ms)
	}
	q, err := ob.Quarantined()
	if err != nil || len(q) != 1 || q[0].ID != "ev-0" || q[0].Reason != "broker refused: not authorised" {
		t.Fatalf("quarantine: %+v, %v", q, err)
	}
	st, _ := ob.Stats()
	if st.Depth != 2 || st.Bytes != 2 || st.Quarantined != 1 || !st.Oldest.Equal(t0) || st.Full {
		t.Fatalf("stats %+v", st)
	}
	// Empty payloads count as messages too.
	if _, err := ob.Enqueue(ctx, "empty", "t", nil); err != nil {
		t.Fatal(err)
	}
	ms, _ = ob.Peek(10)
	for _, m := range ms {
		if err := ob.Ack(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := ob.Stats(); st.Depth != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("after acking everything: %+v", st)
	}
}

func TestFullRefusesNewKeepsOld(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{MaxMessages: 3, MaxBytes: 1 << 20})
	ctx := context.Background()
	for i := range 3 {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), "t", []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.Enqueue(ctx, "ev-3", "t", []byte("p")); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth message: %v, want ErrFull", err)
	}
	if st, _ := ob.Stats(); !st.Full || st.Depth != 3 {
		t.Fatalf("stats %+v, want full with the 3 kept", st)
	}
	ob.Ack(1)
	if _, err := ob.Enqueue(ctx, "ev-3", "t", []byte("p")); err != nil {
		t.Fatalf("after an ack: %v", err)
	}
	byBytes := open(t, filepath.Join(t.TempDir(), "b.db"), Options{MaxBytes: 100})
	if _, err := byBytes.Enqueue(ctx, "big", "t", make([]byte, 200)); !errors.Is(err, ErrFull) {
		t.Fatalf("over the byte bound: %v, want ErrFull", err)
	}
}

// TestSIGKILL: a child enqueues as fast as it can and prints each sequence
// number once Enqueue returned; it is killed at a random moment. Every
// printed message is in the reopened outbox, and the file opens cleanly.
func TestSIGKILL(t *testing.T) {
	if os.Getenv("OUTBOX_CHILD") != "" {
		child()
		return
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 12 {
		path := filepath.Join(t.TempDir(), "o.db")
		cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILL$")
		cmd.Env = append(os.Environ(), "OUTBOX_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var done []uint64
		sc := bufio.NewScanner(out)
		kill := time.After(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		lines := make(chan string)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
	loop:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break loop
				}
				if n, err := strconv.ParseUint(strings.TrimPrefix(l, "done "), 10, 64); err == nil {
					done = append(done, n)
				}
			case <-kill:
				cmd.Process.Signal(syscall.SIGKILL)
				kill = nil
			}
		}
		cmd.Wait()
		ob, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("trial %d: reopen after SIGKILL: %v", trial, err)
		}
		ms, err := ob.Peek(1 << 20)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		have := map[uint64]bool{}
		for _, m := range ms {
			have[m.Seq] = true
		}
		for _, n := range done {
			if !have[n] {
				t.Fatalf("trial %d: message %d was reported stored but is gone after SIGKILL", trial, n)
			}
		}
		if len(done) == 0 {
			t.Logf("trial %d: killed before the first enqueue", trial)
		}
		ob.Close()
	}
}

func child() {
	ob, err := Open(os.Getenv("OUTBOX_CHILD"), Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		seq, err := ob.Enqueue(context.Background(), fmt.Sprintf("ev-%d", i), "t", []byte(`{"event":"x"}`))
		if err != nil {
			fmt.Println("enqueue:", err)
			os.Exit(1)
		}
		fmt.Printf("done %d\n", seq)
	}
}

// fakeBroker records what it acknowledged; fail decides per attempt.
type fakeBroker struct {
	mu    sync.Mutex
	got   []string
	calls int
	fail  func(call int, payload string) error
	block chan struct{} // when set, Publish waits for it or ctx
}

func (f *fakeBroker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	fail, block := f.fail, f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(call, string(payload)); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.got = append(f.got, string(payload))
	f.mu.Unlock()
	return nil
}

func (f *fakeBroker) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

var errTooLarge = errors.New("payload over the broker's limit")

func TestDelivererOrderRetryQuarantine(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fb := &fakeBroker{fail: func(call int, p string) error {
		switch {
		case p == "poison":
			return errTooLarge
		case call <= 2:
			return errors.New("connection lost")
		}
		return nil
	}}
	d := &Deliverer{Outbox: ob, Retry: backoffFast, Refused: func(err error) bool { return errors.Is(err, errTooLarge) }}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for i, p := range []string{"a", "b", "poison", "c", "d"} {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), "t", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	d.Notify()
	time.Sleep(50 * time.Millisecond)
	if got := fb.received(); len(got) != 0 {
		t.Fatalf("delivered %v before a client was attached", got)
	}
	d.Attach(fb)
	deadline := time.Now().Add(5 * time.Second)
	for len(fb.received()) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v, want a b c d", fb.received())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Join(fb.received(), " "); got != "a b c d" {
		t.Fatalf("delivered %q, want in order \"a b c d\" without the poison", got)
	}
	q, _ := ob.Quarantined()
	if len(q) != 1 || string(q[0].Payload) != "poison" || !strings.Contains(q[0].Reason, "over the broker's limit") {
		t.Fatalf("quarantine %+v", q)
	}
	for st, _ := ob.Stats(); st.Depth != 0; st, _ = ob.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("depth %d after delivery", st.Depth)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
}

var backoffFast = backoff.Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond}

// TestDelivererStopsAtOnce: a broker that never acknowledges does not hold
// up a shutdown, and the message stays queued for the next run.
func TestDelivererStopsAtOnce(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	fb := &fakeBroker{block: make(chan struct{})}
	d := &Deliverer{Outbox: ob, Timeout: time.Hour}
	d.Attach(fb)
	ctx, cancel := context.WithCancel(context.Background())
	ob.Enqueue(ctx, "ev", "t", []byte("x"))
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1 s of the cancel")
	}
	if st, _ := ob.Stats(); st.Depth != 1 {
		t.Fatalf("unacknowledged message not kept: depth %d", st.Depth)
	}
}
