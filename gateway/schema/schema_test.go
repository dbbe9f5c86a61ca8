package schema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/schema"
	"github.com/kazashi/kazashi/gateway/topics"
)

// schemaDoc returns the parsed schema file of id.
func schemaDoc(t testing.TB, id string) map[string]any {
	t.Helper()
	b, err := schema.Source(id)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return m
}

// TestSamplesValidate: every realistic Go value, marshalled with
// encoding/json, conforms to its schema, through Validate (dispatch on
// "schema"), ValidateAs and ValidateTopic on the topic it is published on.
func TestSamplesValidate(t *testing.T) {
	tree, err := topics.New("kazashi", "kiosk-01")
	if err != nil {
		t.Fatal(err)
	}
	topicOf := map[string]string{
		schema.Tap: tree.Events(), schema.Status: tree.Status(), schema.Health: tree.Health(),
		schema.RevocationStatus: tree.Revocation(), schema.Telemetry: tree.Telemetry(),
		schema.Command: tree.Command("sync-crl"), schema.Reply: tree.Reply("sync-crl"),
	}
	for id, ss := range samples() {
		for _, s := range ss {
			b := marshal(t, s.value)
			if err := schema.Validate(b); err != nil {
				t.Errorf("%s %s: Validate: %v\n%s", id, s.name, err, b)
			}
			if err := schema.ValidateAs(id, b); err != nil {
				t.Errorf("%s %s: ValidateAs: %v", id, s.name, err)
			}
			if err := schema.ValidateTopic(topicOf[id], b); err != nil {
				t.Errorf("%s %s: ValidateTopic(%s): %v", id, s.name, topicOf[id], err)
			}
		}
	}
}

// TestEveryReasonAndProfile runs the tap event's consistency rules
// against the Go functions that make them: for every profile and every
// reason code, the event Handle would build (outcome tap.OutcomeOf,
// assurance the profile's when accepted, none otherwise) validates, and
// each other outcome or assurance fails naming the field.
func TestEveryReasonAndProfile(t *testing.T) {
	reasons := tapReasons(t)
	profiles := constValues(t, "../../firmware/tap", func(name, typ string) bool { return typ == "" && strings.HasPrefix(name, "Profile") })
	outcomes := []tap.Outcome{tap.Accepted, tap.Rejected, tap.Error}
	assurances := constValues(t, "../../firmware/tap", func(_, typ string) bool { return typ == "Assurance" })
	for _, pr := range profiles {
		for _, r := range reasons {
			e := eventMinimal()
			e.Profile, e.Reason, e.Outcome = pr, r, tap.OutcomeOf(r)
			e.Assurance = tap.AssuranceNone
			if e.Outcome == tap.Accepted {
				e.Assurance = tap.Profile{Name: pr}.Assurance()
			}
			if err := schema.ValidateAs(schema.Tap, marshal(t, e)); err != nil {
				t.Errorf("%s/%s: %v", pr, r, err)
			}
			for _, o := range outcomes {
				if o == e.Outcome {
					continue
				}
				bad := e
				bad.Outcome = o
				expectViolation(t, fmt.Sprintf("%s/%s outcome %s", pr, r, o), schema.ValidateAs(schema.Tap, marshal(t, bad)), "/outcome", "")
			}
			for _, a := range assurances {
				if tap.Assurance(a) == e.Assurance {
					continue
				}
				bad := e
				bad.Assurance = tap.Assurance(a)
				expectViolation(t, fmt.Sprintf("%s/%s assurance %s", pr, r, a), schema.ValidateAs(schema.Tap, marshal(t, bad)), "/assurance", "")
			}
		}
	}
}

// expectViolation fails unless err is an *InvalidError (matching
// ErrInvalid) with a violation at path whose rule contains rule, and the
// error text names the property.
func expectViolation(t *testing.T, name string, err error, path, rule string) {
	t.Helper()
	var ie *schema.InvalidError
	if !errors.As(err, &ie) || !errors.Is(err, schema.ErrInvalid) {
		t.Errorf("%s: got %v, want an *InvalidError", name, err)
		return
	}
	for _, v := range ie.Violations {
		if v.Path == path && strings.Contains(v.Rule, rule) {
			return
		}
	}
	t.Errorf("%s: no violation at %q with %q in %v", name, path, rule, ie.Violations)
}

