package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kazashi/kazashi/gateway/backoff"
)

// Publisher is what delivery needs from an MQTT client: a QoS 1 publish
// that returns nil only after the broker's PUBACK on the live connection.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
}

// AsyncPublisher is a Publisher that can also publish in two steps; the
// Deliverer needs it to keep several messages in flight in order (Window
// above 1) and to tell a message that was in flight when the connection
// dropped from one that never left (PoisonAfter). A message handed over
// must go out on that connection or not at all, never on a later one
// (after messages handed over later). gateway/mqtt's Client implements
// it.
type AsyncPublisher interface {
	Publisher
	// PublishAsync hands the message to the live connection, behind the
	// messages of earlier PublishAsync calls, and returns without waiting
	// for the broker. An error means the message was not handed over
	// (not connected, invalid, ctx ended). wait then blocks until the
	// PUBACK (nil) or a failure: the connection was lost with the message
	// in flight, or ctx ended. ctx bounds both steps.
	PublishAsync(ctx context.Context, topic string, payload []byte, qos byte, retained bool) (wait func() error, err error)
	// ConnectedSince is when the current connection came up, zero while
	// there is none (compared with the Deliverer's Now: the same clock).
	ConnectedSince() time.Time
}

// Defaults of the Deliverer's zero fields.
const (
	DefaultWindow      = 16
	DefaultTimeout     = 5 * time.Second
	DefaultPoisonAfter = 3
)

// Quarantine reasons (the message is kept in the quarantine bucket with
// its reason; nothing is deleted).
const (
	ReasonTopic = "topic outside this device's tree"
)

