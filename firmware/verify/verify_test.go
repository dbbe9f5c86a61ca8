package verify_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
	"github.com/kazashi/kazashi/provisioning/trust"
)

func TestKinds(t *testing.T) {
	f := getFixture(t)
	v := f.verifier(t, nil)
	for _, tc := range []struct {
		kind   string
		want   verify.Reason
		anchor bool // Result.Anchor set
	}{
		{testpki.KindValid, verify.ReasonOK, true},
		{testpki.KindRevoked, verify.ReasonRevoked, true},
		{testpki.KindExpired, verify.ReasonExpired, true},
		{testpki.KindUnknownCA, verify.ReasonUntrusted, false},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			r := check(t, v, f.card(tc.kind), tc.want)
			t.Logf("%s: %s", r.Reason, r.Detail)
			if (r.Anchor != nil) != tc.anchor || (tc.anchor && r.Anchor != f.root) {
				t.Errorf("Anchor %v, want the test root: %v", r.Anchor != nil, tc.anchor)
			}
			if r.Leaf == nil || !r.Time.Equal(genesis) {
				t.Errorf("Leaf %v, Time %v", r.Leaf != nil, r.Time)
			}
		})
	}
}

// The impostor root carries the genuine root's DN and key identifier: only
// the signature can tell them apart.
func TestImpostorRoot(t *testing.T) {
	f := getFixture(t)
	r := check(t, f.verifier(t, nil), f.card(testpki.KindUnknownCA), verify.ReasonUntrusted)
	if !strings.Contains(r.Detail, "signature verifies under none of the 1 anchors") {
		t.Errorf("Detail %q: want a signature failure, not a name failure", r.Detail)
	}

	// With both roots loaded as anchors (impostor first), each leaf is
	// attributed to the root whose key signed it.
	v := f.verifier(t, func(o *verify.Options) { o.Anchors = []*x509.Certificate{f.impostor, f.root} })
	if r := check(t, v, f.card(testpki.KindValid), verify.ReasonOK); r.Anchor != f.root {
		t.Error("valid card attributed to the impostor root")
	}
	// The CRL was bound to the genuine root by its signature, so the
	// impostor has none.
	if r := check(t, v, f.card(testpki.KindUnknownCA), verify.ReasonCRLUnavailable); r.Anchor != f.impostor {
		t.Error("unknown-ca card not attributed to its own root")
	}
}

func TestProductionRejectsTestCards(t *testing.T) {
	f := getFixture(t)
	real := realRoot(t)
	v, err := verify.New(verify.Options{Anchors: real, Now: clock(genesis)})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range testpki.Kinds() {
		t.Run(kind, func(t *testing.T) { check(t, v, f.card(kind), verify.ReasonTestCard) })
	}

	_, err = verify.New(verify.Options{Anchors: []*x509.Certificate{f.root}, Now: clock(genesis)})
	if !errors.Is(err, verify.ErrBadAnchor) || !strings.Contains(err.Error(), "test mode is off") {
		t.Errorf("New with the test root in production mode: %v, want ErrBadAnchor", err)
	}
}

// realRoot returns the real JPKI user-authentication roots (2019 and
// 2023 generations), as the daemon ships them.
func realRoot(t *testing.T) []*x509.Certificate {
	t.Helper()
	anchors, err := trust.JPKIAuthRoots()
	if err != nil {
		t.Fatal(err)
	}
	return anchors
}

// The real roots load as anchors, and a test leaf claiming a real root's
// name and key identifier does not verify under it.
func TestRealRoot(t *testing.T) {
	f := getFixture(t)
	real := realRoot(t)
	var fps []string
	for _, c := range real {
		sum := sha256.Sum256(c.Raw)
		fps = append(fps, fmt.Sprintf("%X…%X", sum[:4], sum[29:]))
	}
	if strings.Join(fps, " ") != "0D98DE47…1FADE6 64114F29…C322B5" {
		t.Fatalf("fingerprints %v, want the 2019 and 2023 auth roots", fps)
	}

	v := f.verifier(t, func(o *verify.Options) { o.Anchors = append(real, f.root) })
	check(t, v, f.card(testpki.KindValid), verify.ReasonOK)

	// A forged leaf naming the real root as issuer, with its AKI, signed by
	// the test root's key.
	forger := *real[1]
	forger.PublicKey = f.pki.RootKey.Public()
	forged := leaf(t, &forger, f.pki.RootKey, x509.Certificate{})
	r := check(t, v, forged, verify.ReasonUntrusted)
	if !strings.Contains(r.Detail, "signature") {
		t.Errorf("Detail %q: want a signature failure", r.Detail)
	}

	// Test leaves do not chain to the real root by name either.
	vReal := f.verifier(t, func(o *verify.Options) { o.Anchors, o.Revocation = real, nil })
	check(t, vReal, f.card(testpki.KindValid), verify.ReasonUntrusted)
}

