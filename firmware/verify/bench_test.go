package verify_test

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// BenchmarkVerify measures one Verify of the valid card (parse, path
// building with anchor selection by signature, profile, validity, CRL
// lookup through a crl.Source, here the in-memory test double) next to the
// standard library's path validation of the same leaf under the same
// anchor, which parses and checks the signature but does no revocation;
// and a three-level ECDSA P-256 path with both CRLs.
func BenchmarkVerify(b *testing.B) {
	f := getFixture(b)
	der := f.card(testpki.KindValid)
	ctx := context.Background()

	b.Run("verify.Verifier.Verify", func(b *testing.B) {
		v := f.verifier(b, nil)
		b.ReportAllocs()
		for b.Loop() {
			if r := v.Verify(ctx, der); !r.OK() {
				b.Fatal(r.Reason, r.Detail)
			}
		}
	})

	b.Run("verify.Verifier.Verify/3-level-P256", func(b *testing.B) {
		root := newTestCA(b, "Root", nil, nil)
		inter := newTestCA(b, "Intermediate", root, nil)
		leafDER := inter.issue(b, nil)
		v := pathVerifier(b, verify.PurposeAny, root, []*testCA{inter}, root.crl(b), inter.crl(b))
		b.ReportAllocs()
		for b.Loop() {
			if r := v.Verify(ctx, leafDER); !r.OK() {
				b.Fatal(r.Reason, r.Detail)
			}
		}
	})

	b.Run("x509.Certificate.Verify", func(b *testing.B) {
		roots := x509.NewCertPool()
		roots.AddCert(f.root)
		opts := x509.VerifyOptions{Roots: roots, CurrentTime: genesis, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		b.ReportAllocs()
		for b.Loop() {
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := leaf.Verify(opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
