package tap

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// world is the shared test hierarchy with real verifiers over it.
type world struct {
	pki        *testpki.PKI
	auth, sign *verify.Verifier
	cv         cvMap
}

type cvMap map[string]map[jpki.KeyID]*rsa.PublicKey

func (m cvMap) CVKey(purpose string, id jpki.KeyID) (*rsa.PublicKey, bool) {
	k, ok := m[purpose][id]
	return k, ok
}

type realVerifier struct{ auth, sign *verify.Verifier }

func verdictOf(r verify.Result) Verdict {
	return Verdict{Reason: string(r.Reason), Detail: r.Detail, Chained: r.Chained()}
}
func (v realVerifier) VerifyJPKIAuth(ctx context.Context, der []byte) Verdict {
	return verdictOf(v.auth.Verify(ctx, der))
}
func (v realVerifier) VerifyJPKISign(ctx context.Context, der []byte) Verdict {
	return verdictOf(v.sign.Verify(ctx, der))
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

func getWorld(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() {
		w := &world{cv: cvMap{}}
		if w.pki, worldErr = testpki.Shared(); worldErr != nil {
			return
		}
		// The CRLs live in a real revocation store, as on a kiosk.
		dir, err := os.MkdirTemp("", "tap-revocation-")
		if err != nil {
			worldErr = err
			return
		}
		store, err := revocation.Open(context.Background(), dir, revocation.Options{})
		if err != nil {
			worldErr = err
			return
		}
		mk := func(rootDER, crl []byte, p verify.Purpose) (*verify.Verifier, error) {
			root, err := x509.ParseCertificate(rootDER)
			if err != nil {
				return nil, err
			}
			if _, err := store.Import(context.Background(), bytes.NewReader(crl), []*x509.Certificate{root}, nil); err != nil {
				return nil, err
			}
			return verify.New(verify.Options{Anchors: []*x509.Certificate{root}, Revocation: store, Now: time.Now, AllowTest: true, Purpose: p})
		}
		if w.auth, worldErr = mk(w.pki.Root, w.pki.CRL, verify.PurposeAuth); worldErr != nil {
			return
		}
		if w.sign, worldErr = mk(w.pki.SignRoot, w.pki.SignCRL, verify.PurposeSign); worldErr != nil {
			return
		}
		for _, a := range w.pki.CVAnchors {
			if w.cv[a.Purpose] == nil {
				w.cv[a.Purpose] = map[jpki.KeyID]*rsa.PublicKey{}
			}
			w.cv[a.Purpose][jpki.KeyID(a.ID)] = a.Key
		}
		theWorld = w
	})
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return theWorld
}

// pad is a scripted holder.Input.
type pad struct {
	mu     sync.Mutex
	answer func(holder.Request) (string, error)
	delay  time.Duration
	asked  []holder.Request
	given  [][]byte // every buffer handed over, to check that the pipeline zeroed it
}

func (p *pad) Ask(ctx context.Context, r holder.Request) (*holder.Secret, error) {
	p.mu.Lock()
	p.asked = append(p.asked, r)
	f, d := p.answer, p.delay
	p.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	type answer struct {
		v   string
		err error
	}
	c := make(chan answer, 1)
	go func() { v, err := f(r); c <- answer{v, err} }()
	select {
	case a := <-c:
		if a.err != nil {
			return nil, a.err
		}
		b := []byte(a.v)
		p.mu.Lock()
		p.given = append(p.given, b)
		p.mu.Unlock()
		return holder.NewSecret(b), nil
	case <-ctx.Done(): // as holder.Server does
		return nil, ctx.Err()
	}
}

// local records delivered attributes.
type local struct {
	mu  sync.Mutex
	got []holder.Attributes
}

func (l *local) Deliver(_ context.Context, a holder.Attributes) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, a)
	return nil
}

// testDoc is the document the sign profiles sign.
var testDoc = sha256.Sum256([]byte("application form"))

// rig is a pipeline over the real verifiers with a scripted pad, a log
// and screens captured.
type rig struct {
	t      testing.TB
	p      *Pipeline
	pad    *pad
	local  *local
	logs   *mqtttest.Buffer
	screen *screens
}

