package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/outbox"
	"github.com/kazashi/kazashi/gateway/topics"
)

const waitLong = 10 * time.Second

var seq atomic.Int64

func testLogger(t testing.TB) *slog.Logger { return mqtttest.Logger(t) }

func mqttOpts(t testing.TB, broker string) mqtt.Options {
	return mqtt.Options{Broker: broker, ClientID: fmt.Sprintf("kz-uplink-%d", seq.Add(1)),
		KeepAlive: 2 * time.Second, ConnectTimeout: time.Second, MaxReconnectInterval: 300 * time.Millisecond,
		Logger: testLogger(t)}
}

// watcher records every message under a filter, latest per topic too.
type watcher struct {
	mu     sync.Mutex
	msgs   []msg
	latest map[string][]byte
	notify chan struct{}
}

type msg struct {
	topic   string
	payload []byte
}

func watch(t *testing.T, broker, filter string) *watcher {
	t.Helper()
	w := &watcher{latest: map[string][]byte{}, notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqttOpts(t, broker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Subscribe(ctx, filter, 1, func(topic string, p []byte) {
		w.mu.Lock()
		w.msgs = append(w.msgs, msg{topic, append([]byte(nil), p...)})
		// Handlers run on their own goroutines in no order: a document
		// older (by its "time") than the one kept does not replace it.
		if !olderThan(p, w.latest[topic]) {
			w.latest[topic] = append([]byte(nil), p...)
		}
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

// olderThan reports whether document a carries a "time" before b's.
func olderThan(a, b []byte) bool {
	var ta, tb struct {
		Time time.Time `json:"time"`
	}
	if b == nil || json.Unmarshal(a, &ta) != nil || json.Unmarshal(b, &tb) != nil || ta.Time.IsZero() || tb.Time.IsZero() {
		return false
	}
	return ta.Time.Before(tb.Time)
}

// until waits until cond (called under the lock) holds.
func (w *watcher) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-w.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func newOutbox(t *testing.T, o outbox.Options) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

func start(t *testing.T, cfg Config) *Uplink {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	u, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

var tree = topics.Tree{Prefix: "kazashi", Device: "kiosk-1"}

// TestRecordPresenceTelemetry: recorded events reach the events topic; the retained status says online with the firmware and the
// configuration digest, and offline ("shutdown") after Close; telemetry
// reports the outbox.
func TestRecordPresenceTelemetry(t *testing.T) {
	m := mqtttest.StartMosquitto(t)
	w := watch(t, m.URL(), "kazashi/kiosk-1/#")
	ob := newOutbox(t, outbox.Options{})
	u := start(t, Config{Tree: tree, MQTT: mqttOpts(t, m.URL()), Outbox: ob, Firmware: "v1.2.3",
		ConfigSHA256: "abc123", TelemetryInterval: 200 * time.Millisecond})
	for i := range 20 {
		if err := u.Record(context.Background(), fmt.Sprintf("ev-%02d", i), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	w.until(t, "20 events", func() bool {
		n := 0
		for _, m := range w.msgs {
			if m.topic == tree.Events() {
				n++
			}
		}
		return n >= 20
	})
	w.mu.Lock()
	// (Order is the deliverer's test: this subscriber's handlers run on
	// goroutines of their own.)
	got := map[string]bool{}
	for _, m := range w.msgs {
		if m.topic == tree.Events() {
			got[string(m.payload)] = true
		}
	}
	for i := range 20 {
		if !got[fmt.Sprintf(`{"n":%d}`, i)] {
			t.Fatalf("event %d missing", i)
		}
	}
	var st mqtt.Status
	if err := json.Unmarshal(w.latest[tree.Status()], &st); err != nil {
		t.Fatal(err)
	}
	w.mu.Unlock()
	if want := (mqtt.Status{Schema: mqtt.StatusSchema, Online: true, Device: "kiosk-1", Firmware: "v1.2.3", ConfigSHA256: "abc123"}); st != want {
		t.Fatalf("status %+v, want %+v", st, want)
	}
	w.until(t, "telemetry with an empty outbox", func() bool {
		var tm Telemetry
		if json.Unmarshal(w.latest[tree.Telemetry()], &tm) != nil {
			return false
		}
		return tm.Schema == TelemetrySchema && tm.Device == "kiosk-1" && tm.Firmware == "v1.2.3" && tm.Outbox.Depth == 0 && tm.Outbox.OldestAgeS == nil && tm.Outbox.Delivered == 20
	})
	var h Health
	w.mu.Lock()
	err := json.Unmarshal(w.latest[tree.Health()], &h)
	w.mu.Unlock()
	if err != nil || !h.OK || len(h.Alarms) != 0 || h.Schema != HealthSchema {
		t.Fatalf("health %+v (%v)", h, err)
	}
	u.Close()
	w.until(t, "offline status", func() bool {
		var st mqtt.Status
		return json.Unmarshal(w.latest[tree.Status()], &st) == nil && !st.Online && st.Reason == mqtt.ReasonShutdown && st.Firmware == "v1.2.3"
	})
}

// TestOutboxFullAlarm: a full outbox refuses the event with ErrFull and
// the retained health carries the outbox-full alarm; once the broker took
// the backlog the alarm clears.
func TestOutboxFullAlarm(t *testing.T) {
	m := mqtttest.StartMosquitto(t)
	w := watch(t, m.URL(), "kazashi/kiosk-1/#")
	proxy := mqtttest.StartProxy(t, m.Addr())
	ob := newOutbox(t, outbox.Options{MaxMessages: 3})
	// The uplink first reaches the broker through a proxy that drops every
	// byte, so nothing is delivered and the outbox fills.
	proxy.Blackhole(true)
	u := start(t, Config{Tree: tree, MQTT: mqttOpts(t, proxy.URL()), Outbox: ob, TelemetryInterval: -1})
	for i := range 3 {
		if err := u.Record(context.Background(), fmt.Sprintf("ev-%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	err := u.Record(context.Background(), "ev-3", []byte(`{}`))
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("4th Record = %v, want ErrFull", err)
	}
	h := u.Health()
	if h.OK || len(h.Alarms) != 1 || h.Alarms[0].Code != AlarmOutboxFull || h.Alarms[0].Count != 3 {
		t.Fatalf("health %+v", h)
	}
	proxy.Blackhole(false)
	proxy.Cut() // the client reconnects through the healed route
	w.until(t, "the 3 events and a health document without alarms", func() bool {
		n := 0
		for _, m := range w.msgs {
			if m.topic == tree.Events() {
				n++
			}
		}
		var h Health
		return n >= 3 && json.Unmarshal(w.latest[tree.Health()], &h) == nil && h.OK
	})
	if err := u.Record(context.Background(), "ev-4", []byte(`{}`)); err != nil {
		t.Fatalf("Record after the backlog left: %v", err)
	}
}

// TestStorageAlarm: an outbox that cannot write raises storage-failed and
// Record fails with ErrStorage. (The daemon's disk-full test shows the
// alarm clearing once space returns.)
func TestStorageAlarm(t *testing.T) {
	m := mqtttest.StartMosquitto(t)
	ob := newOutbox(t, outbox.Options{})
	u := start(t, Config{Tree: tree, MQTT: mqttOpts(t, m.URL()), Outbox: ob, TelemetryInterval: -1})
	ob.Close() // every write now fails in bbolt
	err := u.Record(context.Background(), "ev-1", []byte(`{}`))
	if !errors.Is(err, outbox.ErrStorage) {
		t.Fatalf("Record on a closed outbox = %v, want ErrStorage", err)
	}
	h := u.Health()
	found := false
	for _, a := range h.Alarms {
		found = found || (a.Code == AlarmStorage && a.Count == 1)
	}
	if h.OK || !found {
		t.Fatalf("health %+v", h)
	}
}

// TestCloseWithinGrace: whatever the broker does — here, a route that
// swallows every byte while events are queued and a publish is in flight —
// Close returns within the grace period.
func TestCloseWithinGrace(t *testing.T) {
	for _, grace := range []time.Duration{300 * time.Millisecond, time.Second} {
		t.Run(grace.String(), func(t *testing.T) {
			m := mqtttest.StartMosquitto(t)
			proxy := mqtttest.StartProxy(t, m.Addr())
			ob := newOutbox(t, outbox.Options{})
			u := start(t, Config{Tree: tree, MQTT: mqttOpts(t, proxy.URL()), Outbox: ob, Grace: grace, TelemetryInterval: -1})
			deadline := time.Now().Add(waitLong)
			for !u.Connected() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !u.Connected() {
				t.Fatal("not connected")
			}
			proxy.Blackhole(true)
			for i := range 50 {
				if err := u.Record(context.Background(), fmt.Sprintf("ev-%d", i), []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond) // a publish is in flight
			t0 := time.Now()
			u.Close()
			// The bound is the contract; the slack covers scheduling only.
			if el := time.Since(t0); el > grace+250*time.Millisecond {
				t.Fatalf("Close took %v with a grace of %v", el, grace)
			}
			if st, err := ob.Stats(); err != nil || st.Depth != 50 {
				t.Fatalf("outbox after Close: %+v %v; want the 50 events kept", st, err)
			}
		})
	}
}
