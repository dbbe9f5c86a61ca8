// Package uplink is the kiosk's link to its backend: it records events in
// the durable outbox, keeps a connection to the broker (reconnecting with
// the project's back-off), has the outbox delivered in order, and publishes
// the device's presence (retained online/offline with the firmware version
// and configuration digest, last will offline), its health (retained
// alarms) and periodic telemetry. firmware/cmd/kazashid only composes it.
//
// Shutdown is bounded: Close returns within the configured grace period
// whatever the broker does (a broker that accepts TCP and never answers, a
// PUBACK that never comes). What could not be sent stays in the outbox for
// the next start.
package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kazashi/kazashi/gateway/backoff"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/outbox"
	"github.com/kazashi/kazashi/gateway/topics"
)

// Config composes an Uplink.
type Config struct {
	Tree topics.Tree
	// MQTT are the client options; StatusTopic and StatusInfo are set by
	// the uplink from Tree, Firmware and ConfigSHA256.
	MQTT   mqtt.Options
	Outbox *outbox.Outbox
	// Deliverer, if set, is used (its Outbox, Log and Allowed are filled
	// in); otherwise a default one.
	Deliverer *outbox.Deliverer
	// Firmware and ConfigSHA256 go into the online status and telemetry.
	Firmware, ConfigSHA256 string
	// Grace bounds Close (default 3 s): the outbox is drained for most of
	// it, then the offline status is sent and the connection closed.
	Grace time.Duration
	// TelemetryInterval (default 60 s; negative: none).
	TelemetryInterval time.Duration
	// Now is the system clock (uptime, alarm times; default time.Now).
	Now func() time.Time
	// Clock is the trusted clock for document times (time, believed);
	// default Now, believed.
	Clock func() (time.Time, bool)
	// RevocationAge, if set, goes into telemetry.
	RevocationAge func(now time.Time) (time.Duration, bool)
	// Reader, if set, reports the NFC frontend's health for telemetry and
	// the reader-fault alarm.
	Reader func() ReaderHealth
	Log    *slog.Logger
}

// Uplink is safe for concurrent use.
type Uplink struct {
	cfg     Config
	log     *slog.Logger
	deliver *outbox.Deliverer
	started time.Time

	life     context.Context
	stopLife context.CancelFunc
	done     chan struct{} // the connect/health/telemetry loop ended
	delivery chan struct{} // the deliverer ended
	stopDel  context.CancelFunc

	mu        sync.Mutex
	client    *mqtt.Client
	storage   *Alarm // the last Enqueue failed for storage
	full      *Alarm
	quar      *Alarm
	broker    *Alarm
	reader    *Alarm
	published []byte // last health document body published (without time)
	wake      chan struct{}
	closeOnce sync.Once
}

// Start checks the configuration and starts connecting; it does not wait
// for the broker.
func Start(cfg Config) (*Uplink, error) {
	if cfg.Outbox == nil {
		return nil, errors.New("uplink: no outbox")
	}
	if _, err := topics.New(cfg.Tree.Prefix, cfg.Tree.Device); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 3 * time.Second
	}
	if cfg.TelemetryInterval == 0 {
		cfg.TelemetryInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = func() (time.Time, bool) { return cfg.Now(), true }
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.MQTT.StatusTopic = cfg.Tree.Status()
	cfg.MQTT.StatusInfo = mqtt.Status{Device: cfg.Tree.Device, Firmware: cfg.Firmware, ConfigSHA256: cfg.ConfigSHA256}
	if cfg.MQTT.Logger == nil {
		cfg.MQTT.Logger = log.With("component", "mqtt")
	}
	d := cfg.Deliverer
	if d == nil {
		d = &outbox.Deliverer{}
	}
	d.Outbox = cfg.Outbox
	if d.Log == nil {
		d.Log = log.With("component", "outbox")
	}
	if d.Allowed == nil {
		// The shipped ACL (deploy/mosquitto/acl) lets a device write only
		// under its own tree; anything else would be PUBACKed and dropped.
		d.Allowed = cfg.Tree.Owns
	}
	u := &Uplink{cfg: cfg, log: log, deliver: d, started: cfg.Now(),
		done: make(chan struct{}), delivery: make(chan struct{}), wake: make(chan struct{}, 1)}
	// A quarantine shows in the health document at once, not at the next
	// periodic look.
	onQ := d.OnQuarantine
	d.OnQuarantine = func(m outbox.Message, reason string) {
		if onQ != nil {
			onQ(m, reason)
		}
		u.kick()
	}
	u.life, u.stopLife = context.WithCancel(context.Background())
	var dctx context.Context
	dctx, u.stopDel = context.WithCancel(context.Background())
	go func() { _ = d.Run(dctx); close(u.delivery) }()
	go u.loop()
	return u, nil
}

