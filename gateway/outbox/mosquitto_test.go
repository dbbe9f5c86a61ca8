package outbox

// Delivery against a real Mosquitto through the real gateway/mqtt client.

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
)

// bigQueueConf is mqtttest's anonymous broker that keeps up to 100 000
// QoS 1 messages queued per subscriber instead of 1 000 (mosquitto.conf(5)
// max_queued_messages; above it Mosquitto drops them), so a slow test
// subscriber misses nothing.
func bigQueueConf(port int, dir string) string {
	return mqtttest.AnonymousConf(port, dir) + "max_queued_messages 100000\n"
}

var clientSeq atomic.Int64

// connectClient connects the real client (fast reconnects) and closes it
// with the test.
func connectClient(tb testing.TB, broker string) *mqtt.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Options{
		Broker:               broker,
		ClientID:             fmt.Sprintf("kz-outbox-%d", clientSeq.Add(1)),
		KeepAlive:            5 * time.Second,
		ConnectTimeout:       2 * time.Second,
		MaxReconnectInterval: 300 * time.Millisecond,
		Logger:               testLog(tb),
	})
	if err != nil {
		tb.Fatalf("mqtt.Connect: %v", err)
	}
	tb.Cleanup(c.Close)
	if _, ok := any(c).(AsyncPublisher); !ok {
		tb.Fatal("*mqtt.Client does not implement outbox.AsyncPublisher (PublishAsync): without it the Deliverer sends one message at a time")
	}
	return c
}

// testLog collects a log and prints it only if the test fails.
func testLog(tb testing.TB) *slog.Logger {
	buf := new(mqtttest.Buffer)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// subscriber records payloads in the order the broker sends them
// (mqtttest.Subscriber; the paho client runs handlers on goroutines,
// which loses that order).
type subscriber struct{ *mqtttest.Subscriber }

func subscribe(tb testing.TB, addr, filter string) *subscriber {
	tb.Helper()
	return &subscriber{mqtttest.Subscribe(tb, addr, filter)}
}

// received returns the payloads so far, in arrival order.
func (s *subscriber) received() []string {
	got, _ := s.Received()
	out := make([]string, len(got))
	for i, m := range got {
		out[i] = string(m.Payload)
	}
	return out
}

// eventPayload is a realistic tap event (kazashi.tap/v2, about 700 bytes,
// no newline, so that mosquitto_pub -l sends it as one message); n is its
// index, recoverable with payloadIndex.
func eventPayload(n int) []byte {
	return fmt.Appendf(nil, `{"schema":"kazashi.tap/v2","event_id":"01JEXAMPLE%014d","device_id":"kiosk-0042",`+
		`"time":"2026-12-02T09:%02d:%02d.%03dZ","profile":"hospital-reception","outcome":"accepted","reason":"ok",`+
		`"assurance":"jpki-auth","card_kind":"jpki","card_id":"c3f1e2d4b5a69788c3f1e2d4b5a69788c3f1e2d4b5a69788c3f1e2d4b5a69788",`+
		`"card_key_id":"9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081","tech":"iso14443-4a",`+
		`"read_ms":412,"time_source":"system","revocation":{"source":"crl","this_update":"2026-12-01T00:00:00Z",`+
		`"age_s":32400,"issuer":"JPKI Auth CA"},"checks":[{"name":"auth-certificate","ok":true},`+
		`{"name":"path","ok":true},{"name":"revocation","ok":true}],`+
		`"reader":{"firmware":"PN532 v1.6","retries":0},"n":%d}`,
		n, (n/60)%60, n%60, n%1000, n)
}

// payloadIndex extracts n from eventPayload(n).
func payloadIndex(tb testing.TB, p string) int {
	i := strings.LastIndex(p, `"n":`)
	n, err := strconv.Atoi(strings.TrimSuffix(p[i+4:], "}"))
	if i < 0 || err != nil {
		tb.Fatalf("not an event payload: %.60q", p)
	}
	return n
}

// checkFirstOccurrences checks that got holds 0..n-1, each first seen in
// order, and returns the duplicates.
func checkFirstOccurrences(tb testing.TB, got []string, n int) (dups []int) {
	tb.Helper()
	seen := make(map[int]bool)
	next := 0
	for _, p := range got {
		i := payloadIndex(tb, p)
		if seen[i] {
			dups = append(dups, i)
			continue
		}
		if i != next {
			tb.Fatalf("message %d arrived first after %d: first occurrences out of order", i, next-1)
		}
		seen[i] = true
		next++
	}
	if next != n {
		tb.Fatalf("%d distinct messages arrived, want %d", next, n)
	}
	return dups
}

func distinct(tb testing.TB, got []string) int {
	seen := map[int]bool{}
	for _, p := range got {
		seen[payloadIndex(tb, p)] = true
	}
	return len(seen)
}

const eventsTopic = "kazashi/kiosk-0042/events"

// TestMosquittoThousandInOrder: 1 000 events reach a subscriber in order,
// each exactly once; then, with the connection cut in the middle of
// another 1 000, every event arrives, first occurrences in order, and the
// only duplicates are of the messages in flight at the cut.
func TestMosquittoThousandInOrder(t *testing.T) {
	m := mqtttest.StartMosquittoConf(t, bigQueueConf)
	proxy := mqtttest.StartProxy(t, m.URL())
	sub := subscribe(t, m.Addr(), eventsTopic)
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	ctx := context.Background()
	for i := range 1000 {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), eventsTopic, eventPayload(i)); err != nil {
			t.Fatal(err)
		}
	}
	d := &Deliverer{Outbox: ob, Timeout: time.Second, Retry: backoffFast, Log: testLog(t)}
	d.Attach(connectClient(t, proxy.URL()))
	start(t, d)
	waitFor(t, "1 000 events at the subscriber", func() bool { return len(sub.received()) >= 1000 })
	if dups := checkFirstOccurrences(t, sub.received(), 1000); len(dups) > 0 {
		t.Fatalf("duplicates without any connection cut: %v", dups)
	}
	// Removal follows the PUBACKs (batched).
	waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })

	// Second half: cut the connection while it flows.
	for i := 1000; i < 2000; i++ {
		if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), eventsTopic, eventPayload(i)); err != nil {
			t.Fatal(err)
		}
	}
	d.Notify()
	waitFor(t, "the second half flowing", func() bool { return d.Stats().Delivered >= 1400 })
	before := d.Stats().Delivered
	proxy.Cut()
	after := d.Stats().Delivered
	waitFor(t, "2 000 distinct events at the subscriber", func() bool { return distinct(t, sub.received()) == 2000 })
	dups := checkFirstOccurrences(t, sub.received(), 2000)
	// Messages 0..before-1 had their PUBACK before the cut and are never
	// sent again; at most a window was in flight after the last one seen.
	for _, i := range dups {
		if i < int(before) || i >= int(after)+2*DefaultWindow {
			t.Fatalf("duplicate %d away from the cut (PUBACKs %d before it, %d after)", i, before, after)
		}
	}
	t.Logf("cut at %d..%d PUBACKs; duplicates %v", before, after, dups)
	if q, _ := ob.Quarantined(); len(q) != 0 {
		t.Fatalf("quarantined %d messages", len(q))
	}
}

