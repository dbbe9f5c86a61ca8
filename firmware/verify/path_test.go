package verify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
)

// testCA is a CA of a small ECDSA hierarchy for path tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// serials numbers the path tests' certificates.
var serials serialCounter

type serialCounter struct{ n atomic.Int64 }

func (s *serialCounter) next() *big.Int { return big.NewInt(1000 + s.n.Add(1)) }

func ski(pub *ecdsa.PublicKey) []byte {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return sum[:20]
}

func caName(cn string) pkix.Name {
	return pkix.Name{Country: []string{"JP"}, Organization: []string{"Kazashi Path Test"}, CommonName: cn}
}

// newTestCA issues a CA certificate named cn from parent (self-signed when
// nil), after mod changes the template.
func newTestCA(tb testing.TB, cn string, parent *testCA, mod func(*x509.Certificate)) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serials.next(), Subject: caName(cn),
		NotBefore: genesis.AddDate(-1, 0, 0), NotAfter: genesis.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
		SubjectKeyId: ski(&key.PublicKey),
	}
	if mod != nil {
		mod(tmpl)
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

// issue returns a DER end-entity certificate issued by ca.
func (ca *testCA) issue(tb testing.TB, mod func(*x509.Certificate)) []byte {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serials.next(), Subject: pkix.Name{CommonName: "0123456789abcdef-leaf"},
		NotBefore: genesis.AddDate(-1, 0, 0), NotAfter: genesis.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// crl is a CRL of ca listing the given certificates (keyCompromise).
func (ca *testCA) crl(tb testing.TB, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: genesis.Add(-2 * time.Hour), ReasonCode: 1})
	}
	return crl(tb, ca.cert, ca.key, x509.RevocationList{RevokedCertificateEntries: entries})
}

func certsOf(cas ...*testCA) []*x509.Certificate {
	var out []*x509.Certificate
	for _, ca := range cas {
		out = append(out, ca.cert)
	}
	return out
}

// pathVerifier verifies under root through inters, with the CRLs ders.
func pathVerifier(tb testing.TB, purpose verify.Purpose, root *testCA, inters []*testCA, ders ...[]byte) *verify.Verifier {
	tb.Helper()
	v, err := verify.New(verify.Options{
		Anchors:       []*x509.Certificate{root.cert},
		Intermediates: certsOf(inters...),
		Revocation:    newMemSource(tb, certsOf(append([]*testCA{root}, inters...)...), ders...),
		Now:           clock(genesis),
		Purpose:       purpose,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestThreeLevelPath(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	inter := newTestCA(t, "Intermediate", root, nil)
	leafDER := inter.issue(t, nil)
	for _, purpose := range []verify.Purpose{verify.PurposeAuth, verify.PurposeAny} {
		v := pathVerifier(t, purpose, root, []*testCA{inter}, root.crl(t), inter.crl(t))
		r := check(t, v, leafDER, verify.ReasonOK)
		if len(r.Path) != 3 || r.Path[1] != inter.cert || r.Anchor != root.cert {
			t.Errorf("%s: path of %d certificates", purpose, len(r.Path))
		}
		if r.CRLAge != time.Hour {
			t.Errorf("CRLAge %v, want the intermediate CRL's 1h", r.CRLAge)
		}
	}
	// Each CA of the path needs its CRL.
	r := check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{inter}, inter.crl(t)), leafDER, verify.ReasonCRLUnavailable)
	if !strings.Contains(r.Detail, "intermediate ") {
		t.Errorf("Detail %q does not blame the intermediate", r.Detail)
	}
	r = check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{inter}, root.crl(t)), leafDER, verify.ReasonCRLUnavailable)
	if !strings.HasPrefix(r.Detail, "certificate: ") {
		t.Errorf("Detail %q does not blame the leaf", r.Detail)
	}
	// Without the intermediate there is no path.
	r = check(t, pathVerifier(t, verify.PurposeAny, root, nil, root.crl(t), inter.crl(t)), leafDER, verify.ReasonUntrusted)
	if r.Chained() {
		t.Error("chained without the intermediate")
	}

	// Four levels.
	sub := newTestCA(t, "Sub", inter, nil)
	r = check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{sub, inter}, root.crl(t), inter.crl(t), sub.crl(t)), sub.issue(t, nil), verify.ReasonOK)
	if len(r.Path) != 4 {
		t.Errorf("path of %d certificates, want 4", len(r.Path))
	}
}

