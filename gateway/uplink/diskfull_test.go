package uplink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/outbox"
)

// mountTmpfs mounts a tmpfs of the given size ("2m") on a fresh directory
// and unmounts it when the test ends (after the cleanups registered later).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v: this test needs root (CAP_SYS_ADMIN) to simulate a full disk", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v (detaching it)", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// gate holds a Deliverer (through its Allowed hook, which Run calls
// before sending each message) while closed.
type gate struct {
	mu sync.Mutex
	ch chan struct{}
}

func newGate() *gate {
	g := &gate{ch: make(chan struct{})}
	close(g.ch)
	return g
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
		g.ch = make(chan struct{})
	default:
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
}

func (g *gate) allowed(next func(string) bool) func(string) bool {
	return func(topic string) bool {
		g.mu.Lock()
		ch := g.ch
		g.mu.Unlock()
		<-ch
		return next(topic)
	}
}

type recorded struct {
	id      string
	payload []byte
}

// diskEvent is a ~500-byte event payload carrying its id.
func diskEvent(id string) []byte {
	p := fmt.Appendf(nil, `{"event_id":%q,"pad":"`, id)
	for len(p) < 498 {
		p = append(p, id...)
	}
	return append(p[:498], `"}`...)
}

func waitDepth(t *testing.T, ob *outbox.Outbox, want int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		st, err := ob.Stats()
		if err == nil && st.Depth == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox depth %d (%v), want %d", st.Depth, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func storageAlarm(h Health) *Alarm {
	for i := range h.Alarms {
		if h.Alarms[i].Code == AlarmStorage {
			return &h.Alarms[i]
		}
	}
	return nil
}

