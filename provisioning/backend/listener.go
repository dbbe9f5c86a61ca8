package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/topics"
)

// Defaults for zero Listener fields.
const (
	DefaultPrefix = "kazashi"
	DefaultGroup  = "kazashi-backend"
)

// Listener receives tap events from the broker and stores them. Set the
// fields, then call Run once.
//
// # When is a message acknowledged
//
// paho sends the PUBACK for a QoS 1 message when the handler returns
// (gateway/mqtt.Subscribe), so the handler decodes and inserts first:
//
//   - stored, or a duplicate of a stored event: it returns, the PUBACK
//     goes out, the broker forgets the message;
//   - rejected by DecodeEvent (or ErrIDConflict): counted by reason, logged
//     without the payload, not stored, and acknowledged: re-delivering it
//     would not change the verdict, and an unacknowledged message would
//     hold one of the broker's in-flight slots for this session forever;
//   - a storage failure (ErrStorage: disk full, I/O error): MQTT 3.1.1 has
//     no negative acknowledgement, and returning would acknowledge an event
//     that is not stored. So the handler closes the connection first and
//     only then returns; paho drops an acknowledgement whose connection is
//     gone. The broker keeps the message in this client's persistent
//     session and re-sends it on the next connection with the same client
//     id ("When a Client reconnects with CleanSession set to 0, both the
//     Client and Server MUST re-send any unacknowledged PUBLISH Packets",
//     MQTT 3.1.1 §4.4). Run returns an error wrapping ErrStorage and the
//     process should exit non-zero, so that an operator (or a supervisor
//     restarting it) notices rather than a backend that silently drops.
//     Other messages' handlers that are inserting at that moment finish;
//     what they stored is stored, what they could not is not acknowledged.
//
// A residual window: paho's Disconnect gives up waiting after its quiesce
// time (250 ms) while its writer may still be alive; an acknowledgement
// queued in that window can still be written. It needs a writer stuck for
// that long on a live connection.
type Listener struct {
	// MQTT configures the connection. ClientID must be stable across
	// restarts and unique per listener instance: the broker keeps the
	// session (subscription and queued messages) under it.
	// PersistentSession is forced on; StatusTopic should stay empty.
	MQTT  mqtt.Options
	Store *Store
	// Prefix is the topic tree's prefix (DefaultPrefix when empty).
	Prefix string
	// Group is the shared-subscription group: listeners with the same
	// Group split the events between them ($share/<Group>/…). Empty
	// subscribes without $share: every such listener gets every event.
	Group string
	// Now stamps received_at; nil uses time.Now.
	Now func() time.Time
	// Log receives rejections and failures (never payloads); nil discards.
	Log *slog.Logger
	// OnStored, if set, is called after each new event is stored (not
	// for duplicates), from the message's goroutine, possibly
	// concurrently.
	OnStored func(Row)
	// OnListening, if set, is called once Run has subscribed: from then on
	// the broker keeps the events for this client id even while the
	// connection is re-established.
	OnListening func()

	// beforeSubscribe, if set, runs between connecting and subscribing
	// (tests widen the window in which queued messages arrive first).
	beforeSubscribe func()

	received, stored, duplicates, storageErrors atomic.Uint64
	rejMu                                       sync.Mutex
	rejected                                    map[string]uint64

	runOnce   atomic.Bool
	mu        sync.Mutex
	client    *mqtt.Client
	stopping  bool
	inflight  sync.WaitGroup
	stopOnce  sync.Once
	closed    chan struct{} // closed once the client is closed
	failed    chan struct{} // closed on the first storage failure
	failOnce  sync.Once
	fatal     error
	insertCtx context.Context
}

// Stats are a Listener's counters.
type Stats struct {
	Received      uint64            // messages handled
	Stored        uint64            // new events stored
	Duplicates    uint64            // events already stored (re-deliveries)
	Rejected      map[string]uint64 // by Reject… reason
	StorageErrors uint64            // inserts that failed (each stops the listener)
}

// Stats returns a snapshot of the counters.
func (l *Listener) Stats() Stats {
	l.rejMu.Lock()
	rej := maps.Clone(l.rejected)
	l.rejMu.Unlock()
	if rej == nil {
		rej = map[string]uint64{}
	}
	return Stats{Received: l.received.Load(), Stored: l.stored.Load(), Duplicates: l.duplicates.Load(),
		Rejected: rej, StorageErrors: l.storageErrors.Load()}
}

// Filter is the subscription: topics.Shared(Group, topics.EventsFilter(Prefix)),
// or the plain filter when Group is empty.
func (l *Listener) Filter() string {
	prefix := l.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	f := topics.EventsFilter(prefix)
	if l.Group == "" {
		return f
	}
	return topics.Shared(l.Group, f)
}

