package schema_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/firmware/trustclock"
	"github.com/kazashi/kazashi/firmware/trustlayer"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/schema"
	"github.com/kazashi/kazashi/gateway/uplink"
)

// Realistic documents built from the real Go types: what the daemon would
// marshal. Each schema's samples together set every field of its Go type
// at least once (TestSamplesCoverEveryGoField), so a field added to a type
// shows up here, and then in validation.

var (
	t0      = time.Date(2026, 3, 2, 9, 15, 4, 123456789, time.UTC)
	jst     = time.FixedZone("JST", 9*3600)
	docHash = sha256.Sum256([]byte("the document the holder signs"))
)

func ptr[T any](v T) *T { return &v }

// commandEnvelope and replyEnvelope are the kazashi.cmd/v1 and
// kazashi.reply/v1 envelopes as Go types (the fleet issue will own the
// real ones); the drift test holds them to the schemas like the others.
type commandEnvelope struct {
	Schema        string          `json:"schema"`
	CorrelationID string          `json:"correlation_id"`
	Name          string          `json:"name"`
	IssuedAt      time.Time       `json:"issued_at"`
	ExpiresAt     *time.Time      `json:"expires_at,omitempty"`
	Args          json.RawMessage `json:"args"`
}

type replyEnvelope struct {
	Schema        string          `json:"schema"`
	CorrelationID string          `json:"correlation_id"`
	Device        string          `json:"device_id"`
	Name          string          `json:"name"`
	Time          time.Time       `json:"time"`
	OK            bool            `json:"ok"`
	Error         string          `json:"error,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
}

// goType maps a schema id to a new value of the Go type its payloads
// decode into.
var goType = map[string]func() any{
	schema.Tap:              func() any { return new(tap.Event) },
	schema.Status:           func() any { return new(mqtt.Status) },
	schema.Health:           func() any { return new(uplink.Health) },
	schema.Telemetry:        func() any { return new(uplink.Telemetry) },
	schema.RevocationStatus: func() any { return new(trustlayer.Status) },
	schema.Command:          func() any { return new(commandEnvelope) },
	schema.Reply:            func() any { return new(replyEnvelope) },
}

// typeOf is the Go type whose JSON fields the schema must describe.
var typeOf = map[string]reflect.Type{
	schema.Tap:              reflect.TypeFor[tap.Event](),
	schema.Status:           reflect.TypeFor[mqtt.Status](),
	schema.Health:           reflect.TypeFor[uplink.Health](),
	schema.Telemetry:        reflect.TypeFor[uplink.Telemetry](),
	schema.RevocationStatus: reflect.TypeFor[trustlayer.Status](),
	schema.Command:          reflect.TypeFor[commandEnvelope](),
	schema.Reply:            reflect.TypeFor[replyEnvelope](),
}

// Events. eventFull sets every field of tap.Event (a register tap that
// failed on the signature password); eventMinimal only those without
// omitempty.
func eventFull() tap.Event {
	return tap.Event{
		Schema: tap.Schema, ID: "3b0f7c1e-8d2a-4c5b-9e6f-0a1b2c3d4e5f", Device: "kiosk-01", Time: t0,
		Profile: tap.ProfileRegister, Outcome: tap.OutcomeOf(tap.ReasonWrongSecret), Reason: tap.ReasonWrongSecret,
		Assurance: tap.AssuranceNone, Check: "secret", CardKind: string(jpki.HolderCard),
		CardID: "f3220de449e7b395494c2049dab7f35f", CardKeyID: "fc662fa3403501986f40922340c8207f",
		Credential: string(holder.SignPassword), TriesLeft: ptr(2), DocumentSHA256: hex.EncodeToString(docHash[:]),
		Tech: "iso14443-4b", ReadMS: 412, InputMS: 5230, TimeSource: tap.TimeTrustedBound,
		RevocationAgeS: ptr(int64(86400)), RevocationStale: true,
	}
}

func eventMinimal() tap.Event {
	return tap.Event{
		Schema: tap.Schema, ID: "0d9f7a52-63b4-4e1a-a2c3-5d6e7f809102", Device: "kiosk-01", Time: t0,
		Profile: tap.ProfileCardCheck, Outcome: tap.OutcomeOf(tap.ReasonRemoved), Reason: tap.ReasonRemoved,
		Assurance: tap.AssuranceNone, TimeSource: tap.TimeSystem,
	}
}

// eventAccepted is an accepted tap of profile pr, as Handle builds it.
func eventAccepted(pr string) tap.Event {
	e := tap.Event{
		Schema: tap.Schema, ID: "8a4c2e10-5b7d-4f93-b1a6-c8d9e0f1a2b3", Device: "kiosk-01", Time: t0,
		Profile: pr, Reason: tap.ReasonOK, Outcome: tap.OutcomeOf(tap.ReasonOK),
		Assurance: tap.Profile{Name: pr}.Assurance(), CardKind: string(jpki.HolderAndroid),
		CardID: "0123456789abcdef0123456789abcdef", Tech: "iso14443-4b", ReadMS: 180, TimeSource: tap.TimeSystem,
		RevocationAgeS: ptr(int64(3600)),
	}
	if pr != tap.ProfileCardCheck {
		e.Credential, e.TriesLeft, e.InputMS = string(holder.AuthPIN), ptr(3), 2100
	}
	return e
}

func statusOnline() mqtt.Status {
	return mqtt.Status{Schema: mqtt.StatusSchema, Online: true, Device: "kiosk-01", Firmware: "1.4.0",
		ConfigSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
}

func statusOffline(reason string) mqtt.Status {
	s := statusOnline()
	s.Online, s.Reason = false, reason
	return s
}

func healthOK() uplink.Health {
	return uplink.Health{Schema: uplink.HealthSchema, Device: "kiosk-01", Time: t0, OK: true, Alarms: []uplink.Alarm{}}
}

func healthAlarms() uplink.Health {
	since := t0.Add(-10 * time.Minute).In(jst) // Alarm.Since is not normalised to UTC
	return uplink.Health{Schema: uplink.HealthSchema, Device: "kiosk-01", Time: t0, OK: false, Alarms: []uplink.Alarm{
		{Code: uplink.AlarmStorage, Message: "The outbox could not write: disk full.", Since: since},
		{Code: uplink.AlarmOutboxFull, Message: "The outbox is full (100000 events, 52428800 bytes queued).", Since: since, Count: 100000},
		{Code: uplink.AlarmQuarantine, Message: "2 events were refused by the broker.", Since: since, Count: 2},
		{Code: uplink.AlarmBroker, Message: "The broker cannot be reached.", Since: since},
		{Code: uplink.AlarmReader, Message: "The NFC reader is not working.", Since: since, Count: 3},
	}}
}

func telemetryFull() uplink.Telemetry {
	tm := uplink.Telemetry{Schema: uplink.TelemetrySchema, Device: "kiosk-01", Time: t0, TimeSource: tap.TimeTrustedBound,
		Firmware: "1.4.0", UptimeS: 93784, RevocationAgeS: ptr(int64(7200)),
		Reader: &uplink.ReaderHealth{State: "ready", Resets: 1, Errors: map[string]int{"timeout": 4, "frame": 1}}}
	tm.Outbox.Depth, tm.Outbox.Bytes, tm.Outbox.OldestAgeS = 12, 6144, ptr(int64(95))
	tm.Outbox.Quarantined, tm.Outbox.Full, tm.Outbox.Delivered = 1, true, 1<<63+5
	return tm
}

func telemetryMinimal() uplink.Telemetry {
	return uplink.Telemetry{Schema: uplink.TelemetrySchema, Device: "kiosk-01", Time: t0, TimeSource: tap.TimeSystem}
}

// withSchema sets trustlayer.Status's Schema field.
func withSchema(st trustlayer.Status) trustlayer.Status {
	st.Schema = trustlayer.StatusSchema
	return st
}

func revocationFull() trustlayer.Status {
	// RFC 5280 §5.2.3: a CRL number may take 20 octets.
	big20 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 159), big.NewInt(1))
	return withSchema(trustlayer.Status{
		Clock: trustclock.Reading{Time: t0, Bound: t0, System: time.Unix(5, 0).UTC(), Believed: false,
			Why: "system clock 1970-01-01T00:00:05Z is behind the trusted lower bound 2026-03-02T09:15:04Z"},
		Revocation: revocation.Status{
			Series: []revocation.SeriesStatus{
				{Series: "0123456789abcdef01234567", Issuer: "CN=Japan Agency for Local Authority Information Systems,OU=JPKI,O=JPKI,C=JP",
					Scope: "a1b2c3d4e5f6", Number: big.NewInt(1042), Complete: big.NewInt(1040), Delta: big.NewInt(1042),
					ThisUpdate: t0.Add(-2 * time.Hour), NextUpdate: t0.Add(22 * time.Hour), Entries: 5123456, File: "0123456789abcdef01234567-1042.idx"},
				{Series: "89abcdef0123456789abcdef", Issuer: "CN=JPKI-TEST auth CA,O=JPKI-TEST,C=JP",
					Number: big20, Complete: big20,
					ThisUpdate: t0.Add(-time.Hour).In(jst), NextUpdate: t0.Add(23 * time.Hour).In(jst), Entries: 0, File: "89abcdef0123456789abcdef.idx"},
			},
			Errors: map[string]string{"auth-2026-03-01.crl": "revocation: CRL signature does not verify"},
		},
		AgeS: ptr(int64(7200)),
	})
}

func revocationMinimal() trustlayer.Status {
	return withSchema(trustlayer.Status{Clock: trustclock.Reading{Time: t0, Bound: t0, System: t0, Believed: true}})
}

func commandFull() commandEnvelope {
	return commandEnvelope{Schema: schema.Command, CorrelationID: "5f0c7b8e-2d41-4a9e-8f63-1b2c3d4e5f60", Name: "sync-crl",
		IssuedAt: t0, ExpiresAt: ptr(t0.Add(10 * time.Minute)), Args: json.RawMessage(`{"force":true}`)}
}

func commandMinimal() commandEnvelope {
	return commandEnvelope{Schema: schema.Command, CorrelationID: "c-1", Name: "ping", IssuedAt: t0, Args: json.RawMessage(`{}`)}
}

func replyOK() replyEnvelope {
	return replyEnvelope{Schema: schema.Reply, CorrelationID: "5f0c7b8e-2d41-4a9e-8f63-1b2c3d4e5f60", Device: "kiosk-01",
		Name: "sync-crl", Time: t0, OK: true, Result: json.RawMessage(`{"imported":1}`)}
}

func replyFailed() replyEnvelope {
	return replyEnvelope{Schema: schema.Reply, CorrelationID: "c-1", Device: "kiosk-01", Name: "sync-crl", Time: t0,
		Error: "revocation: CRL signature does not verify"}
}

// sample is one valid Go value of a schema.
type sample struct {
	name  string
	value any
}

// samples lists, per schema id, Go values that must validate.
func samples() map[string][]sample {
	m := map[string][]sample{
		schema.Tap: {{"full", eventFull()}, {"minimal", eventMinimal()}},
		schema.Status: {{"online", statusOnline()}, {"shutdown", statusOffline(mqtt.ReasonShutdown)},
			{"last will", statusOffline(mqtt.ReasonConnectionLost)}, {"minimal", mqtt.Status{Schema: mqtt.StatusSchema, Online: true}}},
		schema.Health:           {{"ok", healthOK()}, {"alarms", healthAlarms()}},
		schema.Telemetry:        {{"full", telemetryFull()}, {"minimal", telemetryMinimal()}},
		schema.RevocationStatus: {{"full", revocationFull()}, {"minimal", revocationMinimal()}},
		schema.Command:          {{"full", commandFull()}, {"minimal", commandMinimal()}},
		schema.Reply:            {{"ok", replyOK()}, {"failed", replyFailed()}},
	}
	for _, pr := range []string{tap.ProfileCardCheck, tap.ProfileFaceCheck, tap.ProfilePINAuth, tap.ProfileSign,
		tap.ProfileAttributes, tap.ProfileRegister} {
		m[schema.Tap] = append(m[schema.Tap], sample{"accepted " + pr, eventAccepted(pr)})
	}
	return m
}

// marshal is json.Marshal of v; for trustlayer.Status without a Schema
// field yet, it adds "schema" as the lead's change will.
func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := v.(trustlayer.Status); ok && !reflect.ValueOf(st).FieldByName("Schema").IsValid() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["schema"] = json.RawMessage(`"` + schema.RevocationStatus + `"`)
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
