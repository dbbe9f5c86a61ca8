package tap

import (
	"bytes"
	"testing"

	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// Cleverer forgeries than the simulator's clone: each copies everything a
// copier can read and changes one thing, and each is caught by its own
// step. Together they show that every check of face-check, attributes and
// pin-auth is load-bearing.
func TestForgeries(t *testing.T) {
	w := getWorld(t)
	valid := w.pki.Cards[testpki.KindValid]
	other := w.pki.Cards[testpki.KindRevoked] // a second genuine card, for its keys and files
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0x01; return c }
	cases := []struct {
		name, profile, reason, check string
		forge                        func(c *testpki.Card)
		outcome                      Outcome // default Rejected
	}{
		{"card-face copied, card key missing", ProfileFaceCheck, ReasonNotGenuine, "liveness", func(c *testpki.Card) {
			s := *c.Surface
			s.CardKey = other.Surface.CardKey // signs, but not with DF24's key
			c.Surface = &s
		}, ""},
		{"card-face photo altered", ProfileFaceCheck, ReasonNotGenuine, "card-face", func(c *testpki.Card) {
			s := *c.Surface
			s.Face = flip(s.Face, len(s.Face)-400) // inside DF27 or the signature
			c.Surface = &s
		}, ""},
		{"input support AP's CV certificate in the card surface AP", ProfileFaceCheck, ReasonCVAnchorUnknown, "cv-certificate", func(c *testpki.Card) {
			// Genuine, but issued by the support CA: anchors are per purpose,
			// so it is not checked as a surface certificate.
			s := *c.Surface
			s.CVCert = bytes.Clone(other.Support.CVCert)
			c.Surface = &s
		}, Error},
		{"CV certificate signature broken", ProfileFaceCheck, ReasonNotGenuine, "cv-certificate", func(c *testpki.Card) {
			s := *c.Surface
			s.CVCert = flip(s.CVCert, len(s.CVCert)-10)
			c.Surface = &s
		}, ""},
		{"basic 4 altered", ProfileAttributes, ReasonIntegrity, "integrity", func(c *testpki.Card) {
			s := *c.Support
			// One bit of the name's first character (a UTF-8 continuation
			// byte, so the record still parses).
			s.Basic4 = flip(s.Basic4, bytes.Index(s.Basic4, []byte(valid.Person.Name))+1)
			c.Support = &s
		}, ""},
		{"support files copied, challenge key missing", ProfileAttributes, ReasonNotGenuine, "liveness", func(c *testpki.Card) {
			s := *c.Support
			s.ChallengeKey = other.Support.ChallengeKey
			c.Support = &s
		}, ""},
		{"auth key missing (PIN accepted)", ProfilePINAuth, ReasonNotGenuine, "possession", func(c *testpki.Card) {
			c.Key = other.Key
		}, ""},
		{"sign key missing (password accepted)", ProfileSign, ReasonNotGenuine, "signature", func(c *testpki.Card) {
			c.SignKey = other.SignKey
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.forge(&c)
			card, err := sim.FromTestPKI(c)
			if err != nil {
				t.Fatal(err)
			}
			r := newRig(t, tc.profile)
			r.pad.answer = func(q holder.Request) (string, error) { return secretOf(valid, q.Kind), nil }
			ev, _ := r.tap(card, -1)
			if tc.outcome == "" {
				tc.outcome = Rejected
			}
			if ev.Reason != tc.reason || ev.Check != tc.check || ev.Outcome != tc.outcome || ev.Assurance != AssuranceNone {
				t.Fatalf("got reason %q check %q outcome %q, want %q at %q", ev.Reason, ev.Check, ev.Outcome, tc.reason, tc.check)
			}
			if tc.profile == ProfileFaceCheck && ev.CardKeyID != "" {
				t.Error("card_key_id for a forgery")
			}
			assertNoLeak(t, r, valid)
		})
	}
}

// An issuer this kiosk has no CV key for is reported as not checked
// (outcome error), not as forged.
func TestCVAnchorUnknown(t *testing.T) {
	r := newRig(t, ProfileFaceCheck)
	r.p.CV = cvMap{}
	card, c := freshCard(t, testpki.KindValid)
	r.pad.answer = rightAnswers(c)
	ev, _ := r.tap(card, -1)
	if ev.Reason != ReasonCVAnchorUnknown || ev.Outcome != Error || len(r.pad.asked) != 0 {
		t.Fatalf("%+v, asked %d", ev, len(r.pad.asked))
	}
}

// A card without a signature certificate (EF 0008 says so, e.g. a card
// issued under 15) is refused by the sign profile before the password is
// asked for.
func TestNoSignCert(t *testing.T) {
	c := getWorld(t).pki.Cards[testpki.KindValid]
	c.SignCert, c.SignCACert, c.SignKey = nil, nil, nil
	card, err := sim.FromTestPKI(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range []string{ProfileSign, ProfileRegister} {
		r := newRig(t, pr)
		r.pad.answer = rightAnswers(c)
		ev, _ := r.tap(card, -1)
		if ev.Reason != ReasonNoSignCert || ev.Outcome != Rejected {
			t.Fatalf("%s: %+v", pr, ev)
		}
		for _, q := range r.pad.asked {
			if q.Kind == holder.SignPassword {
				t.Fatalf("%s: asked for the signature password", pr)
			}
		}
	}
}
