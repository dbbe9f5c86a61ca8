package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/backoff"
)

// publisher is what the sink needs from an MQTT client.
type publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
}

// queueSink hands events to MQTT (QoS 1) through a bounded in-memory
// queue, in order, retrying until the broker acknowledges. A tap never
// waits for the network, and a broker outage loses nothing while the
// daemon runs. (A durable on-disk outbox replaces this queue later.)
type queueSink struct {
	topic string
	log   *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	queue   [][]byte
	max     int
	closed  bool
	pub     publisher // nil until connected
	drained chan struct{}
}

func newQueueSink(topic string, max int, log *slog.Logger) *queueSink {
	s := &queueSink{topic: topic, max: max, log: log, drained: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	return s
}

var errQueueFull = errors.New("sink: event queue full")

// Publish enqueues the event.
func (s *queueSink) Publish(_ context.Context, e tap.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= s.max {
		return fmt.Errorf("%w (%d events): event %s dropped", errQueueFull, s.max, e.ID)
	}
	s.queue = append(s.queue, b)
	s.cond.Broadcast()
	return nil
}

// attach sets the connected client.
func (s *queueSink) attach(p publisher) {
	s.mu.Lock()
	s.pub = p
	s.cond.Broadcast()
	s.mu.Unlock()
}

// run sends queued events until ctx ends, then for at most grace more.
func (s *queueSink) run(ctx context.Context, grace time.Duration) {
	defer close(s.drained)
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	var deadline time.Time
	retry := backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}.New()
	for {
		s.mu.Lock()
		for !s.closed && (len(s.queue) == 0 || s.pub == nil) {
			s.cond.Wait()
		}
		if s.closed && deadline.IsZero() {
			deadline = time.Now().Add(grace)
		}
		if len(s.queue) == 0 || s.pub == nil || (!deadline.IsZero() && time.Now().After(deadline)) {
			n := len(s.queue)
			s.mu.Unlock()
			if n > 0 {
				s.log.Warn("sink: events not delivered at shutdown", "count", n)
			}
			return
		}
		msg, pub := s.queue[0], s.pub
		s.mu.Unlock()

		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := pub.Publish(pctx, s.topic, msg, 1, false)
		cancel()
		if err != nil {
			wait := retry.Next()
			s.log.Warn("sink: publish failed, will retry", "err", err, "retry_in", wait)
			if deadline.IsZero() {
				select {
				case <-time.After(wait):
				case <-ctx.Done(): // shutting down: one more try within the grace period
				}
			} else {
				time.Sleep(min(wait, max(time.Until(deadline), 0)))
			}
			continue
		}
		retry.Reset()
		s.mu.Lock()
		s.queue = s.queue[1:]
		s.mu.Unlock()
	}
}