// Record puts an event on disk for delivery to the events topic: when it
// returns nil the event survives a crash and will reach the broker. It
// fails with outbox.ErrFull or outbox.ErrStorage (raising the alarm); the
// caller must then not show the tap as done.
func (u *Uplink) Record(ctx context.Context, id string, payload []byte) error {
	_, err := u.cfg.Outbox.Enqueue(ctx, id, u.cfg.Tree.Events(), payload)
	now := u.cfg.Now()
	u.mu.Lock()
	switch {
	case err == nil:
		u.storage = nil
	case errors.Is(err, outbox.ErrStorage):
		if u.storage == nil {
			u.storage = &Alarm{Code: AlarmStorage, Since: now}
		}
		u.storage.Message = "Events cannot be saved on this kiosk (disk full or failing); taps are refused until it is fixed (this alarm clears when the next tap is saved): " + err.Error()
		u.storage.Count++
	}
	u.mu.Unlock()
	if err != nil {
		u.log.Error("event not recorded", "event_id", id, "err", err)
		u.kick()
		return err
	}
	u.deliver.Notify()
	return nil
}

// Publish sends a document directly (not through the outbox), for state
// that the next document replaces (status/revocation). It fails at once
// when not connected.
func (u *Uplink) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	u.mu.Lock()
	c := u.client
	u.mu.Unlock()
	if c == nil {
		return mqtt.ErrNotConnected
	}
	return c.Publish(ctx, topic, payload, 1, retained)
}

// Connected reports whether the broker connection is up.
func (u *Uplink) Connected() bool {
	u.mu.Lock()
	c := u.client
	u.mu.Unlock()
	return c != nil && c.Connected()
}

// Health returns the current health document.
func (u *Uplink) Health() Health {
	u.refresh()
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.healthLocked()
}

func (u *Uplink) healthLocked() Health {
	t, _ := u.cfg.Clock()
	h := Health{Schema: HealthSchema, Device: u.cfg.Tree.Device, Time: t.UTC(), Alarms: []Alarm{}}
	for _, a := range []*Alarm{u.storage, u.full, u.quar, u.broker, u.reader} {
		if a != nil {
			h.Alarms = append(h.Alarms, *a)
		}
	}
	h.OK = len(h.Alarms) == 0
	return h
}

// refresh updates the alarms that come from the outbox and the reader.
func (u *Uplink) refresh() {
	st, err := u.cfg.Outbox.Stats()
	var rh *ReaderHealth
	if u.cfg.Reader != nil {
		r := u.cfg.Reader()
		rh = &r
	}
	now := u.cfg.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if err == nil {
		u.full = setAlarm(u.full, st.Full, now, AlarmOutboxFull,
			fmt.Sprintf("The outbox is full (%d events, %d bytes queued): new taps are refused until the broker takes the backlog.", st.Depth, st.Bytes), st.Depth)
		u.quar = setAlarm(u.quar, st.Quarantined > 0, now, AlarmQuarantine,
			fmt.Sprintf("%d events were refused by the broker (or would be) and are kept aside in the quarantine; see the daemon log for why.", st.Quarantined), st.Quarantined)
	}
	if rh != nil {
		u.reader = setAlarm(u.reader, rh.State == "fault", now, AlarmReader, "The NFC reader is not working: taps are not possible.", rh.Resets)
	}
}

func setAlarm(a *Alarm, on bool, now time.Time, code, msg string, count int) *Alarm {
	if !on {
		return nil
	}
	if a == nil {
		a = &Alarm{Code: code, Since: now}
	}
	a.Message, a.Count = msg, count
	return a
}

func (u *Uplink) kick() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// brokerAlarmAfter: a disconnection shorter than this raises no alarm.
const brokerAlarmAfter = 30 * time.Second

// loop connects, then publishes health on change and telemetry on time,
// until Close.
func (u *Uplink) loop() {
	defer close(u.done)
	c := u.connect()
	if c == nil {
		return
	}
	u.mu.Lock()
	u.client = c
	u.mu.Unlock()
	u.deliver.Attach(c)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var tel <-chan time.Time
	if u.cfg.TelemetryInterval > 0 {
		t := time.NewTicker(u.cfg.TelemetryInterval)
		defer t.Stop()
		tel = t.C
	}
	var down time.Time
	wasUp := true
	u.publishHealth(true)
	u.publishTelemetry()
	for {
		select {
		case <-u.life.Done():
			return
		case <-u.wake:
		case <-tick.C:
		case <-tel:
			u.publishTelemetry()
		}
		now := u.cfg.Now()
		up := c.Connected()
		u.mu.Lock()
		switch {
		case up:
			down, u.broker = time.Time{}, nil
		case down.IsZero():
			down = now
		case now.Sub(down) >= brokerAlarmAfter && u.broker == nil:
			u.broker = &Alarm{Code: AlarmBroker, Since: down, Message: "The broker cannot be reached; events are kept in the outbox and sent when it returns."}
		}
		u.mu.Unlock()
		// After a reconnect the retained health is sent again: a broker
		// restarted without persistence has forgotten it.
		u.publishHealth(up && !wasUp)
		wasUp = up
	}
}

