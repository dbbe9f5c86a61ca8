package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-out", dir, "-now", "2026-04-01T09:30:00+09:00"}, &out); err != nil {
		t.Fatal(err)
	}
	p, err := testpki.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Logf("output:\n%s", s)

	sum := sha256.Sum256(p.Root)
	if !strings.Contains(s, fingerprint(sum[:])) {
		t.Error("summary lacks the anchor fingerprint")
	}
	if !strings.Contains(s, "2026-04-01T00:30:00Z") {
		t.Error("summary lacks the generation time")
	}
	for _, kind := range testpki.Kinds() {
		c, err := x509.ParseCertificate(p.Cards[kind].Cert)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, kind) || !strings.Contains(s, fmt.Sprintf("%x", c.SerialNumber)) {
			t.Errorf("summary lacks %s or its serial", kind)
		}
		if want := time.Date(2026, 4, 1, 0, 30, 0, 0, time.UTC).AddDate(0, 0, -30); kind == testpki.KindExpired && !c.NotAfter.Equal(want) {
			t.Errorf("expired card notAfter %v, want %v (-now not applied)", c.NotAfter, want)
		}
		// No key material: neither the PEM armour nor the modulus.
		card := p.Cards[kind]
		key := card.Key
		if strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, fmt.Sprintf("%x", key.D.Bytes()[:8])) {
			t.Error("summary contains key material")
		}
		sign, err := x509.ParseCertificate(card.SignCert)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, fmt.Sprintf("sign serial %x", sign.SerialNumber)) {
			t.Errorf("summary lacks the %s card's signature certificate serial", kind)
		}
		// No secrets and no holder data.
		for _, secret := range []string{card.SignPassword, card.CollationB, card.Person.Name, card.Person.Address, card.Person.IndividualNumber, card.Person.BirthDate} {
			if secret != "" && strings.Contains(s, secret) {
				t.Errorf("summary contains %s card data", kind)
			}
		}
	}
	sum = sha256.Sum256(p.SignRoot)
	if !strings.Contains(s, testpki.SignAnchorFile) || !strings.Contains(s, fingerprint(sum[:])) || !strings.Contains(s, testpki.SignCRLFile) {
		t.Error("summary lacks the signature root or its CRL")
	}
	for _, id := range []string{"surface  6990023/001", "support  6990033/001"} {
		if !strings.Contains(s, "cv      "+id) {
			t.Errorf("summary lacks the CV anchor %s", id)
		}
	}
	for _, a := range p.CVAnchors {
		m := sha256.Sum256(a.Key.N.FillBytes(make([]byte, 256)))
		if !strings.Contains(s, fmt.Sprintf("%x", m)) {
			t.Errorf("summary lacks the %s anchor's modulus hash", a.Purpose)
		}
	}
	if !strings.Contains(s, "clone       serial") || !strings.Contains(s, "APs none") || !strings.Contains(s, "APs surface,support") {
		t.Error("summary lacks the clone or the APs")
	}
}

func TestRunDefaultNow(t *testing.T) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	defer func(old func() time.Time) { now = old }(now)
	now = func() time.Time { return fixed }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-out", t.TempDir()}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "2030-01-02T03:04:05Z") {
		t.Errorf("default -now not taken from the clock:\n%s", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no -out", nil},
		{"bad -now", []string{"-out", "x", "-now", "yesterday"}},
		{"extra argument", []string{"-out", "x", "y"}},
		{"unknown flag", []string{"-bogus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), tc.args, &out); err == nil {
				t.Error("run succeeded")
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-out") {
		t.Errorf("-h: %v, usage %q", err, out.String())
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := run(ctx, []string{"-out", dir}, new(bytes.Buffer)); !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v, want context.Canceled", err)
	}
	if _, err := testpki.LoadDir(dir); err == nil {
		t.Error("canceled run wrote files")
	}
}