func TestIntermediateChecks(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	for _, tc := range []struct {
		name   string
		mod    func(*x509.Certificate)
		detail string
	}{
		{"expired", func(c *x509.Certificate) { c.NotAfter = genesis.Add(-time.Hour) }, "not at"},
		{"not yet valid", func(c *x509.Certificate) { c.NotBefore = genesis.Add(time.Hour) }, "not at"},
		{"not a CA", func(c *x509.Certificate) { c.IsCA = false }, "not a CA"},
		{"no keyCertSign", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign }, "keyCertSign"},
		{"unknown critical extension", func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{{Id: oidPrivate, Critical: true, Value: nullDER}}
		}, "not understood"},
		{"name constraints", func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"example.jp"} }, "nameConstraints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inter := newTestCA(t, "Intermediate", root, tc.mod)
			v := pathVerifier(t, verify.PurposeAny, root, []*testCA{inter}, root.crl(t), inter.crl(t))
			r := check(t, v, inter.issue(t, nil), verify.ReasonUntrusted)
			if !strings.Contains(r.Detail, tc.detail) || !r.Chained() {
				t.Errorf("Detail %q (want %q), chained %v", r.Detail, tc.detail, r.Chained())
			}
		})
	}
}

func TestRevokedIntermediate(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	inter := newTestCA(t, "Intermediate", root, nil)
	v := pathVerifier(t, verify.PurposeAny, root, []*testCA{inter}, root.crl(t, inter.cert), inter.crl(t))
	r := check(t, v, inter.issue(t, nil), verify.ReasonRevoked)
	if !strings.Contains(r.Detail, "intermediate ") || r.CRLAge >= 0 {
		t.Errorf("Detail %q, CRLAge %v", r.Detail, r.CRLAge)
	}
	// The revoked intermediate wins over a missing CRL for the leaf.
	v = pathVerifier(t, verify.PurposeAny, root, []*testCA{inter}, root.crl(t, inter.cert))
	check(t, v, inter.issue(t, nil), verify.ReasonRevoked)
}

func TestPathLenConstraint(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	zero := func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = 0, true }
	a := newTestCA(t, "A", root, zero)
	b := newTestCA(t, "B", a, nil)
	v := pathVerifier(t, verify.PurposeAny, root, []*testCA{a, b}, root.crl(t), a.crl(t), b.crl(t))
	r := check(t, v, b.issue(t, nil), verify.ReasonUntrusted)
	if !strings.Contains(r.Detail, "pathLenConstraint") {
		t.Errorf("Detail %q", r.Detail)
	}
	check(t, v, a.issue(t, nil), verify.ReasonOK)

	// A self-issued certificate (key rollover: A's name, a new key) does
	// not count (RFC 5280 §6.1.4 (l)).
	rolled := newTestCA(t, "A", a, nil)
	v = pathVerifier(t, verify.PurposeAny, root, []*testCA{a, rolled}, root.crl(t), a.crl(t), rolled.crl(t))
	r = check(t, v, rolled.issue(t, nil), verify.ReasonOK)
	if len(r.Path) != 4 {
		t.Errorf("path of %d certificates, want 4", len(r.Path))
	}

	// The anchor's own constraint applies too.
	tight := newTestCA(t, "Tight Root", nil, zero)
	c := newTestCA(t, "C", tight, nil)
	check(t, pathVerifier(t, verify.PurposeAny, tight, []*testCA{c}, tight.crl(t), c.crl(t)), c.issue(t, nil), verify.ReasonUntrusted)
}

// Of several candidate paths, one that passes wins: two certificates of
// one intermediate key, the first offered expired.
func TestCandidatePaths(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	old := newTestCA(t, "Intermediate", root, func(c *x509.Certificate) { c.NotAfter = genesis.Add(-time.Hour) })
	renewed := &testCA{key: old.key}
	tmpl := *old.cert
	tmpl.SerialNumber, tmpl.NotAfter = serials.next(), genesis.AddDate(1, 0, 0)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, root.cert, &old.key.PublicKey, root.key)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	leafDER := old.issue(t, nil)
	v := pathVerifier(t, verify.PurposeAny, root, []*testCA{old, renewed}, root.crl(t), old.crl(t))
	if r := check(t, v, leafDER, verify.ReasonOK); r.Path[1] != renewed.cert {
		t.Error("path not through the renewed certificate")
	}
	// Only the expired one: untrusted.
	check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{old}, root.crl(t), old.crl(t)), leafDER, verify.ReasonUntrusted)
}

