package sim

import (
	"fmt"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

// FromTestPKI builds the virtual card of a test PKI card: the JPKI AP with
// both key pairs, both certificates and the card's secrets, and, when the
// card has them, the card surface AP (EF 0002 card-face record, 0003, 0004
// CV certificate, collation number B, the card key) and the input support
// AP (EF 0001–0004 and 0007, the PIN, B, the challenge key). A clone
// (Surface and Support nil) gets the JPKI AP only. The PUPI is random.
//
// The surface AP also gets the birth-date key 0011, which is the first six
// digits of B (doc §4.1: era YYMMDD); testpki has no EF 0001 for it to open.
func FromTestPKI(c testpki.Card) (*JPKICard, error) {
	cfg := JPKIConfig{
		Token:        c.Token,
		AuthCert:     c.Cert,
		AuthCACert:   c.CACert,
		AuthKey:      c.Key,
		SignCert:     c.SignCert,
		SignCACert:   c.SignCACert,
		SignKey:      c.SignKey,
		AuthPIN:      c.AuthPIN,
		SignPassword: c.SignPassword,
	}
	if s := c.Surface; s != nil {
		cfg.Surface = &SurfaceAP{
			Files: map[uint16][]byte{
				0x0002: s.Face,
				0x0003: s.Info,
				0x0004: s.CVCert,
			},
			CollationB: c.CollationB,
			CardKey:    s.CardKey,
		}
		if len(c.CollationB) == 14 {
			cfg.Surface.BirthKey = c.CollationB[:6]
		}
	}
	if s := c.Support; s != nil {
		cfg.Support = &SupportAP{
			Files: map[uint16][]byte{
				0x0001: s.Number,
				0x0002: s.Basic4,
				0x0003: s.Integrity,
				0x0004: s.CVCert,
				0x0007: s.ChallengeKeyRecord,
			},
			PIN:          c.SupportPIN,
			CollationB:   c.CollationB,
			ChallengeKey: s.ChallengeKey,
		}
	}
	card, err := NewJPKICard(cfg)
	if err != nil {
		return nil, fmt.Errorf("sim: test PKI card %q: %w", c.Kind, err)
	}
	return card, nil
}
