// Package tap is the tap pipeline: a card or phone enters the field, the
// kiosk identifies it, runs the service profile's flow in that one RF
// session (reading, asking the holder for a secret, having the card sign a
// fresh nonce), verifies offline, publishes one event and waits for the
// card to leave.
//
// The pipeline depends only on small interfaces (Reader, Verifier,
// CVAnchors, holder.Input, LocalRecipient, Sink, Display), so the NFC
// frontend, the verification back end, the PIN pad, the transport to the
// backend and the screen can each change without touching it. It imports
// neither the PN532 driver nor any MQTT library: the daemon's composition
// root adapts them.
//
// Every event says which profile ran and what it proved (Assurance); the
// profiles, their flows and what each does not prove are in profile.go
// and the README.
package tap

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
)

// Session is one card or phone in the field.
type Session interface {
	iso7816.Card
	// Tech names the RF technology, e.g. "iso14443-4b".
	Tech() string
	// WaitRemoved blocks until the card has left the field.
	WaitRemoved(ctx context.Context) error
	// Close releases the card; it is called once per session.
	Close() error
}

// Reader yields sessions.
type Reader interface {
	// Next blocks until a card enters the field. It recovers from frontend
	// faults itself; an error means the reader cannot go on right now.
	Next(ctx context.Context) (Session, error)
}

// Verdict is a verifier's answer: a stable reason code and a detail safe
// for logs (no personal data).
type Verdict struct {
	Reason string
	Detail string
	// Chained: the certificate's signature verified under a trust anchor
	// of the right purpose, whatever the later checks said (true also for
	// revoked, expired, crl-…). card_id is computed only when Chained.
	Chained bool
	// RevocationAge is how old the revocation data that judged the
	// certificate was (verification time minus the CRL's thisUpdate),
	// when RevocationKnown: a CRL was consulted.
	RevocationAge   time.Duration
	RevocationKnown bool
	// RevocationStale: the CRL that judged was past its nextUpdate,
	// accepted only within the configured grace period.
	RevocationStale bool
}

// Verifier checks JPKI certificates offline, each purpose against its own
// anchors: a signature certificate is never accepted as an
// authentication certificate.
type Verifier interface {
	VerifyJPKIAuth(ctx context.Context, certDER []byte) Verdict
	VerifyJPKISign(ctx context.Context, certDER []byte) Verdict
}

// CVAnchors gives the CA key that signs a card application's CV
// certificate, per purpose ("surface" for the card surface AP, "support"
// for the input support AP). false: the issuer is not a trusted anchor
// for that purpose in this mode (production keys 5…, test keys 6…).
type CVAnchors interface {
	CVKey(purpose string, issuer jpki.KeyID) (*rsa.PublicKey, bool)
}

// LocalRecipient receives verified attributes on this machine only (the
// holder-input endpoint's terminal); they never reach the Sink.
type LocalRecipient interface {
	Deliver(ctx context.Context, a holder.Attributes) error
}

// Sink takes finished events (MQTT, an outbox, a test recorder).
type Sink interface {
	Publish(ctx context.Context, e Event) error
}

// Display shows the person at the kiosk what to do and what happened.
type Display interface {
	Show(s Screen)
}

// Screen is one state of the kiosk screen. It never holds a secret or
// personal data.
type Screen struct {
	State   State
	Reason  string // for StateResult
	Outcome Outcome
	Message string // what to tell the person, in plain words
	// For StateInput: which secret is asked for and how many tries the
	// card says are left.
	Credential holder.Kind
	TriesLeft  int
}

// State of the kiosk screen.
type State string

// Screen states.
const (
	StateReady   State = "ready"   // waiting for a card
	StateReading State = "reading" // card detected, keep still
	StateInput   State = "input"   // type a secret on the PIN pad, card stays on the reader
	StateResult  State = "result"  // outcome shown, take the card
	StateFault   State = "fault"   // reader not available
	// StateNotSaved: the card was read but its result could not be
	// recorded (outbox full, disk full); nothing was sent, take the card.
	StateNotSaved State = "not-saved"
)

// Outcome of a tap.
type Outcome string

