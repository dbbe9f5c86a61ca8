package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// credential is where a secret lives on the card and how many tries it has.
type credential struct {
	kind  holder.Kind
	ap    string // sim.JPKICard.TriesOf application name
	aid   []byte
	fid   uint16
	tries int
}

var credentials = map[holder.Kind]credential{
	holder.AuthPIN:      {holder.AuthPIN, "jpki", jpki.AID, jpki.EFAuthPIN, 3},
	holder.SignPassword: {holder.SignPassword, "jpki", jpki.AID, jpki.EFSignPIN, 5},
	holder.CollationB:   {holder.CollationB, "surface", jpki.AIDSurface, jpki.SurfacePINB, 10},
	holder.SupportPIN:   {holder.SupportPIN, "support", jpki.AIDSupport, jpki.SupportPIN, 3},
}

// secretOf returns the card's own value of a credential.
func secretOf(c testpki.Card, k holder.Kind) string {
	switch k {
	case holder.AuthPIN:
		return c.AuthPIN
	case holder.SignPassword:
		return c.SignPassword
	case holder.CollationB:
		return c.CollationB
	case holder.SupportPIN:
		return c.SupportPIN
	}
	return ""
}

// wrong returns a value of the right format that is not the secret.
func wrong(s string) string {
	b := []byte(s)
	last := b[len(b)-1]
	if last >= '0' && last <= '8' || last >= 'A' && last <= 'Y' {
		b[len(b)-1] = last + 1
	} else {
		b[len(b)-1] = '0'
	}
	return string(b)
}

// profileCase is one service profile and the secrets it asks for, in order.
type profileCase struct {
	profile   string
	asks      []holder.Kind
	assurance string
}

var secretProfiles = []profileCase{
	{"face-check", []holder.Kind{holder.CollationB}, "genuine-card"},
	{"pin-auth", []holder.Kind{holder.AuthPIN}, "possession-proven"},
	{"sign", []holder.Kind{holder.SignPassword}, "signed"},
	{"attributes", []holder.Kind{holder.SupportPIN}, "attributes-read"},
	{"register", []holder.Kind{holder.AuthPIN, holder.SignPassword}, "registered"},
}

// block presents wrong values straight to the virtual card (as repeated
// wrong entries elsewhere would) until the credential is blocked.
func block(t *testing.T, card *sim.JPKICard, c credential, secret string) {
	t.Helper()
	card.PowerOn()
	ctx := context.Background()
	if _, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: c.aid}); err != nil {
		t.Fatal(err)
	}
	if _, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xA4, P1: 0x02, P2: 0x0C, Data: []byte{byte(c.fid >> 8), byte(c.fid)}}); err != nil {
		t.Fatal(err)
	}
	for card.TriesOf(c.ap, c.fid) > 0 {
		_, _ = iso7816.Transceive(ctx, card, iso7816.Command{INS: 0x20, P1: 0x00, P2: 0x80, Data: []byte(wrong(secret))})
	}
	card.PowerOn()
}

