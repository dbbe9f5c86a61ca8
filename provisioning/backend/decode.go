package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on what DecodeEvent accepts.
const (
	// MaxPayload bounds an event message. A tap event is well under 2 KiB;
	// the limit leaves room for growth while refusing a device that floods
	// the store.
	MaxPayload = 64 << 10
	// MaxIDLen bounds event_id and device_id (a UUID is 36 characters).
	MaxIDLen = 128
	// maxFieldLen bounds outcome, reason, profile and schema, which the live
	// table prints.
	maxFieldLen = 64
)

// SchemaPrefix is what every tap event's "schema" starts with; the part
// after it is the version (firmware/tap.Schema is "kazashi.tap/v2"). All
// versions are stored: the required fields below are common to them, and
// the raw payload keeps the rest.
const SchemaPrefix = "kazashi.tap/"

// Reasons a message is rejected (DecodeError.Reason, Stats.Rejected).
const (
	RejectTooLarge       = "too-large"       // payload over MaxPayload
	RejectTopic          = "topic"           // not <prefix>/<device>/events
	RejectJSON           = "json"            // not one UTF-8 JSON object with unique keys
	RejectSchema         = "schema"          // "schema" missing or not kazashi.tap/…
	RejectEventID        = "event-id"        // "event_id" missing, empty, too long or not printable
	RejectDeviceID       = "device-id"       // "device_id" missing, empty, too long or not printable
	RejectDeviceMismatch = "device-mismatch" // "device_id" is not the device level of the topic
	RejectTime           = "time"            // "time" missing or not RFC 3339
	RejectOutcome        = "outcome"         // "outcome" missing, empty or not a short printable string
	RejectReason         = "reason"          // "reason" likewise
	RejectProfile        = "profile"         // "profile" present but not a short printable string
	// RejectIDConflict is the listener's: the event id is already stored
	// for another device (Store.Insert, ErrIDConflict).
	RejectIDConflict = "id-conflict"
)

// DecodeError says why a message is not a tap event. Its text names the
// field and the rule, never the payload's content (events carry
// pseudonymous card ids).
type DecodeError struct {
	Reason string // one of the Reject… codes
	msg    string
}

func (e *DecodeError) Error() string { return "backend: event rejected (" + e.Reason + "): " + e.msg }

