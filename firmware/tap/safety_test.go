package tap

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// isRetryQuery: VERIFY without data (00 20 00 80).
func isRetryQuery(a []byte) bool { return len(a) == 4 && a[1] == 0x20 }

// isVerify: VERIFY with a secret.
func isVerify(a []byte) bool { return len(a) > 5 && a[1] == 0x20 }

// TestStatusWords: every status word a card may give to the retry query
// or to the one VERIFY maps to its reason, and nothing is presented when
// the counter says no (or does not say).
func TestStatusWords(t *testing.T) {
	for _, tc := range []struct {
		name    string
		query   []byte // answer to the retry query (nil: the card's)
		verify  []byte // answer to VERIFY (nil: the card's)
		reason  string
		tries   int // tries_left in the event; -1: absent
		asked   bool
		outcome Outcome
	}{
		// 9000 to the retry query in a fresh session: "already verified"
		// is impossible, the tries left are unknown, so nothing is risked.
		{"query 9000", []byte{0x90, 0x00}, nil, ReasonIO, -1, false, Error},
		{"query 63C0", []byte{0x63, 0xC0}, nil, ReasonBlocked, 0, false, Rejected},
		{"query 6984", []byte{0x69, 0x84}, nil, ReasonBlocked, 0, false, Rejected},
		{"query 6983", []byte{0x69, 0x83}, nil, ReasonBlocked, 0, false, Rejected},
		{"query 63C1", []byte{0x63, 0xC1}, nil, ReasonTriesFloor, 1, false, Rejected},
		{"query 6A82", []byte{0x6A, 0x82}, nil, ReasonIO, -1, false, Error},
		{"verify 63C2", nil, []byte{0x63, 0xC2}, ReasonWrongSecret, 2, true, Rejected},
		{"verify 63C1", nil, []byte{0x63, 0xC1}, ReasonWrongSecret, 1, true, Rejected},
		{"verify 63C0", nil, []byte{0x63, 0xC0}, ReasonBlocked, 0, true, Rejected},
		{"verify 6984", nil, []byte{0x69, 0x84}, ReasonBlocked, 0, true, Rejected},
		{"verify 6983", nil, []byte{0x69, 0x83}, ReasonBlocked, 0, true, Rejected},
		{"verify 6700", nil, []byte{0x67, 0x00}, ReasonIO, 3, true, Error},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, ProfilePINAuth)
			card, c := freshCard(t, testpki.KindValid)
			r.pad.answer = rightAnswers(c)
			verifies := 0
			s := &counting{card: card, pullAfter: -1, hook: func(a []byte) ([]byte, bool) {
				switch {
				case isRetryQuery(a) && tc.query != nil:
					return tc.query, true
				case isVerify(a):
					verifies++
					if tc.verify != nil {
						return tc.verify, true
					}
				}
				return nil, false
			}}
			ev, _ := r.tapSession(s)
			if ev.Reason != tc.reason || ev.Outcome != tc.outcome || ev.Assurance != AssuranceNone || ev.Credential != string(holder.AuthPIN) || ev.Check != "secret" {
				t.Fatalf("%+v", ev)
			}
			if (ev.TriesLeft == nil) != (tc.tries < 0) || (ev.TriesLeft != nil && *ev.TriesLeft != tc.tries) {
				t.Fatalf("tries_left %v, want %d", ev.TriesLeft, tc.tries)
			}
			if got := len(r.pad.asked) > 0; got != tc.asked {
				t.Fatalf("holder asked: %v", got)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.asked]; verifies != want {
				t.Fatalf("%d VERIFY with a secret, want %d", verifies, want)
			}
			if card.TriesOf(sim.APJPKI, jpki.EFAuthPIN) != 3 {
				t.Fatal("the card's counter moved")
			}
			assertNoLeak(t, r, c)
		})
	}
}

