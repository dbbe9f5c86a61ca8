package testpki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/provisioning/trust"
)

var now = time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC)

var (
	genOnce sync.Once
	genPKI  *PKI
	genErr  error
)

// generated returns one hierarchy shared by the package's tests.
func generated(t *testing.T) *PKI {
	t.Helper()
	genOnce.Do(func() { genPKI, genErr = Generate(now) })
	if genErr != nil {
		t.Fatal(genErr)
	}
	return genPKI
}

func parse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchmarkGenerate measures a whole test PKI (its RSA keys dominate); a
// benchmark, not a timed test, because the time depends on the machine.
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		if _, err := Generate(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestKinds(t *testing.T) {
	want := []string{"valid", "revoked", "expired", "unknown-ca", "clone"}
	if got := Kinds(); !slices.Equal(got, want) {
		t.Fatalf("Kinds() = %q, want %q", got, want)
	}
	p := generated(t)
	if len(p.Cards) != len(want) {
		t.Fatalf("%d cards, want %d", len(p.Cards), len(want))
	}
	for _, k := range want {
		c := p.Cards[k]
		if c.Kind != k || c.Token != "JPKIAPICCTOKEN2" || c.Key == nil || c.SignKey == nil {
			t.Errorf("card %q: Kind %q Token %q keys %v %v", k, c.Kind, c.Token, c.Key != nil, c.SignKey != nil)
		}
	}
}

func TestRootProfile(t *testing.T) {
	p := generated(t)
	root := parse(t, p.Root)
	wantDN := "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for user authentication,O=JPKI-TEST,C=JP"
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(root.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	if got := rdns.String(); got != wantDN {
		t.Errorf("subject %q, want %q", got, wantDN)
	}
	if !bytes.Equal(root.RawSubject, root.RawIssuer) {
		t.Error("root is not self-issued")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if root.SignatureAlgorithm != x509.SHA256WithRSA || root.PublicKey.(interface{ Size() int }).Size() != 256 {
		t.Errorf("root algorithm %v", root.SignatureAlgorithm)
	}
	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("root CA %v, key usage %b", root.IsCA, root.KeyUsage)
	}
	if len(root.SubjectKeyId) == 0 {
		t.Error("root has no subject key identifier")
	}
	critical := map[string]bool{}
	for _, e := range root.Extensions {
		critical[e.Id.String()] = e.Critical
	}
	if !critical["2.5.29.15"] || !critical["2.5.29.19"] {
		t.Errorf("keyUsage/basicConstraints not critical: %v", critical)
	}
	if p.RootKey == nil || !p.RootKey.PublicKey.Equal(root.PublicKey) {
		t.Error("RootKey does not match Root")
	}
}

// The test root's name is encoded like the real root's: same structure, only
// O differs.
func TestRootNameMirrorsRealRoot(t *testing.T) {
	real, err := trust.Load(trust.JPKIAuth2023)
	if err != nil {
		t.Fatal(err)
	}
	root := parse(t, generated(t).Root)
	var gotRDN, realRDN pkix.RDNSequence
	if _, err := asn1.Unmarshal(root.RawSubject, &gotRDN); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(real.RawSubject, &realRDN); err != nil {
		t.Fatal(err)
	}
	if len(gotRDN) != len(realRDN) {
		t.Fatalf("%d RDNs, real root has %d", len(gotRDN), len(realRDN))
	}
	for i := range gotRDN {
		g, r := gotRDN[i][0], realRDN[i][0]
		if !g.Type.Equal(r.Type) || len(gotRDN[i]) != 1 {
			t.Errorf("RDN %d: type %v, real %v", i, g.Type, r.Type)
		}
		if g.Value != r.Value && !(g.Value == "JPKI-TEST" && r.Value == "JPKI") {
			t.Errorf("RDN %d: %q, real %q", i, g.Value, r.Value)
		}
	}
	// String types: the DER bytes of each attribute must have the same tags.
	if a, b := tags(t, root.RawSubject), tags(t, real.RawSubject); !slices.Equal(a, b) {
		t.Errorf("string tags %v, real root %v", a, b)
	}
}

func tags(t *testing.T, name []byte) []int {
	t.Helper()
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(name, &seq); err != nil {
		t.Fatal(err)
	}
	var out []int
	for rest := seq.Bytes; len(rest) > 0; {
		var set, atv, oid, val asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &set); err != nil {
			t.Fatal(err)
		}
		if _, err = asn1.Unmarshal(set.Bytes, &atv); err != nil {
			t.Fatal(err)
		}
		r, err := asn1.Unmarshal(atv.Bytes, &oid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err = asn1.Unmarshal(r, &val); err != nil {
			t.Fatal(err)
		}
		out = append(out, val.Tag)
	}
	return out
}

func TestCardProfiles(t *testing.T) {
	p := generated(t)
	root := parse(t, p.Root)
	serials := map[string]bool{}
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			c := p.Cards[kind]
			leaf := parse(t, c.Cert)
			ca := parse(t, c.CACert)
			if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("CA %v key usage %b", leaf.IsCA, leaf.KeyUsage)
			}
			if got := c.Key.PublicKey.Equal(leaf.PublicKey); got != (kind != KindClone) {
				t.Errorf("key matches the certificate: %v (only the clone's must not)", got)
			}
			if len(leaf.Subject.Names) != 1 || len(leaf.Subject.CommonName) != 32 {
				t.Errorf("subject %v: want a single opaque CN", leaf.Subject)
			}
			if !bytes.Equal(leaf.RawIssuer, root.RawSubject) {
				t.Error("issuer name differs from the root's subject")
			}
			if !bytes.Equal(leaf.AuthorityKeyId, root.SubjectKeyId) {
				t.Error("AKI differs from the root's SKI")
			}
			if s := leaf.SerialNumber; s.Sign() <= 0 || len(s.Bytes()) > 20 {
				t.Errorf("serial %x out of range", s)
			}
			if serials[leaf.SerialNumber.String()] != (kind == KindClone) {
				t.Error("duplicate serial, or the clone's is not the valid card's")
			}
			serials[leaf.SerialNumber.String()] = true
			if err := leaf.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not signed by the CA it carries: %v", err)
			}

			wantSigned := kind != KindUnknownCA
			if err := leaf.CheckSignatureFrom(root); (err == nil) != wantSigned {
				t.Errorf("signed by the genuine root: %v, want %v", err == nil, wantSigned)
			}
			switch kind {
			case KindValid, KindRevoked, KindUnknownCA, KindClone:
				if !leaf.NotBefore.Equal(now.AddDate(0, 0, -365)) || !leaf.NotAfter.Equal(now.AddDate(0, 0, 4*365)) {
					t.Errorf("validity %v..%v", leaf.NotBefore, leaf.NotAfter)
				}
			case KindExpired:
				if !leaf.NotAfter.Equal(now.AddDate(0, 0, -30)) {
					t.Errorf("notAfter %v, want now-30d", leaf.NotAfter)
				}
			}
			if kind == KindUnknownCA {
				if bytes.Equal(c.CACert, p.Root) {
					t.Fatal("impostor CA is the genuine root")
				}
				if !bytes.Equal(ca.RawSubject, root.RawSubject) || !bytes.Equal(ca.SubjectKeyId, root.SubjectKeyId) {
					t.Error("impostor must copy the genuine root's name and key identifier")
				}
			} else if !bytes.Equal(c.CACert, p.Root) {
				t.Error("card carries a CA other than the root")
			}
		})
	}
}

func TestCRL(t *testing.T) {
	p := generated(t)
	root := parse(t, p.Root)
	crl, err := x509.ParseRevocationList(p.CRL)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(crl.RawIssuer, root.RawSubject) || !bytes.Equal(crl.AuthorityKeyId, root.SubjectKeyId) {
		t.Error("CRL issuer/AKI does not name the root")
	}
	if !crl.ThisUpdate.Equal(now.Add(-time.Hour)) || !crl.NextUpdate.Equal(now.Add(47*time.Hour)) {
		t.Errorf("CRL window %v..%v", crl.ThisUpdate, crl.NextUpdate)
	}
	if crl.Number == nil || crl.Number.Int64() != now.Unix() {
		t.Errorf("CRL number %v", crl.Number)
	}
	revoked := parse(t, p.Cards[KindRevoked].Cert)
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("%d CRL entries, want 1", len(crl.RevokedCertificateEntries))
	}
	e := crl.RevokedCertificateEntries[0]
	if e.SerialNumber.Cmp(revoked.SerialNumber) != 0 || e.ReasonCode != 1 {
		t.Errorf("entry serial %x reason %d, want %x reason 1", e.SerialNumber, e.ReasonCode, revoked.SerialNumber)
	}
}