// Outcomes.
const (
	Accepted Outcome = "accepted"
	Rejected Outcome = "rejected"
	Error    Outcome = "error"
)

// Reason codes that the pipeline itself produces; verification reasons
// (ok, revoked, expired, untrusted, …) come from the Verifier.
const (
	ReasonOK          = "ok"
	ReasonRemoved     = "removed"          // card left the field during the read
	ReasonIO          = "io"               // reader or card I/O failure
	ReasonUnsupported = "unsupported-card" // no JPKI AP, an unknown holder, or a holder without the profile's AP
	ReasonPINRequired = "pin-required"     // the certificate needs a PIN on this holder (card-check, face-check)

	ReasonNotGenuine      = "not-genuine"            // a signature the genuine card makes did not verify, or a genuine card's AP is missing
	ReasonCVAnchorUnknown = "cv-anchor-unknown"      // the CV certificate's issuer is no anchor of this kiosk: not checked
	ReasonFaceMismatch    = "face-mismatch"          // the signed card-face record does not match the collation number
	ReasonWrongSecret     = "wrong-secret"           // the card refused the secret; tries_left says how many remain
	ReasonTriesFloor      = "tries-floor"            // too few tries left to risk one: nothing was presented
	ReasonBlocked         = "blocked"                // the credential is blocked; the municipal office resets it
	ReasonCancelled       = "cancelled"              // the holder cancelled on the PIN pad
	ReasonInputTimeout    = "input-timeout"          // nobody typed in time
	ReasonNoSignCert      = "no-sign-cert"           // the card has no signature certificate (e.g. issued under 15)
	ReasonIntegrity       = "integrity-failed"       // a signed record or its integrity digest does not verify
	ReasonUndelivered     = "attributes-undelivered" // verified attributes could not reach the local terminal
	ReasonMalformed       = "malformed"              // the card returned data that does not parse
)

// Schema is the version of the event document. v2 added profile,
// assurance, card_key_id, credential, tries_left, check, document_sha256
// and input_ms; card_id became keyed per service.
const Schema = "kazashi.tap/v2"

// Event is the document published for every tap. It carries no
// certificate, no serial number, no secret and no personal data: the card
// is named by keyed pseudonyms that only this deployment can reproduce.
type Event struct {
	Schema    string    `json:"schema"`
	ID        string    `json:"event_id"`
	Device    string    `json:"device_id"`
	Time      time.Time `json:"time"`
	Profile   string    `json:"profile"`
	Outcome   Outcome   `json:"outcome"`
	Reason    string    `json:"reason"`
	Assurance Assurance `json:"assurance"`
	// Check names the step that failed (e.g. "auth-certificate",
	// "cv-certificate", "card-face", "liveness", "possession", "secret").
	Check    string `json:"check,omitempty"`
	CardKind string `json:"card_kind,omitempty"`
	CardID   string `json:"card_id,omitempty"`
	// CardKeyID (face-check) is keyed over the card's own public key: the
	// same when the JPKI certificates are renewed on the same card.
	CardKeyID string `json:"card_key_id,omitempty"`
	// Credential and TriesLeft describe the secret a secret-related reason
	// is about (never the secret itself).
	Credential string `json:"credential,omitempty"`
	TriesLeft  *int   `json:"tries_left,omitempty"`
	// DocumentSHA256 is the digest the holder signed (sign, register).
	DocumentSHA256 string `json:"document_sha256,omitempty"`
	Tech           string `json:"tech,omitempty"`
	// ReadMS is the card I/O time; InputMS the time the holder took to type.
	ReadMS  int64 `json:"read_ms"`
	InputMS int64 `json:"input_ms,omitempty"`
	// TimeSource says where Time came from: "system" when the system
	// clock was believed, "trusted-bound" when it was not (a board without
	// an RTC, a clock set back) and Time is the kiosk's persisted lower
	// bound on the current time.
	TimeSource string `json:"time_source"`
	// RevocationAgeS is the age in seconds of the revocation data: of the
	// CRL that judged the certificate, or, when no certificate was
	// judged, of the newest loaded CRL. Absent when none is loaded.
	RevocationAgeS *int64 `json:"revocation_age_s,omitempty"`
	// RevocationStale says the revocation data that judged a certificate
	// was past its nextUpdate and used only because of the configured
	// grace period.
	RevocationStale bool `json:"revocation_stale,omitempty"`
}

