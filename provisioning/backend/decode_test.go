package backend

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/tap"
)

// secretCardID stands for a pseudonymous card id: it must never appear in
// an error.
const secretCardID = "c4rd-pseudonym-9f3e"

var evTime = time.Date(2026, 11, 20, 9, 0, 0, 123456789, time.UTC)

// tapEvent is a real firmware/tap event, as a kiosk publishes it.
func tapEvent(device, id string, t time.Time, reason string) tap.Event {
	return tap.Event{Schema: tap.Schema, ID: id, Device: device, Time: t, Profile: "jpki-auth",
		Outcome: tap.OutcomeOf(reason), Reason: reason, CardID: secretCardID, TimeSource: "system", ReadMS: 412}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRealTapEvent(t *testing.T) {
	ev := tapEvent("kiosk-01", "0b7e7f0c-2f7e-4c55-9d1a-3c6f9f0b5a11", evTime.In(time.FixedZone("JST", 9*3600)), "revoked")
	payload := mustJSON(t, ev)
	got, err := DecodeEvent("kazashi/kiosk-01/events", payload)
	if err != nil {
		t.Fatalf("DecodeEvent: %v", err)
	}
	if got.EventID != ev.ID || got.DeviceID != "kiosk-01" || !got.Time.Equal(evTime) || got.Outcome != "rejected" ||
		got.Reason != "revoked" || got.Profile != "jpki-auth" || got.Schema != tap.Schema || got.Topic != "kazashi/kiosk-01/events" {
		t.Errorf("DecodeEvent = %+v", got)
	}
	if string(got.Payload) != string(payload) {
		t.Error("Payload is not the message as received")
	}
	payload[0] = ' ' // the caller's buffer may be reused
	if got.Payload[0] != '{' {
		t.Error("Payload aliases the caller's buffer")
	}
}

// valid is the JSON of an acceptable event with one field replaced
// (or removed, when v is nil).
func valid(t testing.TB, key string, v any) []byte {
	m := map[string]any{"schema": "kazashi.tap/v2", "event_id": "e-1", "device_id": "kiosk-01",
		"time": "2026-11-20T09:00:00Z", "outcome": "accepted", "reason": "ok", "profile": "jpki-auth",
		"card_id": secretCardID}
	if key != "" {
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
	}
	return mustJSON(t, m)
}

func TestDecodeEventRejects(t *testing.T) {
	const topic = "kazashi/kiosk-01/events"
	cases := []struct {
		name, topic string
		payload     []byte
		reason      string
	}{
		{"too large", topic, append(valid(t, "pad", strings.Repeat("x", MaxPayload)), ' '), RejectTooLarge},
		{"topic without events", "kazashi/kiosk-01/status", valid(t, "", nil), RejectTopic},
		{"topic without prefix", "kiosk-01/events", valid(t, "", nil), RejectTopic},
		{"empty device level", "kazashi//events", valid(t, "", nil), RejectTopic},
		{"not JSON", topic, []byte("card " + secretCardID), RejectJSON},
		{"JSON array", topic, []byte(`["` + secretCardID + `"]`), RejectJSON},
		{"truncated", topic, valid(t, "", nil)[:40], RejectJSON},
		{"trailing data", topic, append(valid(t, "", nil), []byte(`{"card_id":"`+secretCardID+`"}`)...), RejectJSON},
		{"invalid UTF-8", topic, []byte(`{"schema":"kazashi.tap/v2","card_id":"` + secretCardID + "\xff\"}"), RejectJSON},
		{"duplicate key", topic, []byte(`{"device_id":"kiosk-01","schema":"kazashi.tap/v2","event_id":"e","time":"2026-11-20T09:00:00Z","outcome":"accepted","reason":"ok","device_id":"kiosk-02","card_id":"` + secretCardID + `"}`), RejectJSON},
		{"no schema", topic, valid(t, "schema", nil), RejectSchema},
		{"other schema", topic, valid(t, "schema", "kazashi.status/v1"), RejectSchema},
		{"schema without version", topic, valid(t, "schema", "kazashi.tap/"), RejectSchema},
		{"no event id", topic, valid(t, "event_id", nil), RejectEventID},
		{"empty event id", topic, valid(t, "event_id", ""), RejectEventID},
		{"numeric event id", topic, valid(t, "event_id", 42), RejectEventID},
		{"null event id", topic, []byte(strings.Replace(string(valid(t, "", nil)), `"event_id":"e-1"`, `"event_id":null`, 1)), RejectEventID},
		{"long event id", topic, valid(t, "event_id", strings.Repeat("a", MaxIDLen+1)), RejectEventID},
		{"control char in event id", topic, valid(t, "event_id", "e\x1b[2J"), RejectEventID},
		{"lone surrogate in event id", topic, []byte(strings.Replace(string(valid(t, "", nil)), `"e-1"`, `"e\ud800"`, 1)), RejectEventID},
		{"no device id", topic, valid(t, "device_id", nil), RejectDeviceID},
		{"device mismatch", topic, valid(t, "device_id", "kiosk-02"), RejectDeviceMismatch},
		{"no time", topic, valid(t, "time", nil), RejectTime},
		{"time not RFC 3339", topic, valid(t, "time", "20 Nov 2026 09:00"), RejectTime},
		{"time as number", topic, valid(t, "time", 1763629200), RejectTime},
		{"time before year 0 in UTC", topic, valid(t, "time", "0000-01-01T00:00:00+01:00"), RejectTime},
		{"no outcome", topic, valid(t, "outcome", nil), RejectOutcome},
		{"empty outcome", topic, valid(t, "outcome", ""), RejectOutcome},
		{"no reason", topic, valid(t, "reason", nil), RejectReason},
		{"reason with newline", topic, valid(t, "reason", "ok\nforged line"), RejectReason},
		{"profile not a string", topic, valid(t, "profile", true), RejectProfile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvent(c.topic, c.payload)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
			if de.Reason != c.reason {
				t.Errorf("reason = %q, want %q (%v)", de.Reason, c.reason, err)
			}
			if strings.Contains(err.Error(), secretCardID) || strings.Contains(err.Error(), "kiosk-02") {
				t.Errorf("error echoes the payload: %v", err)
			}
		})
	}
}