// TestMosquittoOversized: Mosquitto closes the connection on a packet
// above max_packet_size (mosquitto.conf(5)). With MaxPayload the message
// is quarantined unsent; without it, by the PoisonAfter rule after three
// drops. Either way the events after it arrive, in order.
func TestMosquittoOversized(t *testing.T) {
	const limit = 2048
	m := mqtttest.StartMosquittoConf(t, func(port int, dir string) string {
		return bigQueueConf(port, dir) + fmt.Sprintf("max_packet_size %d\n", limit)
	})
	sub := subscribe(t, m.Addr(), eventsTopic)
	big := make([]byte, 4000)
	for i := range big {
		big[i] = 'x'
	}
	for _, tc := range []struct {
		name       string
		maxPayload int
		reason     string
	}{
		{"MaxPayload", limit - 64, fmt.Sprintf("payload of 4000 bytes exceeds the broker limit %d", limit-64)},
		{"PoisonAfter", 0, "connection dropped 3 times while sending this message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := len(sub.received())
			ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
			ctx := context.Background()
			for i := range 20 {
				p := eventPayload(i)
				if i == 5 {
					p = big
				}
				if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", i), eventsTopic, p); err != nil {
					t.Fatal(err)
				}
			}
			d := &Deliverer{Outbox: ob, MaxPayload: tc.maxPayload, Timeout: 300 * time.Millisecond, Retry: backoffFast, Log: testLog(t)}
			d.Attach(connectClient(t, m.URL()))
			start(t, d)
			waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
			q, _ := ob.Quarantined()
			if len(q) != 1 || q[0].ID != "ev-5" || q[0].Reason != tc.reason {
				t.Fatalf("quarantine %s, want ev-5 with %q", ids(q), tc.reason)
			}
			waitFor(t, "19 events at the subscriber", func() bool { return distinct(t, sub.received()[base:]) == 19 })
			var got []string
			for _, p := range sub.received()[base:] {
				if len(p) != len(big) {
					got = append(got, p)
				}
			}
			seen, next := map[int]bool{}, 0
			for _, p := range got {
				i := payloadIndex(t, p)
				if seen[i] {
					continue
				}
				if next == 5 {
					next = 6
				}
				if i != next {
					t.Fatalf("event %d arrived first after %d", i, next-1)
				}
				seen[i] = true
				next++
			}
			if st := d.Stats(); st.Quarantined != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestMosquittoStoppedNothingQuarantined: the broker stopped three times
// for a while in the middle of a stream (with messages in flight when it
// goes) quarantines nothing, even with PoisonAfter 2, and every event gets
// its PUBACK once it is back.
func TestMosquittoStoppedNothingQuarantined(t *testing.T) {
	m := mqtttest.StartMosquitto(t)
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), Options{})
	d := &Deliverer{Outbox: ob, Timeout: 300 * time.Millisecond, Retry: backoffFast, PoisonAfter: 2, Log: testLog(t)}
	c := connectClient(t, m.URL())
	d.Attach(c)
	start(t, d)
	ctx := context.Background()
	n := 0
	enqueue := func(k int) {
		for range k {
			if _, err := ob.Enqueue(ctx, fmt.Sprintf("ev-%d", n), eventsTopic, eventPayload(n)); err != nil {
				t.Fatal(err)
			}
			n++
			d.Notify()
		}
	}
	for range 3 {
		enqueue(200)
		m.Stop()
		waitFor(t, "the client to see the broker gone", func() bool { return !c.Connected() })
		enqueue(100)
		// The outage lasts a few publish timeouts and retry periods.
		time.Sleep(time.Second)
		m.Restart()
		waitFor(t, "an empty outbox", func() bool { return depth(ob) == 0 })
	}
	if q, _ := ob.Quarantined(); len(q) != 0 {
		t.Fatalf("quarantined %s", ids(q))
	}
	if st := d.Stats(); st.Quarantined != 0 || st.Delivered != 900 || st.Failures == 0 {
		t.Fatalf("stats %+v, want 900 delivered, failures, nothing quarantined", st)
	}
}