func TestCheckOrder(t *testing.T) {
	f := getFixture(t)
	real := realRoot(t)
	unknownCritical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{5, 0}}
	for _, tc := range []struct {
		name string
		der  func(t *testing.T) []byte
		opts func(*verify.Options)
		want verify.Reason
	}{
		{
			name: "malformed before test-card",
			der: func(t *testing.T) []byte {
				return leaf(t, f.root, f.pki.RootKey, x509.Certificate{ExtraExtensions: []pkix.Extension{unknownCritical}})
			},
			opts: func(o *verify.Options) { o.Anchors, o.Revocation, o.AllowTest = real, nil, false },
			want: verify.ReasonMalformed,
		},
		{
			name: "test-card before untrusted",
			der:  func(*testing.T) []byte { return f.card(testpki.KindUnknownCA) },
			opts: func(o *verify.Options) { o.Anchors, o.Revocation, o.AllowTest = real, nil, false },
			want: verify.ReasonTestCard,
		},
		{
			name: "untrusted before expired",
			der: func(t *testing.T) []byte {
				// The root's name and key identifier, another key.
				forger := *f.root
				forger.PublicKey = f.pki.Cards[testpki.KindValid].Key.Public()
				return leaf(t, &forger, f.pki.Cards[testpki.KindValid].Key, x509.Certificate{NotAfter: genesis.AddDate(0, 0, -1)})
			},
			want: verify.ReasonUntrusted,
		},
		{
			name: "not-yet-valid",
			der: func(t *testing.T) []byte {
				return leaf(t, f.root, f.pki.RootKey, x509.Certificate{NotBefore: genesis.Add(time.Hour)})
			},
			want: verify.ReasonNotYetValid,
		},
		{
			name: "expired before revoked",
			der:  func(*testing.T) []byte { return f.card(testpki.KindExpired) },
			opts: func(o *verify.Options) {
				o.Revocation = f.src(t, f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{
					revoke(t, f.card(testpki.KindExpired), 1)}}))
			},
			want: verify.ReasonExpired,
		},
		{
			name: "expired before crl-unavailable",
			der:  func(*testing.T) []byte { return f.card(testpki.KindExpired) },
			opts: func(o *verify.Options) { o.Revocation = nil },
			want: verify.ReasonExpired,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := check(t, f.verifier(t, tc.opts), tc.der(t), tc.want)
			t.Log(r.Detail)
		})
	}
}

func TestMalformedLeaf(t *testing.T) {
	f := getFixture(t)
	v := f.verifier(t, nil)
	valid := f.card(testpki.KindValid)
	for _, tc := range []struct {
		name   string
		der    func(t *testing.T) []byte
		detail string
	}{
		{"empty", func(*testing.T) []byte { return nil }, "x509"},
		{"garbage", func(*testing.T) []byte { return []byte("JPKIAPICCTOKEN2") }, "x509"},
		{"truncated", func(*testing.T) []byte { return valid[:len(valid)-1] }, "x509"},
		{"trailing data", func(*testing.T) []byte { return append(valid[:len(valid):len(valid)], 0) }, "x509"},
		{"CA certificate", func(t *testing.T) []byte {
			return leaf(t, f.root, f.pki.RootKey, x509.Certificate{IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature})
		}, "CA"},
		{"no digitalSignature", func(t *testing.T) []byte {
			return leaf(t, f.root, f.pki.RootKey, x509.Certificate{KeyUsage: x509.KeyUsageKeyEncipherment})
		}, "digitalSignature"},
		{"unknown critical extension", func(t *testing.T) []byte {
			return leaf(t, f.root, f.pki.RootKey, x509.Certificate{ExtraExtensions: []pkix.Extension{
				{Id: asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 99}, Critical: true, Value: []byte{5, 0}}}})
		}, "1.2.392.200149.8.5.5.99"},
		{"critical CA-only extension", func(t *testing.T) []byte {
			return leaf(t, f.root, f.pki.RootKey, x509.Certificate{ExtraExtensions: []pkix.Extension{
				ext(t, asn1.ObjectIdentifier{2, 5, 29, 54}, true, 0)}}) // inhibitAnyPolicy
		}, "2.5.29.54"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.Verify(context.Background(), tc.der(t))
			if r.Reason != verify.ReasonMalformed || !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("%s (%s), want malformed mentioning %q", r.Reason, r.Detail, tc.detail)
			}
			checkInvariants(t, r)
		})
	}

	// A critical extension the profile allows is fine.
	der := leaf(t, f.root, f.pki.RootKey, x509.Certificate{ExtraExtensions: []pkix.Extension{
		ext(t, asn1.ObjectIdentifier{2, 5, 29, 32}, true, []struct{ ID asn1.ObjectIdentifier }{{asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 1, 3, 30}}})}})
	check(t, f.verifier(t, func(o *verify.Options) { o.Revocation = nil }), der, verify.ReasonCRLUnavailable)
}

