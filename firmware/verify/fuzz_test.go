package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"testing"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// FuzzVerify feeds arbitrary leaf bytes to a test-mode verifier. Every
// result must carry a known reason, and only the genuine valid card may be
// accepted: no mutation can produce a new signature.
func FuzzVerify(f *testing.F) {
	fx := getFixture(f)
	v := fx.verifier(f, nil)
	for _, kind := range testpki.Kinds() {
		f.Add(fx.card(kind))
	}
	f.Add(fx.pki.Root)
	f.Add(fx.pki.CRL)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80})
	valid := fx.card(testpki.KindValid)
	f.Fuzz(func(t *testing.T, der []byte) {
		r := v.Verify(context.Background(), der)
		if !slices.Contains(verify.Reasons(), r.Reason) {
			t.Fatalf("unknown reason %q", r.Reason)
		}
		checkInvariants(t, r)
		if r.OK() && !bytes.Equal(der, valid) {
			// x509 tolerates no alternative encodings of a signed TBS,
			// so anything else accepted would be a forgery.
			t.Fatalf("accepted a certificate that is not the valid card: % X", der)
		}
	})
}

// FuzzCRL feeds arbitrary CRL bytes to New. Refusals must use the
// package's sentinels; only a CRL the test root really signed may load.
func FuzzCRL(f *testing.F) {
	fx := getFixture(f)
	signed := [][]byte{
		fx.pki.CRL,
		fx.rootCRL(f, x509.RevocationList{}),
		fx.rootCRL(f, x509.RevocationList{ExtraExtensions: []pkix.Extension{{Id: oidPrivate, Value: nullDER}}}),
	}
	seeds := append(slices.Clone(signed),
		fx.rootCRL(f, x509.RevocationList{ExtraExtensions: []pkix.Extension{{Id: oidPrivate, Critical: true, Value: nullDER}}}),
		fx.rootCRL(f, x509.RevocationList{RevokedCertificateEntries: []x509.RevocationListEntry{revoke(f, fx.card(testpki.KindValid), 6)}}),
		[]byte("not a CRL"),
	)
	for _, s := range seeds {
		f.Add(s)
	}
	sentinels := []error{verify.ErrCRLMalformed, verify.ErrCRLUntrusted, verify.ErrCRLUnsupported}
	f.Fuzz(func(t *testing.T, der []byte) {
		o := fx.options()
		o.CRLs = [][]byte{der}
		v, err := verify.New(o)
		if err != nil {
			if !slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) }) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if !slices.ContainsFunc(seeds, func(s []byte) bool { return bytes.Equal(s, der) }) {
			t.Fatalf("loaded a CRL the root never signed: % X", der)
		}
		for _, kind := range testpki.Kinds() {
			r := v.Verify(context.Background(), fx.card(kind))
			if !slices.Contains(verify.Reasons(), r.Reason) {
				t.Fatalf("unknown reason %q", r.Reason)
			}
		}
	})
}
