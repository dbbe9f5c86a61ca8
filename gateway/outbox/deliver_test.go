package outbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLong bounds every wait for the deliverer to reach a state; with the
// fakes below it takes milliseconds, so hitting it means a bug.
const waitLong = 10 * time.Second

// waitFor polls cond until it holds (or fails the test after waitLong).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var (
	errNotConnected = errors.New("fake: not connected")
	errLost         = errors.New("fake: connection lost")
)

// action is what the fake broker does with a message handed to it.
type action int

const (
	actAck    action = iota // PUBACK at once
	actHold                 // nothing until the test calls answer
	actLater                // PUBACK 1 ms later, unless the connection drops first
	actDrop                 // close the connection: this and every pending message fail
	actIgnore               // never answer, not even to ctx (a stuck client)
)

// fakeConn is a scripted AsyncPublisher with a connection: messages are
// handed over in call order, the script decides per message (given the
// connection number, from 1), a drop fails everything pending and takes
// the connection down, and it comes back after reconnect (0: only by
// setUp).
type fakeConn struct {
	mu         sync.Mutex
	up         bool
	since      time.Time // when the connection came up
	conn       int
	flaky      int // connections 1..flaky die by themselves 5 ms after coming up
	script     func(conn int, payload string) action
	reconnect  time.Duration
	refused    int               // hand-overs refused while down
	handed     []string          // every hand-over, in order
	pending    map[string][]*pub // held, by payload
	later      []*pub            // to be answered by actLater's timers
	inflight   int               // handed, not answered
	maxPending int
	ackOrder   []string // PUBACKs sent, in order
	onAck      func(payload string)
}

type pub struct {
	payload string
	done    chan error // buffered 1
	stuck   bool
}

var _ AsyncPublisher = (*fakeConn)(nil)

func newFakeConn(script func(conn int, payload string) action) *fakeConn {
	return &fakeConn{up: true, since: time.Now(), conn: 1, script: script, pending: map[string][]*pub{}}
}

func (f *fakeConn) ConnectedSince() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return time.Time{}
	}
	return f.since
}

// setUp brings the connection (back) up.
func (f *fakeConn) setUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up {
		return
	}
	f.up, f.since = true, time.Now()
	f.conn++
	f.dieLaterLocked()
}

// dieLaterLocked makes a flaky connection drop by itself 5 ms after it
// came up.
func (f *fakeConn) dieLaterLocked() {
	if f.conn > f.flaky {
		return
	}
	conn := f.conn
	time.AfterFunc(5*time.Millisecond, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.up && f.conn == conn {
			f.dropLocked()
		}
	})
}

func (f *fakeConn) PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool) (func() error, error) {
	if qos != 1 || retained {
		return nil, fmt.Errorf("fake: qos %d retained %v", qos, retained)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		f.refused++
		return nil, errNotConnected
	}
	p := &pub{payload: string(payload), done: make(chan error, 1)}
	f.handed = append(f.handed, p.payload)
	f.inflight++
	f.maxPending = max(f.maxPending, f.inflight)
	switch f.script(f.conn, p.payload) {
	case actAck:
		f.answerLocked(p, nil)
	case actHold:
		f.pending[p.payload] = append(f.pending[p.payload], p)
	case actLater:
		// Each timer answers the oldest waiting one: PUBACKs in order.
		f.later = append(f.later, p)
		time.AfterFunc(time.Millisecond, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.later) > 0 {
				f.answerLocked(f.later[0], nil)
				f.later = f.later[1:]
			}
		})
	case actDrop:
		f.answerLocked(p, errLost)
		f.dropLocked()
	case actIgnore:
		p.stuck = true
	}
	return func() error {
		if p.stuck {
			select {} // a publisher that ignores ctx; Run must not wait for it
		}
		select {
		case err := <-p.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

func (f *fakeConn) answerLocked(p *pub, err error) {
	f.inflight--
	if err == nil {
		f.ackOrder = append(f.ackOrder, p.payload)
		if f.onAck != nil {
			f.onAck(p.payload)
		}
	}
	p.done <- err
}

func (f *fakeConn) dropLocked() {
	for k, ps := range f.pending {
		for _, p := range ps {
			f.answerLocked(p, errLost)
		}
		delete(f.pending, k)
	}
	for _, p := range f.later {
		f.answerLocked(p, errLost)
	}
	f.later = nil
	f.up = false
	if f.reconnect > 0 {
		time.AfterFunc(f.reconnect, f.setUp)
	}
}

// answer sends the PUBACK of a held message.
func (f *fakeConn) answer(payload string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.pending[payload]
	if len(ps) == 0 {
		panic("fake: nothing held for " + payload)
	}
	f.answerLocked(ps[0], nil)
	f.pending[payload] = ps[1:]
}

// cut drops the connection (every held message fails).
func (f *fakeConn) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked()
}

func (f *fakeConn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	wait, err := f.PublishAsync(ctx, topic, payload, qos, retained)
	if err != nil {
		return err
	}
	return wait()
}

func (f *fakeConn) snapshot() (handed, acked []string, maxPending int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.handed), slices.Clone(f.ackOrder), f.maxPending
}