// doc marshals a sample into a generic map for mutation.
func doc(t *testing.T, v any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, v), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at returns the object at a slash path inside m ("" for m).
func at(m map[string]any, path string) map[string]any {
	cur := any(m)
	for _, p := range strings.Split(path, "/") {
		if p == "" {
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			cur = c[i]
		}
	}
	return cur.(map[string]any)
}

type negative struct {
	id     string
	name   string
	base   func() any
	mutate func(m map[string]any)
	path   string // JSON pointer of the violation
	rule   string // substring of its rule
}

func set(path, key string, v any) func(map[string]any) {
	return func(m map[string]any) { at(m, path)[key] = v }
}

func del(path, key string) func(map[string]any) {
	return func(m map[string]any) { delete(at(m, path), key) }
}

// negatives are documents a lax schema (types only, no
// additionalProperties, no enums, no conditions) would accept.
func negatives() []negative {
	ev := func() any { return eventFull() }
	acc := func() any { return eventAccepted(tap.ProfileFaceCheck) }
	on := func() any { return statusOnline() }
	off := func() any { return statusOffline("shutdown") }
	hOK := func() any { return healthOK() }
	hAl := func() any { return healthAlarms() }
	tel := func() any { return telemetryFull() }
	rev := func() any { return revocationFull() }
	cmd := func() any { return commandFull() }
	rep := func() any { return replyOK() }
	repF := func() any { return replyFailed() }
	return []negative{
		// The personal-data guard: no property beyond the listed ones.
		{schema.Tap, "leaked name", ev, set("", "name", "Yamada Taro"), "", "'name'"},
		{schema.Tap, "leaked birth date", ev, set("", "birth_date", "1980-04-01"), "", "'birth_date'"},
		{schema.Tap, "leaked certificate", ev, set("", "certificate", "MIIB..."), "", "'certificate'"},
		{schema.Tap, "pseudonym holding a name", ev, set("", "card_id", "Yamada Taro"), "/card_id", "pattern"},
		{schema.Tap, "unknown outcome", ev, set("", "outcome", "maybe"), "/outcome", "one of"},
		{schema.Tap, "unknown reason", ev, set("", "reason", "card-expired"), "/reason", "one of"},
		{schema.Tap, "unknown profile", ev, set("", "profile", "kyc"), "/profile", "one of"},
		{schema.Tap, "unknown credential", ev, set("", "credential", "password"), "/credential", "one of"},
		{schema.Tap, "unknown card kind", ev, set("", "card_kind", "passport"), "/card_kind", "one of"},
		{schema.Tap, "unknown time source", ev, set("", "time_source", "ntp"), "/time_source", "one of"},
		{schema.Tap, "no event id", ev, del("", "event_id"), "", "'event_id'"},
		{schema.Tap, "no time source", ev, del("", "time_source"), "", "'time_source'"},
		{schema.Tap, "no read_ms", ev, del("", "read_ms"), "", "'read_ms'"},
		{schema.Tap, "read_ms as a string", ev, set("", "read_ms", "412"), "/read_ms", "want integer"},
		{schema.Tap, "read_ms a fraction", ev, set("", "read_ms", 412.5), "/read_ms", "want integer"},
		{schema.Tap, "negative tries", ev, set("", "tries_left", -1), "/tries_left", "minimum"},
		{schema.Tap, "read_ms beyond int64", ev, set("", "read_ms", json.Number("9223372036854775808")), "/read_ms", "maximum"},
		{schema.Tap, "stale as a string", ev, set("", "revocation_stale", "true"), "/revocation_stale", "want boolean"},
		{schema.Tap, "event id not a v4 UUID", ev, set("", "event_id", "3b0f7c1e-8d2a-1c5b-9e6f-0a1b2c3d4e5f"), "/event_id", "pattern"},
		{schema.Tap, "time not UTC", ev, set("", "time", "2026-03-02T18:15:04+09:00"), "/time", "pattern"},
		{schema.Tap, "time not a date", ev, set("", "time", "2026-03-02 09:15:04Z"), "/time", "date-time"},
		{schema.Tap, "document digest too short", ev, set("", "document_sha256", "abcd"), "/document_sha256", "pattern"},
		{schema.Tap, "device id with a topic separator", ev, set("", "device_id", "kiosk/01"), "/device_id", "pattern"},
		{schema.Tap, "tries without credential", ev, del("", "credential"), "", "'credential'"},
		{schema.Tap, "stale without age", ev, del("", "revocation_age_s"), "", "'revocation_age_s'"},
		{schema.Tap, "accepted with a failure reason", acc, set("", "reason", "revoked"), "/outcome", "'rejected'"},
		{schema.Tap, "accepted without its profile's assurance", acc, set("", "assurance", "certificate-read"), "/assurance", "'genuine-card'"},
		{schema.Tap, "rejected with an assurance", ev, set("", "assurance", "registered"), "/assurance", "'none'"},
		{schema.Tap, "a status document", on, nil, "/schema", "'kazashi.tap/v2'"},

		{schema.Status, "extra property", on, set("", "ip", "10.0.0.7"), "", "'ip'"},
		{schema.Status, "online with a reason", on, set("", "reason", "shutdown"), "/reason", "not allowed"},
		{schema.Status, "offline without a reason", off, del("", "reason"), "", "'reason'"},
		{schema.Status, "unknown reason", off, set("", "reason", "crashed"), "/reason", "one of"},
		{schema.Status, "online as a string", on, set("", "online", "true"), "/online", "want boolean"},
		{schema.Status, "no online", on, del("", "online"), "", "'online'"},
		{schema.Status, "config digest upper-case", on, set("", "config_sha256", strings.ToUpper(statusOnline().ConfigSHA256)), "/config_sha256", "pattern"},
		{schema.Status, "empty firmware", on, set("", "firmware", ""), "/firmware", "minLength"},

		{schema.Health, "ok with an alarm", hOK, set("", "alarms", []any{map[string]any{"code": "quarantine", "message": "x", "since": "2026-03-02T09:15:04Z"}}), "/alarms", "maxItems"},
		{schema.Health, "not ok without alarms", hOK, set("", "ok", false), "/alarms", "minItems"},
		{schema.Health, "alarms null", hOK, set("", "alarms", nil), "/alarms", "want array"},
		{schema.Health, "unknown alarm code", hAl, set("alarms/0", "code", "on-fire"), "/alarms/0/code", "one of"},
		{schema.Health, "alarm extra property", hAl, set("alarms/1", "detail", "x"), "/alarms/1", "'detail'"},
		{schema.Health, "alarm without since", hAl, del("alarms/2", "since"), "/alarms/2", "'since'"},
		{schema.Health, "no device", hAl, del("", "device_id"), "", "'device_id'"},

		{schema.Telemetry, "extra property", tel, set("", "cpu_temp", 51), "", "'cpu_temp'"},
		{schema.Telemetry, "outbox without depth", tel, del("outbox", "depth"), "/outbox", "'depth'"},
		{schema.Telemetry, "negative depth", tel, set("outbox", "depth", -1), "/outbox/depth", "minimum"},
		{schema.Telemetry, "outbox extra property", tel, set("outbox", "path", "/var/lib/kazashi/outbox.db"), "/outbox", "'path'"},
		{schema.Telemetry, "delivered beyond uint64", tel, set("outbox", "delivered", json.Number("18446744073709551616")), "/outbox/delivered", "maximum"},
		{schema.Telemetry, "reader error count a string", tel, set("reader/errors", "timeout", "4"), "/reader/errors/timeout", "want integer"},
		{schema.Telemetry, "reader without state", tel, del("reader", "state"), "/reader", "'state'"},
		{schema.Telemetry, "no firmware", tel, del("", "firmware"), "", "'firmware'"},

		{schema.RevocationStatus, "no schema", rev, del("", "schema"), "", "'schema'"},
		{schema.RevocationStatus, "clock without Why", rev, del("clock", "Why"), "/clock", "'Why'"},
		{schema.RevocationStatus, "clock with snake_case keys", rev, set("clock", "time", "2026-03-02T09:15:04Z"), "/clock", "'time'"},
		{schema.RevocationStatus, "CRL number a string", rev, set("revocation/series/0", "number", "1042"), "/revocation/series/0/number", "want integer"},
		{schema.RevocationStatus, "negative CRL number", rev, set("revocation/series/0", "number", -1), "/revocation/series/0/number", "minimum"},
		{schema.RevocationStatus, "series id not hex", rev, set("revocation/series/1", "series", "auth"), "/revocation/series/1/series", "pattern"},
		{schema.RevocationStatus, "series entry extra property", rev, set("revocation/series/1", "url", "http://crl.example/x.crl"), "/revocation/series/1", "'url'"},
		{schema.RevocationStatus, "error not a string", rev, set("revocation/errors", "x.crl", 3), "/revocation/errors/x.crl", "want string"},

		{schema.Command, "no args", cmd, del("", "args"), "", "'args'"},
		{schema.Command, "args not an object", cmd, set("", "args", []any{"--force"}), "/args", "want object"},
		{schema.Command, "name with a topic separator", cmd, set("", "name", "sync/crl"), "/name", "pattern"},
		{schema.Command, "correlation id with a space", cmd, set("", "correlation_id", "a b"), "/correlation_id", "pattern"},
		{schema.Command, "expiry not a date", cmd, set("", "expires_at", "tomorrow"), "/expires_at", "date-time"},
		{schema.Command, "extra property", cmd, set("", "reply_to", "x"), "", "'reply_to'"},

		{schema.Reply, "failed without error", repF, del("", "error"), "", "'error'"},
		{schema.Reply, "ok with an error", rep, set("", "error", "x"), "/error", "not allowed"},
		{schema.Reply, "no correlation id", rep, del("", "correlation_id"), "", "'correlation_id'"},
		{schema.Reply, "no device", rep, del("", "device_id"), "", "'device_id'"},
		{schema.Reply, "result not an object", rep, set("", "result", 1), "/result", "want object"},
		{schema.Reply, "extra property", rep, set("", "elapsed_ms", 3), "", "'elapsed_ms'"},
	}
}

