package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/schema"
	"github.com/kazashi/kazashi/gateway/topics"
)

// FuzzValidate feeds Validate untrusted bytes. Properties: it never
// panics, it answers the same twice, and what it accepts decodes into the
// payload's Go type with no unknown field; re-encoded by Go, it is still
// valid. So the schemas accept nothing the Go consumers cannot read.
func FuzzValidate(f *testing.F) {
	for _, ss := range samples() {
		for _, s := range ss {
			f.Add(marshal(f, s.value))
		}
	}
	for _, n := range negatives() {
		var m map[string]any
		if err := json.Unmarshal(marshal(f, n.base()), &m); err != nil {
			f.Fatal(err)
		}
		if n.mutate != nil {
			n.mutate(m)
		}
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	for _, s := range []string{``, `{}`, `null`, `{"schema":"kazashi.tap/v2"}`, `{"schema":"kazashi.status/v1","online":false,"reason":"shutdown"}`,
		`{"schema":"kazashi.status/v1","online":true,"firmware":"1.0","online":false}`, `{"schema":"kazashi.health/v1","device_id":"k","time":"2026-03-02T09:15:04Z","ok":true,"alarms":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := schema.Validate(payload)
		if again := schema.Validate(payload); (err == nil) != (again == nil) {
			t.Fatalf("Validate answered %v, then %v", err, again)
		}
		if err != nil {
			if !errors.Is(err, schema.ErrInvalid) && !errors.Is(err, schema.ErrUnknown) {
				t.Fatalf("error matches neither ErrInvalid nor ErrUnknown: %v", err)
			}
			return
		}
		var head struct{ Schema string }
		if err := json.Unmarshal(payload, &head); err != nil {
			t.Fatalf("valid payload that encoding/json cannot read: %v", err)
		}
		v := goType[head.Schema]()
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			if goCannotRepresent(err) {
				return
			}
			t.Fatalf("valid %s payload does not decode into %T: %v", head.Schema, v, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.ValidateAs(head.Schema, b); err != nil {
			t.Fatalf("re-encoded by Go: %v\n%s", err, b)
		}
	})
}

// goCannotRepresent reports the JSON spellings that JSON Schema accepts
// and encoding/json refuses, none of which Go ever writes: an integer
// written as 1.0 or 1e3, and a leap second or a lower-case 't' in a
// date-time (RFC 3339 §5.6 allows both; time.Time does not parse them).
func goCannotRepresent(err error) bool {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && strings.HasPrefix(te.Value, "number") {
		return true
	}
	var pe *time.ParseError
	return errors.As(err, &pe) || strings.HasPrefix(err.Error(), "math/big: cannot unmarshal")
}

// FuzzForTopic: for any prefix and device id topics.New accepts, with a
// one-level prefix, ForTopic names each topic of the tree; ForPrefix does
// for any prefix. Neither ever maps a filter or a '$' topic.
func FuzzForTopic(f *testing.F) {
	for _, s := range [][3]string{{"kazashi", "kiosk-01", "sync-crl"}, {"site/kazashi", "cmd", "events"}, {"status", "reply", "a/b"},
		{"k", "+", "x"}, {"$SYS", "d", "n"}, {"a", "b", ""}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, prefix, device, name string) {
		for _, topic := range []string{prefix + "/" + device + "/" + name, name, prefix} {
			for _, id := range []string{oneOf(schema.ForTopic(topic)), oneOf(schema.ForPrefix(prefix, topic))} {
				if id != "" && (strings.ContainsAny(topic, "+#\x00") || strings.HasPrefix(topic, "$")) {
					t.Fatalf("%q is no topic name, mapped to %s", topic, id)
				}
			}
		}
		tr, err := topics.New(prefix, device)
		if err != nil {
			return
		}
		want := map[string]string{tr.Events(): schema.Tap, tr.Status(): schema.Status, tr.Health(): schema.Health,
			tr.Revocation(): schema.RevocationStatus, tr.Telemetry(): schema.Telemetry}
		if name != "" && !strings.ContainsAny(name, "+#\x00") && !strings.Contains("/"+name+"/", "//") {
			want[tr.Command(name)], want[tr.Reply(name)] = schema.Command, schema.Reply
		}
		for topic, id := range want {
			if got, _ := schema.ForPrefix(prefix, topic); got != id {
				t.Errorf("ForPrefix(%q, %q) = %q, want %q", prefix, topic, got, id)
			}
			if strings.Contains(prefix, "/") {
				continue
			}
			if got, _ := schema.ForTopic(topic); got != id {
				t.Errorf("ForTopic(%q) = %q, want %q", topic, got, id)
			}
		}
	})
}

func oneOf(id string, ok bool) string {
	if !ok {
		return ""
	}
	return id
}