// Time sources of Event.TimeSource.
const (
	TimeSystem       = "system"
	TimeTrustedBound = "trusted-bound"
)

// Pipeline runs taps one after another.
type Pipeline struct {
	Reader   Reader
	Verifier Verifier
	Sink     Sink
	Display  Display // optional
	// Profile is the service profile every tap runs (default card-check).
	Profile Profile
	// CV holds the card applications' CA keys (face-check, attributes).
	CV CVAnchors
	// Input asks the holder for secrets (every profile but card-check).
	Input holder.Input
	// Local receives verified attributes (attributes profile).
	Local LocalRecipient
	// Document returns the SHA-256 of the document to sign (sign, register).
	Document func(ctx context.Context) ([]byte, error)
	DeviceID string
	// PseudonymKey keys the card identifiers (HMAC-SHA256); per
	// deployment, at least 16 bytes.
	PseudonymKey []byte
	// Now is the clock for durations (read_ms, budgets).
	Now func() time.Time
	// Clock, if set, stamps events: the trusted time and whether the
	// system clock was believed. Without it, events carry Now as "system".
	Clock func() (t time.Time, systemBelieved bool)
	// RevocationAge, if set, gives the age of the newest loaded
	// revocation data at t (ok false when none is loaded), for events in
	// which no certificate was judged.
	RevocationAge func(t time.Time) (age time.Duration, ok bool)
	Logger        *slog.Logger
	// ReadTimeout bounds the card I/O of one tap (default 10 s). The time
	// the holder takes to type is not counted: each input waits for the
	// holder endpoint's own timeout.
	ReadTimeout time.Duration
	// FaultBackoff is the pause after a reader error (default 1 s).
	FaultBackoff time.Duration
}

func (p *Pipeline) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Pipeline) show(s Screen) {
	if p.Display != nil {
		p.Display.Show(s)
	}
}

// Run processes taps until ctx ends. It returns nil on cancellation.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.Reader == nil || p.Sink == nil {
		return errors.New("tap: pipeline needs Reader and Sink")
	}
	if err := p.check(); err != nil {
		return err
	}
	backoff := p.FaultBackoff
	if backoff == 0 {
		backoff = time.Second
	}
	ready := Screen{State: StateReady, Message: MessageReady}
	for ctx.Err() == nil {
		p.show(ready)
		s, err := p.Reader.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.log().Warn("tap: reader fault", "err", err)
			p.show(Screen{State: StateFault, Message: MessageFault})
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		p.show(Screen{State: StateReading, Message: MessageReading})
		ev := p.Handle(ctx, s)
		p.log().Info("tap", "event_id", ev.ID, "profile", ev.Profile, "outcome", ev.Outcome, "reason", ev.Reason,
			"assurance", ev.Assurance, "check", ev.Check, "credential", ev.Credential, "card_kind", ev.CardKind,
			"read_ms", ev.ReadMS, "input_ms", ev.InputMS)
		// The event is recorded (the daemon's sink is the durable outbox)
		// before the screen shows the result.
		// If it could not be recorded (outbox full, disk full), the screen
		// must not show the tap as done: the result would never reach
		// the backend.
		if err := p.Sink.Publish(ctx, ev); err != nil {
			if ctx.Err() != nil {
				break
			}
			p.log().Error("tap: event not recorded", "event_id", ev.ID, "err", err)
			p.show(Screen{State: StateNotSaved, Message: MessageNotSaved})
		} else {
			p.show(Screen{State: StateResult, Reason: ev.Reason, Outcome: ev.Outcome, Message: ResultMessage(ev)})
		}
		if ev.Reason != ReasonRemoved {
			if err := s.WaitRemoved(ctx); err != nil && ctx.Err() == nil {
				p.log().Warn("tap: waiting for removal", "err", err)
			}
		}
		if err := s.Close(); err != nil && ctx.Err() == nil {
			p.log().Debug("tap: release", "err", err)
		}
	}
	return nil
}

