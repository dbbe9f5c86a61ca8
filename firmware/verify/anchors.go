package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadAnchors reads trust anchor certificates from files holding PEM
// CERTIFICATE blocks or DER, with ParseCertificate. It only parses; New
// checks that each is a usable anchor. It reads intermediates as well.
func LoadAnchors(files ...string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("verify: anchors: %w", err)
		}
		certs, err := ParseAnchors(b)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, f)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// ParseAnchors parses PEM CERTIFICATE blocks or concatenated DER
// certificates. Other PEM block types are an error, not skipped: an anchor
// file holds anchors only.
func ParseAnchors(b []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		var certs []*x509.Certificate
		for len(b) > 0 {
			var elem asn1.RawValue
			rest, err := asn1.Unmarshal(b, &elem)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadAnchor, err)
			}
			c, err := ParseCertificate(b[:len(b)-len(rest)])
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadAnchor, err)
			}
			certs, b = append(certs, c), rest
		}
		if len(certs) == 0 {
			return nil, fmt.Errorf("%w: no certificate", ErrBadAnchor)
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %q, want CERTIFICATE", ErrBadAnchor, block.Type)
		}
		c, err := ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAnchor, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrBadAnchor)
	}
	return certs, nil
}