// plainOnly hides PublishAsync: a Publisher without order between
// concurrent calls.
type plainOnly struct{ f *fakeConn }

func (p plainOnly) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return p.f.Publish(ctx, topic, payload, qos, retained)
}

// enqueueN enqueues payloads "m1".."mN" as ids ev-1..ev-N.
func enqueueN(t *testing.T, ob *Outbox, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := ob.Enqueue(context.Background(), fmt.Sprintf("ev-%d", i), "kz/k1/events", []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func names(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("m%d", i))
	}
	return out
}

func queued(t *testing.T, ob *Outbox) []string {
	t.Helper()
	ms, err := ob.Peek(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

func depth(ob *Outbox) int {
	st, _ := ob.Stats()
	return st.Depth
}

// start runs d until the test ends and checks that Run then returns.
func start(t *testing.T, d *Deliverer) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(waitLong):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return cancel
}

// TestWindowOrderAndBound: a backlog goes out in sequence order, with
// never more than Window publishes waiting for their PUBACK, and the
// outbox ends empty.
func TestWindowOrderAndBound(t *testing.T) {
	for _, window := range []int{1, 4, 16} {
		t.Run(fmt.Sprint(window), func(t *testing.T) {
			ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
			enqueueN(t, ob, 1, 300)
			// PUBACKs come back three at a time, each time the window is
			// full.
			f := newFakeConn(func(int, string) action { return actHold })
			d := &Deliverer{Outbox: ob, Window: window, Retry: backoffFast}
			d.Attach(f)
			start(t, d)
			for next := 1; next <= 300; {
				// The deliverer fills the window whenever it can.
				want := min(window, 300-next+1)
				waitFor(t, "a full window", func() bool {
					h, _, _ := f.snapshot()
					return len(h)-(next-1) == want
				})
				for range min(3, want) {
					f.answer(fmt.Sprintf("m%d", next))
					next++
				}
			}
			waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
			h, a, maxPending := f.snapshot()
			if !slices.Equal(h, names(1, 300)) || !slices.Equal(a, names(1, 300)) {
				t.Fatalf("handed over %v\nacknowledged %v\nwant m1..m300 once each, in order", h, a)
			}
			if maxPending != window {
				t.Fatalf("%d publishes in flight at most, want the window %d", maxPending, window)
			}
			if st := d.Stats(); st.Delivered != 300 || st.Failures != 0 || st.InFlight != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestPlainPublisherOneAtATime: without PublishAsync concurrent publishes
// would have no order, so a plain Publisher gets one at a time whatever
// Window says.
func TestPlainPublisherOneAtATime(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 50)
	f := newFakeConn(func(int, string) action { return actAck })
	d := &Deliverer{Outbox: ob, Window: 16}
	d.Attach(plainOnly{f})
	start(t, d)
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	h, _, maxPending := f.snapshot()
	if !slices.Equal(h, names(1, 50)) || maxPending != 1 {
		t.Fatalf("handed %v with up to %d in flight; want m1..m50 one at a time", h, maxPending)
	}
}

// TestFailureMidWindowRestartsFromOldest: of 8 messages in flight only
// m5's PUBACK came (m9 took its place) when the connection dropped.
// Exactly m5 is removed (no message before its own PUBACK), nothing new
// is issued after the failure, and the next connection starts again from
// m1, skipping m5.
func TestFailureMidWindowRestartsFromOldest(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 12)
	var mu sync.Mutex
	var removedEarly []string
	f := newFakeConn(func(conn int, p string) action {
		if conn == 1 {
			return actHold
		}
		return actAck
	})
	// At each PUBACK the message must still be queued: it is removed
	// after, never before.
	f.onAck = func(p string) {
		ms, _ := ob.Peek(1 << 20)
		if !slices.ContainsFunc(ms, func(m Message) bool { return string(m.Payload) == p }) {
			mu.Lock()
			removedEarly = append(removedEarly, p)
			mu.Unlock()
		}
	}
	f.reconnect = time.Millisecond
	d := &Deliverer{Outbox: ob, Window: 8, Retry: backoffFast, Timeout: 20 * time.Millisecond}
	d.Attach(f)
	start(t, d)
	waitFor(t, "a full window", func() bool { h, _, _ := f.snapshot(); return len(h) == 8 })
	f.answer("m5")
	waitFor(t, "m5 removed", func() bool { return depth(ob) == 11 })
	if got, want := queued(t, ob), []string{"m1", "m2", "m3", "m4", "m6", "m7", "m8", "m9", "m10", "m11", "m12"}; !slices.Equal(got, want) {
		t.Fatalf("queue %v, want %v: only m5 acknowledged", got, want)
	}
	// m5's place in the window went to m9.
	waitFor(t, "m9 sent", func() bool { h, _, _ := f.snapshot(); return len(h) == 9 })
	if st := d.Stats(); st.InFlight != 8 {
		t.Fatalf("in flight %d, want 8", st.InFlight)
	}
	f.cut()
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	h, _, _ := f.snapshot()
	want := append(names(1, 9), "m1", "m2", "m3", "m4", "m6", "m7", "m8", "m9", "m10", "m11", "m12")
	if !slices.Equal(h, want) {
		t.Fatalf("handed over %v\nwant %v", h, want)
	}
	if len(removedEarly) > 0 {
		t.Fatalf("removed before their PUBACK: %v", removedEarly)
	}
	if st := d.Stats(); st.Delivered != 12 || st.Failures != 8 || st.LastError != errLost.Error() || st.LastErrorAt.IsZero() {
		t.Fatalf("stats %+v: want 12 delivered, 8 failures, the last error", st)
	}
	if ms, _ := ob.Quarantined(); len(ms) != 0 {
		t.Fatalf("quarantined %s", ids(ms))
	}
}

// TestQuarantineBeforeSending: a topic outside the device's tree and a
// payload above MaxPayload never reach the broker; they are kept in the
// quarantine with their reasons and the rest flows in order.
func TestQuarantineBeforeSending(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	ctx := context.Background()
	for i, e := range []struct{ topic, payload string }{
		{"kz/k1/events", "a"}, {"kz/k2/events", "other-device"}, {"kz/k1/events", "b"},
		{"kz/k1/events", "0123456789X"}, {"kz/k1/events", "0123456789"}, {"kz/k1/events", "c"},
	} {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), e.topic, []byte(e.payload)); err != nil {
			t.Fatal(err)
		}
	}
	f := newFakeConn(func(int, string) action { return actAck })
	type q struct{ payload, reason string }
	var mu sync.Mutex
	var hooked []q
	d := &Deliverer{Outbox: ob, MaxPayload: 10,
		Allowed: func(topic string) bool { return strings.HasPrefix(topic, "kz/k1/") },
		OnQuarantine: func(m Message, reason string) {
			mu.Lock()
			hooked = append(hooked, q{string(m.Payload), reason})
			mu.Unlock()
		}}
	d.Attach(f)
	start(t, d)
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	if h, _, _ := f.snapshot(); !slices.Equal(h, []string{"a", "b", "0123456789", "c"}) {
		t.Fatalf("handed over %v", h)
	}
	ms, _ := ob.Quarantined()
	var got []q
	for _, m := range ms {
		got = append(got, q{string(m.Payload), m.Reason})
	}
	want := []q{{"other-device", "topic outside this device's tree"},
		{"0123456789X", "payload of 11 bytes exceeds the broker limit 10"}}
	if !slices.Equal(got, want) {
		t.Fatalf("quarantine %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(hooked, want) {
		t.Fatalf("OnQuarantine saw %v, want %v", hooked, want)
	}
	if st := d.Stats(); st.Quarantined != 2 || st.Delivered != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRefusedQuarantinesAtHandOver: an error Refused recognises (here at
// hand-over, like mqtt.ErrInvalidTopic) quarantines with its text.
func TestRefusedQuarantinesAtHandOver(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 3)
	errBad := errors.New("fake: invalid topic")
	f := newFakeConn(func(int, string) action { return actAck })
	d := &Deliverer{Outbox: ob, Refused: func(err error) bool { return errors.Is(err, errBad) }}
	d.Attach(refuseOne{f, "m2", errBad})
	start(t, d)
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	ms, _ := ob.Quarantined()
	if len(ms) != 1 || string(ms[0].Payload) != "m2" || ms[0].Reason != "fake: invalid topic" {
		t.Fatalf("quarantine %s", ids(ms))
	}
	if h, _, _ := f.snapshot(); !slices.Equal(h, []string{"m1", "m3"}) {
		t.Fatalf("handed over %v", h)
	}
}

type refuseOne struct {
	*fakeConn
	payload string
	err     error
}

func (r refuseOne) PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool) (func() error, error) {
	if string(payload) == r.payload {
		return nil, r.err
	}
	return r.fakeConn.PublishAsync(ctx, topic, payload, qos, retained)
}

// TestPoisonAfterDrops: the broker closes the connection whenever "poison"
// reaches it (as Mosquitto does for a packet above max_packet_size) and
// acknowledges the rest a little later, so that the PUBACKs of the
// messages just before poison are lost with the connection, as with a
// real broker. The oldest unacknowledged message at a drop is suspect and
// goes alone; the innocent ones get their PUBACK that way, poison is
// quarantined after PoisonAfter strikes, and the rest arrives in order.
func TestPoisonAfterDrops(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	ctx := context.Background()
	for i, p := range []string{"m1", "m2", "m3", "poison", "m4", "m5"} {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), "kz/k1/events", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	f := newFakeConn(func(_ int, p string) action {
		if p == "poison" {
			return actDrop
		}
		return actLater
	})
	f.reconnect = time.Millisecond
	var mu sync.Mutex
	var hooked []string
	d := &Deliverer{Outbox: ob, Retry: backoffFast, Timeout: 30 * time.Millisecond,
		OnQuarantine: func(m Message, reason string) {
			mu.Lock()
			hooked = append(hooked, m.ID+": "+reason)
			mu.Unlock()
		}}
	d.Attach(f)
	start(t, d)
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	h, a, _ := f.snapshot()
	if !slices.Equal(a, []string{"m1", "m2", "m3", "m4", "m5"}) {
		t.Fatalf("acknowledged %v, want m1..m5 once each in order", a)
	}
	if n := strings.Count(strings.Join(h, " "), "poison"); n < 3 {
		t.Fatalf("poison sent %d times (%v), want at least PoisonAfter = 3", n, h)
	}
	ms, _ := ob.Quarantined()
	const reason = "connection dropped 3 times while sending this message"
	if len(ms) != 1 || ms[0].ID != "ev-3" || ms[0].Reason != reason || ms[0].Attempts < 3 {
		t.Fatalf("quarantine %s, want ev-3 (poison) with %q after 3 attempts or more", ids(ms), reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(hooked, []string{"ev-3: " + reason}) {
		t.Fatalf("OnQuarantine saw %v", hooked)
	}
	if st := d.Stats(); st.Quarantined != 1 || st.Delivered != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// ids describes messages without their payloads.
func ids(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s attempts %d reason %q] ", m.ID, m.Attempts, m.Reason)
	}
	return b.String()
}

// TestFlakyConnectionQuarantinesNothing: the first five connections die by
// themselves 5 ms after coming up, with m1 in flight on the first. Even
// with PoisonAfter 1, m1 is not blamed: that drop had no evidence that the
// connection worked, and m1, now suspect, waits for a connection that
// stays up for Timeout, so it is sent exactly twice.
func TestFlakyConnectionQuarantinesNothing(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 1)
	f := newFakeConn(func(conn int, _ string) action {
		if conn <= 5 {
			return actHold
		}
		return actAck
	})
	f.flaky, f.reconnect = 5, time.Millisecond
	f.mu.Lock()
	f.dieLaterLocked()
	f.mu.Unlock()
	d := &Deliverer{Outbox: ob, Retry: backoffFast, Timeout: 100 * time.Millisecond, PoisonAfter: 1}
	d.Attach(f)
	start(t, d)
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	f.mu.Lock()
	conn := f.conn
	f.mu.Unlock()
	if h, _, _ := f.snapshot(); !slices.Equal(h, []string{"m1", "m1"}) || conn != 6 {
		t.Fatalf("handed over %v, last connection %d; want m1 on the first and on the sixth", h, conn)
	}
	if ms, _ := ob.Quarantined(); len(ms) != 0 {
		t.Fatalf("quarantined %s", ids(ms))
	}
}

// TestBrokerDownQuarantinesNothing: with PoisonAfter 1, a broker that is
// down (every hand-over refused for a while) quarantines nothing: the
// messages never left.
func TestBrokerDownQuarantinesNothing(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 5)
	f := newFakeConn(func(int, string) action { return actAck })
	f.up = false
	d := &Deliverer{Outbox: ob, Retry: backoffFast, PoisonAfter: 1}
	d.Attach(f)
	start(t, d)
	waitFor(t, "20 refused hand-overs", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.refused >= 20
	})
	if st := d.Stats(); st.Failures < 20 || st.LastError != errNotConnected.Error() {
		t.Fatalf("stats while down %+v", st)
	}
	f.setUp()
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	if ms, _ := ob.Quarantined(); len(ms) != 0 {
		t.Fatalf("quarantined %s", ids(ms))
	}
	if _, a, _ := f.snapshot(); !slices.Equal(a, names(1, 5)) {
		t.Fatalf("acknowledged %v", a)
	}
}