func newRig(t testing.TB, profile string) *rig {
	w := getWorld(t)
	r := &rig{t: t, pad: &pad{}, local: &local{}, logs: &mqtttest.Buffer{}, screen: &screens{}}
	r.p = &Pipeline{
		Verifier:     realVerifier{w.auth, w.sign},
		CV:           w.cv,
		Input:        r.pad,
		Local:        r.local,
		Document:     func(context.Context) ([]byte, error) { return testDoc[:], nil },
		Sink:         &recorder{},
		Display:      r.screen,
		Profile:      Profile{Name: profile, Service: "svc"},
		DeviceID:     "kiosk-1",
		PseudonymKey: bytes.Repeat([]byte{9}, 32),
		Now:          time.Now,
		Logger:       slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return r
}

// counting is a card session that counts APDUs and can lose the card
// after a number of them, as a card pulled from the field does.
type counting struct {
	card      *sim.JPKICard
	pullAfter int // < 0: never
	// deliverLast: the APDU at which the card is pulled still reaches the
	// card, only its answer is lost (the card acted, the kiosk cannot know).
	deliverLast bool
	// hook, when set, may answer an APDU instead of the card (status-word
	// tests); the card does not see it.
	hook      func(apdu []byte) ([]byte, bool)
	apdus     int
	lost      int            // APDUs sent after the card had left
	gone      chan struct{}  // closed when the card leaves (nil: stays)
	ef        uint16         // last EF selected
	presented map[uint16]int // VERIFY with data, per credential EF
}

func (s *counting) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	if s.pullAfter >= 0 && s.apdus >= s.pullAfter {
		if s.deliverLast && s.apdus == s.pullAfter {
			s.apdus++
			s.note(apdu)
			_, _ = s.card.Transmit(ctx, apdu)
		} else {
			s.lost++
		}
		return nil, fmt.Errorf("test: %w", iso7816.ErrCardLost)
	}
	s.apdus++
	s.note(apdu)
	if s.hook != nil {
		if r, ok := s.hook(apdu); ok {
			return r, nil
		}
	}
	return s.card.Transmit(ctx, apdu)
}