func TestDecodeEventAccepts(t *testing.T) {
	cases := []struct {
		name, topic string
		payload     []byte
	}{
		{"no profile", "kazashi/kiosk-01/events", valid(t, "profile", nil)},
		{"future schema version", "kazashi/kiosk-01/events", valid(t, "schema", "kazashi.tap/v3")},
		{"prefix with levels", "site/7/kiosk-01/events", valid(t, "", nil)},
		{"unicode device", "kazashi/受付-1/events", valid(t, "device_id", "受付-1")},
		{"max length id", "kazashi/kiosk-01/events", valid(t, "event_id", strings.Repeat("a", MaxIDLen))},
		{"offset time", "kazashi/kiosk-01/events", valid(t, "time", "2026-11-20T18:00:00.5+09:00")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeEvent(c.topic, c.payload); err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add("kazashi/kiosk-01/events", valid(f, "", nil))
	f.Add("kazashi/kiosk-01/events", valid(f, "device_id", "kiosk-02"))
	f.Add("kazashi/kiosk-01/events", valid(f, "time", "2026-11-20T18:00:00.5+09:00"))
	f.Add("kazashi/kiosk-01/events", valid(f, "event_id", "e\u00e9\u4e00"))
	f.Add("kazashi/kiosk-01/events", []byte(`{"event_id":"a","event_id":"b"}`))
	f.Add("kazashi/kiosk-01/events", []byte(`{"schema":"kazashi.tap/v2","event_id":"\ud800"}`))
	f.Add("kazashi//events", []byte(`{}`))
	f.Add("a/b/events", []byte(`[1,2`))
	f.Add("kazashi/kiosk-01/events", mustJSON(f, tapEvent("kiosk-01", "0b7e7f0c-2f7e-4c55-9d1a-3c6f9f0b5a11", evTime, "ok")))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		ev, err := DecodeEvent(topic, payload)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		// An accepted event's id and device are what any JSON parser reads
		// (no duplicate keys), and the device is the topic's.
		var m struct {
			ID     string `json:"event_id"`
			Device string `json:"device_id"`
		}
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("accepted payload does not parse: %v", err)
		}
		if m.ID != ev.EventID || m.Device != ev.DeviceID {
			t.Fatalf("decoded id/device %q/%q, encoding/json reads %q/%q", ev.EventID, ev.DeviceID, m.ID, m.Device)
		}
		levels := strings.Split(topic, "/")
		if len(levels) < 3 || levels[len(levels)-2] != ev.DeviceID {
			t.Fatalf("device %q is not the topic's %q", ev.DeviceID, topic)
		}
		if !validID(ev.EventID) || !validField(ev.Outcome) || !validField(ev.Reason) {
			t.Fatalf("accepted invalid fields: %+v", ev)
		}
		// The stored time text parses back to the same instant.
		back, err := time.Parse(timeLayout, ev.Time.UTC().Format(timeLayout))
		if err != nil || !back.Equal(ev.Time) {
			t.Fatalf("time %v does not round-trip the store format: %v, %v", ev.Time, back, err)
		}
		// Re-encoding the accepted fields decodes to the same event.
		again, err := DecodeEvent(topic, mustJSON(t, map[string]any{"schema": ev.Schema, "event_id": ev.EventID,
			"device_id": ev.DeviceID, "time": ev.Time.Format(time.RFC3339Nano), "outcome": ev.Outcome, "reason": ev.Reason}))
		if err != nil || again.EventID != ev.EventID || again.DeviceID != ev.DeviceID || !again.Time.Equal(ev.Time) {
			t.Fatalf("re-encoded event: %+v, %v", again, err)
		}
	})
}