// check validates the pipeline's configuration for its profile.
func (p *Pipeline) check() error {
	if p.Verifier == nil || p.Now == nil {
		return errors.New("tap: pipeline needs Verifier and Now")
	}
	if len(p.PseudonymKey) < 16 {
		return errors.New("tap: pseudonym key shorter than 16 bytes")
	}
	pr := p.profile()
	if _, ok := flows[pr.Name]; !ok {
		return fmt.Errorf("tap: unknown profile %q", pr.Name)
	}
	if pr.Name != ProfileCardCheck && p.Input == nil {
		return fmt.Errorf("tap: profile %s needs a holder Input", pr.Name)
	}
	if (pr.Name == ProfileFaceCheck || pr.Name == ProfileAttributes) && p.CV == nil {
		return fmt.Errorf("tap: profile %s needs CV anchors", pr.Name)
	}
	if (pr.Name == ProfileSign || pr.Name == ProfileRegister) && p.Document == nil {
		return fmt.Errorf("tap: profile %s needs a Document", pr.Name)
	}
	if pr.Name == ProfileAttributes && p.Local == nil {
		return fmt.Errorf("tap: profile %s needs a LocalRecipient", pr.Name)
	}
	if pr.IndividualNumberPermitted && pr.Name != ProfileAttributes {
		return fmt.Errorf("tap: individual number permitted only in the %s profile", ProfileAttributes)
	}
	return nil
}

// Handle runs the profile's flow on the card in s and returns the event.
// It never returns certificate bytes, secrets or personal data.
func (p *Pipeline) Handle(ctx context.Context, s Session) Event {
	pr := p.profile()
	start := p.Now()
	ev := Event{Schema: Schema, ID: newEventID(), Device: p.DeviceID, Time: start.UTC(), Tech: s.Tech(), Profile: pr.Name, TimeSource: TimeSystem}
	if p.Clock != nil {
		t, believed := p.Clock()
		ev.Time = t.UTC()
		if !believed {
			ev.TimeSource = TimeTrustedBound
		}
	}
	timeout := p.ReadTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	f := &flow{p: p, pr: pr, ctx: ctx, s: s, left: timeout, ev: &ev}
	if err := p.check(); err != nil {
		f.fail(ReasonIO, "config", err.Error())
	} else {
		flows[pr.Name](f)
	}
	if ev.Reason == "" {
		ev.Reason = ReasonOK
	}
	ev.Outcome = OutcomeOf(ev.Reason)
	if ev.Outcome == Accepted {
		ev.Assurance = pr.Assurance()
	} else {
		ev.Assurance = AssuranceNone
	}
	if ev.RevocationAgeS == nil && p.RevocationAge != nil {
		if age, ok := p.RevocationAge(ev.Time); ok {
			ev.RevocationAgeS = seconds(age)
		}
	}
	ev.ReadMS = (timeout - f.left).Milliseconds()
	ev.InputMS = f.input.Milliseconds()
	if f.detail != "" {
		p.log().Debug("tap: detail", "event_id", ev.ID, "reason", ev.Reason, "check", ev.Check, "detail", f.detail)
	}
	return ev
}

func seconds(d time.Duration) *int64 {
	s := int64(d / time.Second)
	return &s
}

func ioReason(err error) string {
	if errors.Is(err, iso7816.ErrCardLost) {
		return ReasonRemoved
	}
	return ReasonIO
}

// OutcomeOf maps a reason code to the outcome: ok is accepted; a card that
// was read and failed a check is rejected; anything that kept the kiosk
// from deciding (I/O, card pulled early, no usable revocation data, an
// issuer this kiosk has no key for, the holder cancelling or not typing)
// is an error, so staff know the card itself may be fine.
func OutcomeOf(reason string) Outcome {
	switch reason {
	case ReasonOK:
		return Accepted
	case ReasonRemoved, ReasonIO, "crl-unavailable", "crl-stale", ReasonCVAnchorUnknown,
		ReasonCancelled, ReasonInputTimeout, ReasonUndelivered:
		return Error
	}
	return Rejected
}

// newEventID returns a random (version 4) UUID.
func newEventID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("tap: no randomness: %v", err)) // crypto/rand does not fail on Linux
	}
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
