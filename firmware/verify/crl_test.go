package verify_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

var (
	oidIDP          = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidPrivate      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	uriGeneralName  = tagged(6, false, []byte("ldap://example.invalid/cn=crl"))
	nullDER         = []byte{5, 0}
	reasonsBitsDER  = []byte{0x06, 0x40} // ReasonFlags {keyCompromise} as BIT STRING contents
	booleanTrueDER  = []byte{0xFF}
	booleanFalseDER = []byte{0x00}
)

// idp builds an issuingDistributionPoint extension from its fields.
func idp(t testing.TB, critical bool, fields ...asn1.RawValue) pkix.Extension {
	var elems [][]byte
	for _, f := range fields {
		elems = append(elems, der(t, f))
	}
	return ext(t, oidIDP, critical, seq(t, elems...))
}

// fullName is distributionPoint [0] { fullName [0] { names... } }.
func fullName(t testing.TB, names ...asn1.RawValue) asn1.RawValue {
	var b [][]byte
	for _, n := range names {
		b = append(b, der(t, n))
	}
	return tagged(0, true, der(t, tagged(0, true, b...)))
}

func dirName(t testing.TB, name []byte) asn1.RawValue { return tagged(4, true, name) }

// editCRL rewrites the elements of a CRL's tbsCertList and signs the
// result with the test root's key (SHA-256, PKCS #1 v1.5), for CRLs that
// x509.CreateRevocationList refuses to produce.
func editCRL(t *testing.T, crlDER []byte, edit func(tbs []asn1.RawValue) []asn1.RawValue) []byte {
	t.Helper()
	f := getFixture(t)
	var outer struct {
		TBS    asn1.RawValue
		Algo   asn1.RawValue
		Signed asn1.BitString
	}
	if _, err := asn1.Unmarshal(crlDER, &outer); err != nil {
		t.Fatal(err)
	}
	var elems []asn1.RawValue
	for in := outer.TBS.Bytes; len(in) > 0; {
		var e asn1.RawValue
		var err error
		if in, err = asn1.Unmarshal(in, &e); err != nil {
			t.Fatal(err)
		}
		elems = append(elems, e)
	}
	var tbs [][]byte
	for _, e := range edit(elems) {
		tbs = append(tbs, e.FullBytes)
	}
	tbsDER := der(t, seq(t, tbs...))
	digest := sha256.Sum256(tbsDER)
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.pki.RootKey, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return der(t, seq(t, tbsDER, outer.Algo.FullBytes, der(t, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)})))
}

// tbsCertList element positions in the generated CRL: version, signature,
// issuer, thisUpdate, nextUpdate, revokedCertificates, crlExtensions.
const tbsThisUpdate, tbsNextUpdate = 3, 4

