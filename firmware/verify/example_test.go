package verify_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// Verify each card of a freshly generated test hierarchy in test mode. The
// clone carries a copy of the valid card's certificate, so certificate
// verification alone accepts it: only the card's keys tell them apart.
func Example() {
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	pki, err := testpki.Generate(now)
	if err != nil {
		panic(err)
	}
	root, err := x509.ParseCertificate(pki.Root)
	if err != nil {
		panic(err)
	}
	v, err := verify.New(verify.Options{
		Anchors: []*x509.Certificate{root},
		// A crl.Source: firmware/revocation's store in the daemon, a
		// test double here.
		Revocation: newMemSource(nil, []*x509.Certificate{root}, pki.CRL),
		Now:        func() time.Time { return now },
		AllowTest:  true, // the test hierarchy says O=JPKI-TEST
	})
	if err != nil {
		panic(err)
	}
	for _, kind := range testpki.Kinds() {
		r := v.Verify(context.Background(), pki.Cards[kind].Cert)
		fmt.Printf("%-10s %s\n", kind, r.Reason)
	}
	// Output:
	// valid      ok
	// revoked    revoked
	// expired    expired
	// unknown-ca untrusted
	// clone      ok
}
