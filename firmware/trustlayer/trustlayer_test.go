package trustlayer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// genTime is when the test PKI was made: its CRL is current from
// genTime-1h to genTime+47h.
var genTime = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

var (
	pkiOnce sync.Once
	pki     *testpki.PKI
	pkiErr  error
)

func testPKI(t *testing.T) *testpki.PKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = testpki.Generate(genTime) })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

// board is an injected kiosk: a system clock that may lie and a monotonic
// clock the test advances.
type board struct {
	mu   sync.Mutex
	sys  time.Time
	mono time.Duration
}

func (b *board) System() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sys.Add(b.mono)
}

func (b *board) Mono() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mono
}

func (b *board) run(d time.Duration) {
	b.mu.Lock()
	b.mono += d
	b.mu.Unlock()
}

// setSystem makes the system clock read t now (it then runs on).
func (b *board) setSystem(t time.Time) {
	b.mu.Lock()
	b.sys = t.Add(-b.mono)
	b.mu.Unlock()
}

type kiosk struct {
	dir, crlFile string
	root         *x509.Certificate
}

func newKiosk(t *testing.T) *kiosk {
	p := testPKI(t)
	dir := t.TempDir()
	k := &kiosk{dir: dir, crlFile: filepath.Join(dir, "auth.crl")}
	if err := os.WriteFile(k.crlFile, p.CRL, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if k.root, err = x509.ParseCertificate(p.Root); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kiosk) open(t *testing.T, b *board) *Layer { return k.openGrace(t, b, 0) }

func (k *kiosk) openGrace(t *testing.T, b *board, grace time.Duration) *Layer {
	t.Helper()
	l, err := Open(context.Background(), Options{
		Grace:      grace,
		ClockState: filepath.Join(k.dir, "state", "clock.json"),
		System:     b.System, Mono: b.Mono,
		IndexDir:    filepath.Join(k.dir, "state", "revocation"),
		CRLFiles:    []string{k.crlFile},
		AuthAnchors: []*x509.Certificate{k.root},
		AllowTest:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func verifyCard(t *testing.T, l *Layer, kind string) verify.Result {
	t.Helper()
	r, ok := l.Verify(context.Background(), verify.PurposeAuth, testPKI(t).Cards[kind].Cert)
	if !ok {
		t.Fatal("no auth verifier")
	}
	return r
}

// TestBoard1970 is a board without an RTC: the system clock reads 1970 at
// every boot. The trusted bound (the CRL's thisUpdate plus the running
// time, accumulated across reboots) still passes nextUpdate, and then
// every card is crl-stale, also after a reboot.
func TestBoard1970(t *testing.T) {
	k := newKiosk(t)
	b := &board{sys: time.Unix(5, 0)}
	l := k.open(t, b)
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonOK {
		t.Fatalf("fresh CRL: %s (%s)", r.Reason, r.Detail)
	}
	at, believed := l.EventClock()
	if believed || !at.Equal(genTime.Add(-time.Hour)) {
		t.Fatalf("event clock %v believed=%v, want the CRL's thisUpdate %v, not believed", at, believed, genTime.Add(-time.Hour))
	}
	if r := verifyCard(t, l, testpki.KindRevoked); r.Reason != verify.ReasonRevoked {
		t.Fatalf("revoked card: %s", r.Reason)
	}
	// 30 hours of uptime, then a power cut and a reboot to 1970.
	b.run(30 * time.Hour)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b = &board{sys: time.Unix(5, 0)}
	l = k.open(t, b)
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonOK || r.Time.Before(genTime.Add(29*time.Hour)) {
		t.Fatalf("after reboot at bound %v: %s, want ok with the bound carried over", r.Time, r.Reason)
	}
	// 18 more hours: the bound (thisUpdate + 48 h) passes nextUpdate.
	b.run(18*time.Hour + time.Minute)
	r := verifyCard(t, l, testpki.KindValid)
	if r.Reason != verify.ReasonCRLStale {
		t.Fatalf("past nextUpdate by the bound: %s (%s), want crl-stale", r.Reason, r.Detail)
	}
	if _, believed := l.EventClock(); believed {
		t.Error("a 1970 system clock was believed")
	}
	st := l.Status()
	if st.AgeS == nil || *st.AgeS < 48*3600 {
		t.Errorf("status revocation age %v, want ≥ 48 h", st.AgeS)
	}
	l.Close()
	// And after another reboot, straight away.
	l = k.open(t, &board{sys: time.Unix(5, 0)})
	defer l.Close()
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonCRLStale {
		t.Fatalf("rebooted after staleness: %s, want crl-stale at once", r.Reason)
	}
}

// TestClockJumpsBackwards: a believed clock that is set back is not
// believed below the bound, and staleness is still noticed.
func TestClockJumpsBackwards(t *testing.T) {
	k := newKiosk(t)
	b := &board{sys: genTime}
	l := k.open(t, b)
	defer l.Close()
	if at, believed := l.EventClock(); !believed || !at.Equal(genTime) {
		t.Fatalf("plausible system clock %v not believed (%v)", at, believed)
	}
	b.run(2 * time.Hour)
	b.setSystem(genTime.Add(-10 * 24 * time.Hour)) // someone sets the clock back ten days
	at, believed := l.EventClock()
	if believed || at.Before(genTime.Add(2*time.Hour)) {
		t.Fatalf("clock set back: event time %v believed=%v, want ≥ %v not believed", at, believed, genTime.Add(2*time.Hour))
	}
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonOK {
		t.Fatalf("within the CRL window: %s", r.Reason)
	}
	b.run(46 * time.Hour) // bound now genTime+48h > nextUpdate; the system says genTime-8d
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonCRLStale {
		t.Fatalf("past nextUpdate by the bound, clock set back: %s (%s), want crl-stale", r.Reason, r.Detail)
	}
}

// newerCRL is the test root's CRL #n listing the given cards' certificates.
func newerCRL(t *testing.T, number int64, this time.Time, kinds ...string) []byte {
	t.Helper()
	p := testPKI(t)
	root, _ := x509.ParseCertificate(p.Root)
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: this.Add(48 * time.Hour)}
	for _, kind := range kinds {
		c, err := x509.ParseCertificate(p.Cards[kind].Cert)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: this.Add(-time.Minute), ReasonCode: 1})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, root, p.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestReplayRefusedAfterRestart: once a newer CRL was imported, the older
// one is refused, also by the next process, and the newer stays in use.
func TestReplayRefusedAfterRestart(t *testing.T) {
	k := newKiosk(t)
	b := &board{sys: genTime}
	l := k.open(t, b)
	newer := newerCRL(t, genTime.Unix()+10, genTime, testpki.KindRevoked, testpki.KindValid)
	if _, err := l.Import(context.Background(), bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonRevoked {
		t.Fatalf("after the newer CRL: %s, want revoked", r.Reason)
	}
	l.Close()
	l = k.open(t, b) // the configured file is the older CRL: unchanged, not re-imported
	defer l.Close()
	if _, err := l.Import(context.Background(), bytes.NewReader(testPKI(t).CRL)); !errors.Is(err, revocation.ErrReplay) {
		t.Fatalf("older CRL after restart: %v, want ErrReplay", err)
	}
	// The operator copies the old file over the configured one: refused too.
	if err := os.WriteFile(k.crlFile, append([]byte(nil), testPKI(t).CRL...), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(k.crlFile, time.Now(), time.Now().Add(time.Hour))
	if err := l.Sync(context.Background()); !errors.Is(err, revocation.ErrReplay) {
		t.Fatalf("old file re-imported: %v, want ErrReplay", err)
	}
	if r := verifyCard(t, l, testpki.KindValid); r.Reason != verify.ReasonRevoked {
		t.Fatalf("after the refused replay: %s, want the newer CRL still judging (revoked)", r.Reason)
	}
	if st := l.Status(); len(st.Revocation.Errors) == 0 {
		t.Error("the refused file is not in status")
	}
}

// TestSwapWhileVerifying: taps go on while a new CRL is swapped in; none
// fails for it and each is judged by exactly one CRL: the old one (the
// valid card is ok) or the new one (it lists the valid card: revoked).
func TestSwapWhileVerifying(t *testing.T) {
	k := newKiosk(t)
	b := &board{sys: genTime}
	l := k.open(t, b)
	defer l.Close()
	oldNumber := verifyCard(t, l, testpki.KindValid).CRLNumber
	newNumber := big.NewInt(genTime.Unix() + 1)
	next := newerCRL(t, newNumber.Int64(), genTime, testpki.KindRevoked, testpki.KindValid)
	var stop atomic.Bool
	var byOld, byNew atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan string, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r := verifyCard(t, l, testpki.KindValid)
				switch {
				case r.CRLNumber.Cmp(oldNumber) == 0 && r.Reason == verify.ReasonOK:
					byOld.Add(1)
				case r.CRLNumber.Cmp(newNumber) == 0 && r.Reason == verify.ReasonRevoked:
					byNew.Add(1)
				default:
					errc <- string(r.Reason) + " by CRL " + r.CRLNumber.String()
					return
				}
			}
		}()
	}
	for byOld.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	if _, err := l.Import(context.Background(), bytes.NewReader(next)); err != nil {
		t.Fatal(err)
	}
	seenAt := byNew.Load()
	for byNew.Load() < seenAt+50 {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for e := range errc {
		t.Fatalf("a tap was judged by neither CRL alone: %s", e)
	}
	t.Logf("%d taps judged by the old CRL, %d by the new", byOld.Load(), byNew.Load())
}

// TestStartFailsWithoutUsableData: a tampered CRL and nothing else is an
// error naming the file; with usable data in the store it is only logged.
func TestStartFailsWithoutUsableData(t *testing.T) {
	k := newKiosk(t)
	bad := bytes.Clone(testPKI(t).CRL)
	bad[len(bad)-5] ^= 1
	if err := os.WriteFile(k.crlFile, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{
		ClockState: filepath.Join(k.dir, "clock.json"), System: time.Now, Mono: func() time.Duration { return 0 },
		IndexDir: filepath.Join(k.dir, "rev"), CRLFiles: []string{k.crlFile},
		AuthAnchors: []*x509.Certificate{k.root}, AllowTest: true,
	})
	if !errors.Is(err, revocation.ErrUntrusted) {
		t.Fatalf("open with only a tampered CRL: %v, want ErrUntrusted", err)
	}
}

// TestGracePeriod: with a grace period a CRL past its nextUpdate still
// judges, and the verdict says so; past the grace it is crl-stale.
func TestGracePeriod(t *testing.T) {
	k := newKiosk(t)
	b := &board{sys: genTime}
	l := k.openGrace(t, b, 6*time.Hour)
	defer l.Close()
	b.run(48 * time.Hour) // nextUpdate (genTime+47h) passed an hour ago
	v := l.VerifyJPKIAuth(context.Background(), testPKI(t).Cards[testpki.KindValid].Cert)
	if v.Reason != "ok" || !v.RevocationKnown || !v.RevocationStale || v.RevocationAge < 49*time.Hour || v.RevocationAge > 49*time.Hour+time.Minute {
		t.Fatalf("within grace: %+v, want ok, stale, age 49 h", v)
	}
	v = l.VerifyJPKIAuth(context.Background(), testPKI(t).Cards[testpki.KindRevoked].Cert)
	if v.Reason != "revoked" || !v.RevocationStale {
		t.Fatalf("revoked card within grace: %+v", v)
	}
	b.run(6 * time.Hour)
	if v := l.VerifyJPKIAuth(context.Background(), testPKI(t).Cards[testpki.KindValid].Cert); v.Reason != "crl-stale" {
		t.Fatalf("past the grace: %s, want crl-stale", v.Reason)
	}
}