// note tracks the selected EF and counts the secrets presented to it.
func (s *counting) note(apdu []byte) {
	switch {
	case len(apdu) == 7 && apdu[1] == 0xA4 && apdu[2] == 0x02:
		s.ef = uint16(apdu[5])<<8 | uint16(apdu[6])
	case len(apdu) >= 4 && apdu[1] == 0xA4 && apdu[2] == 0x04:
		s.ef = 0
	case len(apdu) > 5 && apdu[1] == 0x20:
		if s.presented == nil {
			s.presented = map[uint16]int{}
		}
		s.presented[s.ef]++
	}
}
func (s *counting) Tech() string { return "iso14443-4b" }
func (s *counting) WaitRemoved(ctx context.Context) error {
	select {
	case <-s.gone: // nil channel: the card stays
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (s *counting) Close() error { return nil }

// tap places card on the reader (power-on: nothing selected, nothing
// verified) and runs one tap.
func (r *rig) tap(card *sim.JPKICard, pullAfter int) (Event, int) {
	return r.tapSession(&counting{card: card, pullAfter: pullAfter})
}

// tapSession runs one tap on s and checks what every tap must keep: no
// secret presented twice, every secret buffer zeroed when the tap ends.
func (r *rig) tapSession(s *counting) (Event, int) {
	r.t.Helper()
	s.card.PowerOn()
	ev := r.p.Handle(context.Background(), s)
	js, _ := json.Marshal(ev)
	fmt.Fprintf(r.logs, "EVENT %s\n", js)
	if s.lost > 1 || (s.deliverLast && s.lost > 0) {
		r.t.Errorf("%s: %d APDUs sent after the card had left: something was retried", ev.Profile, s.lost)
	}
	for fid, n := range s.presented {
		if n > 1 {
			r.t.Errorf("%s: secret presented %d times to EF %04X in one tap", ev.Profile, n, fid)
		}
	}
	r.pad.mu.Lock()
	for _, b := range r.pad.given {
		if !bytes.Equal(b, make([]byte, len(b))) {
			r.t.Errorf("%s: a secret buffer was not zeroed after the tap (reason %s)", ev.Profile, ev.Reason)
		}
	}
	r.pad.given = nil
	r.pad.mu.Unlock()
	return ev, s.apdus
}

func freshCard(t testing.TB, kind string) (*sim.JPKICard, testpki.Card) {
	t.Helper()
	c := getWorld(t).pki.Cards[kind]
	jc, err := sim.FromTestPKI(c)
	if err != nil {
		t.Fatal(err)
	}
	return jc, c
}

func secretOf(c testpki.Card, k holder.Kind) string {
	return map[holder.Kind]string{holder.AuthPIN: c.AuthPIN, holder.SignPassword: c.SignPassword,
		holder.CollationB: c.CollationB, holder.SupportPIN: c.SupportPIN}[k]
}

func rightAnswers(c testpki.Card) func(holder.Request) (string, error) {
	return func(r holder.Request) (string, error) { return secretOf(c, r.Kind), nil }
}

// credentials of the virtual card, as sim.JPKICard.TriesOf names them.
var creds = []struct {
	ap  string
	fid uint16
	max int
}{
	{sim.APJPKI, jpki.EFAuthPIN, 3}, {sim.APJPKI, jpki.EFSignPIN, 5},
	{sim.APSurface, jpki.SurfacePINB, 10}, {sim.APSupport, jpki.SupportPIN, 3},
}

var wantAssurance = map[string]Assurance{
	ProfileCardCheck: AssuranceCertificateRead, ProfileFaceCheck: AssuranceGenuineCard, ProfilePINAuth: AssurancePossessionProven,
	ProfileSign: AssuranceSigned, ProfileAttributes: AssuranceAttributesRead, ProfileRegister: AssuranceRegistered,
}

// TestProfilesAccept: each profile accepts the valid card with the right
// secrets and reports its own assurance; the clone is refused by every
// profile that proves more than a certificate read.
func TestProfilesAccept(t *testing.T) {
	for _, pr := range Profiles() {
		t.Run(pr, func(t *testing.T) {
			r := newRig(t, pr)
			card, c := freshCard(t, testpki.KindValid)
			r.pad.answer = rightAnswers(c)
			ev, n := r.tap(card, -1)
			if ev.Reason != ReasonOK || ev.Outcome != Accepted || ev.Assurance != wantAssurance[pr] || len(ev.CardID) != 32 {
				t.Fatalf("valid card: %+v (%s)", ev, r.logs)
			}
			t.Logf("%s: %d APDUs", pr, n)
			if (pr == ProfileFaceCheck) != (ev.CardKeyID != "") {
				t.Errorf("card_key_id %q", ev.CardKeyID)
			}
			if (pr == ProfileSign || pr == ProfileRegister) != (ev.DocumentSHA256 == hex.EncodeToString(testDoc[:])) {
				t.Errorf("document_sha256 %q", ev.DocumentSHA256)
			}
			if pr == ProfileAttributes {
				if len(r.local.got) != 1 || r.local.got[0].Name != c.Person.Name || r.local.got[0].BirthDate != c.Person.BirthDate || r.local.got[0].IndividualNumber != "" {
					t.Errorf("delivered %d attribute sets; individual number present: %v", len(r.local.got), len(r.local.got) > 0 && r.local.got[0].IndividualNumber != "")
				}
			}
			clone, cc := freshCard(t, testpki.KindClone)
			r.pad.answer = rightAnswers(cc)
			ev, _ = r.tap(clone, -1)
			want := ReasonNotGenuine
			if pr == ProfileCardCheck {
				want = ReasonOK
			}
			if ev.Reason != want {
				t.Errorf("clone: %+v, want %s", ev, want)
			}
			assertNoLeak(t, r, c)
			assertNoLeak(t, r, cc)
		})
	}
}

// The individual number is read and delivered locally only when the
// profile permits it, after its integrity digest (DF31) matched.
func TestIndividualNumberOnlyWhenPermitted(t *testing.T) {
	r := newRig(t, ProfileAttributes)
	r.p.Profile.IndividualNumberPermitted = true
	card, c := freshCard(t, testpki.KindValid)
	r.pad.answer = rightAnswers(c)
	if ev, _ := r.tap(card, -1); ev.Reason != ReasonOK {
		t.Fatalf("%+v", ev)
	}
	if len(r.local.got) != 1 || r.local.got[0].IndividualNumber != c.Person.IndividualNumber {
		t.Fatal("individual number not delivered although permitted")
	}
	if strings.Contains(r.logs.String(), c.Person.IndividualNumber) {
		t.Fatal("individual number in the log or event")
	}
}

// TestTearing removes the card at each APDU of every flow, in both ways a
// card can leave: before the APDU reaches it, or right after it acted
// with the answer lost (the worst case for a VERIFY). Each run ends
// removed with nothing claimed, no retry counter moves (the right secrets
// were typed), and the next tap on the same card succeeds.
func TestTearing(t *testing.T) {
	for _, mode := range []struct {
		name        string
		deliverLast bool
	}{{"before", false}, {"answer-lost", true}} {
		for _, pr := range Profiles() {
			t.Run(mode.name+"/"+pr, func(t *testing.T) {
				r := newRig(t, pr)
				card, c := freshCard(t, testpki.KindValid)
				r.pad.answer = rightAnswers(c)
				ev, n := r.tap(card, -1)
				if ev.Reason != ReasonOK {
					t.Fatalf("untorn run: %+v", ev)
				}
				for k := range n {
					ev, _ := r.tapSession(&counting{card: card, pullAfter: k, deliverLast: mode.deliverLast})
					if ev.Reason != ReasonRemoved || ev.Outcome != Error || ev.Assurance != AssuranceNone || ev.CardKeyID != "" || ev.DocumentSHA256 != "" {
						t.Fatalf("torn at APDU %d of %d: %+v", k+1, n, ev)
					}
					for _, cr := range creds {
						if got := card.TriesOf(cr.ap, cr.fid); got != cr.max {
							t.Fatalf("torn at APDU %d: %s %04X has %d tries, want %d", k+1, cr.ap, cr.fid, got, cr.max)
						}
					}
					if ev, _ := r.tap(card, -1); ev.Reason != ReasonOK {
						t.Fatalf("tap after a tear at APDU %d: %+v", k+1, ev)
					}
				}
				assertNoLeak(t, r, c)
				t.Logf("%s: torn at each of its %d APDUs", pr, n)
			})
		}
	}
}

// TestTearingWrongSecret: with a wrong secret, a pull at any APDU costs at
// most the one try the single VERIFY may have cost, never two.
func TestTearingWrongSecret(t *testing.T) {
	r := newRig(t, ProfilePINAuth)
	card, c := freshCard(t, testpki.KindValid)
	r.pad.answer = func(holder.Request) (string, error) { return "0000", nil }
	if c.AuthPIN == "0000" {
		t.Skip("test card PIN is 0000")
	}
	_, n := r.tap(card, -1)
	for k := 0; k <= n; k++ {
		// Restore the counter with a correct tap.
		r.pad.answer = rightAnswers(c)
		if ev, _ := r.tap(card, -1); ev.Reason != ReasonOK {
			t.Fatalf("restore: %+v", ev)
		}
		r.pad.answer = func(holder.Request) (string, error) { return "0000", nil }
		ev, _ := r.tap(card, k)
		left := card.TriesOf(sim.APJPKI, jpki.EFAuthPIN)
		if left < 2 {
			t.Fatalf("pulled after %d APDUs: %d tries left, more than one spent (%+v)", k, left, ev)
		}
		if ev.Reason != ReasonRemoved && ev.Reason != ReasonWrongSecret {
			t.Fatalf("pulled after %d: %+v", k, ev)
		}
	}
}

// TestSecretOutcomes: wrong, floor, blocked, cancelled, timed out, for a
// profile of each credential, with the tries the card reports.
func TestSecretOutcomes(t *testing.T) {
	for _, tc := range []struct {
		profile string
		kind    holder.Kind
		ap      string
		fid     uint16
		max     int
	}{
		{ProfileFaceCheck, holder.CollationB, sim.APSurface, jpki.SurfacePINB, 10},
		{ProfilePINAuth, holder.AuthPIN, sim.APJPKI, jpki.EFAuthPIN, 3},
		{ProfileSign, holder.SignPassword, sim.APJPKI, jpki.EFSignPIN, 5},
		{ProfileAttributes, holder.SupportPIN, sim.APSupport, jpki.SupportPIN, 3},
		{ProfileRegister, holder.AuthPIN, sim.APJPKI, jpki.EFAuthPIN, 3},
		{ProfileRegister, holder.SignPassword, sim.APJPKI, jpki.EFSignPIN, 5},
	} {
		t.Run(tc.profile+"/"+string(tc.kind), func(t *testing.T) {
			r := newRig(t, tc.profile)
			card, c := freshCard(t, testpki.KindValid)
			right := secretOf(c, tc.kind)
			wrongV := []byte(right)
			wrongV[len(wrongV)-1] ^= 1 // digit or letter stays in its class
			tries := func() int { return card.TriesOf(tc.ap, tc.fid) }
			// only answers the credential under test with f and every other
			// one (register's first credential) right.
			only := func(f func() (string, error)) func(holder.Request) (string, error) {
				return func(q holder.Request) (string, error) {
					if q.Kind != tc.kind {
						return secretOf(c, q.Kind), nil
					}
					return f()
				}
			}

			r.pad.answer = only(func() (string, error) { return "", holder.ErrCancelled })
			if ev, _ := r.tap(card, -1); ev.Reason != ReasonCancelled || ev.Outcome != Error || tries() != tc.max {
				t.Errorf("cancel: %+v, %d tries", ev, tries())
			}
			r.pad.answer = only(func() (string, error) { return "", holder.ErrTimeout })
			if ev, _ := r.tap(card, -1); ev.Reason != ReasonInputTimeout || tries() != tc.max {
				t.Errorf("timeout: %+v", ev)
			}
			// Wrong until one try is left: each costs exactly one.
			r.pad.answer = only(func() (string, error) { return string(wrongV), nil })
			for want := tc.max - 1; want >= 1; want-- {
				ev, _ := r.tap(card, -1)
				if want < r.p.profile().TriesFloor-1 {
					break
				}
				if ev.Reason == ReasonTriesFloor {
					break
				}
				if ev.Reason != ReasonWrongSecret || ev.TriesLeft == nil || *ev.TriesLeft != want || tries() != want || ev.Credential != string(tc.kind) {
					t.Fatalf("wrong secret, want %d left: %+v (card %d)", want, ev, tries())
				}
			}
			// Now below the floor (default 2): refused, not asked, nothing spent.
			r.pad.mu.Lock()
			r.pad.asked = nil
			r.pad.mu.Unlock()
			before := tries()
			asked := func() int {
				r.pad.mu.Lock()
				defer r.pad.mu.Unlock()
				n := 0
				for _, q := range r.pad.asked {
					if q.Kind == tc.kind {
						n++
					}
				}
				return n
			}
			ev, _ := r.tap(card, -1)
			if ev.Reason != ReasonTriesFloor || tries() != before || asked() != 0 || *ev.TriesLeft != before || ev.Credential != string(tc.kind) {
				t.Errorf("floor: %+v, asked %d", ev, asked())
			}
			// With floor 1 the last try is presented: wrong → blocked.
			r.p.Profile.TriesFloor = 1
			if ev, _ := r.tap(card, -1); ev.Reason != ReasonBlocked || tries() != 0 {
				t.Errorf("last try: %+v", ev)
			}
			r.pad.mu.Lock()
			r.pad.asked = nil
			r.pad.mu.Unlock()
			if ev, _ := r.tap(card, -1); ev.Reason != ReasonBlocked || asked() != 0 || ev.TriesLeft == nil || *ev.TriesLeft != 0 || ev.Credential != string(tc.kind) {
				t.Errorf("blocked: %+v", ev)
			}
			// Blocked screens send the holder to the municipal office.
			if m := ResultMessage(ev); !strings.Contains(m, "municipal office") {
				t.Errorf("blocked message: %q", m)
			}
			assertNoLeak(t, r, c)
		})
	}
}

// A holder who walks away with the card while asked for a secret ends the
// tap at once with "removed": the kiosk does not wait for the input
// timeout, and nothing is presented.
func TestCardTakenAwayDuringInput(t *testing.T) {
	r := newRig(t, ProfilePINAuth)
	card, _ := freshCard(t, testpki.KindValid)
	card.PowerOn()
	s := &counting{card: card, pullAfter: -1, gone: make(chan struct{})}
	r.pad.answer = func(holder.Request) (string, error) {
		close(s.gone)
		time.Sleep(10 * time.Second) // the pipeline must not wait for this
		return "", holder.ErrTimeout
	}
	r.pad.delay = 0
	done := make(chan Event)
	go func() { done <- r.p.Handle(context.Background(), s) }()
	select {
	case ev := <-done:
		if ev.Reason != ReasonRemoved || ev.Check != "secret" || card.TriesOf(sim.APJPKI, jpki.EFAuthPIN) != 3 {
			t.Fatalf("%+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pipeline kept waiting for input after the card left")
	}
}

// TestTypingTimeNotCounted: a holder who types for longer than the whole
// card read timeout still gets an accepted tap.
func TestTypingTimeNotCounted(t *testing.T) {
	r := newRig(t, ProfilePINAuth)
	card, c := freshCard(t, testpki.KindValid)
	r.p.ReadTimeout = 300 * time.Millisecond
	r.pad.answer, r.pad.delay = rightAnswers(c), 600*time.Millisecond
	ev, _ := r.tap(card, -1)
	if ev.Reason != ReasonOK || ev.InputMS < 600 || ev.ReadMS >= 300 {
		t.Fatalf("%+v", ev)
	}
}

// TestServicesUnlinkable: two services of one deployment get unrelated
// card_id and card_key_id for the same card; one service gets the same.
func TestServicesUnlinkable(t *testing.T) {
	card, c := freshCard(t, testpki.KindValid)
	ids := map[string]Event{}
	for _, svc := range []string{"reception", "pharmacy", "reception"} {
		r := newRig(t, ProfileFaceCheck)
		r.p.Profile.Service = svc
		r.pad.answer = rightAnswers(c)
		ev, _ := r.tap(card, -1)
		if ev.Reason != ReasonOK {
			t.Fatalf("%+v", ev)
		}
		if prev, ok := ids[svc]; ok && (prev.CardID != ev.CardID || prev.CardKeyID != ev.CardKeyID) {
			t.Error("same service, different ids")
		}
		ids[svc] = ev
	}
	a, b := ids["reception"], ids["pharmacy"]
	if a.CardID == b.CardID || a.CardKeyID == b.CardKeyID || a.CardID == a.CardKeyID {
		t.Errorf("services linkable: %+v %+v", a, b)
	}
}

// TestScreensAndLogsHoldNoSecrets runs every profile with right and wrong
// secrets and checks logs, events and screens for secrets and personal data.
func TestScreensAndLogsHoldNoSecrets(t *testing.T) {
	for _, pr := range Profiles() {
		r := newRig(t, pr)
		card, c := freshCard(t, testpki.KindValid)
		r.pad.answer = rightAnswers(c)
		r.tap(card, -1)
		r.pad.answer = func(q holder.Request) (string, error) {
			v := []byte(secretOf(c, q.Kind))
			v[len(v)-1] ^= 1
			return string(v), nil
		}
		r.tap(card, -1)
		var inputs int
		for _, s := range r.screen.all {
			if s.State == StateInput {
				inputs++
				if s.TriesLeft <= 0 || s.Credential == "" {
					t.Errorf("%s: input screen %+v", pr, s)
				}
			}
		}
		if pr != ProfileCardCheck && inputs == 0 {
			t.Errorf("%s: no input screen", pr)
		}
		assertNoLeak(t, r, c)
	}
}

func assertNoLeak(t *testing.T, r *rig, c testpki.Card) {
	t.Helper()
	var all strings.Builder
	all.WriteString(r.logs.String())
	for _, s := range r.screen.all {
		fmt.Fprintf(&all, "%+v\n", s)
	}
	text := all.String()
	// hexForms are the ways bytes end up in a log line: hex in both cases,
	// spaced (% x), and Go's byte-slice format.
	hexForms := func(v string) []string {
		b := []byte(v)
		return []string{hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)), fmt.Sprintf("% x", b), fmt.Sprintf("% X", b), fmt.Sprint(b)}
	}
	for _, v := range []string{c.AuthPIN, c.SignPassword, c.CollationB, c.SupportPIN, c.Person.SecurityCode} {
		if v == "" {
			continue
		}
		// Short values (4 digits) occur by chance in times and IDs: look
		// for the forms a leak would take.
		forms := append([]string{`"` + v + `"`, "=" + v + " ", "=" + v + "\n", ":" + v + ","}, hexForms(v)...)
		for _, form := range forms {
			if strings.Contains(text, form) {
				t.Errorf("secret leaked as %q", form)
			}
		}
		if len(v) > 4 && strings.Contains(strings.ToUpper(text), strings.ToUpper(v)) {
			t.Errorf("secret leaked: %q", v)
		}
	}
	p := c.Person
	for _, v := range []string{p.Name, p.Address, p.IndividualNumber, p.BirthDate, p.Expiry} {
		if len(v) < 4 {
			continue
		}
		for _, form := range append([]string{v}, hexForms(v)...) {
			if strings.Contains(text, form) {
				t.Errorf("personal data leaked as %q", form)
			}
		}
	}
	// The given name alone (the name is "family U+3000 given").
	for _, part := range strings.Fields(strings.ReplaceAll(p.Name, "\u3000", " ")) {
		if len(part) >= 6 && strings.Contains(text, part) {
			t.Errorf("part of the name leaked: %q", part)
		}
	}
}