// TestRunReturnsWithPublishesInFlight: a window of publishes that never
// get an answer, from a publisher that honours ctx and from one that
// ignores it, does not hold up Run's return; the messages stay queued.
func TestRunReturnsWithPublishesInFlight(t *testing.T) {
	for _, a := range []action{actHold, actIgnore} {
		t.Run(map[action]string{actHold: "honours-ctx", actIgnore: "ignores-ctx"}[a], func(t *testing.T) {
			ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
			enqueueN(t, ob, 1, 40)
			f := newFakeConn(func(int, string) action { return a })
			d := &Deliverer{Outbox: ob, Timeout: time.Hour}
			d.Attach(f)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			waitFor(t, "a full window", func() bool { return d.Stats().InFlight == DefaultWindow })
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Run = %v", err)
				}
			case <-time.After(waitLong):
				t.Fatal("Run did not return after its context ended")
			}
			if n := depth(ob); n != 40 {
				t.Fatalf("depth %d, want all 40 kept", n)
			}
		})
	}
}

// TestDrainBounded: Drain returns within its grace while the broker never
// answers, and returns as soon as the queue is empty otherwise.
func TestDrainBounded(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 5)
	f := newFakeConn(func(int, string) action { return actIgnore })
	d := &Deliverer{Outbox: ob, Timeout: time.Hour}
	d.Attach(f)
	start(t, d)
	const grace = 200 * time.Millisecond
	t0 := time.Now()
	d.Drain(grace)
	if el := time.Since(t0); el < grace || el > grace+time.Second {
		t.Fatalf("Drain(%v) with a silent broker returned after %v", grace, el)
	}
	if n := depth(ob); n != 5 {
		t.Fatalf("depth %d after Drain, want 5 kept", n)
	}

	ob2 := open(t, filepath.Join(t.TempDir(), "o2.db"), Options{})
	enqueueN(t, ob2, 1, 100)
	d2 := &Deliverer{Outbox: ob2}
	d2.Attach(newFakeConn(func(int, string) action { return actAck }))
	start(t, d2)
	d2.Drain(time.Hour)
	if n := depth(ob2); n != 0 {
		t.Fatalf("Drain returned with %d queued", n)
	}
	// No client: nothing can be sent, Drain does not wait.
	d3 := &Deliverer{Outbox: ob}
	t0 = time.Now()
	d3.Drain(time.Hour)
	if time.Since(t0) > time.Second {
		t.Fatal("Drain without a client waited")
	}
}

// TestAckAll: the batched removal removes exactly the given messages,
// keeps the accounting, forgets their ids and skips those already gone.
func TestAckAll(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	enqueueN(t, ob, 1, 5)
	ms, _ := ob.Peek(5)
	if err := ob.Ack(ms[1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := ob.ackAll([]Message{ms[0], ms[1], ms[3]}); err != nil {
		t.Fatal(err)
	}
	if got := queued(t, ob); !slices.Equal(got, []string{"m3", "m5"}) {
		t.Fatalf("queue %v", got)
	}
	if st, _ := ob.Stats(); st.Depth != 2 || st.Bytes != 4 {
		t.Fatalf("stats %+v", st)
	}
	if seq, _ := ob.Enqueue(context.Background(), "ev-1", "t", []byte("again")); seq != 6 {
		t.Fatalf("id of a removed message enqueued again: seq %d, want a new 6", seq)
	}
	if seq, _ := ob.Enqueue(context.Background(), "ev-3", "t", []byte("dup")); seq != 3 {
		t.Fatalf("id of a queued message: seq %d, want the stored 3", seq)
	}
}