// DeliveryStats count what this Deliverer did since it was created, for
// telemetry.
type DeliveryStats struct {
	Delivered   uint64    `json:"delivered"`   // PUBACKs received
	Failures    uint64    `json:"failures"`    // failed publishes (each message of a window counts)
	Quarantined uint64    `json:"quarantined"` // messages this run moved to the quarantine
	InFlight    int       `json:"in_flight"`   // publishes waiting for their PUBACK now
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Deliverer sends the outbox's messages in sequence order and removes each
// one only after its own PUBACK.
//
// # Pipelining
//
// Up to Window QoS 1 publishes are in flight on the connection at once,
// handed to it in sequence order: the client writes them in that order and
// the broker delivers the messages of one client and QoS level in the
// order it received them (MQTT 3.1.1 §4.6), so subscribers see sequence
// order. On the first failure of a publish in flight the Deliverer issues
// no new ones, lets the others finish or fail (those acknowledged are
// removed), and after the back-off starts again from the oldest
// unacknowledged message. A message can therefore reach the broker more
// than once (the broker had it, but the connection dropped before its
// PUBACK came back): the backend de-duplicates by event id, and the first
// occurrences stay in order. Acknowledged messages are removed in batches, one bbolt commit
// (one fsync) for all the PUBACKs that arrived while the previous commit
// ran. Window needs an AsyncPublisher: with a plain Publisher (whose
// concurrent calls have no order) it is 1.
//
// # Poison
//
// Under MQTT 3.1.1 a broker refuses no single publish: Mosquitto
// acknowledges and drops a message its ACL denies, and closes the
// connection on a packet above max_packet_size (mosquitto.conf(5)). So
// messages are checked before sending: a topic Allowed rejects, or a
// payload above MaxPayload, goes to the quarantine with its reason and the
// next message is sent. What slips through shows as a connection that
// drops whenever one message is in flight, counted by this rule:
//
// A drop of message M is a publish of M that was handed to the connection
// (PublishAsync succeeded) and then failed otherwise than by its Timeout,
// the end of Run's context or an error Refused recognises. When a round
// (the publishes issued since the last restart) ends with a drop of its
// oldest unacknowledged message M:
//
//   - M becomes suspect: it is sent again alone (nothing after it is handed
//     over before its PUBACK), and only on a connection that has been up
//     for at least Timeout (ConnectedSince). Alone, a drop is M's own
//     (Mosquitto, closing on an oversized packet, loses the PUBACKs it
//     owed for the messages before it, so the oldest unacknowledged
//     message is not always the culprit: alone, an innocent one gets its
//     PUBACK); and a connection that does not stay up for Timeout never
//     carries M.
//   - The drop is a strike against M if the connection had shown that it
//     worked: (a) some message got its PUBACK in that round, or (b) M was
//     handed over on a connection up for at least Timeout (always so when
//     a suspect is sent again).
//   - M's PUBACK clears the suspicion and the strikes, a timeout of M
//     clears the strikes (they must come in a row), and a hand-over that
//     fails because the client is not connected changes nothing: it says
//     nothing about M.
//
// At PoisonAfter strikes M is quarantined with reason "connection dropped
// N times while sending this message". A broker that is down makes
// hand-overs fail and quarantines nothing; a broker stopped with M in
// flight costs M at most one strike, cleared by its PUBACK after the
// restart. The price of a drop is that the head waits Timeout after the
// reconnection and goes alone.
//
// Errors Refused recognises (at hand-over or after) quarantine the message
// at once with the error's text.
type Deliverer struct {
	Outbox *Outbox
	// Retry is the delay policy between failed rounds (default 200 ms to
	// 5 s).
	Retry backoff.Policy
	// Timeout bounds one publish, hand-over to PUBACK (default 5 s).
	Timeout time.Duration
	// Refused reports whether an error means the broker will never take
	// this message (invalid topic, too large, not authorised). Nil: none.
	Refused func(error) bool
	Log     *slog.Logger

	// Window is how many publishes may wait for their PUBACK at once
	// (default DefaultWindow; 1 sends one at a time).
	Window int
	// Allowed reports whether the broker lets this device publish on a
	// topic (the device's ACL); a message on any other topic is
	// quarantined unsent with ReasonTopic. Nil allows all.
	Allowed func(topic string) bool
	// MaxPayload (bytes, 0 = no limit) quarantines larger payloads
	// unsent. Mosquitto's max_packet_size counts the whole PUBLISH packet
	// (fixed header, topic, packet identifier: payload + len(topic) + 4
	// to 7 bytes), so set MaxPayload below it by that much.
	MaxPayload int
	// PoisonAfter is the number of strikes (see the type's doc) that
	// quarantines a message (default DefaultPoisonAfter; negative: never).
	PoisonAfter int
	// OnQuarantine, if set, is called (on Run's goroutine, so quickly)
	// after a message was moved to the quarantine, with its reason.
	OnQuarantine func(m Message, reason string)
	// Now is the clock for uptime and error times (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	pub      Publisher
	gen      uint64        // Attach count: a new publisher ends the round
	wake     chan struct{} // Notify and Attach
	progress chan struct{} // closed and replaced on every removal and Attach (for Drain)
	stats    DeliveryStats
}

func (d *Deliverer) init() {
	d.mu.Lock()
	if d.wake == nil {
		d.wake = make(chan struct{}, 1)
		d.progress = make(chan struct{})
	}
	d.mu.Unlock()
}

// Attach sets (or, with nil, clears) the connected client.
func (d *Deliverer) Attach(p Publisher) {
	d.init()
	d.mu.Lock()
	d.pub = p
	d.gen++
	d.signalLocked()
	d.mu.Unlock()
	d.Notify()
}

// Notify says a message was enqueued.
func (d *Deliverer) Notify() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stats reports what this Deliverer did so far.
func (d *Deliverer) Stats() DeliveryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// signalLocked wakes Drain; d.mu is held.
func (d *Deliverer) signalLocked() {
	close(d.progress)
	d.progress = make(chan struct{})
}

func (d *Deliverer) publisher() (Publisher, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pub, d.gen
}

// settings are the Deliverer's fields with defaults applied, fixed for one
// Run.
type settings struct {
	log         *slog.Logger
	retry       backoff.Policy
	timeout     time.Duration
	window      int
	poisonAfter int
	now         func() time.Time
}

func (d *Deliverer) settings() settings {
	s := settings{log: d.Log, retry: d.Retry, timeout: d.Timeout, window: d.Window, poisonAfter: d.PoisonAfter, now: d.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.retry.Initial == 0 {
		s.retry = backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.window <= 0 {
		s.window = DefaultWindow
	}
	if s.poisonAfter == 0 {
		s.poisonAfter = DefaultPoisonAfter
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// idlePoll: with nothing to send, the outbox is looked at again this often
// even without Notify (a storage error may clear, an Enqueue may have come
// without Notify); a suspect held back while there is no connection is
// looked at again this often too.
const idlePoll = time.Second

// Run delivers until ctx ends; it returns ctx.Err(). Publishes in flight
// when ctx ends are abandoned at once (their messages stay queued; Run
// does not wait for the publisher to give up), so a shutdown never waits
// for the broker.
func (d *Deliverer) Run(ctx context.Context) error {
	d.init()
	r := &run{d: d, s: d.settings()}
	r.acks = newAcker(d, r.s.log)
	defer r.acks.close()
	retry := r.s.retry.New()
	for {
		pub, gen := d.publisher()
		if pub == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.wake:
			}
			continue
		}
		end, acked := r.round(ctx, pub, gen)
		if acked {
			retry.Reset()
		}
		var wait time.Duration
		switch end {
		case endContext:
			return ctx.Err()
		case endFailed:
			wait = retry.Next()
		case endStorage:
			wait = idlePoll
		case endSwitch:
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

type roundEnd int

const (
	endContext roundEnd = iota // Run's ctx ended
	endFailed                  // a publish failed: back off, restart from the oldest unacknowledged
	endStorage                 // the outbox could not be read
	endSwitch                  // another publisher was attached
)

// run is the state of one Run that outlives rounds.
type run struct {
	d    *Deliverer
	s    settings
	acks *acker
	// suspect is the sequence of the suspect message (0: none) and
	// strikes its strikes (see the rule).
	suspect uint64
	strikes int
}

// flight is one publish issued in a round.
type flight struct {
	m      Message
	handed bool          // the connection took it (AsyncPublisher)
	upFor  time.Duration // how long its connection had been up at hand-over
	cancel context.CancelFunc
}

type result struct {
	seq uint64
	err error
}

type failure struct {
	f       *flight
	err     error
	timeout bool
}

// round sends from the oldest queued message on until a failure, a new
// publisher or the end of ctx. acked reports whether a PUBACK arrived.
func (r *run) round(ctx context.Context, pub Publisher, gen uint64) (end roundEnd, acked bool) {
	d, s := r.d, r.s
	// Removals still pending would be read again as queued and sent twice.
	if !r.acks.flush(ctx) {
		return endContext, false
	}
	async, _ := pub.(AsyncPublisher)
	window := s.window
	if async == nil {
		window = 1
	}
	results := make(chan result, window) // never blocks a finishing publish
	inflight := make(map[uint64]*flight, window)
	defer func() {
		for _, f := range inflight {
			f.cancel()
		}
		d.mu.Lock()
		d.stats.InFlight = 0
		d.mu.Unlock()
	}()
	var (
		cursor   uint64    // last sequence issued or quarantined
		buf      []Message // read ahead of cursor
		stopping bool
		failures []failure
		pubacks  int
	)
	end = endFailed
	stop := func(e roundEnd) {
		if !stopping {
			stopping, end = true, e
		}
	}
	for {
		var holdFor time.Duration // > 0: the suspect waits for an older connection
		for !stopping && len(inflight) < window {
			if _, alone := inflight[r.suspect]; alone && r.suspect != 0 {
				break // nothing behind a suspect
			}
			if _, g := d.publisher(); g != gen {
				stop(endSwitch)
				break
			}
			if len(buf) == 0 {
				var err error
				buf, err = d.Outbox.peekAfter(cursor, max(4*window, 64))
				if err != nil {
					s.log.Error("outbox unreadable", "err", err)
					r.noteError(err)
					stop(endStorage)
					break
				}
				if len(buf) == 0 {
					break
				}
			}
			m := buf[0]
			if reason := r.check(m); reason != "" {
				r.quarantine(m, reason)
				buf, cursor = buf[1:], m.Seq
				continue
			}
			var upFor time.Duration
			if async != nil {
				if since := async.ConnectedSince(); !since.IsZero() {
					upFor = s.now().Sub(since)
				}
			}
			if m.Seq == r.suspect {
				if len(inflight) > 0 {
					break // alone: after the others
				}
				if upFor < s.timeout {
					// Up: until it is old enough; down: look again soon.
					holdFor = min(max(s.timeout/10, time.Millisecond), idlePoll)
					if upFor > 0 {
						holdFor = min(s.timeout-upFor, idlePoll)
					}
					break
				}
			}
			mctx, cancel := context.WithTimeout(ctx, s.timeout)
			f := &flight{m: m, cancel: cancel}
			var wait func() error
			if async != nil {
				var err error
				wait, err = async.PublishAsync(mctx, m.Topic, m.Payload, 1, false)
				if err != nil {
					cancel()
					switch {
					case ctx.Err() != nil:
						return endContext, pubacks > 0
					case d.Refused != nil && d.Refused(err):
						r.quarantine(m, err.Error())
						buf, cursor = buf[1:], m.Seq
						continue
					}
					// Not handed over: the client is not connected.
					r.noteFailure(err)
					failures = append(failures, failure{f: f, err: err})
					stop(endFailed)
					break
				}
				f.handed, f.upFor = true, upFor
			} else {
				wait = func() error { return pub.Publish(mctx, m.Topic, m.Payload, 1, false) }
			}
			go func(seq uint64) { results <- result{seq, wait()} }(m.Seq)
			inflight[m.Seq] = f
			buf, cursor = buf[1:], m.Seq
			d.mu.Lock()
			d.stats.InFlight = len(inflight)
			d.mu.Unlock()
		}
		if len(inflight) == 0 {
			if stopping {
				break
			}
			// Nothing to send, or the suspect held back: wait for a
			// Notify, an Attach, or the next look.
			t := time.NewTimer(cmp.Or(holdFor, idlePoll))
			select {
			case <-ctx.Done():
				t.Stop()
				return endContext, pubacks > 0
			case <-d.wake:
				t.Stop()
			case <-t.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return endContext, pubacks > 0
		case <-d.wake:
			// A new message (the issue loop reads it) or a new publisher.
		case res := <-results:
			f := inflight[res.seq]
			delete(inflight, res.seq)
			f.cancel()
			d.mu.Lock()
			d.stats.InFlight = len(inflight)
			d.mu.Unlock()
			switch {
			case res.err == nil:
				pubacks++
				d.mu.Lock()
				d.stats.Delivered++
				d.mu.Unlock()
				r.acks.add(f.m)
				if r.suspect == f.m.Seq {
					r.suspect, r.strikes = 0, 0
				}
			case ctx.Err() != nil:
				return endContext, pubacks > 0
			case d.Refused != nil && d.Refused(res.err):
				r.quarantine(f.m, res.err.Error())
			default:
				r.noteFailure(res.err)
				failures = append(failures, failure{f: f, err: res.err,
					timeout: errors.Is(res.err, context.DeadlineExceeded)})
				stop(endFailed)
			}
		}
	}
	if len(failures) > 0 {
		r.failed(failures, pubacks)
	}
	return end, pubacks > 0
}

// failed records a failed round against its oldest failed message (the
// oldest unacknowledged one) and applies the poison rule.
func (r *run) failed(failures []failure, pubacks int) {
	s := r.s
	head := failures[0]
	for _, f := range failures[1:] {
		if f.f.m.Seq < head.f.m.Seq {
			head = f
		}
	}
	m := head.f.m
	if !head.f.handed {
		// Not connected: no attempt to record (and no fsync per retry
		// while the broker is away).
		s.log.Debug("not connected, will retry", "event_id", m.ID, "err", head.err)
		return
	}
	n, err := r.d.Outbox.Failed(m.Seq, head.err.Error())
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Error("attempt not recorded", "event_id", m.ID, "err", err)
	}
	if r.suspect != m.Seq {
		r.suspect, r.strikes = 0, 0
	}
	switch {
	case head.timeout:
		r.strikes = 0
	default: // a drop
		r.suspect = m.Seq
		if pubacks > 0 || head.f.upFor >= s.timeout {
			r.strikes++
		}
		if s.poisonAfter > 0 && r.strikes >= s.poisonAfter {
			r.quarantine(m, fmt.Sprintf("connection dropped %d times while sending this message", r.strikes))
			return
		}
	}
	s.log.Warn("publish failed, will retry from the oldest unacknowledged message",
		"event_id", m.ID, "attempt", n, "failed_in_window", len(failures), "strikes", r.strikes, "err", head.err)
}

// check returns why m must be quarantined before sending, or "".
func (r *run) check(m Message) string {
	d := r.d
	if d.Allowed != nil && !d.Allowed(m.Topic) {
		return ReasonTopic
	}
	if d.MaxPayload > 0 && len(m.Payload) > d.MaxPayload {
		return fmt.Sprintf("payload of %d bytes exceeds the broker limit %d", len(m.Payload), d.MaxPayload)
	}
	return ""
}

// quarantine moves m to the quarantine (kept, with its reason).
func (r *run) quarantine(m Message, reason string) {
	d := r.d
	if err := d.Outbox.Quarantine(m.Seq, reason); err != nil {
		if !errors.Is(err, ErrNotFound) {
			r.s.log.Error("quarantine failed; the message stays queued", "event_id", m.ID, "reason", reason, "err", err)
		}
		return
	}
	if r.suspect == m.Seq {
		r.suspect, r.strikes = 0, 0
	}
	r.s.log.Error("message quarantined; the next ones go on", "event_id", m.ID, "reason", reason)
	d.mu.Lock()
	d.stats.Quarantined++
	d.signalLocked()
	d.mu.Unlock()
	if d.OnQuarantine != nil {
		m.Reason = reason
		d.OnQuarantine(m, reason)
	}
}

func (r *run) noteFailure(err error) {
	r.d.mu.Lock()
	r.d.stats.Failures++
	r.d.mu.Unlock()
	r.noteError(err)
}

func (r *run) noteError(err error) {
	now := r.s.now()
	r.d.mu.Lock()
	r.d.stats.LastError, r.d.stats.LastErrorAt = err.Error(), now
	r.d.mu.Unlock()
}

// acker removes acknowledged messages in batches on its own goroutine:
// every bbolt commit fsyncs, and one per PUBACK would bound a backlog's
// drain by the disk's sync rate. What arrives while a commit runs goes
// into the next one.
type acker struct {
	d   *Deliverer
	log *slog.Logger

	mu        sync.Mutex
	pending   []Message
	added     uint64        // messages handed to add
	committed uint64        // of those, the ones a commit has dealt with
	done      chan struct{} // closed and replaced after every commit
	kick      chan struct{}
	stop      chan struct{}
	exited    chan struct{}
}

func newAcker(d *Deliverer, log *slog.Logger) *acker {
	a := &acker{d: d, log: log, done: make(chan struct{}), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), exited: make(chan struct{})}
	go a.loop()
	return a
}

func (a *acker) add(m Message) {
	a.mu.Lock()
	a.pending = append(a.pending, m)
	a.added++
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *acker) loop() {
	defer close(a.exited)
	for {
		stopping := false
		select {
		case <-a.kick:
		case <-a.stop:
			stopping = true
		}
		a.commit()
		if stopping {
			return
		}
	}
}

func (a *acker) commit() {
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	if len(batch) > 0 {
		if err := a.d.Outbox.ackAll(batch); err != nil {
			a.log.Error("delivered messages not removed: they will be sent again (the backend de-duplicates by event id)",
				"count", len(batch), "err", err)
		}
		a.d.mu.Lock()
		a.d.signalLocked()
		a.d.mu.Unlock()
	}
	a.mu.Lock()
	a.committed += uint64(len(batch))
	close(a.done)
	a.done = make(chan struct{})
	a.mu.Unlock()
}

// flush waits until everything added so far is committed, or ctx ends.
func (a *acker) flush(ctx context.Context) bool {
	a.mu.Lock()
	target := a.added
	a.mu.Unlock()
	for {
		a.mu.Lock()
		ok, done := a.committed >= target, a.done
		a.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-done:
		case <-ctx.Done():
			return false
		}
	}
}

// close commits what is pending and stops the goroutine.
func (a *acker) close() {
	close(a.stop)
	<-a.exited
}

// Drain waits, at most grace, until the queue is empty or no client is
// attached: at shutdown, what can be sent quickly is sent; the rest stays
// on disk for the next start. It returns within grace whatever the broker
// does (it only watches the outbox; Run keeps sending).
func (d *Deliverer) Drain(grace time.Duration) {
	d.init()
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		d.mu.Lock()
		pub, progress := d.pub, d.progress
		d.mu.Unlock()
		st, err := d.Outbox.Stats()
		if pub == nil || err != nil || st.Depth == 0 {
			return
		}
		select {
		case <-progress:
		case <-t.C:
			return
		}
	}
}
