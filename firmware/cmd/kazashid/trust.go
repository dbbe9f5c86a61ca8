package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/trustclock"
	"github.com/kazashi/kazashi/firmware/trustlayer"
	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/trust"
)

// openTrust builds the trust layer from the configuration.
func openTrust(ctx context.Context, cfg *Config, log *slog.Logger) (*trustlayer.Layer, error) {
	authAnchors, err := anchors(cfg.Trust.Anchors, trust.JPKIAuthRoots)
	if err != nil {
		return nil, err
	}
	// The signature hierarchy only when the profile reads signature
	// certificates: its CRLs are not imported otherwise.
	var signAnchors []*x509.Certificate
	crls := slices.Concat(cfg.Trust.CRLs, cfg.Revocation.Inbox)
	if cfg.needsSign() {
		if signAnchors, err = anchors(cfg.Trust.SignAnchors, trust.JPKISignRoots); err != nil {
			return nil, err
		}
		crls = append(crls, cfg.Trust.SignCRLs...)
	}
	start := time.Now()
	return trustlayer.Open(ctx, trustlayer.Options{
		ClockState:       cfg.Clock.State,
		System:           time.Now,
		Mono:             func() time.Duration { return time.Since(start) },
		Synced:           trustclock.SyncedFromAdjtimex(),
		MaxUnsyncedAhead: time.Duration(cfg.Clock.MaxUnsyncedAhead),
		IndexDir:         cfg.Revocation.IndexDir,
		CRLFiles:         crls,
		Poll:             time.Duration(cfg.Revocation.Poll),
		Grace:            time.Duration(cfg.Revocation.Grace),
		AuthAnchors:      authAnchors,
		SignAnchors:      signAnchors,
		AllowTest:        cfg.Trust.AllowTest,
		Logger:           log.With("component", "revocation"),
	})
}

func anchors(files []string, shipped func() ([]*x509.Certificate, error)) ([]*x509.Certificate, error) {
	if len(files) == 0 {
		return shipped()
	}
	return verify.LoadAnchors(files...)
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
