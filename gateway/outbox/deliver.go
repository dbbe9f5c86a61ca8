package outbox

import (
	"context"
	"errors"
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

// Deliverer sends the outbox's messages in order, one at a time, and
// removes each only after its publish succeeded. A message the broker
// refuses (Refused says which errors mean that) goes to the quarantine and
// the next one is sent; any other failure is retried with the project's
// back-off policy, counting attempts.
type Deliverer struct {
	Outbox *Outbox
	// Retry is the delay policy between failed attempts (default 200 ms
	// to 5 s).
	Retry backoff.Policy
	// Timeout bounds one publish (default 5 s).
	Timeout time.Duration
	// Refused reports whether an error means the broker will never take
	// this message (invalid topic, too large, not authorised). Nil: none.
	Refused func(error) bool
	Log     *slog.Logger

	mu   sync.Mutex
	pub  Publisher
	wake chan struct{}
}

func (d *Deliverer) init() {
	d.mu.Lock()
	if d.wake == nil {
		d.wake = make(chan struct{}, 1)
	}
	d.mu.Unlock()
}

// Attach sets (or, with nil, clears) the connected client.
func (d *Deliverer) Attach(p Publisher) {
	d.init()
	d.mu.Lock()
	d.pub = p
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

// Run delivers until ctx ends; it returns ctx.Err(). A publish in flight
// when ctx ends is abandoned at once (its message stays queued), so a
// shutdown never waits for the broker.
func (d *Deliverer) Run(ctx context.Context) error {
	d.init()
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pol := d.Retry
	if pol.Initial == 0 {
		pol = backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	}
	retry := pol.New()
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	for {
		d.mu.Lock()
		pub := d.pub
		d.mu.Unlock()
		var head []Message
		var err error
		if pub != nil {
			head, err = d.Outbox.Peek(1)
			if err != nil {
				log.Error("outbox unreadable", "err", err)
			}
		}
		if pub == nil || len(head) == 0 || err != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.wake:
			case <-time.After(time.Second): // a storage error may clear
			}
			continue
		}
		m := head[0]
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err = pub.Publish(pctx, m.Topic, m.Payload, 1, false)
		cancel()
		switch {
		case err == nil:
			retry.Reset()
			if err := d.Outbox.Ack(m.Seq); err != nil && !errors.Is(err, ErrNotFound) {
				log.Error("delivered message not removed: it will be sent again (the backend de-duplicates by event id)", "event_id", m.ID, "err", err)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case d.Refused != nil && d.Refused(err):
			log.Error("message refused by the broker: quarantined, the next ones go on", "event_id", m.ID, "err", err)
			if qerr := d.Outbox.Quarantine(m.Seq, err.Error()); qerr != nil {
				log.Error("quarantine failed", "event_id", m.ID, "err", qerr)
			}
		default:
			n, _ := d.Outbox.Failed(m.Seq, err.Error())
			wait := retry.Next()
			log.Warn("publish failed, will retry", "event_id", m.ID, "attempt", n, "retry_in", wait, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
}

// Drain waits, at most grace, until the queue is empty or no client is
// attached: at shutdown, what can be sent quickly is sent; the rest stays
// on disk for the next start.
func (d *Deliverer) Drain(grace time.Duration) {
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		pub := d.pub
		d.mu.Unlock()
		st, err := d.Outbox.Stats()
		if pub == nil || err != nil || st.Depth == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