// CRLs the verifier must not rely on, whether the store refused them
// (signature, issuer) or handed them over (the verifier checks anyway):
// every card answers crl-unavailable, never ok or revoked.
func TestCRLUnusable(t *testing.T) {
	f := getFixture(t)
	cardKey := f.pki.Cards[testpki.KindValid].Key

	// A CRL carrying the root's name and key identifier, signed by another key.
	wrongKey := *f.root
	wrongKey.PublicKey = cardKey.Public()
	// A CRL signed by the root's key under another name.
	otherName := *f.root
	otherName.RawSubject = der(t, pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI-TEST"}}.ToRDNSequence())

	generated := f.pki.CRL
	revokedEntry := []x509.RevocationListEntry{revoke(t, f.card(testpki.KindRevoked), 1)}
	for _, tc := range []struct {
		name string
		crl  func(t *testing.T) []byte
		why  string // in the Detail
	}{
		{"signed by the wrong key", func(t *testing.T) []byte {
			return crl(t, &wrongKey, cardKey, x509.RevocationList{RevokedCertificateEntries: revokedEntry})
		}, "no CRL"},
		{"issuer name of no anchor", func(t *testing.T) []byte {
			return crl(t, &otherName, f.pki.RootKey, x509.RevocationList{RevokedCertificateEntries: revokedEntry})
		}, "no CRL"},
		{"no nextUpdate", func(t *testing.T) []byte {
			return editCRL(t, generated, func(tbs []asn1.RawValue) []asn1.RawValue { return slices.Delete(tbs, tbsNextUpdate, tbsNextUpdate+1) })
		}, "nextUpdate"},
		{"unknown critical extension", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: revokedEntry, ExtraExtensions: []pkix.Extension{{Id: oidPrivate, Critical: true, Value: nullDER}}})
		}, "1.3.6.1.4.1.99999.1"},
		{"critical entry extension", func(t *testing.T) []byte {
			e := revoke(t, f.card(testpki.KindRevoked), 1)
			e.ExtraExtensions = []pkix.Extension{{Id: oidPrivate, Critical: true, Value: nullDER}}
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{e}})
		}, "critical extension"},
		{"delta CRL without its base", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: revokedEntry, ExtraExtensions: []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 27}, true, big.NewInt(1))}})
		}, "no CRL"},
		{"IDP onlyContainsCACerts", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: revokedEntry, ExtraExtensions: []pkix.Extension{idp(t, true, tagged(2, false, booleanTrueDER))}})
		}, "CA certificates only"},
		{"IDP onlyContainsAttributeCerts", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: revokedEntry, ExtraExtensions: []pkix.Extension{idp(t, true, tagged(5, false, booleanTrueDER))}})
		}, "attribute certificates"},
		{"IDP naming another distribution point", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: revokedEntry, ExtraExtensions: []pkix.Extension{idp(t, true, fullName(t, uriGeneralName))}})
		}, "another distribution point"},
		{"IDP nameRelativeToCRLIssuer naming another distribution point", func(t *testing.T) []byte {
			rdn := der(t, // SEQUENCE { SET { AttributeTypeAndValue } }; [1] replaces the SET
				pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "CRL1"}}})
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: revokedEntry, ExtraExtensions: []pkix.Extension{idp(t, true, tagged(0, true, der(t, tagged(1, true, rdn[4:]))))}})
		}, "another distribution point"},
		{"removeFromCRL in a complete CRL", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{revoke(t, f.card(testpki.KindRevoked), 8)}})
		}, "removeFromCRL"}, // (the valid card is not listed: ok)
		{"thisUpdate in the future", func(t *testing.T) []byte {
			return f.rootCRL(t, x509.RevocationList{ThisUpdate: genesis.Add(time.Minute), RevokedCertificateEntries: revokedEntry})
		}, "after the verification time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, tc.crl(t)) })
			for _, kind := range []string{testpki.KindValid, testpki.KindRevoked} {
				if kind == testpki.KindValid && tc.why == "removeFromCRL" {
					check(t, v, f.card(kind), verify.ReasonOK)
					continue
				}
				r := check(t, v, f.card(kind), verify.ReasonCRLUnavailable)
				if !strings.Contains(r.Detail, tc.why) {
					t.Errorf("%s: Detail %q, want it to mention %q", kind, r.Detail, tc.why)
				}
				t.Log(r.Detail)
			}
		})
	}
}

// A CRL partitioned by reason covers only its reasons: a card it lists is
// revoked, any other lacks revocation information for the other reasons.
func TestCRLOnlySomeReasons(t *testing.T) {
	f := getFixture(t)
	partial := f.rootCRL(t, x509.RevocationList{
		RevokedCertificateEntries: []x509.RevocationListEntry{revoke(t, f.card(testpki.KindRevoked), 1)},
		ExtraExtensions:           []pkix.Extension{idp(t, true, tagged(3, false, reasonsBitsDER))},
	})
	v := f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, partial) })
	r := check(t, v, f.card(testpki.KindValid), verify.ReasonCRLUnavailable)
	if !strings.Contains(r.Detail, "only some revocation reasons") {
		t.Errorf("Detail %q", r.Detail)
	}
	check(t, v, f.card(testpki.KindRevoked), verify.ReasonRevoked)
	// With a CRL for the other reasons too, coverage is complete.
	others := f.rootCRL(t, x509.RevocationList{
		Number:          big.NewInt(5),
		ExtraExtensions: []pkix.Extension{idp(t, true, tagged(3, false, []byte{0x01, 0xBF, 0x80}))}, // all but keyCompromise
	})
	v = f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, partial, others) })
	r = check(t, v, f.card(testpki.KindValid), verify.ReasonOK)
	if !strings.Contains(r.Detail, " and ") {
		t.Errorf("Detail %q: want both CRLs named", r.Detail)
	}
	check(t, v, f.card(testpki.KindRevoked), verify.ReasonRevoked)
}

