// Package tap is the tap pipeline: a card or phone enters the field, the
// kiosk identifies it, reads what the service needs, verifies it offline,
// publishes one event and waits for the card to leave.
//
// The pipeline depends only on small interfaces (Reader, Verifier, Sink,
// Display), so the NFC frontend, the verification back end, the transport
// to the backend and the screen can each change without touching it. It
// imports neither the PN532 driver nor any MQTT library: the daemon's
// composition root adapts them.
package tap

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/jpki"
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
}

// Verifier checks a JPKI user-authentication certificate offline.
type Verifier interface {
	VerifyJPKIAuth(ctx context.Context, certDER []byte) Verdict
}

// Sink takes finished events (MQTT, an outbox, a test recorder).
type Sink interface {
	Publish(ctx context.Context, e Event) error
}

// Display shows the person at the kiosk what to do and what happened.
type Display interface {
	Show(s Screen)
}

// Screen is one state of the kiosk screen.
type Screen struct {
	State   State
	Reason  string // for StateResult
	Outcome Outcome
	Message string // what to tell the person, in plain words
}

// State of the kiosk screen.
type State string

// Screen states.
const (
	StateReady   State = "ready"   // waiting for a card
	StateReading State = "reading" // card detected, keep still
	StateResult  State = "result"  // outcome shown, take the card
	StateFault   State = "fault"   // reader not available
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
	ReasonUnsupported = "unsupported-card" // no JPKI AP, or an unknown holder
	ReasonPINRequired = "pin-required"     // the certificate needs a PIN on this holder
)

// Schema is the version of the event document.
const Schema = "kazashi.tap/v1"

// Event is the document published for every tap. It carries no
// certificate, no serial number and no personal data: the card is named by
// a keyed pseudonym that only this deployment can reproduce.
type Event struct {
	Schema   string    `json:"schema"`
	ID       string    `json:"event_id"`
	Device   string    `json:"device_id"`
	Time     time.Time `json:"time"`
	Outcome  Outcome   `json:"outcome"`
	Reason   string    `json:"reason"`
	CardKind string    `json:"card_kind,omitempty"`
	CardID   string    `json:"card_id,omitempty"`
	Tech     string    `json:"tech,omitempty"`
	ReadMS   int64     `json:"read_ms"`
}