// Run connects (retrying until ctx ends, like mqtt.Connect), subscribes with
// QoS 1 and stores events until ctx ends (it then returns nil) or an event
// cannot be stored (an error wrapping ErrStorage). Either way it closes the
// connection and waits for the handlers in progress before returning; the
// caller closes the Store afterwards. The broker keeps what arrives while
// no listener with this client id is connected.
func (l *Listener) Run(ctx context.Context) error {
	if !l.runOnce.CompareAndSwap(false, true) {
		return errors.New("backend: Listener.Run called twice")
	}
	if l.Store == nil {
		return errors.New("backend: Listener.Store is nil")
	}
	if l.Prefix != "" {
		if _, err := topics.New(l.Prefix, "x"); err != nil {
			return fmt.Errorf("backend: %w", err)
		}
	}
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	l.closed = make(chan struct{})
	l.failed = make(chan struct{})
	// An insert that started finishes even when ctx ends: cutting it
	// short would turn a shutdown into a storage error.
	l.insertCtx = context.WithoutCancel(ctx)

	opts := l.MQTT
	opts.PersistentSession = true
	c, err := mqtt.Connect(ctx, opts)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	l.mu.Lock()
	l.client = c
	l.mu.Unlock()

	if l.beforeSubscribe != nil {
		l.beforeSubscribe()
	}
	filter := l.Filter()
	if err := c.Subscribe(ctx, filter, 1, l.handle); err != nil && !errors.Is(err, mqtt.ErrNotConnected) {
		// ErrNotConnected: registered, re-sent on reconnect; anything else
		// (refused, ctx) is fatal.
		l.stop()
		l.inflight.Wait()
		return fmt.Errorf("backend: %w", err)
	}
	l.resync(ctx, opts)
	l.Log.Info("backend: listening", "filter", filter, "client_id", opts.ClientID)
	if l.OnListening != nil {
		l.OnListening()
	}

	select {
	case <-ctx.Done():
	case <-l.failed:
	}
	l.stop()
	l.inflight.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

// resync makes the broker re-send what it delivered before our handler
// existed. A persistent session's queued messages arrive right after
// CONNACK (MQTT 3.1.1 §4.4), before mqtt.Connect has returned and Subscribe
// has registered the handler; paho drops a message without a handler
// unacknowledged, and with Mosquitto's in-flight window (max_inflight_messages,
// 20 by default) full of those, nothing more is delivered on this
// connection. Connecting a second client with the same client id makes
// the broker disconnect the first ("If the ClientId represents a Client
// already connected to the Server then the Server MUST disconnect the
// existing Client", MQTT 3.1.1 §3.1.4); closing it at once leaves the
// session to the first client, which reconnects by itself with its
// handler in place and is sent every unacknowledged message again.
// TestQueuedBeforeSubscribeIsResent shows the stall without this.
//
// TODO: remove once gateway/mqtt can register handlers before CONNECT
// (paho's AddRoute); then the first connection needs no kick.
func (l *Listener) resync(ctx context.Context, opts mqtt.Options) {
	opts.StatusTopic = ""
	k, err := mqtt.Connect(ctx, opts)
	if err != nil {
		l.Log.Warn("backend: session resync failed; messages queued before the subscription may wait for the next reconnect", "err", err)
		return
	}
	k.Close()
}

// handle runs for each message on its own goroutine; the PUBACK follows
// its return.
func (l *Listener) handle(topic string, payload []byte) {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		<-l.closed // return only once the connection is gone: no PUBACK
		return
	}
	l.inflight.Add(1)
	l.mu.Unlock()
	defer l.inflight.Done()

	l.received.Add(1)
	ev, err := DecodeEvent(topic, payload)
	if err != nil {
		var de *DecodeError
		reason := RejectJSON
		if errors.As(err, &de) {
			reason = de.Reason
		}
		l.reject(reason)
		l.Log.Warn("backend: message rejected", "topic", topic, "reason", reason, "err", err)
		return
	}
	ev.ReceivedAt = l.Now()
	inserted, err := l.Store.Insert(l.insertCtx, ev)
	switch {
	case errors.Is(err, ErrIDConflict):
		l.reject(RejectIDConflict)
		l.Log.Warn("backend: message rejected", "topic", topic, "reason", RejectIDConflict, "event_id", ev.EventID)
	case err != nil:
		l.storageErrors.Add(1)
		l.Log.Error("backend: event not stored; closing the connection so the broker keeps it", "topic", topic, "event_id", ev.EventID, "err", err)
		l.fail(err)
		l.stop() // before returning: the PUBACK must not go out
	case inserted:
		l.stored.Add(1)
		if l.OnStored != nil {
			l.OnStored(Row{EventID: ev.EventID, DeviceID: ev.DeviceID, Time: ev.Time, Outcome: ev.Outcome,
				Reason: ev.Reason, Profile: ev.Profile, Schema: ev.Schema, Topic: ev.Topic,
				ReceivedAt: ev.ReceivedAt, Payload: ev.Payload})
		}
	default:
		l.duplicates.Add(1)
		l.Log.Debug("backend: duplicate event", "topic", topic, "event_id", ev.EventID)
	}
}

func (l *Listener) reject(reason string) {
	l.rejMu.Lock()
	defer l.rejMu.Unlock()
	if l.rejected == nil {
		l.rejected = make(map[string]uint64)
	}
	l.rejected[reason]++
}

func (l *Listener) fail(err error) {
	l.failOnce.Do(func() {
		l.mu.Lock()
		l.fatal = fmt.Errorf("backend: stopped consuming: %w", err)
		l.mu.Unlock()
		close(l.failed)
	})
}

// stop closes the connection once; every caller returns after it is
// closed. Handlers starting after this wait for it and store nothing.
func (l *Listener) stop() {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.stopping = true
		c := l.client
		l.mu.Unlock()
		if c != nil {
			c.Close()
		}
		close(l.closed)
	})
	<-l.closed
}
