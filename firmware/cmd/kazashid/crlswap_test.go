package main

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// TestCRLSwappedWhileRunning: the operator replaces the configured CRL
// while the kiosk runs. Every tap still produces exactly one event; taps
// switch from the old CRL's verdict to the new one's and never back; an
// older CRL copied over it afterwards is refused and the newer one keeps
// judging. Events carry the age of the revocation data.
func TestCRLSwappedWhileRunning(t *testing.T) {
	r := newRig(t)
	e, _ := r.tap(testpki.KindValid, 0)
	if e.Reason != "ok" || e.TimeSource != tap.TimeSystem {
		t.Fatalf("before the swap: reason %s time_source %s, want ok from the system clock", e.Reason, e.TimeSource)
	}
	if e.RevocationAgeS == nil || *e.RevocationAgeS < 3600 || *e.RevocationAgeS > 3600+900 {
		t.Fatalf("revocation_age_s %v, want about an hour (the test CRL's thisUpdate is generation time − 1 h)", e.RevocationAgeS)
	}
	newNumber := swapCRL(t, r)

	// Tap on while the daemon notices (poll 200 ms): ok, …, ok, revoked, …
	revokedAt := -1
	for i := 0; i < 30 && revokedAt < 0; i++ {
		e, _ := r.tap(testpki.KindValid, 0)
		switch e.Reason {
		case "ok":
		case "revoked":
			revokedAt = i
		default:
			t.Fatalf("tap %d during the swap: %s, want ok (old CRL) or revoked (new CRL)", i, e.Reason)
		}
	}
	if revokedAt < 0 {
		t.Fatal("the new CRL was not in use after 30 taps")
	}
	for i := 0; i < 3; i++ {
		if e, _ := r.tap(testpki.KindValid, 0); e.Reason != "revoked" {
			t.Fatalf("tap after the swap: %s, want revoked (never back to the old CRL)", e.Reason)
		}
	}

	// The old CRL comes back (a replay): refused, the newer one stays.
	replaceCRL(t, r, r.pki.CRL)
	r.waitOutput(r.stderr, "CRL import failed", 1)
	if !strings.Contains(r.stderr.String(), "not newer than the one already seen") {
		t.Errorf("the log does not say why the old CRL was refused")
	}
	if e, _ := r.tap(testpki.KindValid, 0); e.Reason != "revoked" {
		t.Fatalf("after the replay attempt: %s, want revoked", e.Reason)
	}
	// The retained revocation status names the refused file and why, and
	// still shows the newer CRL in use.
	want := filepath.Base(crlPath(r))
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found bool
		for _, p := range r.payloads() {
			if strings.Contains(p, `"revocation_age_s"`) && strings.Contains(p, want) &&
				strings.Contains(p, "not newer than the one already seen") &&
				strings.Contains(p, `"number":`+newNumber.String()) {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no revocation status naming %s as refused with CRL #%s in use; payloads: %q", want, newNumber, r.payloads())
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case e := <-r.events:
		t.Fatalf("an extra event arrived: %+v", e)
	default:
	}
}

// TestSIGHUPReloadsCRL: with a poll of an hour, SIGHUP makes the daemon
// take the replaced CRL at once.
func TestSIGHUPReloadsCRL(t *testing.T) {
	r := newRig(t, rigOptions{poll: "1h"})
	if e, _ := r.tap(testpki.KindValid, 0); e.Reason != "ok" {
		t.Fatalf("before: %s", e.Reason)
	}
	swapCRL(t, r)
	time.Sleep(300 * time.Millisecond)
	if e, _ := r.tap(testpki.KindValid, 0); e.Reason != "ok" {
		t.Fatalf("replaced but no SIGHUP and no poll yet: %s, want ok (the old CRL)", e.Reason)
	}
	// The start-up import logged this line already: wait for one more.
	before := strings.Count(r.stderr.String(), "CRL file imported")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitOutput(r.stderr, "CRL file imported", before+1)
	if e, _ := r.tap(testpki.KindValid, 0); e.Reason != "revoked" {
		t.Fatalf("after SIGHUP: %s, want revoked", e.Reason)
	}
}

func crlPath(r *rig) string { return filepath.Join(r.dir, "pki", testpki.CRLFile) }

// replaceCRL atomically replaces the daemon's configured CRL file.
func replaceCRL(t *testing.T, r *rig, der []byte) {
	t.Helper()
	tmp := crlPath(r) + ".new"
	if err := os.WriteFile(tmp, der, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, crlPath(r)); err != nil {
		t.Fatal(err)
	}
}

// swapCRL writes a newer CRL (number + 1) that also lists the valid card
// over the configured one and returns its number.
func swapCRL(t *testing.T, r *rig) *big.Int {
	t.Helper()
	oldCRL, err := x509.ParseRevocationList(r.pki.CRL)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(r.pki.Root)
	valid, _ := x509.ParseCertificate(r.pki.Cards[testpki.KindValid].Cert)
	newNumber := new(big.Int).Add(oldCRL.Number, big.NewInt(1))
	newer, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     newNumber,
		ThisUpdate: oldCRL.ThisUpdate.Add(time.Minute),
		NextUpdate: oldCRL.NextUpdate.Add(time.Minute),
		RevokedCertificateEntries: append(oldCRL.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: valid.SerialNumber, RevocationTime: time.Now().Add(-time.Minute), ReasonCode: 1}),
	}, root, r.pki.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	replaceCRL(t, r, newer)
	return newNumber
}