// Pipeline runs taps one after another.
type Pipeline struct {
	Reader   Reader
	Verifier Verifier
	Sink     Sink
	Display  Display // optional
	DeviceID string
	// PseudonymKey keys the card identifier (HMAC-SHA256); per deployment,
	// at least 16 bytes.
	PseudonymKey []byte
	Now          func() time.Time
	Logger       *slog.Logger
	// ReadTimeout bounds identify+read+verify of one tap (default 10 s).
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
	if p.Reader == nil || p.Verifier == nil || p.Sink == nil || p.Now == nil {
		return errors.New("tap: pipeline needs Reader, Verifier, Sink and Now")
	}
	if len(p.PseudonymKey) < 16 {
		return errors.New("tap: pseudonym key shorter than 16 bytes")
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
		p.show(Screen{State: StateResult, Reason: ev.Reason, Outcome: ev.Outcome, Message: Message(ev.Reason)})
		p.log().Info("tap", "event_id", ev.ID, "outcome", ev.Outcome, "reason", ev.Reason, "card_kind", ev.CardKind, "read_ms", ev.ReadMS)
		if err := p.Sink.Publish(ctx, ev); err != nil && ctx.Err() == nil {
			p.log().Error("tap: event not handed over", "event_id", ev.ID, "err", err)
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

// Handle identifies, reads and verifies the card in s and returns the
// event. It never returns certificate bytes or personal data.
func (p *Pipeline) Handle(ctx context.Context, s Session) Event {
	start := p.Now()
	ev := Event{Schema: Schema, ID: newEventID(), Device: p.DeviceID, Time: start.UTC(), Tech: s.Tech()}
	timeout := p.ReadTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reason, kind, cardID, detail := p.read(rctx, s)
	ev.Reason, ev.CardKind, ev.CardID = reason, kind, cardID
	ev.Outcome = OutcomeOf(reason)
	ev.ReadMS = p.Now().Sub(start).Milliseconds()
	if detail != "" {
		p.log().Debug("tap: detail", "event_id", ev.ID, "reason", reason, "detail", detail)
	}
	return ev
}

func (p *Pipeline) read(ctx context.Context, s Session) (reason, kind, cardID, detail string) {
	tok, err := jpki.ReadToken(ctx, s)
	if err != nil {
		if errors.Is(err, jpki.ErrNotJPKI) {
			return ReasonUnsupported, "", "", err.Error()
		}
		return ioReason(err), "", "", err.Error()
	}
	kind = string(tok.Holder)
	if tok.Holder == jpki.HolderUnknown {
		return ReasonUnsupported, kind, "", "unknown token label"
	}
	cert, err := jpki.ReadCertificate(ctx, s, jpki.EFAuthCert)
	if err != nil {
		if errors.Is(err, jpki.ErrAccessDenied) {
			return ReasonPINRequired, kind, "", err.Error()
		}
		return ioReason(err), kind, "", err.Error()
	}
	cardID = CardID(p.PseudonymKey, cert)
	v := p.Verifier.VerifyJPKIAuth(ctx, cert)
	return v.Reason, kind, cardID, v.Detail
}

func ioReason(err error) string {
	if errors.Is(err, iso7816.ErrCardLost) {
		return ReasonRemoved
	}
	return ReasonIO
}

// OutcomeOf maps a reason code to the outcome: ok is accepted; a card that
// was read and failed a check is rejected; anything that kept the kiosk
// from deciding (I/O, card pulled early, no usable revocation data) is an
// error, so staff know the card itself may be fine.
func OutcomeOf(reason string) Outcome {
	switch reason {
	case ReasonOK:
		return Accepted
	case ReasonRemoved, ReasonIO, "crl-unavailable", "crl-stale":
		return Error
	}
	return Rejected
}

// Messages shown to the person at the kiosk.
const (
	MessageReady   = "Place your My Number Card on the reader. / マイナンバーカードを読み取り部に置いてください。"
	MessageReading = "Reading. Please keep the card still. / 読み取り中です。カードを動かさないでください。"
	MessageFault   = "The reader is not available. Please ask the staff. / 読み取り機が使えません。係員にお知らせください。"
)

// Message tells the person what happened and what to do next.
func Message(reason string) string {
	switch reason {
	case ReasonOK:
		return "Your card was confirmed. Please take your card. / 確認できました。カードをお取りください。"
	case ReasonRemoved:
		return "The card was moved away too soon. Please place it again and hold it still. / カードが離れました。もう一度置いて、そのままお待ちください。"
	case ReasonIO:
		return "The card could not be read. Please place it again. / 読み取れませんでした。もう一度置いてください。"
	case ReasonUnsupported:
		return "This card cannot be used here. Please use your My Number Card. / このカードは使えません。マイナンバーカードをお使いください。"
	case ReasonPINRequired:
		return "This device needs a PIN, which this kiosk does not ask for. Please use the card itself or ask the staff. / 暗証番号が必要です。カードをお使いいただくか、係員にお知らせください。"
	case "expired":
		return "The certificate on this card has expired. Please ask the staff; it can be renewed at your municipal office. / 電子証明書の有効期限が切れています。係員にお知らせください。"
	case "crl-unavailable", "crl-stale":
		return "Cards cannot be checked right now. Please ask the staff. / ただいま確認できません。係員にお知らせください。"
	}
	return "This card could not be confirmed. Please take your card and ask the staff. / 確認できませんでした。カードをお取りになり、係員にお知らせください。"
}

// CardID is the pseudonymous card identifier: HMAC-SHA256 under the
// deployment's key over the certificate's issuer and serial number,
// truncated to 128 bits. The same card gives the same ID on every kiosk of
// a deployment and an unrelated ID anywhere else; it cannot be reversed to
// the serial number. A certificate that does not parse gets no ID.
func CardID(key, certDER []byte) string {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kazashi card-id v1\x00"))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(c.RawIssuer)))
	m.Write(n[:])
	m.Write(c.RawIssuer)
	m.Write(c.SerialNumber.Bytes())
	return hex.EncodeToString(m.Sum(nil)[:16])
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
