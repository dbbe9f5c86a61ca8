package ctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

var (
	pkiTime = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	at      = pkiTime.Format(time.RFC3339)
)

type files struct {
	dir, root, crl, valid, revoked, unknown string
	pki                                     *testpki.PKI
}

func writeFixture(t *testing.T) files {
	t.Helper()
	p, err := testpki.Generate(pkiTime)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := files{dir: dir, pki: p}
	w := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f.root = w("root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root}))
	f.crl = w("auth.crl", p.CRL)
	f.valid = w("valid.der", p.Cards[testpki.KindValid].Cert)
	f.revoked = w("revoked.der", p.Cards[testpki.KindRevoked].Cert)
	f.unknown = w("unknown.der", p.Cards[testpki.KindUnknownCA].Cert)
	return f
}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, IO{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestVerifyCertCommand(t *testing.T) {
	f := writeFixture(t)
	cases := []struct {
		cert   string
		crls   []string
		code   int
		reason string
	}{
		{f.valid, []string{f.crl}, ExitOK, "ok"},
		{f.revoked, []string{f.crl}, ExitInvalid, "revoked"},
		{f.unknown, []string{f.crl}, ExitInvalid, "untrusted"},
		{f.valid, nil, ExitInvalid, "crl-unavailable"}, // no usable CRL: not valid
	}
	for _, c := range cases {
		args := []string{"verify", "cert", "--trust", f.root, "--at", at}
		for _, crl := range c.crls {
			args = append(args, "--crl", crl)
		}
		code, out, errs := runMain(t, append(args, c.cert)...)
		var v Verdict
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%s: output is not a JSON verdict: %v\n%s%s", filepath.Base(c.cert), err, out, errs)
		}
		if code != c.code || string(v.Reason) != c.reason || v.Valid != (c.code == ExitOK) {
			t.Errorf("%s: exit %d reason %s valid %v, want exit %d reason %s", filepath.Base(c.cert), code, v.Reason, v.Valid, c.code, c.reason)
		}
		if c.reason == "ok" && (len(v.Path) != 2 || v.CRLNumber == nil || v.CRLAgeS == nil || *v.CRLAgeS != 3600) {
			t.Errorf("valid verdict: path %v, CRL #%v age %v, want leaf+anchor, the CRL, 3600 s", v.Path, v.CRLNumber, v.CRLAgeS)
		}
		// The verdict names no serial number and no subject.
		leaf, _ := x509.ParseCertificate(mustRead(t, c.cert))
		if leaf != nil && (strings.Contains(out, leaf.SerialNumber.String()) || strings.Contains(out, leaf.SerialNumber.Text(16)) || (leaf.Subject.CommonName != "" && strings.Contains(out, leaf.Subject.CommonName))) {
			t.Errorf("%s: verdict carries the serial or the subject: %s", filepath.Base(c.cert), out)
		}
	}
	// Without --at the CRL (current 47 h from pkiTime) is judged now.
	if code, out, _ := runMain(t, "verify", "cert", "--trust", f.root, "--crl", f.crl, f.valid); code != ExitInvalid || !strings.Contains(out, `"reason": "crl-stale"`) {
		t.Errorf("verified today with an old CRL: exit %d, %s", code, out)
	}
	if code, _, errs := runMain(t, "verify", "cert", f.valid); code != ExitError || !strings.Contains(errs, "--trust") {
		t.Errorf("no --trust: exit %d, %q", code, errs)
	}
	if code, _, errs := runMain(t, "frobnicate"); code != ExitError || !strings.Contains(errs, "usage:") {
		t.Errorf("unknown command: exit %d, %q", code, errs)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRLCommands(t *testing.T) {
	f := writeFixture(t)
	index := filepath.Join(f.dir, "index")
	code, out, errs := runMain(t, "crl", "import", "--issuer", f.root, "--index", index, f.crl)
	if code != ExitOK || !strings.Contains(out, "imported: series") {
		t.Fatalf("import: exit %d %q %q", code, out, errs)
	}
	if !strings.Contains(errs, "progress 100%") {
		t.Errorf("no plain progress line off a terminal: %q", errs)
	}
	if code, out, _ := runMain(t, "crl", "import", "--issuer", f.root, "--index", index, f.crl); code != ExitOK || !strings.Contains(out, "already current") {
		t.Errorf("re-import: exit %d %q", code, out)
	}
	// A CRL from another CA is refused with a reason.
	other, _ := testpki.Generate(pkiTime)
	foreign := filepath.Join(f.dir, "foreign.crl")
	os.WriteFile(foreign, other.CRL, 0o600)
	if code, _, errs := runMain(t, "crl", "import", "--issuer", f.root, "--index", index, foreign); code != ExitError || !strings.Contains(errs, "not signed by a given issuer") {
		t.Errorf("foreign CRL: exit %d %q", code, errs)
	}

	code, out, _ = runMain(t, "crl", "inspect", "--issuer", f.root, f.crl)
	var in Inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil || code != ExitOK {
		t.Fatalf("inspect: exit %d %v %s", code, err, out)
	}
	if in.Entries != 1 || in.Reasons["keyCompromise"] != 1 || !strings.HasPrefix(in.Signature, "verified by ") || !in.ThisUpdate.Equal(pkiTime.Add(-time.Hour)) {
		t.Errorf("inspection %+v", in)
	}
	code, out, _ = runMain(t, "crl", "inspect", "--index", index)
	if code != ExitOK || !strings.Contains(out, `"entries": 1`) || !strings.Contains(out, "JPKI-TEST") {
		t.Errorf("inspect --index: exit %d %s", code, out)
	}

	// diff: a newer CRL that lists the valid card too and changes nothing else.
	rl, _ := x509.ParseRevocationList(f.pki.CRL)
	root, _ := x509.ParseCertificate(f.pki.Root)
	valid, _ := x509.ParseCertificate(f.pki.Cards[testpki.KindValid].Cert)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: new(big.Int).Add(rl.Number, big.NewInt(1)), ThisUpdate: pkiTime, NextUpdate: pkiTime.Add(48 * time.Hour),
		RevokedCertificateEntries: append(rl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: valid.SerialNumber, RevocationTime: pkiTime, ReasonCode: 6}),
	}, root, f.pki.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(f.dir, "newer.crl")
	os.WriteFile(newer, der, 0o600)
	code, out, _ = runMain(t, "crl", "diff", f.crl, newer)
	var d Diff
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != ExitOK {
		t.Fatalf("diff: exit %d %v %s", code, err, out)
	}
	if d.Added != 1 || d.Removed != 0 || d.Unchanged != 1 || d.ReasonChanged != 0 || d.Serials != nil {
		t.Errorf("diff %+v, want 1 added, 1 unchanged, no serials listed", d)
	}
	code, out, _ = runMain(t, "crl", "diff", "--serials", newer, f.crl)
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != ExitOK || d.Removed != 1 || len(d.Serials) != 1 || d.Serials[0] != "-"+hex.EncodeToString(valid.SerialNumber.Bytes()) {
		t.Errorf("diff --serials reversed: %+v (serial %x)", d, valid.SerialNumber)
	}
}
