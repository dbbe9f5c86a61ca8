package verify_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// genesis is when the shared test hierarchy was generated: its CRL is
// current from genesis-1h to genesis+47h.
var genesis = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

// fixture is one test hierarchy shared by every test, fuzz target and
// benchmark of the package (RSA key generation is the slow part).
type fixture struct {
	pki      *testpki.PKI
	root     *x509.Certificate
	impostor *x509.Certificate // the CA certificate the unknown-ca card carries
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func getFixture(tb testing.TB) *fixture {
	tb.Helper()
	fixOnce.Do(func() {
		var p *testpki.PKI
		if p, fixErr = testpki.Generate(genesis); fixErr != nil {
			return
		}
		f := &fixture{pki: p}
		if f.root, fixErr = x509.ParseCertificate(p.Root); fixErr != nil {
			return
		}
		f.impostor, fixErr = x509.ParseCertificate(p.Cards[testpki.KindUnknownCA].CACert)
		fix = f
	})
	if fixErr != nil {
		tb.Fatal(fixErr)
	}
	return fix
}

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// options returns test-mode options: the test root, a source holding the
// generated CRL and a clock at genesis.
func (f *fixture) options() verify.Options {
	return verify.Options{
		Anchors:    []*x509.Certificate{f.root},
		Revocation: f.src(nil, f.pki.CRL),
		Now:        clock(genesis),
		AllowTest:  true,
	}
}

// src is a test source holding ders, signed by the fixture's roots.
func (f *fixture) src(tb testing.TB, ders ...[]byte) *memSource {
	signRoot, err := x509.ParseCertificate(f.pki.SignRoot)
	if err != nil {
		panic(err)
	}
	return newMemSource(tb, []*x509.Certificate{f.root, f.impostor, signRoot}, ders...)
}

func (f *fixture) verifier(tb testing.TB, mod func(*verify.Options)) *verify.Verifier {
	tb.Helper()
	o := f.options()
	if mod != nil {
		mod(&o)
	}
	v, err := verify.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func (f *fixture) card(kind string) []byte { return f.pki.Cards[kind].Cert }

// check verifies der and fails unless the reason is want. It also checks
// the invariants every Result must keep.
func check(t *testing.T, v *verify.Verifier, der []byte, want verify.Reason) verify.Result {
	t.Helper()
	r := v.Verify(context.Background(), der)
	if r.Reason != want {
		t.Fatalf("Reason %q (%s), want %q", r.Reason, r.Detail, want)
	}
	checkInvariants(t, r)
	return r
}

func checkInvariants(t testing.TB, r verify.Result) {
	t.Helper()
	if r.Detail == "" {
		t.Errorf("%s: empty Detail", r.Reason)
	}
	if r.OK() != (r.Err() == nil) || (r.OK() && (r.Leaf == nil || r.Anchor == nil || len(r.Path) < 2)) {
		t.Errorf("%s: inconsistent result %+v", r.Reason, r)
	}
	if (r.Anchor != nil) != (r.Path != nil) || (r.Path != nil && (r.Path[0] != r.Leaf || r.Path[len(r.Path)-1] != r.Anchor)) {
		t.Errorf("%s: Path does not run from Leaf to Anchor", r.Reason)
	}
	if r.OK() && r.CRLAge < 0 {
		t.Errorf("ok without a deciding CRL age: %v", r.CRLAge)
	}
	// Without intermediates, a missing or stale CRL is the leaf's: no CRL
	// decided it.
	if (r.Reason == verify.ReasonCRLUnavailable || r.Reason == verify.ReasonCRLStale) && len(r.Path) <= 2 && r.CRLAge >= 0 {
		t.Errorf("%s with CRLAge %v", r.Reason, r.CRLAge)
	}
	if r.Leaf != nil {
		// No personal data: neither the subject nor the serial.
		for _, s := range []string{r.Leaf.Subject.CommonName, r.Leaf.SerialNumber.String(), fmt.Sprintf("%x", r.Leaf.SerialNumber), fmt.Sprintf("%X", r.Leaf.SerialNumber)} {
			if len(s) >= 6 && strings.Contains(r.Detail, s) {
				t.Errorf("Detail %q contains the certificate's %q", r.Detail, s)
			}
		}
	}
}

// crl fills the template's defaults (number 2, window around genesis),
// and signs it as issuer with key.
func crl(tb testing.TB, issuer *x509.Certificate, key crypto.Signer, tmpl x509.RevocationList) []byte {
	tb.Helper()
	if tmpl.Number == nil {
		tmpl.Number = big.NewInt(genesis.Unix() + 1)
	}
	if tmpl.ThisUpdate.IsZero() {
		tmpl.ThisUpdate = genesis.Add(-time.Hour)
	}
	if tmpl.NextUpdate.IsZero() {
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(48 * time.Hour)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &tmpl, issuer, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// rootCRL is a CRL signed by the genuine test root.
func (f *fixture) rootCRL(tb testing.TB, tmpl x509.RevocationList) []byte {
	tb.Helper()
	return crl(tb, f.root, f.pki.RootKey, tmpl)
}

// revoke lists the certificate der in a CRL entry with the given reason.
func revoke(tb testing.TB, der []byte, reason int) x509.RevocationListEntry {
	tb.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: genesis.Add(-2 * time.Hour), ReasonCode: reason}
}

// leaf issues a certificate from tmpl (defaults: valid around genesis,
// digitalSignature) for the valid card's key, signed as issuer with key.
func leaf(tb testing.TB, issuer *x509.Certificate, key crypto.Signer, tmpl x509.Certificate) []byte {
	tb.Helper()
	f := getFixture(tb)
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.Subject.CommonName == "" {
		tmpl.Subject.CommonName = "0123456789abcdef0123456789abcdef"
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = genesis.AddDate(-1, 0, 0)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = genesis.AddDate(4, 0, 0)
	}
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, issuer, f.pki.Cards[testpki.KindValid].Key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// ext builds an extension whose value is the DER of v.
func ext(tb testing.TB, oid asn1.ObjectIdentifier, critical bool, v any) pkix.Extension {
	tb.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return pkix.Extension{Id: oid, Critical: critical, Value: b}
}

// tagged wraps DER content in a context-specific tag.
func tagged(tag int, compound bool, content ...[]byte) asn1.RawValue {
	var b []byte
	for _, c := range content {
		b = append(b, c...)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: compound, Bytes: b}
}

func der(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seq is a DER SEQUENCE of the given elements.
func seq(tb testing.TB, elems ...[]byte) asn1.RawValue {
	var b []byte
	for _, e := range elems {
		b = append(b, e...)
	}
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: b}
}
