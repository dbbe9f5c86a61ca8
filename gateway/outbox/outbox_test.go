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
	"syscall"
	"testing"
	"time"
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