// TestProfilesEndToEnd runs every profile that asks for a secret through
// the real daemon, the simulator over the pty and Mosquitto, with the PIN
// pad on the holder-input socket: right, cancelled, timed out, wrong with
// tries left, refused by the floor, blocked, and the clone.
func TestProfilesEndToEnd(t *testing.T) {
	for _, pc := range secretProfiles {
		t.Run(pc.profile, func(t *testing.T) {
			first := credentials[pc.asks[0]]
			// The floor is the first credential's full count: one wrong try
			// puts it below, so the floor case needs no long setup.
			r := newRig(t, rigOptions{profile: pc.profile, floor: first.tries, inputTimeout: "1s"})
			valid := r.pki.Cards[testpki.KindValid]
			card := r.cards[testpki.KindValid]
			tries := func() int { return card.TriesOf(first.ap, first.fid) }
			right := func(req holder.Request) padAction { return padAction{value: secretOf(valid, req.Kind)} }

			// 1. Right secrets: accepted with the profile's assurance.
			r.setAnswer(right)
			e, raw := r.tap(testpki.KindValid, 0)
			if e.Outcome != tap.Accepted || e.Reason != "ok" || string(e.Assurance) != pc.assurance || e.Profile != pc.profile || len(e.CardID) != 32 {
				t.Fatalf("right secret: %s", raw)
			}
			var kinds []holder.Kind
			for _, q := range r.requests() {
				kinds = append(kinds, q.Kind)
				if q.TriesLeft != credentials[q.Kind].tries || q.Profile != pc.profile {
					t.Errorf("request %+v: want %d tries left, profile %s", q, credentials[q.Kind].tries, pc.profile)
				}
			}
			if fmt.Sprint(kinds) != fmt.Sprint(pc.asks) {
				t.Errorf("asked for %v, want %v", kinds, pc.asks)
			}
			if pc.profile == "face-check" && len(e.CardKeyID) != 32 {
				t.Errorf("face-check without card_key_id: %s", raw)
			}
			if (pc.profile == "sign" || pc.profile == "register") && e.DocumentSHA256 == "" {
				t.Errorf("%s without document_sha256: %s", pc.profile, raw)
			}

			// 2. Cancelled on the pad: nothing presented, no try spent.
			r.setAnswer(func(holder.Request) padAction { return padAction{cancel: true} })
			if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "cancelled" || e.Assurance != "none" || tries() != first.tries {
				t.Errorf("cancelled: %s, %d tries left", raw, tries())
			}

			// 3. Nobody types: the input times out, no try spent.
			r.setAnswer(nil)
			if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "input-timeout" || tries() != first.tries {
				t.Errorf("timeout: %s, %d tries left", raw, tries())
			}

			// 4. Wrong: one try spent, reported, never retried by the kiosk.
			r.setAnswer(func(req holder.Request) padAction { return padAction{value: wrong(secretOf(valid, req.Kind))} })
			e, raw = r.tap(testpki.KindValid, 0)
			if e.Reason != "wrong-secret" || e.Outcome != tap.Rejected || e.Credential != string(first.kind) || e.TriesLeft == nil || *e.TriesLeft != first.tries-1 {
				t.Errorf("wrong secret: %s", raw)
			}
			if got := tries(); got != first.tries-1 {
				t.Errorf("wrong secret cost %d tries", first.tries-got)
			}
			if n := len(r.requests()); n != 1 {
				t.Errorf("the kiosk asked %d times after one wrong secret", n)
			}

			// 5. Below the floor: refused before anything is presented or asked.
			r.setAnswer(right)
			e, raw = r.tap(testpki.KindValid, 0)
			if e.Reason != "tries-floor" || tries() != first.tries-1 || len(r.requests()) != 0 {
				t.Errorf("floor: %s, %d tries, %d requests", raw, tries(), len(r.requests()))
			}

			// 6. Blocked: refused, nothing asked.
			block(t, card, first, secretOf(valid, first.kind))
			e, raw = r.tap(testpki.KindValid, 0)
			if e.Reason != "blocked" || e.Outcome != tap.Rejected || len(r.requests()) != 0 {
				t.Errorf("blocked: %s", raw)
			}

			// 7. The clone: a genuine certificate on a card without the keys.
			clone := r.pki.Cards[testpki.KindClone]
			r.setAnswer(func(req holder.Request) padAction { return padAction{value: secretOf(clone, req.Kind)} })
			e, raw = r.tap(testpki.KindClone, 0)
			if e.Reason != "not-genuine" || e.Outcome != tap.Rejected || e.Assurance != "none" {
				t.Errorf("clone: %s", raw)
			}

			r.assertNoSecrets(t)
		})
	}
}

// TestCardCheckClone: card-check accepts a clone carrying a copied genuine
// certificate, and says exactly that: certificate-read, nothing more.
func TestCardCheckClone(t *testing.T) {
	r := newRig(t)
	e, raw := r.tap(testpki.KindClone, 0)
	if e.Outcome != tap.Accepted || e.Assurance != "certificate-read" || e.Profile != "card-check" {
		t.Fatalf("clone under card-check: %s", raw)
	}
	v, _ := r.tap(testpki.KindValid, 0)
	if v.CardID != e.CardID {
		t.Errorf("the copied certificate gives the clone the valid card's card_id (%s vs %s): card-check cannot tell them apart, as the README says", e.CardID, v.CardID)
	}
	if !strings.Contains(r.stdout.String(), "accepted (ok)") {
		t.Errorf("screen: %s", r.stdout)
	}
	r.assertNoSecrets(t)
}

