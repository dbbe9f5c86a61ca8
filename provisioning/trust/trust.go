// Package trust ships the production trust anchors:
//
//   - the JPKI root certificates published by J-LIS, per purpose (user
//     authentication, digital signature) and per current generation (2019
//     and 2023; the 2015 generation expired on 2025-10-19). Certificates
//     issued before mid-2023 chain to the 2019 roots and stay valid until
//     2029, so both generations are anchors; the verifier picks one by
//     issuer name and signature.
//   - the public keys of the CAs that sign the card-verifiable (CV)
//     certificates of the My Number Card's card surface AP and input
//     support AP (source and provenance: mynumber-ap/README.md). The
//     production keys (IDs 5…) are used only in production, the J-LIS test
//     keys (6…) only in test mode.
//
// They are the daemon's default anchors when its configuration names none.
package trust

import (
	"crypto/rsa"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"fmt"
)

//go:embed jpki/*.pem mynumber-ap/*.pem
var files embed.FS

// Names of the shipped roots.
const (
	JPKIAuth2019 = "jpki/auth_ca_2019.pem" // JPKI for user authentication, authca02
	JPKIAuth2023 = "jpki/auth_ca_2023.pem" // JPKI for user authentication, authca03
	JPKISign2019 = "jpki/sign_ca_2019.pem" // JPKI for digital signature, signca02
	JPKISign2023 = "jpki/sign_ca_2023.pem" // JPKI for digital signature, signca03
)

// Load parses one shipped root.
func Load(name string) (*x509.Certificate, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("trust: %s is not a PEM certificate", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("trust: %s: %w", name, err)
	}
	return c, nil
}

func loadAll(names ...string) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(names))
	for _, n := range names {
		c, err := Load(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// JPKIAuthRoots returns the anchors for user-authentication certificates,
// every current generation.
func JPKIAuthRoots() ([]*x509.Certificate, error) { return loadAll(JPKIAuth2019, JPKIAuth2023) }

// JPKISignRoots returns the anchors for signature certificates, every
// current generation. They are never anchors for user authentication.
func JPKISignRoots() ([]*x509.Certificate, error) { return loadAll(JPKISign2019, JPKISign2023) }

// CV purposes: which card application's CV certificate a CA key signs.
const (
	PurposeSurface = "surface" // 券面事項確認AP EF 0004
	PurposeSupport = "support" // 券面事項入力補助AP EF 0004
	PurposeMF      = "mf"      // MF-level chain (GET DATA 00F8), not used by any flow yet
)

// CVAnchor is a CA public key for card-verifiable certificates.
type CVAnchor struct {
	// ID is the CA's key ID as written in a CV certificate's issuer field,
	// in the "5000023/001" form (drivers/jpki.ParseKeyID reads it; the MF
	// root's last byte A8 is written "+A8").
	ID      string
	Purpose string
	// Test marks J-LIS's test hierarchy (IDs 6…).
	Test bool
	Key  *rsa.PublicKey
}

var cvShipped = []struct {
	file, id, purpose string
	test              bool
}{
	{"mynumber-ap/5000020.pem", "5000020/001+A8", PurposeMF, false},
	{"mynumber-ap/5000023.pem", "5000023/001", PurposeSurface, false},
	{"mynumber-ap/5000033.pem", "5000033/001", PurposeSupport, false},
	{"mynumber-ap/6000020.pem", "6000020/001+A8", PurposeMF, true},
	{"mynumber-ap/6000023.pem", "6000023/001", PurposeSurface, true},
	{"mynumber-ap/6000033.pem", "6000033/001", PurposeSupport, true},
}

// CVAnchors returns the shipped CV CA keys: the production keys (5…) when
// test is false, J-LIS's test keys (6…) when it is true, never both.
//
// The production keys come from one public source and are not confirmed
// against a production card yet (mynumber-ap/README.md); a deployment
// confirms them before relying on face-check.
func CVAnchors(test bool) ([]CVAnchor, error) {
	var out []CVAnchor
	for _, s := range cvShipped {
		if s.test != test {
			continue
		}
		b, err := files.ReadFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("trust: %w", err)
		}
		k, err := ParseRSAPublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("trust: %s: %w", s.file, err)
		}
		out = append(out, CVAnchor{ID: s.id, Purpose: s.purpose, Test: s.test, Key: k})
	}
	return out, nil
}

// ParseRSAPublicKeyPEM reads one PEM "PUBLIC KEY" block (PKIX) holding an
// RSA key of at least 2048 bits.
func ParseRSAPublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("trust: not a PEM PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("trust: public key is %T, want RSA", pub)
	}
	if k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("trust: RSA key of %d bits, want at least 2048", k.N.BitLen())
	}
	return k, nil
}
