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
	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/firmware/trustclock"
	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/trust"
)

// trustLayer is what judges certificates: the trusted clock, the
// revocation store kept current by its watch, and one verifier per JPKI
// purpose, each with its own anchors: a signature certificate never chains
// in the authentication verifier.
type trustLayer struct {
	clock      *trustclock.Clock
	store      *revocation.Store
	watch      *revocation.Watch
	auth, sign *verify.Verifier // sign is nil when the profile reads no signature certificate
}

// openTrust opens the clock and the store (mapping the indexes, parsing
// no CRL), imports configured CRL files that changed since the last run
// and builds the verifiers. Start fails only when no revocation data is
// usable at all; a CRL that fails next to usable data is logged and shown
// in status while the previous data keeps serving.
func openTrust(ctx context.Context, cfg *Config, log *slog.Logger) (*trustLayer, error) {
	start := time.Now()
	clock, err := trustclock.Open(trustclock.Options{
		Path:             cfg.Clock.State,
		System:           time.Now,
		Mono:             func() time.Duration { return time.Since(start) },
		Synced:           trustclock.SyncedFromAdjtimex(),
		MaxUnsyncedAhead: time.Duration(cfg.Clock.MaxUnsyncedAhead),
	})
	if err != nil {
		return nil, err
	}
	store, err := revocation.Open(ctx, cfg.Revocation.IndexDir, revocation.Options{Logger: log.With("component", "revocation"), Now: clock.Time})
	if err != nil {
		return nil, err
	}
	t := &trustLayer{clock: clock, store: store}
	if err := t.raise(ctx, store.Newest(), "crl-index"); err != nil {
		log.Error("trusted clock not persisted", "err", err)
	}
	authAnchors, err := anchors(cfg.Trust.Anchors, trust.JPKIAuthRoots)
	if err != nil {
		store.Close()
		return nil, err
	}
	signAnchors, err := anchors(cfg.Trust.SignAnchors, trust.JPKISignRoots)
	if err != nil {
		store.Close()
		return nil, err
	}
	t.watch = &revocation.Watch{
		Store:    store,
		Files:    slices.Concat(cfg.Trust.CRLs, cfg.Trust.SignCRLs, cfg.Revocation.Inbox),
		Signers:  slices.Concat(authAnchors, signAnchors),
		Interval: time.Duration(cfg.Revocation.Poll),
		OnImport: func(ctx context.Context, r *revocation.Result) {
			if err := t.raise(ctx, r.Info.ThisUpdate, "crl-thisUpdate"); err != nil {
				log.Error("trusted clock not persisted", "err", err)
			}
		},
		Logger: log.With("component", "revocation"),
	}
	if err := t.watch.Sync(ctx); err != nil {
		if len(store.Status().Series) == 0 {
			store.Close()
			return nil, fmt.Errorf("no usable revocation data: %w", err)
		}
		log.Error("some CRLs were refused; the previous revocation data stays in use", "err", err)
	}
	mk := func(p verify.Purpose, a []*x509.Certificate) (*verify.Verifier, error) {
		v, err := verify.New(verify.Options{Anchors: a, Revocation: store, Now: clock.Time,
			Grace: time.Duration(cfg.Revocation.Grace), AllowTest: cfg.Trust.AllowTest, Purpose: p})
		if err != nil {
			return nil, fmt.Errorf("%s verifier: %w", p, err)
		}
		return v, nil
	}
	if t.auth, err = mk(verify.PurposeAuth, authAnchors); err != nil {
		store.Close()
		return nil, err
	}
	if cfg.needsSign() {
		if t.sign, err = mk(verify.PurposeSign, signAnchors); err != nil {
			store.Close()
			return nil, err
		}
	}
	return t, nil
}

// raise lifts the trusted clock to a verified CRL's thisUpdate.
func (t *trustLayer) raise(ctx context.Context, at time.Time, source string) error {
	if at.IsZero() {
		return nil
	}
	return t.clock.Raise(ctx, at, source)
}

// run keeps the clock persisted and the revocation data current until ctx
// ends; hup triggers an immediate re-check (SIGHUP).
func (t *trustLayer) run(ctx context.Context, hup <-chan struct{}) {
	go func() { _ = t.clock.Run(ctx) }()
	_ = t.watch.Run(ctx, hup)
}

func (t *trustLayer) close() error { return t.store.Close() }

// eventClock stamps events with the trusted time (tap.Pipeline.Clock).
func (t *trustLayer) eventClock() (time.Time, bool) {
	r := t.clock.Now()
	return r.Time, r.Believed
}

// revocationAge is the age of the newest loaded CRL at now.
func (t *trustLayer) revocationAge(now time.Time) (time.Duration, bool) {
	n := t.store.Newest()
	if n.IsZero() {
		return 0, false
	}
	return now.Sub(n), true
}

func anchors(files []string, shipped func() ([]*x509.Certificate, error)) ([]*x509.Certificate, error) {
	if len(files) == 0 {
		return shipped()
	}
	return verify.LoadAnchors(files...)
}

func verdict(r verify.Result) tap.Verdict {
	v := tap.Verdict{Reason: string(r.Reason), Detail: r.Detail, Chained: r.Chained()}
	if r.CRLNumber != nil {
		v.RevocationAge, v.RevocationKnown = r.CRLAge, true
	}
	return v
}

func (t *trustLayer) VerifyJPKIAuth(ctx context.Context, der []byte) tap.Verdict {
	return verdict(t.auth.Verify(ctx, der))
}

func (t *trustLayer) VerifyJPKISign(ctx context.Context, der []byte) tap.Verdict {
	if t.sign == nil {
		return tap.Verdict{Reason: string(verify.ReasonCRLUnavailable), Detail: "no signature verifier configured for this profile"}
	}
	return verdict(t.sign.Verify(ctx, der))
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
