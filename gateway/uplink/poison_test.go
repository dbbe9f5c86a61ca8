package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/backoff"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/outbox"
)

// rawSub records messages in the order the broker sends them
// (mqtttest.Subscriber; gateway/mqtt runs handlers on goroutines of their
// own, which loses that order).
type rawSub struct{ s *mqtttest.Subscriber }

func subscribeRaw(t *testing.T, addr, filter string) *rawSub {
	t.Helper()
	return &rawSub{mqtttest.Subscribe(t, addr, filter)}
}

// received returns the messages so far, in arrival order, and the error
// that ended the connection (nil while it is up).
func (s *rawSub) received() ([]msg, error) {
	got, err := s.s.Received()
	out := make([]msg, len(got))
	for i, m := range got {
		out[i] = msg{m.Topic, m.Payload}
	}
	return out, err
}

// until waits until cond holds for the messages received so far (in
// arrival order) and returns them.
func (s *rawSub) until(t *testing.T, what string, cond func(got []msg) bool) []msg {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		got, err := s.received()
		if err != nil {
			t.Fatalf("waiting for %s: the test subscriber lost its connection: %v", what, err)
		}
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%d messages arrived)", what, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// events returns the messages on the events topic.
func events(got []msg) []msg {
	var out []msg
	for _, m := range got {
		if m.topic == tree.Events() {
			out = append(out, m)
		}
	}
	return out
}

