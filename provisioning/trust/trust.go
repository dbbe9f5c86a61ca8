// Package trust ships the production trust anchors: the real 2023
// generation JPKI root certificates published by J-LIS (user
// authentication and digital signature). They are the daemon's default
// anchors when its configuration names none.
package trust

import (
	"crypto/x509"
	"embed"
	"encoding/pem"
	"fmt"
)

//go:embed jpki/*.pem
var files embed.FS

// Names of the shipped roots.
const (
	JPKIAuth2023 = "jpki/auth_ca_2023.pem" // JPKI for user authentication
	JPKISign2023 = "jpki/sign_ca_2023.pem" // JPKI for digital signature
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

// JPKIAuthRoots returns the anchors for user-authentication certificates.
func JPKIAuthRoots() ([]*x509.Certificate, error) {
	c, err := Load(JPKIAuth2023)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{c}, nil
}