func TestStaleCRL(t *testing.T) {
	f := getFixture(t)
	// The generated CRL's nextUpdate is genesis+47h.
	nextUpdate := genesis.Add(47 * time.Hour)
	v := f.verifier(t, func(o *verify.Options) { o.Now = clock(nextUpdate.Add(time.Second)) })
	r := check(t, v, f.card(testpki.KindValid), verify.ReasonCRLStale)
	t.Log(r.Detail)
	// Still fresh at nextUpdate itself.
	v = f.verifier(t, func(o *verify.Options) { o.Now = clock(nextUpdate) })
	if r := check(t, v, f.card(testpki.KindValid), verify.ReasonOK); r.StaleGrace {
		t.Error("StaleGrace at nextUpdate")
	}
	// Revoked cards stay revoked only while a current CRL says so: a stale
	// CRL answers crl-stale, never ok.
	v = f.verifier(t, func(o *verify.Options) { o.Now = clock(genesis.AddDate(0, 1, 0)) })
	check(t, v, f.card(testpki.KindRevoked), verify.ReasonCRLStale)
}

// Options.Grace accepts a CRL up to Grace past its nextUpdate and says so.
func TestGrace(t *testing.T) {
	f := getFixture(t)
	nextUpdate := genesis.Add(47 * time.Hour)
	v := f.verifier(t, func(o *verify.Options) { o.Grace = time.Hour })
	for _, tc := range []struct {
		at    time.Time
		kind  string
		want  verify.Reason
		grace bool
	}{
		{nextUpdate, testpki.KindValid, verify.ReasonOK, false},
		{nextUpdate.Add(time.Second), testpki.KindValid, verify.ReasonOK, true},
		{nextUpdate.Add(time.Hour), testpki.KindValid, verify.ReasonOK, true},
		{nextUpdate.Add(time.Second), testpki.KindRevoked, verify.ReasonRevoked, true},
		{nextUpdate.Add(time.Hour + time.Second), testpki.KindValid, verify.ReasonCRLStale, false},
		{nextUpdate.Add(time.Hour + time.Second), testpki.KindRevoked, verify.ReasonCRLStale, false},
	} {
		r := v.VerifyAt(t.Context(), f.card(tc.kind), tc.at)
		if r.Reason != tc.want || r.StaleGrace != tc.grace {
			t.Errorf("%s at nextUpdate%+v: %s StaleGrace=%v (%s), want %s StaleGrace=%v",
				tc.kind, tc.at.Sub(nextUpdate), r.Reason, r.StaleGrace, r.Detail, tc.want, tc.grace)
		}
		if r.StaleGrace && r.OK() && !strings.Contains(r.Detail, "grace") {
			t.Errorf("Detail %q does not mention the grace period", r.Detail)
		}
		checkInvariants(t, r)
	}
	if _, err := verify.New(func() verify.Options { o := f.options(); o.Grace = -time.Second; return o }()); !errors.Is(err, verify.ErrOptions) {
		t.Errorf("negative Grace: %v", err)
	}
}

func TestNoCRL(t *testing.T) {
	f := getFixture(t)
	r := check(t, f.verifier(t, func(o *verify.Options) { o.Revocation = nil }), f.card(testpki.KindValid), verify.ReasonCRLUnavailable)
	t.Log(r.Detail)
}

func TestCertificateHold(t *testing.T) {
	f := getFixture(t)
	held := f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{
		revoke(t, f.card(testpki.KindValid), 6)}})
	v := f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, held) })
	r := check(t, v, f.card(testpki.KindValid), verify.ReasonRevoked)
	if !strings.Contains(r.Detail, "certificateHold") {
		t.Errorf("Detail %q lacks the reason", r.Detail)
	}
}