// Extensions and scopes the verifier understands are accepted and applied.
func TestCRLAccepted(t *testing.T) {
	f := getFixture(t)
	valid, revoked := f.card(testpki.KindValid), f.card(testpki.KindRevoked)
	entries := []x509.RevocationListEntry{revoke(t, revoked, 1)}
	rootDP := fullName(t, dirName(t, f.root.RawSubject)) // the cards' cRLDistributionPoints
	for _, tc := range []struct {
		name       string
		extensions []pkix.Extension
		valid      verify.Reason
		revoked    verify.Reason
	}{
		{"unknown non-critical extension", []pkix.Extension{{Id: oidPrivate, Value: nullDER}}, verify.ReasonOK, verify.ReasonRevoked},
		{"freshestCRL", []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 46}, false, seq(t, der(t, seq(t, der(t, fullName(t, uriGeneralName))))))}, verify.ReasonOK, verify.ReasonRevoked},
		{"IDP naming the cards' distribution point", []pkix.Extension{idp(t, true, rootDP)}, verify.ReasonOK, verify.ReasonRevoked},
		{"IDP naming it among others", []pkix.Extension{idp(t, true, fullName(t, uriGeneralName, dirName(t, f.root.RawSubject)))}, verify.ReasonOK, verify.ReasonRevoked},
		{"IDP onlyContainsUserCerts", []pkix.Extension{idp(t, true, tagged(1, false, booleanTrueDER))}, verify.ReasonOK, verify.ReasonRevoked},
		{"IDP user certs at the cards' distribution point", []pkix.Extension{idp(t, true, rootDP, tagged(1, false, booleanTrueDER))}, verify.ReasonOK, verify.ReasonRevoked},
		{"IDP indirectCRL", []pkix.Extension{idp(t, true, tagged(4, false, booleanTrueDER))}, verify.ReasonOK, verify.ReasonRevoked},
		{"IDP explicit FALSE flags", []pkix.Extension{idp(t, true, tagged(2, false, booleanFalseDER), tagged(4, false, booleanFalseDER))}, verify.ReasonOK, verify.ReasonRevoked},
		// A CRL for another partition does not cover the cards: fail closed.
		{"IDP naming another distribution point", []pkix.Extension{idp(t, true, fullName(t, uriGeneralName))}, verify.ReasonCRLUnavailable, verify.ReasonCRLUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.rootCRL(t, x509.RevocationList{ExtraExtensions: tc.extensions, RevokedCertificateEntries: entries})
			v := f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, c) })
			check(t, v, valid, tc.valid)
			r := check(t, v, revoked, tc.revoked)
			t.Log(r.Detail)
		})
	}

	// A leaf without cRLDistributionPoints is not covered by a scoped CRL.
	noDP := leaf(t, f.root, f.pki.RootKey, x509.Certificate{})
	scoped := f.rootCRL(t, x509.RevocationList{ExtraExtensions: []pkix.Extension{idp(t, true, rootDP)}})
	check(t, f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, scoped) }), noDP, verify.ReasonCRLUnavailable)
	// ... but by a complete one.
	check(t, f.verifier(t, nil), noDP, verify.ReasonOK)

	// A scoped and a complete CRL of one anchor are both kept.
	both := f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, scoped, f.pki.CRL) })
	check(t, both, noDP, verify.ReasonOK)
	check(t, both, revoked, verify.ReasonRevoked)
}

// An entry's certificateIssuer (RFC 5280 §5.3.3) moves it and the entries
// after it to another CA: the card is then not listed.
func TestCRLCertificateIssuer(t *testing.T) {
	f := getFixture(t)
	other := der(t, pkix.Name{Country: []string{"JP"}, Organization: []string{"Another CA"}}.ToRDNSequence())
	e := revoke(t, f.card(testpki.KindRevoked), 1)
	e.ExtraExtensions = []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 29}, true, seq(t, der(t, dirName(t, other))))}
	v := f.verifier(t, func(o *verify.Options) {
		o.Revocation = f.src(t, f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{e}}))
	})
	check(t, v, f.card(testpki.KindRevoked), verify.ReasonOK)
	// Naming the root itself keeps it the root's entry.
	e.ExtraExtensions = []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 29}, true, seq(t, der(t, dirName(t, f.root.RawSubject))))}
	v = f.verifier(t, func(o *verify.Options) {
		o.Revocation = f.src(t, f.rootCRL(t, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{e}}))
	})
	check(t, v, f.card(testpki.KindRevoked), verify.ReasonRevoked)
}

// The re-signing helper itself: an unedited CRL re-signed still loads.
func TestEditCRLControl(t *testing.T) {
	f := getFixture(t)
	same := editCRL(t, f.pki.CRL, func(tbs []asn1.RawValue) []asn1.RawValue { return tbs })
	check(t, f.verifier(t, func(o *verify.Options) { o.Revocation = f.src(t, same) }), f.card(testpki.KindRevoked), verify.ReasonRevoked)
}