// TestNegatives: each document above fails with an *InvalidError that
// points at the property, through both ValidateAs and Validate, and the
// error text names it.
func TestNegatives(t *testing.T) {
	for _, n := range negatives() {
		m := doc(t, n.base())
		if n.mutate != nil {
			n.mutate(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		name := n.id + ": " + n.name
		err = schema.ValidateAs(n.id, b)
		expectViolation(t, name, err, n.path, n.rule)
		if err != nil {
			prop := n.path
			if prop == "" {
				prop = n.rule // the rule quotes the property
			}
			if !strings.Contains(err.Error(), prop) || !strings.Contains(err.Error(), n.id) {
				t.Errorf("%s: %q names neither %q nor the schema", name, err, prop)
			}
		}
		if id, _ := m["schema"].(string); id == n.id {
			expectViolation(t, name+" (Validate)", schema.Validate(b), n.path, n.rule)
		}
	}
}

// TestErrorsQuoteNoValue: a rejected value never appears in the error, so
// logging it cannot spread what leaked (pattern, format, minimum and
// enum failures included).
func TestErrorsQuoteNoValue(t *testing.T) {
	const secret = "Yamada-Taro-19800401"
	for _, field := range []string{"card_id", "check", "tech", "time", "event_id", "reason", "document_sha256"} {
		m := doc(t, eventFull())
		m[field] = secret
		b, _ := json.Marshal(m)
		err := schema.Validate(b)
		if err == nil {
			t.Errorf("%s = %q accepted", field, secret)
			continue
		}
		if strings.Contains(err.Error(), "Yamada") {
			t.Errorf("%s: error quotes the value: %v", field, err)
		}
	}
	m := doc(t, eventFull())
	m["tries_left"] = json.Number("-19800401")
	b, _ := json.Marshal(m)
	if err := schema.Validate(b); err == nil || strings.Contains(err.Error(), "19800401") {
		t.Errorf("negative tries: %v", err)
	}
	if err := schema.Validate([]byte(`{"schema": "kazashi.tap/v2", "event_id": "Yamada` + "\x01" + `"}`)); err == nil || strings.Contains(err.Error(), "Yamada") {
		t.Errorf("syntax error: %v", err)
	}
}

// TestDispatch: Validate picks the schema from "schema" and refuses what
// has none or an unknown one; ValidateAs and ValidateTopic refuse unknown
// ids and topics.
func TestDispatch(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    error
	}{
		{`{"schema":"kazashi.tap/v1","event_id":"x"}`, schema.ErrUnknown},
		{`{"schema":"kazashi.defs/v1"}`, schema.ErrUnknown},
		{`{"schema":"kazashi.tap/v3"}`, schema.ErrUnknown},
		{`{"event_id":"x"}`, schema.ErrInvalid},
		{`{"schema":2}`, schema.ErrInvalid},
		{`["schema","kazashi.tap/v2"]`, schema.ErrInvalid},
		{`"kazashi.tap/v2"`, schema.ErrInvalid},
		{``, schema.ErrInvalid},
		{`{"schema":"kazashi.status/v1","online":true} {}`, schema.ErrInvalid},
		{`{"schema":"kazashi.status/v1","online":true`, schema.ErrInvalid},
		{`{"schema":"kazashi.status/v1","online":true}`, nil},
	} {
		if err := schema.Validate([]byte(c.payload)); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("Validate(%s) = %v, want %v", c.payload, err, c.want)
		}
	}
	status := []byte(`{"schema":"kazashi.status/v1","online":true}`)
	if err := schema.ValidateAs("kazashi.status/v2", status); !errors.Is(err, schema.ErrUnknown) {
		t.Errorf("ValidateAs unknown id: %v", err)
	}
	if err := schema.ValidateTopic("kazashi/kiosk-01/status/other", status); !errors.Is(err, schema.ErrUnknown) {
		t.Errorf("ValidateTopic unknown topic: %v", err)
	}
	expectViolation(t, "status on the events topic", schema.ValidateTopic("kazashi/kiosk-01/events", status), "/schema", "kazashi.tap/v2")
}

