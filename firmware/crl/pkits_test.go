package crl

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NIST PKITS (2011 edition, via pyHanko's fixtures: testdata/pkits/SOURCE).

func loadPKITSCerts(t *testing.T) map[string]*x509.Certificate {
	t.Helper()
	files, err := filepath.Glob("../../testdata/pkits/certs/*.crt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no PKITS certs: %v", err)
	}
	certs := map[string]*x509.Certificate{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(b)
		if err != nil {
			continue // DSAParametersInheritedCACert: Go cannot parse inherited DSA parameters
		}
		certs[filepath.Base(f)] = c
	}
	return certs
}

func readPKITS(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/pkits/crls", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPKITSAll: every PKITS CRL parses, agrees with the stdlib, and its
// signature verifies against the certificate whose subject is its issuer
// (several certificates may share a name, e.g. key rollover: one must
// verify) — except the ones that are meant not to.
func TestPKITSAll(t *testing.T) {
	certs := loadPKITSCerts(t)
	files, _ := filepath.Glob("../../testdata/pkits/crls/*.crl")
	if len(files) != 173 {
		t.Fatalf("%d PKITS CRLs, want 173", len(files))
	}
	// CRLs whose issuer name has no byte-equal certificate subject: the
	// issuer key is found by authorityKeyIdentifier instead.
	noNameMatch := map[string]bool{
		"BadCRLIssuerNameCACRL.crl":                        true, // 4.4.5: issuer name differs from the CA
		"TwoCRLsCABadCRL.crl":                              true, // 4.4.7: issuer "Bad CRL for Two CRLs CA"
		"RolloverfromPrintableStringtoUTF8StringCACRL.crl": true, // same name, different string types
		"DSAParametersInheritedCACRL.crl":                  true, // the CA cert does not parse in Go
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".crl"), func(t *testing.T) {
			der := readPKITS(t, name)
			p, es, err := parseAll(t, der)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if p.Entries != int64(len(es)) {
				t.Fatalf("Entries %d, callbacks %d", p.Entries, len(es))
			}
			dsa := strings.HasPrefix(name, "DSA")
			if dsa {
				if p.SignatureAlgorithm != x509.DSAWithSHA1 {
					t.Errorf("algorithm %v", p.SignatureAlgorithm)
				}
			} else if p.SignatureAlgorithm != x509.SHA256WithRSA {
				t.Errorf("algorithm %v", p.SignatureAlgorithm)
			}
			if p.sigUnused == 0 {
				compareWithStdlib(t, der, p, es)
			}
			var results []error
			for _, c := range certs {
				if bytes.Equal(c.RawSubject, p.RawIssuer) {
					results = append(results, p.CheckSignatureFrom(c))
				}
			}
			if noNameMatch[name] {
				if len(results) != 0 {
					t.Fatalf("unexpected name match")
				}
				for _, c := range certs {
					if bytes.Equal(c.SubjectKeyId, p.AuthorityKeyID) {
						if err := p.CheckSignature(c.PublicKey); err != nil {
							t.Errorf("by AKI: %v", err)
						}
						results = append(results, nil)
					}
				}
				if len(results) == 0 && name != "DSAParametersInheritedCACRL.crl" {
					t.Errorf("no certificate with the AKI")
				}
				return
			}
			if len(results) == 0 {
				t.Fatalf("no certificate with the issuer name")
			}
			ok := false
			for _, err := range results {
				switch {
				case err == nil:
					ok = true
				case name == "BadCRLSignatureCACRL.crl":
					if !errors.Is(err, ErrBadSignature) {
						t.Errorf("bad signature: %v", err)
					}
				case dsa:
					if !errors.Is(err, ErrUnsupported) {
						t.Errorf("DSA: %v", err)
					}
				case errors.Is(err, ErrBadSignature), errors.Is(err, ErrNoCRLSign):
					// another certificate with the same name (old key, or a
					// certificate-signing-only CA certificate)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			wantOK := name != "BadCRLSignatureCACRL.crl" && !dsa &&
				!strings.HasPrefix(name, "keyUsageCriticalcRLSignFalse") && !strings.HasPrefix(name, "keyUsageNotCriticalcRLSignFalse")
			if ok != wantOK {
				t.Errorf("verified = %v, want %v (%v)", ok, wantOK, results)
			}
			if !wantOK && !dsa && name != "BadCRLSignatureCACRL.crl" {
				for _, err := range results {
					if !errors.Is(err, ErrNoCRLSign) {
						t.Errorf("cRLSign false: %v", err)
					}
				}
			}
		})
	}
}

func nameString(t *testing.T, der []byte) string {
	t.Helper()
	if der == nil {
		return ""
	}
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) != 0 {
		t.Fatalf("bad Name: %v", err)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}

// TestPKITSIndirect: certificateIssuer carries forward (RFC 5280 §5.3.3).
func TestPKITSIndirect(t *testing.T) {
	p, es, err := parseAll(t, readPKITS(t, "indirectCRLCA5CRL.crl"))
	if err != nil {
		t.Fatal(err)
	}
	ca6 := "CN=indirectCRL CA6,O=Test Certificates 2011,C=US"
	ca7 := "CN=indirectCRL CA7,O=Test Certificates 2011,C=US"
	ca5 := "OU=indirectCRL CA5,O=Test Certificates 2011,C=US"
	want := []string{"", ca6, ca6, ca6, ca7, ca7, ca7, ca6, ca6, ca5, ca5}
	if len(es) != len(want) || !p.HasCertificateIssuer || p.IDP == nil || !p.IDP.Indirect || len(p.IDP.FullName) != 3 {
		t.Fatalf("entries %d, info %+v, IDP %+v", len(es), p.Info, p.IDP)
	}
	for i, e := range es {
		if got := nameString(t, e.CertificateIssuer); got != want[i] || e.NonDirectory || e.Reason != ReasonKeyCompromise ||
			!bytes.Equal(e.Serial, []byte{byte(i + 1)}) {
			t.Errorf("entry %d: issuer %q serial %x reason %d, want issuer %q", i, got, e.Serial, e.Reason, want[i])
		}
	}
	// Entry 9's certificateIssuer is the CRL issuer's own name.
	if !bytes.Equal(es[9].CertificateIssuer, p.RawIssuer) {
		t.Errorf("entry 9 issuer is not byte-equal to the CRL issuer")
	}

	for _, c := range []struct {
		file     string
		indirect bool
		dp       string
	}{
		{"indirectCRLCA3CRL.crl", false, "CN=CRL1,OU=indirectCRL CA3,O=Test Certificates 2011,C=US"},
		{"indirectCRLCA3cRLIssuerCRL.crl", true, "CN=indirect CRL for indirectCRL CA3,OU=indirectCRL CA3 cRLIssuer,O=Test Certificates 2011,C=US"},
		{"indirectCRLCA4cRLIssuerCRL.crl", true, "CN=indirect CRL for indirectCRL CA4,OU=indirectCRL CA4 cRLIssuer,O=Test Certificates 2011,C=US"},
	} {
		p, es, err := parseAll(t, readPKITS(t, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if p.IDP == nil || p.IDP.Indirect != c.indirect || len(p.IDP.FullName) != 1 || p.IDP.FullName[0][0] != 0xa4 {
			t.Fatalf("%s: IDP %+v", c.file, p.IDP)
		}
		// fullName[0] is [4] { Name }
		var gn asn1.RawValue
		if _, err := asn1.Unmarshal(p.IDP.FullName[0], &gn); err != nil {
			t.Fatal(err)
		}
		if got := nameString(t, gn.Bytes); got != c.dp {
			t.Errorf("%s: distribution point %q", c.file, got)
		}
		if len(es) != 0 || p.HasCertificateIssuer {
			t.Errorf("%s: %d entries", c.file, len(es))
		}
	}
}

// TestPKITSDetails checks decoded fields the PKITS revocation tests rely on.
func TestPKITSDetails(t *testing.T) {
	get := func(name string) (*Parsed, []gotEntry) {
		p, es, err := parseAll(t, readPKITS(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return p, es
	}
	p, es := get("deltaCRLCA1deltaCRL.crl")
	if p.BaseNumber == nil || p.Number == nil || p.Number.Cmp(p.BaseNumber) <= 0 || len(es) != 4 ||
		es[1].Reason != ReasonRemoveFromCRL || es[3].Reason != ReasonRemoveFromCRL || es[0].Reason != ReasonKeyCompromise {
		t.Errorf("delta: base %v number %v entries %+v", p.BaseNumber, p.Number, es)
	}
	if p, _ := get("deltaCRLCA1CRL.crl"); p.BaseNumber != nil {
		t.Errorf("deltaCRLCA1CRL is not a delta")
	}
	if p, _ := get("deltaCRLIndicatorNoBaseCACRL.crl"); p.BaseNumber == nil {
		t.Errorf("deltaCRLIndicatorNoBase: no BaseNumber")
	}
	if p, _ := get("UnknownCRLExtensionCACRL.crl"); len(p.UnknownCritical) != 1 ||
		!p.UnknownCritical[0].Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 2, 1, 12, 2}) {
		t.Errorf("UnknownCritical = %v", p.UnknownCritical)
	}
	if p, es := get("UnknownCRLEntryExtensionCACRL.crl"); p.EntryUnknownCritical != 1 || !es[0].UnknownCritical || len(p.UnknownCritical) != 0 {
		t.Errorf("EntryUnknownCritical = %d", p.EntryUnknownCritical)
	}
	if _, es := get("NegativeSerialNumberCACRL.crl"); len(es) != 1 || !es[0].Negative || !bytes.Equal(es[0].Serial, []byte{1}) {
		t.Errorf("negative serial: %+v", es)
	}
	if _, es := get("LongSerialNumberCACRL.crl"); len(es) != 1 || len(es[0].Serial) != 20 || es[0].Serial[0] != 0x7f {
		t.Errorf("long serial: %+v", es)
	}
	if p, _ := get("onlySomeReasonsCA1compromiseCRL.crl"); p.IDP == nil || p.IDP.OnlySomeReasons != 1<<ReasonKeyCompromise|1<<ReasonCACompromise {
		t.Errorf("onlySomeReasons compromise: %+v", p.IDP)
	}
	if p, _ := get("onlySomeReasonsCA1otherreasonsCRL.crl"); p.IDP == nil || p.IDP.OnlySomeReasons&(1<<ReasonKeyCompromise|1<<ReasonCACompromise) != 0 || p.IDP.OnlySomeReasons == 0 {
		t.Errorf("onlySomeReasons other: %+v", p.IDP)
	}
	if p, _ := get("onlyContainsUserCertsCACRL.crl"); p.IDP == nil || !p.IDP.OnlyUser || p.IDP.OnlyCA || p.IDP.OnlyAttr {
		t.Errorf("onlyContainsUserCerts: %+v", p.IDP)
	}
	if p, _ := get("onlyContainsCACertsCACRL.crl"); p.IDP == nil || !p.IDP.OnlyCA {
		t.Errorf("onlyContainsCACerts: %+v", p.IDP)
	}
	if p, _ := get("onlyContainsAttributeCertsCACRL.crl"); p.IDP == nil || !p.IDP.OnlyAttr {
		t.Errorf("onlyContainsAttributeCerts: %+v", p.IDP)
	}
	if p, _ := get("distributionPoint2CACRL.crl"); p.IDP == nil || p.IDP.RelativeName == nil || p.IDP.RelativeName[0] != 0x31 || p.IDP.FullName != nil {
		t.Errorf("nameRelativeToCRLIssuer: %+v", p.IDP)
	}
	if p, _ := get("GeneralizedTimeCRLnextUpdateCACRL.crl"); !p.NextUpdate.Equal(time.Date(2050, 1, 1, 12, 1, 0, 0, time.UTC)) {
		t.Errorf("GeneralizedTime nextUpdate %v", p.NextUpdate)
	}
	if p, _ := get("pre2000CRLnextUpdateCACRL.crl"); !p.NextUpdate.Equal(time.Date(1999, 1, 1, 12, 1, 0, 0, time.UTC)) {
		t.Errorf("pre-2000 nextUpdate %v", p.NextUpdate)
	}
	if p, _ := get("GoodCACRL.crl"); p.Number == nil || p.Number.Cmp(big.NewInt(1)) != 0 || len(p.AuthorityKeyID) != 20 || p.Version != 2 {
		t.Errorf("GoodCACRL: %+v", p.Info)
	}
}
