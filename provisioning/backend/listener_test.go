package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/topics"
)

// waitLong bounds every wait for a broker-side effect; on loopback they
// take milliseconds, so reaching it means a bug.
const waitLong = 20 * time.Second

var clientSeq atomic.Int64

// testLogger collects a log and prints it only if the test fails.
func testLogger(t testing.TB) (*slog.Logger, *mqtttest.Buffer) {
	buf := new(mqtttest.Buffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// mqttOptions has fast timers so reconnects heal quickly.
func mqttOptions(t testing.TB, broker, clientID string) mqtt.Options {
	log, _ := testLogger(t)
	return mqtt.Options{Broker: broker, ClientID: clientID, KeepAlive: 5 * time.Second,
		ConnectTimeout: 2 * time.Second, MaxReconnectInterval: 300 * time.Millisecond, Logger: log}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLong)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// running is a Listener whose Run goroutine the test controls.
type running struct {
	l    *Listener
	done chan error
	stop context.CancelFunc
	ids  sync.Map // event ids this listener stored
}

// start runs l (filling MQTT options, logger and clock) and waits until it
// has subscribed. The test ends it with stopRun, or Cleanup does.
func start(t *testing.T, l *Listener, broker, clientID string) *running {
	t.Helper()
	r := &running{l: l, done: make(chan error, 1)}
	l.MQTT = mqttOptions(t, broker, clientID)
	if l.Log == nil {
		l.Log, _ = testLogger(t)
	}
	l.Now = func() time.Time { return evTime }
	listening := make(chan struct{})
	l.OnListening = func() { close(listening) }
	l.OnStored = func(row Row) { r.ids.Store(row.EventID, true) }
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done; r.done <- nil })
	select {
	case <-listening:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run: %v", err)
	case <-time.After(waitLong):
		t.Fatal("listener not subscribed")
	}
	return r
}

// stopRun ends Run and returns its result.
func (r *running) stopRun(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(waitLong):
		t.Fatal("Run did not return")
		return nil
	}
}

// kiosk is a device-side client publishing as device.
type kiosk struct {
	c    *mqtt.Client
	tree topics.Tree
}

func newKiosk(t *testing.T, broker, device string) *kiosk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqttOptions(t, broker, fmt.Sprintf("%s-%d", device, clientSeq.Add(1))))
	if err != nil {
		t.Fatalf("device connect: %v", err)
	}
	t.Cleanup(c.Close)
	tree, err := topics.New("kazashi", device)
	if err != nil {
		t.Fatal(err)
	}
	return &kiosk{c: c, tree: tree}
}

// publish sends payload on topic with QoS 1, retrying while the client
// reconnects, as the daemon's outbox does: when it returns the broker has
// the message.
func (k *kiosk) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := k.c.Publish(ctx, topic, payload, 1, false)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // retry interval while reconnecting
	}
}

func (k *kiosk) event(t *testing.T, id string) {
	t.Helper()
	k.publish(t, k.tree.Events(), mustJSON(t, tapEvent(k.tree.Device, id, evTime, "ok")))
}

