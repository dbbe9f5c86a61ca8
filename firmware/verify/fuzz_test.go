package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
)

// fuzzPKI is a small ECDSA hierarchy for the fuzz targets: generating the
// RSA fixture in every fuzz worker would eat the fuzzing time. Leaves carry
// a directoryName cRLDistributionPoint, like JPKI's.
type fuzzPKI struct {
	root, inter *testCA
	// valid, revoked, expired are issued by root; deep (valid) by inter.
	valid, revoked, expired, deep []byte
	crls                          [][]byte // root's (listing revoked) and inter's
	auth, any                     *verify.Verifier
}

var (
	fuzzOnce sync.Once
	fuzzFix  *fuzzPKI
)

func getFuzzPKI(tb testing.TB) *fuzzPKI {
	tb.Helper()
	fuzzOnce.Do(func() {
		p := &fuzzPKI{root: newTestCA(tb, "Fuzz Root", nil, nil)}
		p.inter = newTestCA(tb, "Fuzz Intermediate", p.root, nil)
		withDP := func(ca *testCA, mod func(*x509.Certificate)) []byte {
			return ca.issue(tb, func(c *x509.Certificate) {
				c.ExtraExtensions = []pkix.Extension{ext(tb, asn1.ObjectIdentifier{2, 5, 29, 31}, false,
					seq(tb, der(tb, seq(tb, der(tb, fullName(tb, dirName(tb, ca.cert.RawSubject)))))))}
				if mod != nil {
					mod(c)
				}
			})
		}
		p.valid = withDP(p.root, nil)
		p.revoked = withDP(p.root, nil)
		p.expired = withDP(p.root, func(c *x509.Certificate) { c.NotAfter = genesis.Add(-time.Hour) })
		p.deep = withDP(p.inter, nil)
		revoked, err := x509.ParseCertificate(p.revoked)
		if err != nil {
			tb.Fatal(err)
		}
		p.crls = [][]byte{p.root.crl(tb, revoked), p.inter.crl(tb)}
		p.auth = pathVerifier(tb, verify.PurposeAuth, p.root, nil, p.crls...)
		p.any = pathVerifier(tb, verify.PurposeAny, p.root, []*testCA{p.inter}, p.crls...)
		fuzzFix = p
	})
	if fuzzFix == nil {
		tb.Fatal("fuzz fixture not generated")
	}
	return fuzzFix
}

// FuzzVerify feeds arbitrary leaf bytes to a JPKI-profile verifier and to
// a PurposeAny one with an intermediate. Every result must carry a known
// reason and keep the invariants, and only the genuine valid leaves may be
// accepted: no mutation can produce a new signature.
func FuzzVerify(f *testing.F) {
	p := getFuzzPKI(f)
	for _, s := range [][]byte{p.valid, p.revoked, p.expired, p.deep, p.root.cert.Raw, p.inter.cert.Raw, p.crls[0], {}, {0x30, 0x80}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		for _, v := range []*verify.Verifier{p.auth, p.any} {
			r := v.Verify(context.Background(), der)
			if !slices.Contains(verify.Reasons(), r.Reason) {
				t.Fatalf("unknown reason %q", r.Reason)
			}
			checkInvariants(t, r)
			// x509 tolerates no alternative encodings of a signed TBS,
			// so anything else accepted would be a forgery. (PurposeAny
			// also accepts the intermediate itself, a CA certificate.)
			if r.OK() && !bytes.Equal(der, p.valid) && !bytes.Equal(der, p.deep) && !bytes.Equal(der, p.inter.cert.Raw) {
				t.Fatalf("accepted a certificate that is not a valid leaf: % X", der)
			}
		}
	})
}

// FuzzCRL feeds arbitrary CRL bytes through the test source to a
// verifier. Only a CRL the root really signed may be used, and a leaf's
// answer is always a known reason; without a usable CRL, never ok or
// revoked.
func FuzzCRL(f *testing.F) {
	p := getFuzzPKI(f)
	revoked, err := x509.ParseCertificate(p.revoked)
	if err != nil {
		f.Fatal(err)
	}
	root := p.root
	signed := [][]byte{
		p.crls[0],
		root.crl(f),
		crl(f, root.cert, root.key, x509.RevocationList{ExtraExtensions: []pkix.Extension{{Id: oidPrivate, Value: nullDER}}}),
		crl(f, root.cert, root.key, x509.RevocationList{ExtraExtensions: []pkix.Extension{{Id: oidPrivate, Critical: true, Value: nullDER}}}),
		crl(f, root.cert, root.key, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: revoked.SerialNumber, RevocationTime: genesis.Add(-time.Hour), ReasonCode: 6}}}),
		crl(f, root.cert, root.key, x509.RevocationList{ExtraExtensions: []pkix.Extension{idp(f, true, tagged(3, false, reasonsBitsDER))}}),
		crl(f, root.cert, root.key, x509.RevocationList{ExtraExtensions: []pkix.Extension{idp(f, true, fullName(f, dirName(f, root.cert.RawSubject)), tagged(4, false, booleanTrueDER))}}),
	}
	for _, s := range signed {
		f.Add(s)
	}
	f.Add([]byte("not a CRL"))
	f.Fuzz(func(t *testing.T, der []byte) {
		src := newMemSource(t, []*x509.Certificate{root.cert}, der)
		v, err := verify.New(verify.Options{Anchors: []*x509.Certificate{root.cert}, Revocation: src, Now: clock(genesis)})
		if err != nil {
			t.Fatal(err)
		}
		loaded := len(src.refused()) == 0
		// ECDSA signatures are not unique: the root may have signed the
		// same TBS twice, so compare what was signed.
		if loaded && !slices.ContainsFunc(signed, func(s []byte) bool { return sameTBS(s, der) }) {
			t.Fatalf("used a CRL the root never signed: % X", der)
		}
		for _, leaf := range [][]byte{p.valid, p.revoked, p.expired} {
			r := v.Verify(context.Background(), leaf)
			if !slices.Contains(verify.Reasons(), r.Reason) {
				t.Fatalf("unknown reason %q", r.Reason)
			}
			checkInvariants(t, r)
			if !loaded && (r.Reason == verify.ReasonOK || r.Reason == verify.ReasonRevoked) {
				t.Fatalf("%s without a usable CRL", r.Reason)
			}
		}
	})
}

// sameTBS reports whether two CRLs have the same signed part.
func sameTBS(a, b []byte) bool {
	ra, errA := x509.ParseRevocationList(a)
	rb, errB := x509.ParseRevocationList(b)
	return errA == nil && errB == nil && bytes.Equal(ra.RawTBSRevocationList, rb.RawTBSRevocationList)
}