// Intermediates certifying each other, neither reaching the anchor, end
// the search.
func TestPathLoop(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	x := newTestCA(t, "X", nil, nil)
	y := newTestCA(t, "Y", x, nil)
	xByY := &testCA{key: x.key} // X's key certified by Y
	tmpl := *x.cert
	tmpl.SerialNumber = serials.next()
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, y.cert, &x.key.PublicKey, y.key)
	if err != nil {
		t.Fatal(err)
	}
	if xByY.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	v := pathVerifier(t, verify.PurposeAny, root, []*testCA{y, xByY})
	r := check(t, v, y.issue(t, nil), verify.ReasonUntrusted)
	if !strings.Contains(r.Detail, "no path") {
		t.Errorf("Detail %q", r.Detail)
	}
}

// A CA that signs CRLs with a separate key (RFC 5280 §6.3.3 (f)): the CRL
// signer needs its own valid, unrevoked path to the same anchor.
func TestSeparateCRLSigner(t *testing.T) {
	root := newTestCA(t, "Root", nil, nil)
	inter := newTestCA(t, "Intermediate", root, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign })
	signer := newTestCA(t, "Intermediate", root, func(c *x509.Certificate) {
		c.KeyUsage, c.IsCA, c.BasicConstraintsValid = x509.KeyUsageCRLSign, false, false
	})
	leafDER := inter.issue(t, nil)
	leafCRL := crl(t, signer.cert, signer.key, x509.RevocationList{})
	r := check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{inter, signer}, root.crl(t), leafCRL), leafDER, verify.ReasonOK)
	if len(r.Path) != 3 {
		t.Errorf("path of %d certificates", len(r.Path))
	}
	// The signer revoked: its CRL does not count.
	r = check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{inter, signer}, root.crl(t, signer.cert), leafCRL), leafDER, verify.ReasonCRLUnavailable)
	if !strings.Contains(r.Detail, "signer") {
		t.Errorf("Detail %q", r.Detail)
	}
	// A CRL signed by the intermediate's own key, which lacks cRLSign.
	withCRLSign := *inter.cert // only to get past x509.CreateRevocationList's check
	withCRLSign.KeyUsage |= x509.KeyUsageCRLSign
	ownCRL := crl(t, &withCRLSign, inter.key, x509.RevocationList{})
	r = check(t, pathVerifier(t, verify.PurposeAny, root, []*testCA{inter}, root.crl(t), ownCRL), leafDER, verify.ReasonCRLUnavailable)
	if !strings.Contains(r.Detail, "cRLSign") {
		t.Errorf("Detail %q", r.Detail)
	}
	// A signer under another anchor does not count.
	other := newTestCA(t, "Root", nil, nil)
	stranger := newTestCA(t, "Intermediate", other, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign })
	strangerCRL := crl(t, stranger.cert, stranger.key, x509.RevocationList{})
	v, err := verify.New(verify.Options{
		Anchors: []*x509.Certificate{root.cert, other.cert}, Intermediates: certsOf(inter, stranger),
		Revocation: newMemSource(t, certsOf(root, other, stranger), root.crl(t), other.crl(t), strangerCRL),
		Now:        clock(genesis), Purpose: verify.PurposeAny,
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, v, leafDER, verify.ReasonCRLUnavailable)
}

func TestNewIntermediateErrors(t *testing.T) {
	f := getFixture(t)
	o := f.options()
	o.Intermediates = []*x509.Certificate{nil}
	if _, err := verify.New(o); !errors.Is(err, verify.ErrOptions) {
		t.Errorf("nil intermediate: %v", err)
	}
	o = f.options()
	o.Purpose = verify.PurposeAny
	o.AllowTest = false // not consulted for PurposeAny
	if _, err := verify.New(o); err != nil {
		t.Errorf("PurposeAny with a JPKI-TEST anchor: %v", err)
	}
}

// PurposeAny skips the JPKI profile: a CA certificate or one without
// digitalSignature verifies; an unknown critical extension still fails.
func TestPurposeAny(t *testing.T) {
	f := getFixture(t)
	v := f.verifier(t, func(o *verify.Options) { o.Purpose, o.AllowTest = verify.PurposeAny, false })
	check(t, v, f.card("valid"), verify.ReasonOK) // no test-card rule
	noDS := leaf(t, f.root, f.pki.RootKey, x509.Certificate{KeyUsage: x509.KeyUsageKeyEncipherment})
	check(t, v, noDS, verify.ReasonOK)
	signLike := leaf(t, f.root, f.pki.RootKey, x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment})
	check(t, v, signLike, verify.ReasonOK)
	crit := leaf(t, f.root, f.pki.RootKey, x509.Certificate{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 2}, Critical: true, Value: nullDER}}})
	check(t, v, crit, verify.ReasonMalformed)
}