// Time is an input: VerifyAt judges at the time given, Verify at Now().
func TestVerifyAt(t *testing.T) {
	f := getFixture(t)
	boot := time.Unix(42, 0) // a board without RTC, just booted
	v := f.verifier(t, func(o *verify.Options) { o.Now = clock(boot) })

	// Nothing vouches for a 1970 clock here (firmware/trustclock does):
	// the anchor is not valid then.
	r := check(t, v, f.card(testpki.KindValid), verify.ReasonUntrusted)
	if !strings.Contains(r.Detail, "not at 1970-01-01T00:00:42Z") || !r.Time.Equal(boot) {
		t.Errorf("Time %v, Detail %q", r.Time, r.Detail)
	}
	for _, tc := range []struct {
		at   time.Time
		kind string
		want verify.Reason
	}{
		{genesis, testpki.KindValid, verify.ReasonOK},
		{genesis, testpki.KindRevoked, verify.ReasonRevoked},
		{genesis.Add(-2 * time.Hour), testpki.KindValid, verify.ReasonCRLUnavailable}, // before the CRL's thisUpdate
		{genesis.Add(48 * time.Hour), testpki.KindValid, verify.ReasonCRLStale},
	} {
		r := v.VerifyAt(t.Context(), f.card(tc.kind), tc.at)
		if r.Reason != tc.want || !r.Time.Equal(tc.at) {
			t.Errorf("%s at %v: %s (%s) at %v, want %s", tc.kind, tc.at, r.Reason, r.Detail, r.Time, tc.want)
		}
		checkInvariants(t, r)
	}
}

// CRLAge and CRLNumber describe the CRL that decided the leaf.
func TestCRLAge(t *testing.T) {
	f := getFixture(t)
	v := f.verifier(t, nil)
	thisUpdate := genesis.Add(-time.Hour) // the generated CRL's
	for _, at := range []time.Time{genesis, genesis.Add(30 * time.Hour)} {
		for _, kind := range []string{testpki.KindValid, testpki.KindRevoked} {
			r := v.VerifyAt(t.Context(), f.card(kind), at)
			if r.CRLAge != at.Sub(thisUpdate) || r.CRLNumber == nil || r.StaleGrace {
				t.Errorf("%s at %v: CRLAge %v, CRLNumber %v, StaleGrace %v; want age %v", kind, at, r.CRLAge, r.CRLNumber, r.StaleGrace, at.Sub(thisUpdate))
			}
		}
	}
	number := big.NewInt(4711)
	v = f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, f.rootCRL(t, x509.RevocationList{Number: number})) })
	if r := check(t, v, f.card(testpki.KindValid), verify.ReasonOK); r.CRLNumber.Cmp(number) != 0 {
		t.Errorf("CRLNumber %v, want %v", r.CRLNumber, number)
	}
	// No CRL decided: negative age, no number.
	r := check(t, f.verifier(t, func(o *verify.Options) { o.Revocation = nil }), f.card(testpki.KindValid), verify.ReasonCRLUnavailable)
	if r.CRLAge >= 0 || r.CRLNumber != nil {
		t.Errorf("CRLAge %v, CRLNumber %v without a CRL", r.CRLAge, r.CRLNumber)
	}
	r = check(t, v, f.card(testpki.KindExpired), verify.ReasonExpired)
	if r.CRLAge >= 0 {
		t.Errorf("CRLAge %v for an expired leaf", r.CRLAge)
	}
}

// The Source can change between verifications; each verification sees
// one snapshot and releases it.
func TestSourceSwap(t *testing.T) {
	f := getFixture(t)
	src := f.src(t, f.pki.CRL)
	v := f.verifier(t, func(o *verify.Options) { o.Revocation = src })
	valid, revoked := f.card(testpki.KindValid), f.card(testpki.KindRevoked)
	check(t, v, valid, verify.ReasonOK)
	check(t, v, revoked, verify.ReasonRevoked)

	newer := f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{revoke(t, valid, 1)}})
	src.swap([]*x509.Certificate{f.root}, newer)
	check(t, v, valid, verify.ReasonRevoked)
	check(t, v, revoked, verify.ReasonOK)

	// Emptying the set fails closed.
	src.swap(nil)
	check(t, v, valid, verify.ReasonCRLUnavailable)
	if taken, released := src.taken.Load(), src.released.Load(); taken != released || taken == 0 {
		t.Errorf("%d snapshots taken, %d released", taken, released)
	}
}