// assertNoSecrets checks every log line, screen and MQTT payload the rig
// saw for any secret or personal data of any test card.
func (r *rig) assertNoSecrets(t *testing.T) {
	t.Helper()
	all := r.stdout.String() + "\n" + r.stderr.String() + "\n" + strings.Join(r.payloads(), "\n")
	low := strings.ToLower(all)
	for kind, c := range r.pki.Cards {
		var leaks []string
		short := []string{c.Person.SecurityCode}
		for _, k := range []holder.Kind{holder.AuthPIN, holder.SignPassword, holder.CollationB, holder.SupportPIN} {
			short = append(short, secretOf(c, k))
		}
		for _, s := range short {
			if len(s) >= 4 {
				// A 4-digit value is common as a substring of numbers (timestamps, UUIDs);
				// look for it where a leak would put it: quoted or as hex bytes.
				leaks = append(leaks, `"`+s+`"`, "="+s, hex.EncodeToString([]byte(s)), fmt.Sprintf("% x", []byte(s)))
				if len(s) > 4 {
					leaks = append(leaks, s)
				}
			}
		}
		p := c.Person
		for _, s := range []string{p.Name, p.Address, p.IndividualNumber, p.BirthDate} {
			if len(s) >= 4 {
				leaks = append(leaks, s, hex.EncodeToString([]byte(s)))
			}
		}
		for _, l := range leaks {
			i := strings.Index(low, strings.ToLower(l))
			if i < 0 {
				continue
			}
			ctx := low[max(0, i-60):min(len(low), i+len(l)+20)]
			t.Errorf("%s card: %q appears in logs, screens or MQTT payloads: …%s…", kind, l, ctx)
		}
		assertNoCardData(t, c.Cert, []byte(all), "output ("+kind+")")
	}
}

// TestPINAuthTearingOverPTY pulls the card after each APDU of the pin-auth
// flow, through the real driver and the simulator's field: every run ends
// removed, the PIN counter never moves (the right PIN is typed), and the
// next tap is accepted.
func TestPINAuthTearingOverPTY(t *testing.T) {
	r := newRig(t, rigOptions{profile: "pin-auth"})
	valid := r.pki.Cards[testpki.KindValid]
	card := r.cards[testpki.KindValid]
	r.setAnswer(func(req holder.Request) padAction { return padAction{value: secretOf(valid, req.Kind)} })
	before := r.sim.Field().State().TotalAPDUs
	if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "ok" {
		t.Fatalf("untorn: %s", raw)
	}
	n := r.sim.Field().State().TotalAPDUs - before
	if n < 5 {
		t.Fatalf("pin-auth took %d APDUs", n)
	}
	for k := 1; k < n; k++ {
		e, raw := r.tap(testpki.KindValid, k)
		if e.Reason != tap.ReasonRemoved || e.Outcome != tap.Error {
			t.Fatalf("pulled after %d of %d APDUs: %s", k, n, raw)
		}
		if got := card.TriesOf("jpki", jpki.EFAuthPIN); got != 3 {
			t.Fatalf("pulled after %d APDUs: %d PIN tries left", k, got)
		}
	}
	if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "ok" {
		t.Fatalf("after the pulls: %s", raw)
	}
	r.assertNoSecrets(t)
}

// TestCardTakenAwayDuringInputOverPTY: the holder takes the card away
// while the PIN pad shows the prompt. The daemon notices through the
// reader's presence check, ends the tap as removed long before the input
// timeout, presents nothing, and the next tap works.
func TestCardTakenAwayDuringInputOverPTY(t *testing.T) {
	r := newRig(t, rigOptions{profile: "pin-auth", inputTimeout: "30s"})
	r.setAnswer(nil) // the pad shows the prompt; nobody types
	r.sim.Field().Place(r.cards[testpki.KindValid], 0)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no PIN request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	r.sim.Remove()
	e, raw := r.event(10 * time.Second)
	if e.Reason != tap.ReasonRemoved || e.Check != "secret" {
		t.Fatalf("card taken away during input: %s", raw)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to notice the card had gone", took)
	}
	if got := r.cards[testpki.KindValid].TriesOf("jpki", jpki.EFAuthPIN); got != 3 {
		t.Errorf("%d PIN tries left", got)
	}
	r.waitReady()
	valid := r.pki.Cards[testpki.KindValid]
	r.setAnswer(func(req holder.Request) padAction { return padAction{value: secretOf(valid, req.Kind)} })
	if e, raw := r.tap(testpki.KindValid, 0); e.Reason != "ok" {
		t.Fatalf("next tap: %s", raw)
	}
}