// TestForTopic maps the topic tree (gateway/topics) to schema ids: with
// a one-level prefix for any device id, even one named like a tail; with
// a longer prefix through ForPrefix, and through ForTopic for device ids
// that are not tail words.
func TestForTopic(t *testing.T) {
	for _, c := range []struct {
		prefix   string
		devices  []string
		forTopic bool
	}{
		{"kazashi", []string{"kiosk-01", "events", "status", "cmd", "reply", "telemetry", "health"}, true},
		{"status", []string{"kiosk-01", "cmd", "reply"}, true},
		{"site-a/kazashi", []string{"kiosk-01", "health"}, true},
		{"a/b/c", []string{"kiosk-01"}, true},
		{"site-a/kazashi", []string{"events", "status", "cmd", "reply", "telemetry"}, false},
		{"a/cmd/b", []string{"kiosk-01", "cmd"}, false},
	} {
		for _, device := range c.devices {
			tr, err := topics.New(c.prefix, device)
			if err != nil {
				t.Fatal(err)
			}
			for topic, want := range map[string]string{
				tr.Events(): schema.Tap, tr.Status(): schema.Status, tr.Health(): schema.Health,
				tr.Revocation(): schema.RevocationStatus, tr.Telemetry(): schema.Telemetry,
				tr.Command("sync-crl"): schema.Command, tr.Command("events"): schema.Command,
				tr.Reply("sync-crl"): schema.Reply, tr.Reply("status"): schema.Reply, tr.Reply("a/b"): schema.Reply,
			} {
				if got, ok := schema.ForPrefix(c.prefix, topic); !ok || got != want {
					t.Errorf("ForPrefix(%q, %q) = %q, %v; want %q", c.prefix, topic, got, ok, want)
				}
				if !c.forTopic {
					continue
				}
				if got, ok := schema.ForTopic(topic); !ok || got != want {
					t.Errorf("ForTopic(%q) = %q, %v; want %q", topic, got, ok, want)
				}
			}
		}
	}
	// The ambiguity ForPrefix resolves: command "events" of device
	// "kazashi" under "site-a", or the events of device "cmd" under
	// "site-a/kazashi".
	if id, _ := schema.ForTopic("site-a/kazashi/cmd/events"); id != schema.Command {
		t.Errorf("ForTopic: %q", id)
	}
	if id, _ := schema.ForPrefix("site-a/kazashi", "site-a/kazashi/cmd/events"); id != schema.Tap {
		t.Errorf("ForPrefix: %q", id)
	}
	for _, topic := range []string{
		"", "kazashi", "kazashi/events", "events", "kazashi/kiosk-01", "kazashi/kiosk-01/", "kazashi/kiosk-01/status/other",
		"kazashi/kiosk-01/cmd", "kazashi/kiosk-01/cmd/", "kazashi/kiosk-01/reply//x", "kazashi/+/events", "kazashi/kiosk-01/cmd/#",
		topics.EventsFilter("kazashi"), topics.Shared("backend", topics.EventsFilter("kazashi")), "$SYS/broker/uptime",
		"/kiosk-01/events", "kazashi//events", "kazashi/kiosk-01/event", "kazashi/kiosk-01/events/x", "kazashi/kiosk-01/telemetry/x",
		"kazashi/kiosk-01/ev\x00ents",
	} {
		if id, ok := schema.ForTopic(topic); ok {
			t.Errorf("ForTopic(%q) = %q, want none", topic, id)
		}
		if id, ok := schema.ForPrefix("kazashi", topic); ok {
			t.Errorf("ForPrefix(kazashi, %q) = %q, want none", topic, id)
		}
	}
	for _, c := range [][2]string{{"other", "kazashi/kiosk-01/events"}, {"", "/kiosk-01/events"}, {"kazashi", "kazashi/events"}} {
		if id, ok := schema.ForPrefix(c[0], c[1]); ok {
			t.Errorf("ForPrefix(%q, %q) = %q, want none", c[0], c[1], id)
		}
	}
}

