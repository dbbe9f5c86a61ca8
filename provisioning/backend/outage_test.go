package backend

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/outbox"
	"github.com/kazashi/kazashi/gateway/topics"
	"github.com/kazashi/kazashi/gateway/uplink"
)

// Acceptance (issue 7): the broker is stopped for 60 s while 1 000 taps are
// produced; after the restart the backend holds all 1 000 event ids exactly
// once.
//
// The kiosk side is the daemon's own composition below the tap pipeline:
// gateway/uplink recording each event in the durable outbox (what the
// daemon's tap sink calls; the tap counts as done when Record returns) and
// delivering it over gateway/mqtt. The backend is this package's Listener
// and SQLite store. The broker is a real Mosquitto with persistence, so the
// backend's session and the messages queued for it survive the stop.
// Taps start before the stop and keep coming through the outage, so some
// are in flight when the broker goes.
func TestBrokerOutage60s(t *testing.T) {
	const (
		taps   = 1000
		before = 100 // produced before the stop, with the broker up
		outage = 60 * time.Second
	)
	mosq := mqtttest.StartMosquittoConf(t, func(port int, dir string) string {
		return persistentConf(port, dir) + "max_queued_messages 100000\n"
	})
	store := openStore(t, filepath.Join(t.TempDir(), "backend.db"))
	r := start(t, &Listener{Store: store, Group: "outage"}, mosq.URL(), "outage-backend")

	tree, err := topics.New(DefaultPrefix, "kiosk-7")
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	log, _ := testLogger(t)
	opts := mqttOptions(t, mosq.URL(), "outage-kiosk")
	// The daemon's cap (30 s) would only make the test wait longer after
	// the restart.
	opts.MaxReconnectInterval = 2 * time.Second
	ul, err := uplink.Start(uplink.Config{Tree: tree, MQTT: opts, Outbox: ob, Log: log, TelemetryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	eventually(t, "the kiosk connected", ul.Connected)

	ctx := context.Background()
	ids := make([]string, taps)
	record := func(i int) {
		ids[i] = fmt.Sprintf("0a0b0c0d-0000-4000-8000-%012d", i)
		ev := tapEvent(tree.Device, ids[i], evTime.Add(time.Duration(i)*time.Second), "ok")
		if err := ul.Record(ctx, ids[i], mustJSON(t, ev)); err != nil {
			t.Fatalf("tap %d not recorded: %v", i, err)
		}
	}
	for i := range before {
		record(i)
	}
	mosq.Stop()
	stopped := time.Now()
	// The other 900 taps over the outage, at an even pace.
	interval := outage / (taps - before)
	for i := before; i < taps; i++ {
		record(i)
		time.Sleep(interval) // a tap's pace, not synchronisation
	}
	if ul.Connected() {
		t.Fatal("the kiosk says it is connected to a stopped broker")
	}
	if d := time.Since(stopped); d < outage {
		time.Sleep(outage - d)
	}
	st, err := ob.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth < taps-before {
		t.Fatalf("outbox holds %d events during the outage, want at least the %d produced in it", st.Depth, taps-before)
	}
	mosq.Restart()

	deadline := time.Now().Add(60 * time.Second)
	for count(t, store) < taps {
		if time.Now().After(deadline) {
			t.Fatalf("backend holds %d of %d events 60 s after the restart (outbox %+v)", count(t, store), taps, mustStats(t, ob))
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := store.Query(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, row := range rows {
		got[row.EventID]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s stored %d times", id, got[id])
		}
	}
	if len(rows) != taps || len(got) != taps {
		t.Fatalf("backend holds %d rows, %d distinct ids, want %d", len(rows), len(got), taps)
	}
	eventually(t, "an empty outbox", func() bool { return mustStats(t, ob).Depth == 0 })
	ls := r.l.Stats()
	if ls.Stored != taps || len(ls.Rejected) != 0 || ls.StorageErrors != 0 {
		t.Fatalf("listener stats %+v, want %d stored, nothing rejected", ls, taps)
	}
	if q, _ := ob.Quarantined(); len(q) != 0 {
		t.Fatalf("%d events quarantined", len(q))
	}
	t.Logf("outage %v; %d events stored once each, %d re-deliveries discarded", outage, taps, ls.Duplicates)
}

func mustStats(t *testing.T, ob *outbox.Outbox) outbox.Stats {
	t.Helper()
	st, err := ob.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}