// TestTearingWrongSecretEveryFlow: for every flow and each of its
// credentials, a wrong secret and the card pulled before or right after
// any APDU costs that credential at most the one try of the single
// VERIFY, never any other credential's, and the next tap with the right
// secret succeeds (and resets the counter).
func TestTearingWrongSecretEveryFlow(t *testing.T) {
	for _, tc := range []struct {
		profile string
		kind    holder.Kind
		ap      string
		fid     uint16
	}{
		{ProfileFaceCheck, holder.CollationB, sim.APSurface, jpki.SurfacePINB},
		{ProfilePINAuth, holder.AuthPIN, sim.APJPKI, jpki.EFAuthPIN},
		{ProfileSign, holder.SignPassword, sim.APJPKI, jpki.EFSignPIN},
		{ProfileAttributes, holder.SupportPIN, sim.APSupport, jpki.SupportPIN},
		{ProfileRegister, holder.AuthPIN, sim.APJPKI, jpki.EFAuthPIN},
		{ProfileRegister, holder.SignPassword, sim.APJPKI, jpki.EFSignPIN},
	} {
		t.Run(tc.profile+"/"+string(tc.kind), func(t *testing.T) {
			r := newRig(t, tc.profile)
			card, c := freshCard(t, testpki.KindValid)
			wrong := func(q holder.Request) (string, error) {
				v := []byte(secretOf(c, q.Kind))
				if q.Kind == tc.kind {
					v[len(v)-1] ^= 1
				}
				return string(v), nil
			}
			r.pad.answer = wrong
			ev, n := r.tap(card, -1)
			if ev.Reason != ReasonWrongSecret || ev.Credential != string(tc.kind) {
				t.Fatalf("untorn run: %+v", ev)
			}
			for _, deliver := range []bool{false, true} {
				for k := range n {
					r.pad.answer = rightAnswers(c)
					if ev, _ := r.tap(card, -1); ev.Reason != ReasonOK {
						t.Fatalf("restore: %+v", ev)
					}
					r.pad.answer = wrong
					ev, _ := r.tapSession(&counting{card: card, pullAfter: k, deliverLast: deliver})
					if ev.Reason != ReasonRemoved {
						t.Fatalf("pulled at APDU %d (answer delivered %v): %+v", k+1, deliver, ev)
					}
					for _, cr := range creds {
						left, floor := card.TriesOf(cr.ap, cr.fid), cr.max
						if cr.ap == tc.ap && cr.fid == tc.fid {
							floor--
						}
						if left < floor {
							t.Fatalf("pulled at APDU %d (answer delivered %v): %s %04X has %d of %d tries", k+1, deliver, cr.ap, cr.fid, left, cr.max)
						}
					}
				}
			}
			assertNoLeak(t, r, c)
		})
	}
}

// TestCardIDOnlyWhenChained with the real verifier: a certificate from an
// unknown CA (which may copy any issuer and serial) gets no card_id; a
// revoked one that chained gets its card_id and is rejected.
func TestCardIDOnlyWhenChained(t *testing.T) {
	r := newRig(t, ProfileCardCheck)
	unknown, _ := freshCard(t, testpki.KindUnknownCA)
	ev, _ := r.tap(unknown, -1)
	if ev.Outcome != Rejected || ev.CardID != "" || ev.Assurance != AssuranceNone {
		t.Fatalf("unknown CA: %+v", ev)
	}
	revoked, _ := freshCard(t, testpki.KindRevoked)
	ev, _ = r.tap(revoked, -1)
	if ev.Reason != "revoked" || ev.CardID == "" || ev.Assurance != AssuranceNone {
		t.Fatalf("revoked: %+v", ev)
	}
	// The clone carries the valid card's certificate: card-check cannot
	// tell them apart (it says so), so the card_id is the same.
	valid, _ := freshCard(t, testpki.KindValid)
	clone, _ := freshCard(t, testpki.KindClone)
	a, _ := r.tap(valid, -1)
	b, _ := r.tap(clone, -1)
	if a.CardID != b.CardID || b.Assurance != AssuranceCertificateRead {
		t.Fatalf("valid %+v, clone %+v", a, b)
	}
}

// TestVerifySignatureKeyTypes: RSA PKCS#1 v1.5 and, for the
// next-generation card, ECDSA P-384 in ASN.1 or raw r‖s form.
func TestVerifySignatureKeyTypes(t *testing.T) {
	digest := sha256.Sum256([]byte("nonce"))
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := verifySignature(&k.PublicKey, digest[:], der); err != nil {
		t.Fatalf("ASN.1: %v", err)
	}
	rr, ss, err := ecdsa.Sign(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]byte, 96)
	rr.FillBytes(rs[:48])
	ss.FillBytes(rs[48:])
	if err := verifySignature(&k.PublicKey, digest[:], rs); err != nil {
		t.Fatalf("raw: %v", err)
	}
	other := sha256.Sum256([]byte("other nonce"))
	if verifySignature(&k.PublicKey, other[:], der) == nil || verifySignature(&k.PublicKey, other[:], rs) == nil {
		t.Fatal("ECDSA signature over another nonce accepted")
	}
	if verifySignature(&k.PublicKey, digest[:], bytes.Repeat([]byte{1}, 96)) == nil {
		t.Fatal("garbage accepted")
	}
	rsaKey := getWorld(t).pki.Cards[testpki.KindValid].Key
	sig, err := rsaKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifySignature(&rsaKey.PublicKey, digest[:], sig); err != nil {
		t.Fatalf("RSA: %v", err)
	}
	if verifySignature(&rsaKey.PublicKey, other[:], sig) == nil {
		t.Fatal("RSA signature over another nonce accepted")
	}
	if verifySignature("not a key", digest[:], sig) == nil {
		t.Fatal("unknown key type accepted")
	}
}