// TestSchemaFieldsMatchGoTypes holds each schema to its Go type: the
// properties at every level are exactly the type's JSON field names, and
// the required ones exactly the fields without omitempty. A field added,
// renamed or made omitempty in Go fails here until the schema follows
// (as a new version if it breaks consumers).
func TestSchemaFieldsMatchGoTypes(t *testing.T) {
	for _, id := range schema.IDs() {
		goF := map[string]bool{}
		goFields(typeOf[id], "", goF)
		if id == schema.RevocationStatus {
			if _, ok := goF["schema"]; !ok {
				t.Logf("trustlayer.Status has no Schema field yet; the schema requires \"schema\" (the lead adds the field)")
				goF["schema"] = true
			}
		}
		schF := map[string]bool{}
		schemaFields(schemaDoc(t, id), "", schF)
		for _, p := range slices.Sorted(maps.Keys(goF)) {
			req, ok := schF[p]
			switch {
			case !ok:
				t.Errorf("%s: Go field %s is not in the schema", id, p)
			case req != goF[p]:
				t.Errorf("%s: %s is required in the schema: %v, in Go (no omitempty): %v", id, p, req, goF[p])
			}
		}
		for _, p := range slices.Sorted(maps.Keys(schF)) {
			if _, ok := goF[p]; !ok {
				t.Errorf("%s: schema property %s is no field of %s", id, p, typeOf[id])
			}
		}
	}
}

