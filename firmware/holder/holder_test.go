package holder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// logs captures what every test server logs; TestMain checks that no
// secret or personal datum used by any test ever appears in it.
var logs syncBuffer

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey { // digits of a timestamp could match a test PIN
				return slog.Attr{}
			}
			return a
		},
	}))
}

// Values the tests type or deliver. None may appear in logs or errors.
const (
	pinA      = "4729"
	pinB      = "8316"
	pinBad    = "47x9"
	collation = "55021720352285"
	passLower = "kz7qw3rt"
	passUpper = "KZ7QW3RT"
)

var personal = Attributes{
	Profile:          "attributes",
	Name:             "番号 花子",
	Address:          "東京都千代田区霞が関二丁目一番地",
	BirthDate:        "19800217",
	Sex:              "2",
	IndividualNumber: "987654321098",
}

var secrets = []string{pinA, pinB, pinBad, collation, passLower, passUpper,
	personal.Name, personal.Address, personal.BirthDate, personal.IndividualNumber}

func TestMain(m *testing.M) {
	code := m.Run()
	out := logs.String()
	if code == 0 { // TestPeerRefused checks that the capture works
		for _, s := range secrets {
			if strings.Contains(out, s) {
				fmt.Fprintf(os.Stderr, "log output contains a secret or personal datum (%d bytes)\n", len(s))
				code = 1
			}
		}
	}
	os.Exit(code)
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, x := range secrets {
		if strings.Contains(s, x) {
			t.Errorf("%s contains a test secret: %q", what, s)
		}
	}
}

func TestCheckFormat(t *testing.T) {
	tests := []struct {
		kind Kind
		in   string
		ok   bool
	}{
		{AuthPIN, "1234", true},
		{AuthPIN, "0000", true},
		{AuthPIN, "123", false},
		{AuthPIN, "12345", false},
		{AuthPIN, "12a4", false},
		{AuthPIN, "", false},
		{AuthPIN, " 123", false},
		{AuthPIN, "１２３４", false}, // full-width digits
		{SupportPIN, "9876", true},
		{SupportPIN, "98765", false},
		{CollationB, collation, true},
		{CollationB, "5502172035228", false},
		{CollationB, "550217203522851", false},
		{CollationB, "5502172035228X", false},
		{SignPassword, "ABC123", true},
		{SignPassword, "ABCDEFGHIJ123456", true},
		{SignPassword, "ABCDEF", true},  // letters only: accepted, see CheckFormat
		{SignPassword, "123456", true},  // digits only: accepted
		{SignPassword, "abc123", false}, // not canonical: the endpoint upper-cases first
		{SignPassword, "ABC12", false},
		{SignPassword, "ABCDEFGHIJ1234567", false},
		{SignPassword, "ABC-123", false},
		{SignPassword, "ABC 123", false},
		{SignPassword, "ÄBC123", false},
		{Kind("other"), "1234", false},
		{Kind(""), "1234", false},
	}
	for _, tt := range tests {
		err := CheckFormat(tt.kind, []byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("CheckFormat(%s, %q) = %v, want ok=%v", tt.kind, tt.in, err, tt.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnknownKind) {
				t.Errorf("CheckFormat(%s, %q) = %v, does not wrap ErrFormat", tt.kind, tt.in, err)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Errorf("CheckFormat(%s, %q) echoes the value: %v", tt.kind, tt.in, err)
			}
		}
	}
}

func TestCanonicalize(t *testing.T) {
	b := []byte("ab9Zz0")
	Canonicalize(SignPassword, b)
	if string(b) != "AB9ZZ0" {
		t.Errorf("sign-password: got %q", b)
	}
	b = []byte("abcd")
	Canonicalize(AuthPIN, b)
	if string(b) != "abcd" {
		t.Errorf("auth-pin changed: %q", b)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := NewSecret([]byte(pinA))
	type holderOfPtr struct{ S *Secret }
	type holderOfVal struct{ S Secret }
	values := []any{s, *s, holderOfPtr{s}, holderOfVal{*s}, []*Secret{s}, map[string]*Secret{"k": s}}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, pinA) || strings.Contains(out, fmt.Sprintf("%x", pinA)) ||
				strings.Contains(out, "52 55 50 57") || strings.Contains(out, "[52") {
				t.Errorf("Sprintf(%s, %T) = %q leaks", verb, v, out)
			}
		}
		for _, v2 := range []string{"%v", "%s"} {
			if out := fmt.Sprintf(v2, v); !strings.Contains(out, "[secret]") {
				t.Errorf("Sprintf(%s, %T) = %q, want [secret]", v2, v, out)
			}
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(j), pinA) || !strings.Contains(string(j), "[secret]") {
			t.Errorf("json.Marshal(%T) = %s", v, j)
		}
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("x", "pin", s, "val", *s, "any", holderOfPtr{s})
		l.Info("y", slog.Any("pin", s))
	}
	if strings.Contains(buf.String(), pinA) {
		t.Errorf("slog leaks: %s", buf.String())
	}
	if txt, _ := s.MarshalText(); string(txt) != "[secret]" {
		t.Errorf("MarshalText = %q", txt)
	}
	if string(s.Bytes()) != pinA {
		t.Fatalf("Bytes = %q", s.Bytes())
	}
	b := s.Bytes()
	s.Zero()
	s.Zero()
	if !bytes.Equal(b, make([]byte, len(pinA))) || len(s.Bytes()) != 0 {
		t.Errorf("after Zero: %v %v", b, s.Bytes())
	}
	var nilSecret *Secret
	nilSecret.Zero()
	if nilSecret.Bytes() != nil {
		t.Error("nil Secret has bytes")
	}
}

func TestAttributesRedacted(t *testing.T) {
	a := personal
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "a", a, "p", &a)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "a", a)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		fmt.Fprintf(&buf, verb, a)
		fmt.Fprintf(&buf, verb, &a)
		fmt.Fprintf(&buf, verb, []Attributes{a})
	}
	j, _ := json.Marshal(a)
	buf.Write(j)
	assertNoSecret(t, "redacted attributes", buf.String())
	if !strings.Contains(fmt.Sprint(a), `"attributes"`) || !strings.Contains(string(j), `"attributes"`) {
		t.Errorf("profile missing: %v %s", a, j)
	}
}
