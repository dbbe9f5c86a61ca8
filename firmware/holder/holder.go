package holder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Kind names the credential the holder is asked for.
type Kind string

// The credentials a flow can ask for (mynumbercard.md §2.2, §3.1, §4.1).
const (
	AuthPIN      Kind = "auth-pin"      // 4 digits, JPKI 0018
	SignPassword Kind = "sign-password" // 6–16 of A–Z 0–9 (upper-cased by the endpoint), JPKI 001B
	CollationB   Kind = "collation-b"   // 14 digits
	SupportPIN   Kind = "support-pin"   // 4 digits, input support AP 0011
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case AuthPIN, SignPassword, CollationB, SupportPIN:
		return true
	}
	return false
}

// ErrFormat is wrapped by every CheckFormat error.
var ErrFormat = errors.New("holder: format")

// ErrUnknownKind is returned for a Kind that is not one of the constants.
var ErrUnknownKind = errors.New("holder: unknown credential kind")

// CheckFormat checks that b has the shape of a credential of kind k:
// AuthPIN and SupportPIN exactly 4 ASCII digits, CollationB exactly 14
// ASCII digits, SignPassword 6 to 16 characters of A–Z and 0–9.
//
// SignPassword is checked as the card compares it, upper case only: an
// endpoint upper-cases what the holder typed first (see Canonicalize).
// Letters and digits are not required to be mixed: the issuing software
// asks for both, but the card does not enforce it and other clients
// (libmyna's ValidateJPKISignPassword) accept either alone, so requiring
// both could lock out a holder whose password was set elsewhere; a typo
// still costs only one of the five tries.
//
// The error wraps ErrFormat (or ErrUnknownKind) and never contains b.
func CheckFormat(k Kind, b []byte) error {
	switch k {
	case AuthPIN, SupportPIN:
		if len(b) != 4 || !allDigits(b) {
			return fmt.Errorf("%w: %s needs exactly 4 digits", ErrFormat, k)
		}
	case CollationB:
		if len(b) != 14 || !allDigits(b) {
			return fmt.Errorf("%w: %s needs exactly 14 digits", ErrFormat, k)
		}
	case SignPassword:
		if len(b) < 6 || len(b) > 16 {
			return fmt.Errorf("%w: %s needs 6 to 16 characters", ErrFormat, k)
		}
		for _, c := range b {
			if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') {
				return fmt.Errorf("%w: %s allows only letters A-Z and digits", ErrFormat, k)
			}
		}
	default:
		return fmt.Errorf("%w: %q", ErrUnknownKind, string(k))
	}
	return nil
}

// Canonicalize rewrites b in place into the form the card compares:
// for SignPassword it upper-cases a–z; other kinds are left unchanged.
func Canonicalize(k Kind, b []byte) {
	if k != SignPassword {
		return
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Request is what a flow asks the holder for.
type Request struct {
	Kind      Kind
	TriesLeft int    // as read from the card just before
	Profile   string // e.g. "pin-auth"
}

// Secret holds a PIN, password or collation number. It never prints,
// logs or marshals its content: fmt (every verb), slog, encoding/json and
// encoding.TextMarshaler all see "[secret]". The owner calls Zero when
// done with it.
type Secret struct {
	b []byte
}

const redacted = "[secret]"

// NewSecret wraps b; the Secret takes ownership of b and zeroes it in Zero.
func NewSecret(b []byte) *Secret { return &Secret{b: b} }

// Bytes returns the secret's bytes (not a copy). They are valid until Zero.
func (s *Secret) Bytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Zero overwrites the bytes with zeros and forgets them. It is safe to call
// more than once and on a nil Secret.
func (s *Secret) Zero() {
	if s == nil {
		return
	}
	clear(s.b) // only len: bytes beyond it may belong to the caller's buffer
	s.b = nil
}

// String returns "[secret]".
func (Secret) String() string { return redacted }

// GoString returns "[secret]" (for %#v).
func (Secret) GoString() string { return redacted }

// Format writes "[secret]" for every verb, so neither %d nor %x shows the bytes.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "[secret]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[secret]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue makes slog print "[secret]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Sentinel errors of Input.Ask.
var (
	ErrCancelled = errors.New("holder: input cancelled")
	ErrTimeout   = errors.New("holder: no input in time")
)

// Input is the holder-input seam of the tap pipeline.
type Input interface {
	// Ask blocks until the holder answers, cancels (ErrCancelled), or the
	// input timeout passes (ErrTimeout), or ctx ends (ctx.Err()). It does
	// not depend on any card deadline: typing time is the holder's. The
	// caller owns the returned Secret and must Zero it.
	Ask(ctx context.Context, r Request) (*Secret, error)
}

// Attributes are verified basic 4 information handed to a local client
// (the kiosk screen) after a successful attributes flow. They are personal
// data: String, GoString, Format, LogValue and MarshalJSON show only
// Profile; the wire encoding of Server.Deliver is separate.
// IndividualNumber is set only when the profile permits it (My Number Act).
type Attributes struct {
	Profile          string
	Name             string
	Address          string
	BirthDate        string
	Sex              string
	IndividualNumber string
}

func (a Attributes) redacted() string {
	return fmt.Sprintf("holder.Attributes{Profile:%q, [personal data redacted]}", a.Profile)
}

// String shows only the profile.
func (a Attributes) String() string { return a.redacted() }

// GoString shows only the profile.
func (a Attributes) GoString() string { return a.redacted() }

// Format shows only the profile, for every verb.
func (a Attributes) Format(f fmt.State, _ rune) { io.WriteString(f, a.redacted()) }

// LogValue logs only the profile.
func (a Attributes) LogValue() slog.Value {
	return slog.GroupValue(slog.String("profile", a.Profile), slog.String("personal_data", "[redacted]"))
}

// MarshalJSON encodes only the profile, so the attributes cannot reach an
// event sink by accident.
func (a Attributes) MarshalJSON() ([]byte, error) {
	type onlyProfile struct {
		Profile  string `json:"profile"`
		Redacted bool   `json:"redacted"`
	}
	return jsonMarshal(onlyProfile{Profile: a.Profile, Redacted: true})
}