// TestSamplesCoverEveryGoField: every JSON field of each Go type is set
// (non-zero) in at least one sample, so the samples exercise every
// property the schema checks.
func TestSamplesCoverEveryGoField(t *testing.T) {
	for id, ss := range samples() {
		goF := map[string]bool{}
		goFields(typeOf[id], "", goF)
		set := map[string]bool{}
		for _, s := range ss {
			setFields(reflect.ValueOf(s.value), "", set)
		}
		for _, p := range slices.Sorted(maps.Keys(goF)) {
			if !set[p] {
				t.Errorf("%s: no sample sets %s", id, p)
			}
		}
	}
}

// leaf types marshal as one JSON value.
var leaf = map[reflect.Type]bool{
	reflect.TypeFor[time.Time](): true, reflect.TypeFor[big.Int](): true, reflect.TypeFor[json.RawMessage](): true,
}

func jsonName(f reflect.StructField) (name string, omitempty, ok bool) {
	if !f.IsExported() {
		return "", false, false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, slices.Contains(strings.Split(opts, ","), "omitempty"), true
}

// goFields records the JSON field paths of t ("outbox/depth",
// "alarms/[]/code") and whether each is always present.
func goFields(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for f := range t.Fields() {
		if f.Anonymous && f.Tag.Get("json") == "" {
			goFields(f.Type, prefix, out)
			continue
		}
		name, omit, ok := jsonName(f)
		if !ok {
			continue
		}
		p := prefix + name
		out[p] = !omit
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice && !leaf[ft] {
			p += "/[]"
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !leaf[ft] {
			goFields(ft, p+"/", out)
		}
	}
}

// setFields records the paths of the fields that are set in v.
func setFields(v reflect.Value, prefix string, out map[string]bool) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	for i, f := range slices.Collect(v.Type().Fields()) {
		fv := v.Field(i)
		if f.Anonymous && f.Tag.Get("json") == "" {
			setFields(fv, prefix, out)
			continue
		}
		name, _, ok := jsonName(f)
		if !ok {
			continue
		}
		p := prefix + name
		if !fv.IsZero() && !(fv.Kind() == reflect.Slice && fv.Len() == 0) && !(fv.Kind() == reflect.Map && fv.Len() == 0) {
			out[p] = true
		}
		for fv.Kind() == reflect.Pointer && !fv.IsNil() {
			fv = fv.Elem()
		}
		switch {
		case fv.Kind() == reflect.Slice && !leaf[fv.Type()]:
			for j := range fv.Len() {
				setFields(fv.Index(j), p+"/[]/", out)
			}
		case fv.Kind() == reflect.Struct && !leaf[fv.Type()]:
			setFields(fv, p+"/", out)
		}
	}
}

// schemaFields records the property paths of a schema node and whether
// each is required, descending into object properties and array items.
func schemaFields(node map[string]any, prefix string, out map[string]bool) {
	props, _ := node["properties"].(map[string]any)
	req, _ := node["required"].([]any)
	for name, sub := range props {
		p := prefix + name
		out[p] = slices.Contains(req, any(name))
		s, _ := sub.(map[string]any)
		if items, ok := s["items"].(map[string]any); ok {
			p += "/[]"
			s = items
		}
		if _, ok := s["properties"]; ok {
			schemaFields(s, p+"/", out)
		}
	}
}

// TestEverySchemaFileHasCases walks the schema directory: every payload
// schema file has valid Go samples and negative cases here (and an
// example in docs/topics.md, TestDocExamples).
func TestEverySchemaFileHasCases(t *testing.T) {
	neg := map[string]int{}
	for _, n := range negatives() {
		neg[n.id]++
	}
	ss := samples()
	n := 0
	err := filepath.WalkDir("json", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(p), "json/"), ".json")
		if id == "kazashi.defs/v1" {
			return nil // shared definitions, no payload (TestSchemaFiles checks each is used)
		}
		n++
		if len(ss[id]) == 0 || neg[id] == 0 || goType[id] == nil || typeOf[id] == nil {
			t.Errorf("%s: %d samples, %d negative cases, Go type %v: every schema file needs all three", p, len(ss[id]), neg[id], typeOf[id])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(schema.IDs()) {
		t.Errorf("%d payload schema files, %d ids", n, len(schema.IDs()))
	}
}

// TestConcurrentValidation: the compiled schemas are shared; concurrent
// validation is race-free (run with -race) and gives the same answers.
func TestConcurrentValidation(t *testing.T) {
	good := marshal(t, eventFull())
	m := doc(t, eventFull())
	m["name"] = "x"
	bad, _ := json.Marshal(m)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if err := schema.Validate(good); err != nil {
					t.Error(err)
					return
				}
				if err := schema.Validate(bad); !errors.Is(err, schema.ErrInvalid) {
					t.Errorf("bad: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkValidateTap(b *testing.B) {
	p := marshal(b, eventFull())
	b.ReportAllocs()
	for b.Loop() {
		if err := schema.Validate(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalTap is the baseline: decoding the same event into
// tap.Event with encoding/json.
func BenchmarkUnmarshalTap(b *testing.B) {
	p := marshal(b, eventFull())
	b.ReportAllocs()
	for b.Loop() {
		var e tap.Event
		if err := json.Unmarshal(p, &e); err != nil {
			b.Fatal(err)
		}
	}
}