func count(t *testing.T, s *Store) int {
	t.Helper()
	n, err := s.Count(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// (a) The same event published twice, and re-sent after both ends
// reconnected, is stored once.
func TestStoredOnceAcrossRedelivery(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	proxy := mqtttest.StartProxy(t, m.Addr())
	store := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	r := start(t, &Listener{Store: store, Group: DefaultGroup}, proxy.URL(), "backend-a")
	k := newKiosk(t, proxy.URL(), "kiosk-01")

	k.event(t, "e-1")
	k.event(t, "e-1")
	// Received counts a message when its handler starts; Stored and
	// Duplicates when it has been dealt with.
	eventually(t, "second copy dealt with", func() bool { s := r.l.Stats(); return s.Stored+s.Duplicates >= 2 })
	if s := r.l.Stats(); s.Stored != 1 || s.Duplicates < 1 {
		t.Fatalf("after two copies: %+v, want stored 1 and a duplicate", s)
	}

	proxy.Cut() // both the listener and the kiosk lose their connections
	k.event(t, "e-2")
	k.event(t, "e-1") // the kiosk re-sends after its reconnect
	eventually(t, "e-2 and the third copy", func() bool {
		s := r.l.Stats()
		return s.Stored == 2 && s.Duplicates >= 2
	})
	if n := count(t, store); n != 2 {
		t.Fatalf("store holds %d events, want 2", n)
	}
	if err := r.stopRun(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := r.l.Stats(); s.Stored != 2 || len(s.Rejected) != 0 || s.StorageErrors != 0 {
		t.Errorf("final stats %+v", s)
	}
}

// (b) Two listeners in one share group split the events: each gets some,
// together all, none twice. They write one SQLite file (README: growing past one backend).
func TestShareGroupSplitsLoad(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	db := filepath.Join(t.TempDir(), "events.db")
	s1, s2 := openStore(t, db), openStore(t, db)
	r1 := start(t, &Listener{Store: s1, Group: "split"}, m.URL(), "backend-b1")
	r2 := start(t, &Listener{Store: s2, Group: "split"}, m.URL(), "backend-b2")
	k := newKiosk(t, m.URL(), "kiosk-01")

	const n = 200
	for i := range n {
		k.event(t, fmt.Sprintf("e-%03d", i))
	}
	eventually(t, "all events stored", func() bool { return r1.l.Stats().Stored+r2.l.Stats().Stored == n })
	st1, st2 := r1.l.Stats(), r2.l.Stats()
	t.Logf("backend-b1 stored %d, backend-b2 stored %d (duplicates %d, %d)", st1.Stored, st2.Stored, st1.Duplicates, st2.Duplicates)
	if st1.Stored == 0 || st2.Stored == 0 {
		t.Errorf("one listener got nothing: %d / %d", st1.Stored, st2.Stored)
	}
	for i := range n {
		id := fmt.Sprintf("e-%03d", i)
		_, in1 := r1.ids.Load(id)
		_, in2 := r2.ids.Load(id)
		if in1 == in2 {
			t.Errorf("%s stored by listener 1: %v, by listener 2: %v", id, in1, in2)
		}
	}
	if got := count(t, s1); got != n {
		t.Errorf("store holds %d events, want %d", got, n)
	}
}

// persistentConf is mqtttest.PersistentConf able to write its database
// when the tests run as root: mosquitto started as root switches to the
// user "mosquitto" (mosquitto.conf(5), user), which cannot write in the
// test's 0700 directory; "user root" keeps it as it was started, and is
// ignored when not started as root.
func persistentConf(port int, dir string) string {
	return mqtttest.PersistentConf(port, dir) + "user root\n"
}

// (c) Events published while the listener is down, across a broker
// restart, all arrive when it comes back with the same client id.
func TestQueuedWhileOfflineSurviveBrokerRestart(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquittoConf(t, persistentConf)
	db := filepath.Join(t.TempDir(), "events.db")
	store := openStore(t, db)
	r := start(t, &Listener{Store: store}, m.URL(), "backend-c") // creates the session
	if err := r.stopRun(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	k := newKiosk(t, m.URL(), "kiosk-01")
	const n = 50
	for i := range n {
		k.event(t, fmt.Sprintf("offline-%02d", i)) // acknowledged by the broker
	}
	m.Restart() // mosquitto saves its database on SIGTERM and loads it again

	r = start(t, &Listener{Store: store}, m.URL(), "backend-c")
	eventually(t, "queued events stored", func() bool { return r.l.Stats().Stored == n })
	if got := count(t, store); got != n {
		t.Errorf("store holds %d events, want %d", got, n)
	}
}

// The broker delivers a persistent session's queue right after CONNACK,
// before Subscribe has registered the handler; paho leaves such messages
// unacknowledged and the session stalls. Run's resync makes the broker
// send them again. The window is widened here until the broker has
// written them to the connection (its debug log says so).
func TestQueuedBeforeSubscribeIsResent(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquittoConf(t, func(port int, dir string) string {
		return mqtttest.AnonymousConf(port, dir) + "log_type all\n"
	})
	store := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	r := start(t, &Listener{Store: store}, m.URL(), "backend-r")
	if err := r.stopRun(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	k := newKiosk(t, m.URL(), "kiosk-01")
	const n = 30 // more than Mosquitto's in-flight window (20)
	for i := range n {
		k.event(t, fmt.Sprintf("q-%02d", i))
	}
	sent := strings.Count(m.Log(), "Sending PUBLISH to backend-r")
	l := &Listener{Store: store, beforeSubscribe: func() { // on Run's goroutine: no t.Fatal
		for deadline := time.Now().Add(waitLong); strings.Count(m.Log(), "Sending PUBLISH to backend-r") == sent; {
			if time.Now().After(deadline) {
				t.Error("broker did not send the queue")
				return
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	}}
	r = start(t, l, m.URL(), "backend-r")
	eventually(t, "queued events stored", func() bool { return r.l.Stats().Stored == n })
}

// (d) A device cannot speak for another: an event whose device_id is not
// its topic's device is rejected, counted and not stored; the log names
// the reason, never the payload.
func TestDeviceCannotSpeakForAnother(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	store := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	log, logBuf := testLogger(t)
	r := start(t, &Listener{Store: store, Log: log}, m.URL(), "backend-d")
	a := newKiosk(t, m.URL(), "kiosk-a")
	b, err := topics.New("kazashi", "kiosk-b")
	if err != nil {
		t.Fatal(err)
	}

	// Under B's topic, claiming to be A (a broker without the ACL let it in).
	a.publish(t, b.Events(), mustJSON(t, tapEvent("kiosk-a", "forged-1", evTime, "ok")))
	// Under its own topic, claiming to be B.
	a.publish(t, a.tree.Events(), mustJSON(t, tapEvent("kiosk-b", "forged-2", evTime, "ok")))
	// Not JSON at all.
	a.publish(t, a.tree.Events(), []byte("card "+secretCardID))
	a.event(t, "honest-1")

	eventually(t, "four messages dealt with", func() bool {
		s := r.l.Stats()
		n := s.Stored + s.Duplicates
		for _, c := range s.Rejected {
			n += c
		}
		return n == 4
	})
	s := r.l.Stats()
	if s.Stored != 1 || s.Rejected[RejectDeviceMismatch] != 2 || s.Rejected[RejectJSON] != 1 || len(s.Rejected) != 2 {
		t.Errorf("stats %+v, want 1 stored, 2 device-mismatch, 1 json", s)
	}
	rows, err := store.Query(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].EventID != "honest-1" || rows[0].DeviceID != "kiosk-a" {
		t.Errorf("stored %+v, want only honest-1 from kiosk-a", rows)
	}
	logText := logBuf.String()
	if strings.Count(logText, "reason="+RejectDeviceMismatch) != 2 {
		t.Errorf("log does not report both mismatches:\n%s", logText)
	}
	if strings.Contains(logText, secretCardID) {
		t.Errorf("log holds payload content:\n%s", logText)
	}
}

// A storage failure stops consumption without acknowledging: Run returns
// ErrStorage, and the event, not stored, is delivered again to the next
// listener with the same client id.
func TestStorageFailureStopsConsuming(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	db := filepath.Join(t.TempDir(), "events.db")
	ctx := context.Background()
	s := openStore(t, db)
	var pages int
	if err := s.db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A database that may not grow: the disk is "full" for any insert that
	// needs a page (SQLITE_FULL).
	full, err := open(ctx, db, []string{fmt.Sprintf("max_page_count(%d)", pages)})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()

	log, logBuf := testLogger(t)
	r := start(t, &Listener{Store: full, Log: log}, m.URL(), "backend-f")
	k := newKiosk(t, m.URL(), "kiosk-01")
	// Large enough to need new pages whatever is free.
	big := mustJSON(t, map[string]any{"schema": "kazashi.tap/v2", "event_id": "big-1", "device_id": "kiosk-01",
		"time": evTime.Format(time.RFC3339Nano), "outcome": "accepted", "reason": "ok", "card_id": secretCardID,
		"pad": strings.Repeat("p", 40<<10)})
	k.publish(t, k.tree.Events(), big)

	var runErr error
	select {
	case runErr = <-r.done:
		r.done <- runErr
	case <-time.After(waitLong):
		t.Fatal("Run did not stop after the storage failure")
	}
	if !errors.Is(runErr, ErrStorage) {
		t.Fatalf("Run = %v, want ErrStorage", runErr)
	}
	if st := r.l.Stats(); st.StorageErrors != 1 || st.Stored != 0 {
		t.Errorf("stats %+v", st)
	}
	if strings.Contains(logBuf.String(), secretCardID) || strings.Contains(runErr.Error(), secretCardID) {
		t.Error("storage failure report holds payload content")
	}
	full.Close()

	// Space is back: the broker still has the event for this client id.
	s = openStore(t, db)
	if n := count(t, s); n != 0 {
		t.Fatalf("store holds %d events after the failure, want 0", n)
	}
	r = start(t, &Listener{Store: s}, m.URL(), "backend-f")
	eventually(t, "the unacknowledged event re-delivered", func() bool { return r.l.Stats().Stored == 1 })
	rows, err := s.Query(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].EventID != "big-1" || len(rows[0].Payload) != len(big) {
		t.Errorf("stored %d rows, want big-1 complete", len(rows))
	}
}