// waitIDs waits until every id in want has arrived on the events topic
// (payload field "event_id") and returns the events that arrived.
func (s *rawSub) waitIDs(t *testing.T, want []string) []msg {
	t.Helper()
	var evs []msg
	s.until(t, fmt.Sprintf("%d events at the subscriber", len(want)), func(got []msg) bool {
		evs = events(got)
		seen := map[string]bool{}
		for _, m := range evs {
			seen[eventID(t, m.payload)] = true
		}
		for _, id := range want {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	return evs
}

// health decodes the last health document received (the retained one, in
// the broker's order), ok false if none.
func health(got []msg) (h Health, ok bool) {
	for i := len(got) - 1; i >= 0; i-- {
		if got[i].topic == tree.Health() {
			return h, json.Unmarshal(got[i].payload, &h) == nil
		}
	}
	return h, false
}

// waitHealth waits until the last health document received satisfies
// cond and returns it.
func (s *rawSub) waitHealth(t *testing.T, what string, cond func(Health) bool) Health {
	t.Helper()
	var h Health
	s.until(t, what, func(got []msg) bool {
		var ok bool
		h, ok = health(got)
		return ok && cond(h)
	})
	return h
}

// eventID extracts "event_id" from a test payload.
func eventID(t *testing.T, p []byte) string {
	t.Helper()
	var e struct {
		ID string `json:"event_id"`
	}
	if err := json.Unmarshal(p, &e); err != nil || e.ID == "" {
		t.Fatalf("not a test event: %.80q (%v)", p, err)
	}
	return e.ID
}

// firstOccurrences returns the event ids in the order they first arrived
// and the number of repeated arrivals.
func firstOccurrences(t *testing.T, got []msg) (order []string, dups int) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range got {
		id := eventID(t, m.payload)
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		order = append(order, id)
	}
	return order, dups
}

var fastRetry = backoff.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// TestPoison: Mosquitto with max_packet_size 4096 and ten events, the 4th
// one with an 8000-byte payload. Without MaxPayload the broker closes the
// connection on that packet every time and the Deliverer's PoisonAfter
// rule quarantines it; with MaxPayload below the limit it is quarantined
// unsent. Either way the 4th event is in the outbox quarantine with the
// Deliverer's reason, the other nine reach a subscriber (first occurrences
// in order), and the retained health document and the telemetry report
// the quarantine.
func TestPoison(t *testing.T) {
	const (
		limit   = 4096
		bigSize = 8000
		poison  = 3 // index of the oversized event
	)
	for _, tc := range []struct {
		name       string
		maxPayload int
		reason     string
	}{
		{"BrokerDisconnects", 0, fmt.Sprintf("connection dropped %d times while sending this message", outbox.DefaultPoisonAfter)},
		{"MaxPayload", limit - 64, fmt.Sprintf("payload of %d bytes exceeds the broker limit %d", bigSize, limit-64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mqtttest.StartMosquittoConf(t, func(port int, dir string) string {
				return mqtttest.AnonymousConf(port, dir) + fmt.Sprintf("max_packet_size %d\n", limit)
			})
			sub := subscribeRaw(t, m.Addr(), tree.Root()+"/#")
			ob := newOutbox(t, outbox.Options{})
			var hooked []string // OnQuarantine calls (Run's goroutine)
			var hookMu sync.Mutex
			d := &outbox.Deliverer{MaxPayload: tc.maxPayload, Timeout: 300 * time.Millisecond, Retry: fastRetry,
				OnQuarantine: func(m outbox.Message, reason string) {
					hookMu.Lock()
					hooked = append(hooked, m.ID+": "+reason)
					hookMu.Unlock()
				}}
			u := start(t, Config{Tree: tree, MQTT: mqttOpts(t, m.URL()), Outbox: ob, Deliverer: d, TelemetryInterval: -1})

			big := fmt.Appendf(nil, `{"event_id":"ev-%02d","pad":"%s"}`, poison, strings.Repeat("x", bigSize))
			big = append(big[:bigSize-2], `"}`...) // exactly bigSize bytes, still JSON
			var want []string
			for i := range 10 {
				id := fmt.Sprintf("ev-%02d", i)
				p := fmt.Appendf(nil, `{"event_id":%q,"n":%d}`, id, i)
				if i == poison {
					p = big
				} else {
					want = append(want, id)
				}
				if err := u.Record(context.Background(), id, p); err != nil {
					t.Fatalf("Record %s: %v", id, err)
				}
			}
			if len(big) != bigSize || !json.Valid(big) {
				t.Fatalf("bad test payload: %d bytes", len(big))
			}

			got := sub.waitIDs(t, want)
			published := sub.waitHealth(t, "the quarantine alarm in the retained health document", func(h Health) bool {
				return !h.OK && len(h.Alarms) == 1 && h.Alarms[0].Code == AlarmQuarantine && h.Alarms[0].Count == 1
			})
			// Arrival precedes the PUBACK and the removal.
			deadline := time.Now().Add(waitLong)
			for st, err := ob.Stats(); err != nil || st.Depth != 0; st, err = ob.Stats() {
				if time.Now().After(deadline) {
					t.Fatalf("outbox not empty: %+v %v", st, err)
				}
				time.Sleep(10 * time.Millisecond)
			}

			q, err := ob.Quarantined()
			if err != nil {
				t.Fatal(err)
			}
			if len(q) != 1 || q[0].ID != fmt.Sprintf("ev-%02d", poison) || q[0].Reason != tc.reason ||
				q[0].Topic != tree.Events() || !bytes.Equal(q[0].Payload, big) {
				var desc []string
				for _, m := range q {
					desc = append(desc, fmt.Sprintf("%s (%d bytes, %q)", m.ID, len(m.Payload), m.Reason))
				}
				t.Fatalf("quarantine %v, want ev-%02d (%d bytes) with %q", desc, poison, bigSize, tc.reason)
			}
			hookMu.Lock()
			if wantHook := fmt.Sprintf("ev-%02d: %s", poison, tc.reason); len(hooked) != 1 || hooked[0] != wantHook {
				t.Errorf("OnQuarantine calls %q, want [%q] (the uplink must chain the caller's hook)", hooked, wantHook)
			}
			hookMu.Unlock()

			// The nine others, first occurrences in order and as recorded;
			// the oversized one never reached the subscriber.
			for _, m := range got {
				if m.topic != tree.Events() {
					t.Fatalf("message on %q", m.topic)
				}
				id := eventID(t, m.payload)
				if id == fmt.Sprintf("ev-%02d", poison) {
					t.Fatalf("the oversized event reached the subscriber (%d bytes)", len(m.payload))
				}
				var n int
				if _, err := fmt.Sscanf(id, "ev-%d", &n); err != nil || string(m.payload) != fmt.Sprintf(`{"event_id":%q,"n":%d}`, id, n) {
					t.Fatalf("payload %q not as recorded", m.payload)
				}
			}
			order, dups := firstOccurrences(t, got)
			if strings.Join(order, ",") != strings.Join(want, ",") {
				t.Fatalf("first occurrences %v, want %v", order, want)
			}

			h := u.Health()
			if h.OK || len(h.Alarms) != 1 || h.Alarms[0].Code != AlarmQuarantine || h.Alarms[0].Count != 1 ||
				!strings.Contains(h.Alarms[0].Message, "1 events were refused") {
				t.Fatalf("Health() = %+v", h)
			}
			if published.Device != tree.Device || published.Schema != HealthSchema || published.Alarms[0].Message != h.Alarms[0].Message {
				t.Fatalf("published health %+v, want the message %q", published, h.Alarms[0].Message)
			}
			tm := u.Telemetry()
			if tm.Outbox.Quarantined != 1 || tm.Outbox.Depth != 0 || tm.Outbox.Bytes != 0 {
				t.Fatalf("telemetry outbox %+v, want 1 quarantined and an empty queue", tm.Outbox)
			}
			st := d.Stats()
			if st.Quarantined != 1 || st.Delivered < 9 {
				t.Fatalf("deliverer stats %+v", st)
			}
			if tc.maxPayload > 0 {
				// Quarantined before sending: the connection never dropped.
				if st.Failures != 0 || dups != 0 {
					t.Fatalf("with MaxPayload: %d failures, %d duplicates; want none (stats %+v)", st.Failures, dups, st)
				}
			} else if st.Failures < uint64(outbox.DefaultPoisonAfter) {
				t.Fatalf("deliverer stats %+v: fewer failures than the %d drops that quarantine", st, outbox.DefaultPoisonAfter)
			}
			t.Logf("%d arrivals (%d repeated), deliverer %+v", len(got), dups, st)
		})
	}
}