// connect connects until it succeeds or Close; a refused connection
// (certificate not accepted) is retried with back-off too: the broker's
// configuration may be fixed.
func (u *Uplink) connect() *mqtt.Client {
	retry := backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second}.New()
	for {
		c, err := mqtt.Connect(u.life, u.cfg.MQTT)
		if err == nil {
			u.log.Info("connected to the MQTT broker", "broker", u.cfg.MQTT.Broker)
			return c
		}
		if u.life.Err() != nil {
			return nil
		}
		u.log.Warn("MQTT broker not available, retrying", "err", err)
		if retry.Wait(u.life) != nil {
			return nil
		}
	}
}

// publishHealth publishes the health document when it changed (or force).
func (u *Uplink) publishHealth(force bool) {
	u.refresh()
	u.mu.Lock()
	h := u.healthLocked()
	c := u.client
	u.mu.Unlock()
	key, _ := json.Marshal(struct {
		OK     bool
		Alarms []Alarm
	}{h.OK, h.Alarms})
	u.mu.Lock()
	same := slices.Equal(key, u.published)
	u.mu.Unlock()
	if c == nil || (same && !force) || !c.Connected() {
		return
	}
	b, _ := json.Marshal(h)
	ctx, cancel := context.WithTimeout(u.life, 5*time.Second)
	defer cancel()
	if err := c.Publish(ctx, u.cfg.Tree.Health(), b, 1, true); err != nil {
		u.log.Warn("health status not published", "err", err)
		return
	}
	u.mu.Lock()
	u.published = key
	u.mu.Unlock()
}

// Telemetry returns the current telemetry document.
func (u *Uplink) Telemetry() Telemetry {
	now := u.cfg.Now()
	t, believed := u.cfg.Clock()
	tm := Telemetry{Schema: TelemetrySchema, Device: u.cfg.Tree.Device, Time: t.UTC(), Firmware: u.cfg.Firmware,
		UptimeS: int64(now.Sub(u.started) / time.Second), TimeSource: "system"}
	if !believed {
		tm.TimeSource = "trusted-bound"
	}
	if st, err := u.cfg.Outbox.Stats(); err == nil {
		tm.Outbox.Depth, tm.Outbox.Bytes, tm.Outbox.Quarantined, tm.Outbox.Full = st.Depth, st.Bytes, st.Quarantined, st.Full
		if !st.Oldest.IsZero() {
			a := int64(max(0, now.Sub(st.Oldest)) / time.Second)
			tm.Outbox.OldestAgeS = &a
		}
	}
	tm.Outbox.Delivered = u.deliver.Stats().Delivered
	if u.cfg.RevocationAge != nil {
		if age, ok := u.cfg.RevocationAge(t); ok {
			s := int64(age / time.Second)
			tm.RevocationAgeS = &s
		}
	}
	if u.cfg.Reader != nil {
		r := u.cfg.Reader()
		tm.Reader = &r
	}
	return tm
}

func (u *Uplink) publishTelemetry() {
	u.mu.Lock()
	c := u.client
	u.mu.Unlock()
	if c == nil || !c.Connected() {
		return
	}
	b, _ := json.Marshal(u.Telemetry())
	ctx, cancel := context.WithTimeout(u.life, 5*time.Second)
	defer cancel()
	if err := c.Publish(ctx, u.cfg.Tree.Telemetry(), b, 1, false); err != nil {
		u.log.Debug("telemetry not published", "err", err)
	}
}

// Close drains what can be sent quickly, stops delivery, publishes the
// offline status and disconnects, and returns within Config.Grace in any
// case. Queued events stay in the outbox (which the caller closes).
func (u *Uplink) Close() {
	u.closeOnce.Do(func() {
		deadline := time.Now().Add(u.cfg.Grace)
		// Most of the grace for the backlog, the rest for the offline
		// status and DISCONNECT.
		u.deliver.Drain(u.cfg.Grace * 6 / 10)
		u.stopDel()
		u.stopLife()
		wait(u.delivery, deadline)
		wait(u.done, deadline)
		u.mu.Lock()
		c := u.client
		u.mu.Unlock()
		if c != nil {
			closed := make(chan struct{})
			go func() { c.Close(); close(closed) }()
			if !wait(closed, deadline) {
				u.log.Warn("broker did not answer the offline status in time; closing anyway (the last will reports us offline)")
			}
		}
		if st, err := u.cfg.Outbox.Stats(); err == nil && st.Depth > 0 {
			u.log.Info("events kept in the outbox for the next start", "count", st.Depth)
		}
	})
}

// wait waits for ch until deadline; it reports whether ch was closed.
func wait(ch <-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}
