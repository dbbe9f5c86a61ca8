package verify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// A signature certificate (digitalSignature + nonRepudiation) is never
// accepted as a user-authentication certificate, even under the right
// anchor, and an authentication certificate is not a signature
// certificate.
func TestPurpose(t *testing.T) {
	f := getFixture(t)
	signLike := leaf(t, f.root, f.pki.RootKey, x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment})
	auth := f.verifier(t, nil)
	r := check(t, auth, signLike, verify.ReasonWrongPurpose)
	if r.Chained() {
		t.Error("wrong-purpose leaf reported as chained: the check runs before the signature")
	}
	check(t, auth, f.card(testpki.KindValid), verify.ReasonOK)

	crlDER := f.rootCRL(t, x509.RevocationList{})
	sign := f.verifier(t, func(o *verify.Options) { o.Purpose = verify.PurposeSign; o.Revocation = f.src(t, crlDER) })
	check(t, sign, f.card(testpki.KindValid), verify.ReasonWrongPurpose)
	check(t, sign, signLike, verify.ReasonOK)

	if _, err := verify.New(verify.Options{Anchors: []*x509.Certificate{f.root}, Now: clock(genesis), AllowTest: true, Purpose: "both"}); err == nil {
		t.Error("unknown purpose accepted")
	}
}

// Chained tells a leaf whose signature verified under an anchor (whatever
// else failed) from one that only copies an anchor's names.
func TestChained(t *testing.T) {
	f := getFixture(t)
	v := f.verifier(t, nil)
	for kind, want := range map[string]bool{
		testpki.KindValid:     true,
		testpki.KindRevoked:   true,
		testpki.KindExpired:   true,
		testpki.KindUnknownCA: false,
	} {
		r := v.Verify(t.Context(), f.card(kind))
		if r.Chained() != want {
			t.Errorf("%s: Chained %v, want %v (%s)", kind, r.Chained(), want, r.Reason)
		}
	}
}

// The next-generation card (FY2028) is said to carry ECDSA P-384 keys
// (shared/docs/mynumbercard.md §2.5 [UNCERTAIN]): a P-384 leaf under a
// P-384 root, with ecdsa-with-SHA384, verifies end to end, CRL included.
func TestECDSAP384(t *testing.T) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := pkix.Name{Country: []string{"JP"}, Organization: []string{testpki.Organization}, OrganizationalUnit: []string{"JPKI for user authentication"}}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name,
		NotBefore: genesis.AddDate(-1, 0, 0), NotAfter: genesis.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
		SignatureAlgorithm: x509.ECDSAWithSHA384,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "p384-leaf"},
		NotBefore: genesis.AddDate(-1, 0, 0), NotAfter: genesis.AddDate(4, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, SignatureAlgorithm: x509.ECDSAWithSHA384,
	}, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	crlDER := crl(t, root, rootKey, x509.RevocationList{})
	src := newMemSource(t, []*x509.Certificate{root}, crlDER)
	v, err := verify.New(verify.Options{Anchors: []*x509.Certificate{root}, Revocation: src, Now: clock(genesis), AllowTest: true})
	if err != nil {
		t.Fatal(err)
	}
	r := check(t, v, leafDER, verify.ReasonOK)
	if _, ok := r.Leaf.PublicKey.(*ecdsa.PublicKey); !ok || r.Leaf.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("leaf key %T, algorithm %v", r.Leaf.PublicKey, r.Leaf.SignatureAlgorithm)
	}
	revoked := crl(t, root, rootKey, x509.RevocationList{Number: big.NewInt(genesis.Unix() + 2), RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(77), RevocationTime: genesis.Add(-time.Hour)}}})
	src.swap([]*x509.Certificate{root}, revoked)
	check(t, v, leafDER, verify.ReasonRevoked)
}

// The generated signature hierarchy: the sign certificate verifies under
// the sign root with its own CRL, and neither it nor its root helps in the
// authentication verifier.
func TestSignHierarchy(t *testing.T) {
	f := getFixture(t)
	signRoot, err := x509.ParseCertificate(f.pki.SignRoot)
	if err != nil {
		t.Fatal(err)
	}
	sign, err := verify.New(verify.Options{Anchors: []*x509.Certificate{signRoot}, Revocation: f.src(t, f.pki.SignCRL), Now: clock(genesis), AllowTest: true, Purpose: verify.PurposeSign})
	if err != nil {
		t.Fatal(err)
	}
	check(t, sign, f.pki.Cards[testpki.KindValid].SignCert, verify.ReasonOK)
	check(t, sign, f.pki.Cards[testpki.KindRevoked].SignCert, verify.ReasonRevoked)
	// An authentication certificate offered as a signature certificate.
	check(t, sign, f.card(testpki.KindValid), verify.ReasonWrongPurpose)

	// The authentication verifier with both roots as anchors still refuses
	// the sign certificate by key usage.
	both := f.verifier(t, func(o *verify.Options) { o.Anchors = append(o.Anchors, signRoot) })
	check(t, both, f.pki.Cards[testpki.KindValid].SignCert, verify.ReasonWrongPurpose)
	// And with only the auth root, a sign certificate does not chain at all.
	auth := f.verifier(t, nil)
	if r := auth.Verify(t.Context(), f.pki.Cards[testpki.KindValid].SignCert); r.OK() || r.Chained() {
		t.Errorf("sign certificate in the auth verifier: %s chained=%v", r.Reason, r.Chained())
	}
}