func TestConcurrentVerifyAndSwap(t *testing.T) {
	f := getFixture(t)
	src := f.src(t, f.pki.CRL)
	v := f.verifier(t, func(o *verify.Options) { o.Revocation = src })
	revoked := f.card(testpki.KindRevoked)
	// CRLs that alternately list and release the card.
	var crls [][]byte
	for i := range 16 {
		tmpl := x509.RevocationList{Number: big.NewInt(genesis.Unix() + 1 + int64(i))}
		if i%2 == 0 {
			tmpl.RevokedCertificateEntries = []x509.RevocationListEntry{revoke(t, revoked, 6)}
		}
		crls = append(crls, f.rootCRL(t, tmpl))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Every CRL set gives a definite answer, never a mixture.
				if r := v.Verify(context.Background(), revoked); r.Reason != verify.ReasonRevoked && r.Reason != verify.ReasonOK {
					t.Errorf("concurrent Verify: %s (%s)", r.Reason, r.Detail)
					return
				}
			}
		})
	}
	for _, c := range crls {
		src.swap([]*x509.Certificate{f.root}, c)
	}
	close(stop)
	wg.Wait()
	check(t, v, revoked, verify.ReasonOK) // the last CRL releases it
	if taken, released := src.taken.Load(), src.released.Load(); taken != released {
		t.Errorf("%d snapshots taken, %d released", taken, released)
	}
}

// A cancelled context fails closed.
func TestContextCancelled(t *testing.T) {
	f := getFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := f.verifier(t, nil).Verify(ctx, f.card(testpki.KindValid))
	if r.Reason != verify.ReasonCRLUnavailable || !strings.Contains(r.Detail, "canceled") {
		t.Errorf("%s (%s), want crl-unavailable", r.Reason, r.Detail)
	}
}

func TestNewErrors(t *testing.T) {
	f := getFixture(t)
	leafCert, err := x509.ParseCertificate(f.card(testpki.KindValid))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*verify.Options)
		want error
	}{
		{"no clock", func(o *verify.Options) { o.Now = nil }, verify.ErrOptions},
		{"no anchors", func(o *verify.Options) { o.Anchors = nil }, verify.ErrOptions},
		{"nil anchor", func(o *verify.Options) { o.Anchors = []*x509.Certificate{nil} }, verify.ErrBadAnchor},
		{"end-entity anchor", func(o *verify.Options) { o.Anchors = []*x509.Certificate{leafCert} }, verify.ErrBadAnchor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := f.options()
			tc.mod(&o)
			if _, err := verify.New(o); !errors.Is(err, tc.want) {
				t.Errorf("New: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestResultErr(t *testing.T) {
	f := getFixture(t)
	r := f.verifier(t, nil).Verify(context.Background(), f.card(testpki.KindRevoked))
	var e *verify.Error
	if err := r.Err(); !errors.As(err, &e) || e.Reason != verify.ReasonRevoked || !strings.HasPrefix(err.Error(), "verify: revoked: ") {
		t.Errorf("Err() = %v", err)
	}
}

func TestLoadAnchors(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemRoot := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.pki.Root})
	got, err := verify.LoadAnchors(
		write("root.der", f.pki.Root),
		write("both.pem", append(pemRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.pki.Cards[testpki.KindUnknownCA].CACert})...)),
		write("real.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: realRoot(t)[0].Raw})),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || !got[0].Equal(f.root) || !got[1].Equal(f.root) || !got[2].Equal(f.impostor) || !got[3].Equal(realRoot(t)[0]) {
		t.Errorf("loaded %d anchors", len(got))
	}
	for name, b := range map[string][]byte{
		"key.pem":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
		"empty.pem": []byte("-----BEGIN nothing"),
		"junk.der":  []byte{0x30, 0x03, 1, 2},
	} {
		if _, err := verify.LoadAnchors(write(name, b)); !errors.Is(err, verify.ErrBadAnchor) {
			t.Errorf("%s: %v, want ErrBadAnchor", name, err)
		}
	}
	if _, err := verify.LoadAnchors(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// x509 quotes certificate content in some parse errors; Detail must not.
func TestMalformedDetailRedacted(t *testing.T) {
	f := getFixture(t)
	der := leaf(t, f.root, f.pki.RootKey, x509.Certificate{ExtraExtensions: []pkix.Extension{
		ext(t, asn1.ObjectIdentifier{2, 5, 29, 17}, false, []asn1.RawValue{tagged(6, false, []byte("https://yamada.example/%zz"))})}})
	r := check(t, f.verifier(t, nil), der, verify.ReasonMalformed)
	if strings.Contains(r.Detail, "yamada") || !strings.Contains(r.Detail, "[redacted]") {
		t.Errorf("Detail %q", r.Detail)
	}
}