// TestDiskFull: the outbox on a 2 MiB tmpfs that a filler file fills up
// while events are recorded, the broker reachable throughout. Once space
// is gone Record fails with ErrStorage (the text saying the disk is full),
// the retained health document carries storage-failed with that text and
// the count of refusals, nothing crashes, and the queue holds exactly the
// events Record accepted. With the filler deleted Record succeeds again,
// the alarm clears on the health topic, and every accepted event (and
// none of the refused ones) reaches a subscriber as recorded, in order.
// The outbox file then passes bbolt's consistency check and reopens
// empty and writable.
//
// Delivery is held (the Deliverer's Allowed hook waits) while the disk
// fills: with the broker draining the queue as fast as it fills, bbolt
// would keep reusing the pages it already has and never need a new one.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	m := mqtttest.StartMosquitto(t)
	sub := subscribeRaw(t, m.Addr(), tree.Root()+"/#")
	path := filepath.Join(dir, "outbox.db")
	ob, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	g := newGate()
	u := start(t, Config{Tree: tree, MQTT: mqttOpts(t, m.URL()), Outbox: ob, TelemetryInterval: -1,
		Deliverer: &outbox.Deliverer{Allowed: g.allowed(tree.Owns)}})
	t.Cleanup(g.release) // before u.Close
	sub.waitHealth(t, "the first health document", func(h Health) bool { return h.OK && len(h.Alarms) == 0 })
	ctx := context.Background()
	var accepted []recorded
	n := 0
	record := func() (recorded, error) {
		e := recorded{fmt.Sprintf("ev-%04d", n), nil}
		e.payload = diskEvent(e.id)
		n++
		err := u.Record(ctx, e.id, e.payload)
		if err == nil {
			accepted = append(accepted, e)
		}
		return e, err
	}

	// Flowing normally.
	for range 10 {
		if _, err := record(); err != nil {
			t.Fatal(err)
		}
	}
	waitDepth(t, ob, 0)

	// Fill the disk while events keep coming, delivery held.
	g.hold()
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0xaa}, 64<<10)
	var (
		full     bool // the filler hit ENOSPC
		refused  = map[string]bool{}
		held     []recorded // accepted while delivery was held
		failures int        // consecutive ErrStorage since the last success
		lastErr  error
	)
	for failures < 3 || !full {
		if n > 5000 {
			t.Fatalf("Record did not fail with the filesystem full (%d events accepted)", len(accepted))
		}
		if !full {
			if _, err := filler.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filler: %v", err)
				}
				full = true
			}
		}
		e, err := record()
		switch {
		case err == nil:
			held = append(held, e)
			failures = 0
		case errors.Is(err, outbox.ErrStorage):
			refused[e.id] = true
			failures++
			lastErr = err
		default:
			t.Fatalf("Record %s = %v, want nil or ErrStorage", e.id, err)
		}
	}
	if err := filler.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events accepted, %d refused while filling; last error: %v", len(held), len(refused), lastErr)
	// The error is clear: it says the disk is full (what the screen shows
	// is derived from it).
	if !errors.Is(lastErr, syscall.ENOSPC) || !strings.Contains(lastErr.Error(), "no space left on device") {
		t.Fatalf("Record error %q does not say the disk is full (errors.Is ENOSPC: %v)", lastErr, errors.Is(lastErr, syscall.ENOSPC))
	}
	h := u.Health()
	a := storageAlarm(h)
	if h.OK || a == nil || a.Count != failures || !strings.Contains(a.Message, "disk full") ||
		!strings.Contains(a.Message, "no space left on device") || a.Since.IsZero() {
		t.Fatalf("Health() = %+v, want storage-failed counting %d refusals, saying why", h, failures)
	}
	want := *a
	sub.waitHealth(t, "storage-failed in the retained health document", func(h Health) bool {
		a := storageAlarm(h)
		return !h.OK && a != nil && a.Count == want.Count && a.Message == want.Message && a.Since.Equal(want.Since)
	})
	if !u.Connected() {
		t.Fatal("the uplink lost the broker while the disk was full")
	}
	// Nothing half-written: the queue holds exactly the accepted events.
	st, err := ob.Stats()
	if err != nil || st.Depth != len(held) || st.Quarantined != 0 {
		t.Fatalf("outbox with the disk full: %+v %v; want %d queued", st, err, len(held))
	}
	q, err := ob.Peek(len(held) + 10)
	if err != nil || len(q) != len(held) {
		t.Fatalf("Peek: %d messages %v, want %d", len(q), err, len(held))
	}
	for i, m := range q {
		if m.ID != held[i].id || !bytes.Equal(m.Payload, held[i].payload) || m.Topic != tree.Events() {
			t.Fatalf("queued #%d is %s, want %s as recorded", i, m.ID, held[i].id)
		}
	}

	// Space returns.
	if err := os.Remove(filler.Name()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if e, err := record(); err != nil {
			t.Fatalf("Record %s with space back: %v", e.id, err)
		}
	}
	if h := u.Health(); !h.OK || len(h.Alarms) != 0 {
		t.Fatalf("Health() with space back = %+v", h)
	}
	sub.waitHealth(t, "the retained health document ok again", func(h Health) bool { return h.OK && len(h.Alarms) == 0 })
	g.release()

	var ids []string
	for _, e := range accepted {
		ids = append(ids, e.id)
	}
	got := sub.waitIDs(t, ids)
	byID := map[string][]byte{}
	for _, e := range accepted {
		byID[e.id] = e.payload
	}
	for _, m := range got {
		id := eventID(t, m.payload)
		if refused[id] {
			t.Fatalf("refused event %s reached the subscriber", id)
		}
		if !bytes.Equal(m.payload, byID[id]) {
			t.Fatalf("event %s arrived as %.60q, not as recorded", id, m.payload)
		}
	}
	order, dups := firstOccurrences(t, got)
	if strings.Join(order, ",") != strings.Join(ids, ",") || dups != 0 {
		t.Fatalf("arrivals (first occurrences) %v with %d repeats, want %v once each", order, dups, ids)
	}
	waitDepth(t, ob, 0)

	// No corruption: the file passes bbolt's check and reopens empty.
	u.Close()
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt cannot open the outbox file: %v", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return errors.Join(errs...)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("outbox file inconsistent: %v", err)
	}
	ob2, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { ob2.Close() })
	st, err = ob2.Stats()
	if err != nil || st.Depth != 0 || st.Bytes != 0 || st.Quarantined != 0 {
		t.Fatalf("reopened outbox: %+v %v; want empty", st, err)
	}
	// A refused id was never stored: it is accepted as new.
	var again string
	for id := range refused {
		again = id
		break
	}
	p := diskEvent(again)
	if _, err := ob2.Enqueue(ctx, again, tree.Events(), p); err != nil {
		t.Fatal(err)
	}
	if q, err := ob2.Peek(10); err != nil || len(q) != 1 || q[0].ID != again || !bytes.Equal(q[0].Payload, p) {
		t.Fatalf("reopened outbox after one Enqueue: %+v %v", q, err)
	}
}
