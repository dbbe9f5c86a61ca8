package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/trust"
)

// verifiers are the two JPKI purposes, each with its own anchors and CRLs:
// a signature certificate never chains in the authentication verifier.
type verifiers struct {
	auth, sign *verify.Verifier // sign is nil when the profile reads no signature certificate
}

func newVerifiers(cfg *Config, now func() time.Time) (*verifiers, error) {
	auth, err := newVerifier(verify.PurposeAuth, cfg.Trust.Anchors, trust.JPKIAuthRoots, cfg.Trust.CRLs, "trust.crls", cfg.Trust.AllowTest, now)
	if err != nil {
		return nil, err
	}
	vs := &verifiers{auth: auth}
	if cfg.needsSign() {
		if vs.sign, err = newVerifier(verify.PurposeSign, cfg.Trust.SignAnchors, trust.JPKISignRoots, cfg.Trust.SignCRLs, "trust.sign_crls", cfg.Trust.AllowTest, now); err != nil {
			return nil, err
		}
	}
	return vs, nil
}

func newVerifier(p verify.Purpose, anchorFiles []string, shipped func() ([]*x509.Certificate, error), crlFiles []string, crlKey string, allowTest bool, now func() time.Time) (*verify.Verifier, error) {
	var anchors []*x509.Certificate
	var err error
	if len(anchorFiles) == 0 {
		anchors, err = shipped()
	} else {
		anchors, err = verify.LoadAnchors(anchorFiles...)
	}
	if err != nil {
		return nil, err
	}
	var crls [][]byte
	for _, f := range crlFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("crl: %w", err)
		}
		crls = append(crls, b)
	}
	v, err := verify.New(verify.Options{Anchors: anchors, CRLs: crls, Now: now, AllowTest: allowTest, Purpose: p})
	if err != nil {
		// verify numbers the CRLs ("input 0"); name the files for the operator.
		return nil, fmt.Errorf("%s verifier: %w (%s in order: %s)", p, err, crlKey, strings.Join(crlFiles, ", "))
	}
	return v, nil
}

func verdict(r verify.Result) tap.Verdict {
	return tap.Verdict{Reason: string(r.Reason), Detail: r.Detail, Chained: r.Chained()}
}

func (vs *verifiers) VerifyJPKIAuth(ctx context.Context, der []byte) tap.Verdict {
	return verdict(vs.auth.Verify(ctx, der))
}

func (vs *verifiers) VerifyJPKISign(ctx context.Context, der []byte) tap.Verdict {
	if vs.sign == nil {
		return tap.Verdict{Reason: string(verify.ReasonCRLUnavailable), Detail: "no signature verifier configured for this profile"}
	}
	return verdict(vs.sign.Verify(ctx, der))
}

// cvAnchors maps purpose and issuer key ID to a CV CA key.
type cvAnchors map[string]map[jpki.KeyID]*rsa.PublicKey

func (c cvAnchors) CVKey(purpose string, issuer jpki.KeyID) (*rsa.PublicKey, bool) {
	k, ok := c[purpose][issuer]
	return k, ok
}

// loadCVAnchors returns the shipped CV CA keys of the mode (production 5…,
// or J-LIS test 6… in test mode) plus the configured ones, refusing a
// configured key whose ID does not fit the mode.
func loadCVAnchors(cfg *Config) (cvAnchors, error) {
	out := cvAnchors{}
	add := func(id, purpose string, k *rsa.PublicKey, src string) error {
		kid, err := jpki.ParseKeyID(id)
		if err != nil {
			return fmt.Errorf("cv anchor %s: %w", src, err)
		}
		switch {
		case cfg.Trust.AllowTest && !kid.Test():
			return fmt.Errorf("cv anchor %s: key ID %s is not a test key (6…) and test mode is on", src, id)
		case !cfg.Trust.AllowTest && !kid.Production():
			return fmt.Errorf("cv anchor %s: key ID %s is not a production key (5…) and test mode is off", src, id)
		}
		if out[purpose] == nil {
			out[purpose] = map[jpki.KeyID]*rsa.PublicKey{}
		}
		out[purpose][kid] = k
		return nil
	}
	shipped, err := trust.CVAnchors(cfg.Trust.AllowTest)
	if err != nil {
		return nil, err
	}
	for _, a := range shipped {
		if err := add(a.ID, a.Purpose, a.Key, "shipped "+a.ID); err != nil {
			return nil, err
		}
	}
	for _, a := range cfg.Trust.CVAnchors {
		b, err := os.ReadFile(a.File)
		if err != nil {
			return nil, fmt.Errorf("cv anchor: %w", err)
		}
		k, err := trust.ParseRSAPublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("cv anchor %s: %w", a.File, err)
		}
		if err := add(a.ID, a.Purpose, k, a.File); err != nil {
			return nil, err
		}
	}
	return out, nil
}