func reject(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// Received is one decoded event, as the listener stores it.
type Received struct {
	EventID  string
	DeviceID string
	Time     time.Time // the event's own time, as the kiosk stamped it
	Outcome  string    // accepted, rejected or error for kazashi.tap/v2
	Reason   string
	Profile  string // may be empty
	Schema   string
	Topic    string
	// ReceivedAt is when the backend received the message; the listener
	// sets it from its clock (DecodeEvent leaves it zero).
	ReceivedAt time.Time
	// Payload is the message exactly as received.
	Payload []byte
}

// DecodeEvent checks one message from <prefix>/<device>/events and returns
// the event. It is strict, because the payload comes from a device and the
// topic from the broker's authorisation of that device:
//
//   - at most MaxPayload bytes of UTF-8 (RFC 8259 §8.1) holding exactly one
//     JSON object, with no key twice at its top level (RFC 8259 §4 leaves
//     duplicates to the implementation; Go keeps the last one, so a device
//     could otherwise show one device_id to one parser and another to the
//     next);
//   - "schema": a string starting SchemaPrefix;
//   - "event_id", "device_id": non-empty printable strings of at most
//     MaxIDLen bytes;
//   - "device_id" equal to the topic's device level: the broker's ACL lets
//     a device publish only under its own topics (gateway/topics,
//     deploy/mosquitto), so this check makes the payload's claim as good as
//     the device's certificate; a device must not speak for another;
//   - "time": an RFC 3339 string;
//   - "outcome", "reason": non-empty printable strings, "profile" (if
//     present) a printable string, each at most 64 bytes.
//
// Other fields are kept in Payload unchecked. Errors are *DecodeError.
func DecodeEvent(topic string, payload []byte) (Received, error) {
	if len(payload) > MaxPayload {
		return Received{}, reject(RejectTooLarge, "%d bytes, the limit is %d", len(payload), MaxPayload)
	}
	device, err := topicDevice(topic)
	if err != nil {
		return Received{}, err
	}
	fields, err := topLevel(payload)
	if err != nil {
		return Received{}, err
	}
	ev := Received{Topic: topic, Payload: bytes.Clone(payload)}

	var ok bool
	if ev.Schema, ok = stringField(fields, "schema"); !ok || !strings.HasPrefix(ev.Schema, SchemaPrefix) ||
		len(ev.Schema) == len(SchemaPrefix) || len(ev.Schema) > maxFieldLen || !printable(ev.Schema) {
		return Received{}, reject(RejectSchema, `"schema" must be a string starting %q`, SchemaPrefix)
	}
	if ev.EventID, ok = stringField(fields, "event_id"); !ok || !validID(ev.EventID) {
		return Received{}, reject(RejectEventID, `"event_id" must be a non-empty printable string of at most %d bytes`, MaxIDLen)
	}
	if ev.DeviceID, ok = stringField(fields, "device_id"); !ok || !validID(ev.DeviceID) {
		return Received{}, reject(RejectDeviceID, `"device_id" must be a non-empty printable string of at most %d bytes`, MaxIDLen)
	}
	if ev.DeviceID != device {
		// Name the topic's device (the broker vouches for it), not the
		// payload's claim.
		return Received{}, reject(RejectDeviceMismatch, `"device_id" is not %q, the device of the topic`, device)
	}
	t, ok := stringField(fields, "time")
	if !ok {
		return Received{}, reject(RejectTime, `"time" must be an RFC 3339 string`)
	}
	if ev.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
		return Received{}, reject(RejectTime, `"time" is not RFC 3339`)
	}
	if y := ev.Time.UTC().Year(); y < 0 || y > 9999 {
		// The store keeps times as fixed-width UTC text (timeLayout).
		return Received{}, reject(RejectTime, `"time" is outside years 0000-9999 in UTC`)
	}
	if ev.Outcome, ok = stringField(fields, "outcome"); !ok || !validField(ev.Outcome) {
		return Received{}, reject(RejectOutcome, `"outcome" must be a non-empty printable string of at most %d bytes`, maxFieldLen)
	}
	if ev.Reason, ok = stringField(fields, "reason"); !ok || !validField(ev.Reason) {
		return Received{}, reject(RejectReason, `"reason" must be a non-empty printable string of at most %d bytes`, maxFieldLen)
	}
	if _, present := fields["profile"]; present {
		if ev.Profile, ok = stringField(fields, "profile"); !ok || len(ev.Profile) > maxFieldLen || !printable(ev.Profile) {
			return Received{}, reject(RejectProfile, `"profile" must be a printable string of at most %d bytes`, maxFieldLen)
		}
	}
	return ev, nil
}

// topicDevice returns the device level of <prefix>/<device>/events.
func topicDevice(topic string) (string, error) {
	levels := strings.Split(topic, "/")
	n := len(levels)
	if n < 3 || levels[n-1] != "events" || levels[n-2] == "" || levels[0] == "" {
		return "", reject(RejectTopic, "topic %q is not <prefix>/<device>/events", topic)
	}
	return levels[n-2], nil
}

// topLevel splits one JSON object into its members, refusing anything
// else. Errors give byte offsets, not the offending bytes.
func topLevel(payload []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(payload) {
		return nil, reject(RejectJSON, "payload is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	bad := func(what string) error {
		return reject(RejectJSON, "%s at byte %d", what, dec.InputOffset())
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, bad("not JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, reject(RejectJSON, "not a JSON object")
	}
	fields := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("invalid JSON")
		}
		key, ok := tok.(string)
		if !ok {
			return nil, bad("invalid JSON")
		}
		if _, dup := fields[key]; dup {
			return nil, bad("a key appears twice")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, bad("invalid JSON")
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, bad("invalid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("data after the JSON object")
	}
	return fields, nil
}

// stringField returns fields[name] if it is a JSON string.
func stringField(fields map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := fields[name]
	if !ok || len(raw) == 0 || raw[0] != '"' { // null would decode to "" without error
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func validID(s string) bool    { return s != "" && len(s) <= MaxIDLen && printable(s) }
func validField(s string) bool { return s != "" && len(s) <= maxFieldLen && printable(s) }

// printable: valid UTF-8 (escapes like \ud800 decode to U+FFFD, which is
// refused too) without control, format or other non-graphic runes other
// than the ASCII space, so an id cannot rewrite an operator's terminal.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
