package tap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/hw/sim"
)

// testCert makes a small certificate quickly (the pipeline does not verify
// it; the fake verifier below decides).
func testCert(t *testing.T, serial int64) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "opaque-test-subject"},
		Issuer:       pkix.Name{CommonName: "test issuer"},
		NotBefore:    time.Unix(1_700_000_000, 0),
		NotAfter:     time.Unix(1_900_000_000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// session puts a virtual card (the simulator's JPKI card) behind the
// Session interface; pullAfter simulates the card leaving mid-read.
type session struct {
	card      iso7816.Card
	pullAfter int
	apdus     int
	removed   chan struct{}
	closed    int
}

func (s *session) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	s.apdus++
	if s.pullAfter > 0 && s.apdus > s.pullAfter {
		return nil, iso7816.ErrCardLost
	}
	return s.card.Transmit(ctx, apdu)
}
func (s *session) Tech() string { return "iso14443-4b" }
func (s *session) WaitRemoved(ctx context.Context) error {
	if s.removed == nil {
		return nil
	}
	select {
	case <-s.removed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (s *session) Close() error { s.closed++; return nil }

func jpkiSession(t *testing.T, token string, cert []byte) *session {
	t.Helper()
	c, err := sim.NewJPKICard(sim.JPKIConfig{Token: token, AuthCert: cert, AuthCACert: cert})
	if err != nil {
		t.Fatal(err)
	}
	return &session{card: c}
}

type fakeVerifier struct {
	reason    string
	unchained bool
	got       [][]byte
}

func (f *fakeVerifier) VerifyJPKIAuth(_ context.Context, der []byte) Verdict {
	f.got = append(f.got, der)
	return Verdict{Reason: f.reason, Detail: "test", Chained: !f.unchained}
}

func (f *fakeVerifier) VerifyJPKISign(_ context.Context, der []byte) Verdict {
	return Verdict{Reason: "untrusted", Detail: "fake verifier has no sign anchors"}
}

type recorder struct {
	mu     sync.Mutex
	events []Event
	raw    [][]byte
	fail   error
}

func (r *recorder) Publish(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	r.events = append(r.events, e)
	r.raw = append(r.raw, b)
	return nil
}

func newPipeline(v Verifier, s Sink) *Pipeline {
	return &Pipeline{
		Verifier:     v,
		Sink:         s,
		DeviceID:     "kiosk-1",
		PseudonymKey: bytes.Repeat([]byte{7}, 32),
		Now:          time.Now,
	}
}

func TestHandleReadsAndVerifies(t *testing.T) {
	cert := testCert(t, 4242)
	v := &fakeVerifier{reason: "revoked"}
	p := newPipeline(v, &recorder{})
	ev := p.Handle(context.Background(), jpkiSession(t, "JPKIAPICCTOKEN2", cert))
	if ev.Outcome != Rejected || ev.Reason != "revoked" || ev.CardKind != "mynumber-card" || ev.Tech != "iso14443-4b" {
		t.Fatalf("event %+v", ev)
	}
	if len(v.got) != 1 || !bytes.Equal(v.got[0], cert) {
		t.Fatal("verifier did not get the certificate read from the card")
	}
	if ev.Schema != Schema || ev.Device != "kiosk-1" || ev.Time.IsZero() || ev.Time.Location() != time.UTC {
		t.Fatalf("envelope %+v", ev)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(ev.ID) {
		t.Fatalf("event id %q", ev.ID)
	}
	c, _ := x509.ParseCertificate(cert)
	if ev.CardID != CardID(p.PseudonymKey, "default", c) || len(ev.CardID) != 32 {
		t.Fatalf("card id %q", ev.CardID)
	}
	if ev.Profile != ProfileCardCheck || ev.Assurance != AssuranceNone {
		t.Fatalf("profile %q assurance %q", ev.Profile, ev.Assurance)
	}
}

func TestHandleOutcomes(t *testing.T) {
	cert := testCert(t, 1)
	cases := []struct {
		name    string
		token   string
		pull    int
		reason  string // verifier's
		want    string
		outcome Outcome
		hasID   bool
	}{
		{"accepted", "JPKIAPICCTOKEN2", 0, "ok", "ok", Accepted, true},
		{"expired", "JPKIAPICCTOKEN2", 0, "expired", "expired", Rejected, true},
		{"no revocation data", "JPKIAPICCTOKEN2", 0, "crl-unavailable", "crl-unavailable", Error, true},
		{"pulled during token read", "JPKIAPICCTOKEN2", 2, "ok", ReasonRemoved, Error, false},
		{"pulled during certificate read", "JPKIAPICCTOKEN2", 5, "ok", ReasonRemoved, Error, false},
		{"unknown holder", "SOMETHINGELSE", 0, "ok", ReasonUnsupported, Rejected, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := jpkiSession(t, c.token, cert)
			s.pullAfter = c.pull
			v := &fakeVerifier{reason: c.reason}
			ev := newPipeline(v, &recorder{}).Handle(context.Background(), s)
			if ev.Reason != c.want || ev.Outcome != c.outcome || (ev.CardID != "") != c.hasID {
				t.Fatalf("event %+v", ev)
			}
			if c.want != c.reason && len(v.got) != 0 {
				t.Fatal("verifier called although the read failed")
			}
		})
	}
}

// notJPKI is a card without the JPKI AP.
type notJPKI struct{}

func (notJPKI) Transmit(context.Context, []byte) ([]byte, error) { return []byte{0x6A, 0x82}, nil }

func TestHandleNotJPKI(t *testing.T) {
	ev := newPipeline(&fakeVerifier{reason: "ok"}, &recorder{}).Handle(context.Background(), &session{card: notJPKI{}})
	if ev.Reason != ReasonUnsupported || ev.Outcome != Rejected {
		t.Fatalf("event %+v", ev)
	}
}

func TestCardIDIsKeyedAndStable(t *testing.T) {
	parse := func(der []byte) *x509.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ader := testCert(t, 1)
	a, b := parse(ader), parse(testCert(t, 2))
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	id := CardID(k1, "clinic", a)
	// Stable for a copy of the same certificate (a second read of the card).
	if again := CardID(k1, "clinic", parse(bytes.Clone(ader))); again != id || len(id) != 32 {
		t.Fatalf("card id %q, then %q", id, again)
	}
	if id == CardID(k1, "clinic", b) || id == CardID(k2, "clinic", a) || id == CardID(k1, "pharmacy", a) {
		t.Fatal("card IDs collide across cards, keys or services")
	}
	// The length prefix keeps service and issuer apart.
	if CardID(k1, "", a) == CardID(k1, "\x00", a) {
		t.Fatal("service boundary not encoded")
	}
}

// A certificate that did not chain to an anchor gets no card_id, whatever
// issuer and serial it copies.
func TestNoCardIDUnlessChained(t *testing.T) {
	cert := testCert(t, 4242)
	ev := newPipeline(&fakeVerifier{reason: "untrusted", unchained: true}, &recorder{}).Handle(context.Background(), jpkiSession(t, "JPKIAPICCTOKEN2", cert))
	if ev.Reason != "untrusted" || ev.CardID != "" {
		t.Fatalf("event %+v", ev)
	}
}

// TestEventCarriesNoCardData checks the published JSON for certificate
// bytes, the serial number and subject names.
func TestEventCarriesNoCardData(t *testing.T) {
	cert := testCert(t, 0x1234567890)
	rec := &recorder{}
	p := newPipeline(&fakeVerifier{reason: "ok"}, rec)
	ev := p.Handle(context.Background(), jpkiSession(t, "JPKIAPICCTOKEN2", cert))
	if err := rec.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	js := strings.ToLower(string(rec.raw[0]))
	for _, leak := range []string{"1234567890", "opaque-test-subject", "test issuer", hex.EncodeToString(cert[:16])} {
		if strings.Contains(js, strings.ToLower(leak)) {
			t.Fatalf("event leaks %q: %s", leak, js)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(rec.raw[0], &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "event_id", "device_id", "time", "profile", "outcome", "reason", "assurance", "card_kind", "card_id", "read_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("event lacks %q: %s", k, rec.raw[0])
		}
	}
}

// scriptedReader hands out sessions, then fails once, then blocks.
type scriptedReader struct {
	mu       sync.Mutex
	sessions []*session
	failOnce bool
}

func (r *scriptedReader) Next(ctx context.Context) (Session, error) {
	r.mu.Lock()
	if r.failOnce {
		r.failOnce = false
		r.mu.Unlock()
		return nil, errors.New("frontend not answering")
	}
	if len(r.sessions) > 0 {
		s := r.sessions[0]
		r.sessions = r.sessions[1:]
		r.mu.Unlock()
		return s, nil
	}
	r.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

type screens struct {
	mu  sync.Mutex
	all []Screen
}

func (d *screens) Show(s Screen) { d.mu.Lock(); d.all = append(d.all, s); d.mu.Unlock() }

func TestRunPublishesEachTapAndWaitsForRemoval(t *testing.T) {
	s1 := jpkiSession(t, "JPKIAPICCTOKEN2", testCert(t, 1))
	s2 := jpkiSession(t, "JPKIAPICCTOKEN2", testCert(t, 2))
	s1.removed = make(chan struct{})
	rd := &scriptedReader{sessions: []*session{s1, s2}, failOnce: true}
	rec := &recorder{}
	disp := &screens{}
	p := newPipeline(&fakeVerifier{reason: "ok"}, rec)
	p.Reader, p.Display, p.FaultBackoff = rd, disp, time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	waitFor(t, func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.events) == 1 })
	// The first card still lies on the reader: no second tap yet.
	time.Sleep(50 * time.Millisecond)
	rec.mu.Lock()
	n := len(rec.events)
	rec.mu.Unlock()
	if n != 1 || s1.closed != 0 {
		t.Fatalf("pipeline moved on before the card was removed: %d events, closed %d", n, s1.closed)
	}
	close(s1.removed)
	waitFor(t, func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.events) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s1.closed != 1 || s2.closed != 1 {
		t.Fatalf("sessions closed %d, %d", s1.closed, s2.closed)
	}
	if rec.events[0].ID == rec.events[1].ID || rec.events[0].CardID == rec.events[1].CardID {
		t.Fatal("two taps share an event id or card id")
	}
	disp.mu.Lock()
	defer disp.mu.Unlock()
	var states []string
	for _, s := range disp.all {
		states = append(states, string(s.State))
		if s.Message == "" {
			t.Errorf("screen %s without a message", s.State)
		}
	}
	if got := strings.Join(states, ","); !strings.HasPrefix(got, "ready,fault,ready,reading,result,ready,reading,result") {
		t.Fatalf("screens %s", got)
	}
}

// TestRunSurvivesSinkFailure: a sink that refuses events does not stop the
// kiosk; every tap is still read and released, and its screen says the
// result was not saved instead of showing it as done.
func TestRunSurvivesSinkFailure(t *testing.T) {
	s1 := jpkiSession(t, "JPKIAPICCTOKEN2", testCert(t, 1))
	s2 := jpkiSession(t, "JPKIAPICCTOKEN2", testCert(t, 2))
	rd := &scriptedReader{sessions: []*session{s1, s2}}
	rec := &recorder{fail: errors.New("queue full")}
	disp := &screens{}
	p := newPipeline(&fakeVerifier{reason: "ok"}, rec)
	p.Reader, p.Display = rd, disp
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s1.closed != 1 || s2.closed != 1 {
		t.Fatalf("sessions closed %d, %d: the pipeline stalled on the failing sink", s1.closed, s2.closed)
	}
	results, notSaved := 0, 0
	for _, s := range disp.all {
		switch s.State {
		case StateResult:
			results++
		case StateNotSaved:
			if s.Message != MessageNotSaved || s.Outcome != "" || s.Reason != "" {
				t.Errorf("not-saved screen %+v", s)
			}
			notSaved++
		}
	}
	if results != 0 || notSaved != 2 {
		t.Fatalf("%d results and %d not-saved screens shown, want 0 and 2", results, notSaved)
	}
}

func TestRunRefusesWeakKey(t *testing.T) {
	p := newPipeline(&fakeVerifier{}, &recorder{})
	p.Reader, p.PseudonymKey = &scriptedReader{}, []byte("short")
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("ran with a 5-byte pseudonym key")
	}
}

func TestMessagesForEveryReason(t *testing.T) {
	generic := Message("no-such-reason")
	for _, r := range []string{ReasonRemoved, ReasonIO, ReasonUnsupported, ReasonPINRequired, "expired", "crl-stale"} {
		if m := Message(r); m == "" || m == generic {
			t.Errorf("reason %s has no specific message", r)
		}
	}
	// Every pipeline reason has its own result message.
	tries := 1
	for _, r := range []string{ReasonNotGenuine, ReasonCVAnchorUnknown, ReasonFaceMismatch, ReasonWrongSecret, ReasonTriesFloor,
		ReasonBlocked, ReasonCancelled, ReasonInputTimeout, ReasonNoSignCert, ReasonIntegrity, ReasonUndelivered} {
		if m := ResultMessage(Event{Reason: r, Credential: "auth-pin", TriesLeft: &tries}); m == generic || m == "" {
			t.Errorf("reason %s has no specific message", r)
		}
	}
	// An accepted tap says what its profile proved, and card-check says
	// that it did not check the card itself.
	seen := map[string]bool{}
	for _, pr := range Profiles() {
		m := ResultMessage(Event{Reason: ReasonOK, Profile: pr})
		if m == generic || seen[m] {
			t.Errorf("profile %s: message %q not specific", pr, m)
		}
		seen[m] = true
	}
	if m := ResultMessage(Event{Reason: ReasonOK, Profile: ProfileCardCheck}); !strings.Contains(m, "did not check that the card itself is genuine") || strings.Contains(m, "confirmed") {
		t.Errorf("card-check message claims too much: %q", m)
	}
	if m := ResultMessage(Event{Reason: ReasonWrongSecret, Credential: "auth-pin", TriesLeft: &tries}); !strings.Contains(m, "1 tries left") {
		t.Errorf("wrong-secret message without the tries left: %q", m)
	}
	for _, r := range []string{"revoked", "untrusted", "test-card", "malformed"} {
		if Message(r) != generic {
			t.Errorf("reason %s should get the refer-to-staff message", r)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
