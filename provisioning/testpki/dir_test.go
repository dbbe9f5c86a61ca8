package testpki

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantFiles is the layout of the package documentation, with each file's
// mode.
func wantFiles() map[string]os.FileMode {
	want := map[string]os.FileMode{
		"anchors/jpki-test-auth.pem": 0o644,
		"anchors/jpki-test-sign.pem": 0o644,
		"crl/jpki-test-auth.crl":     0o644,
		"crl/jpki-test-sign.crl":     0o644,
		"cv/surface-6990023.pem":     0o644,
		"cv/support-6990033.pem":     0o644,
	}
	for _, k := range Kinds() {
		files := map[string]os.FileMode{
			"auth-cert.der": 0o644, "auth-ca.der": 0o644, "auth-key.pem": 0o600,
			"sign-cert.der": 0o600, "sign-ca.der": 0o644, "sign-key.pem": 0o600,
			"secrets.json": 0o600, "person.json": 0o600,
		}
		if k != KindClone {
			for name, mode := range map[string]os.FileMode{
				"surface/ef0002.bin": 0o600, "surface/ef0003.bin": 0o644, "surface/ef0004.bin": 0o644,
				"surface/card-key.pem": 0o600,
				"support/ef0001.bin":   0o600, "support/ef0002.bin": 0o600, "support/ef0003.bin": 0o600,
				"support/ef0004.bin": 0o644, "support/ef0007.bin": 0o644, "support/challenge-key.pem": 0o600,
			} {
				files[name] = mode
			}
		}
		for name, mode := range files {
			want["cards/"+k+"/"+name] = mode
		}
	}
	return want
}

func TestWriteLoadDir(t *testing.T) {
	p := generated(t)
	dir := t.TempDir()
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	// Writing twice replaces files in place.
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	got := map[string]os.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		got[filepath.ToSlash(rel)] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := wantFiles()
	for name, mode := range want {
		if m, ok := got[name]; !ok {
			t.Errorf("%s not written", name)
		} else if m != mode {
			t.Errorf("%s: mode %v, want %v", name, m, mode)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected file %s (temporary files must not be left)", name)
		}
	}
	// The exported names agree with the layout.
	for _, a := range p.CVAnchors {
		if _, ok := want[CVAnchorFile(a)]; !ok {
			t.Errorf("CVAnchorFile(%s) = %s, not in the layout", a.IDString, CVAnchorFile(a))
		}
	}
	for _, name := range []string{AnchorFile, CRLFile, SignAnchorFile, SignCRLFile, CVSurfaceFile, CVSupportFile,
		CardFile(KindValid, SurfaceFace), CardFile(KindValid, SupportKey), CardFile(KindClone, CardSecrets)} {
		if _, ok := want[filepath.ToSlash(name)]; !ok {
			t.Errorf("constant path %s is not in the layout", name)
		}
	}

	q, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.Root, p.Root) || !bytes.Equal(q.CRL, p.CRL) || !bytes.Equal(q.SignRoot, p.SignRoot) || !bytes.Equal(q.SignCRL, p.SignCRL) {
		t.Error("roots or CRLs differ after a round trip")
	}
	if q.RootKey != nil || q.SignRootKey != nil || q.CVCAKeys != nil || q.APKeys != nil {
		t.Error("CA private keys were loaded")
	}
	if len(q.CVAnchors) != len(p.CVAnchors) {
		t.Fatalf("%d CV anchors, want %d", len(q.CVAnchors), len(p.CVAnchors))
	}
	for i, a := range p.CVAnchors {
		b := q.CVAnchors[i]
		if a.Purpose != b.Purpose || a.ID != b.ID || a.IDString != b.IDString || !a.Key.Equal(b.Key) {
			t.Errorf("CV anchor %d: %+v, want %+v", i, b, a)
		}
	}
	if len(q.Cards) != len(p.Cards) {
		t.Errorf("%d cards, want %d", len(q.Cards), len(p.Cards))
	}
	for _, k := range Kinds() {
		a, b := p.Cards[k], q.Cards[k]
		if !cardsEqual(a, b) {
			t.Errorf("card %q differs after a round trip", k)
		}
	}
}

func cardsEqual(a, b Card) bool {
	eq := a.Kind == b.Kind && a.Token == b.Token &&
		bytes.Equal(a.Cert, b.Cert) && bytes.Equal(a.CACert, b.CACert) && a.Key.Equal(b.Key) &&
		bytes.Equal(a.SignCert, b.SignCert) && bytes.Equal(a.SignCACert, b.SignCACert) && a.SignKey.Equal(b.SignKey) &&
		a.AuthPIN == b.AuthPIN && a.SignPassword == b.SignPassword && a.SupportPIN == b.SupportPIN &&
		a.CollationB == b.CollationB && a.Person == b.Person &&
		(a.Surface == nil) == (b.Surface == nil) && (a.Support == nil) == (b.Support == nil)
	if !eq {
		return false
	}
	if s, r := a.Surface, b.Surface; s != nil {
		if !bytes.Equal(s.CVCert, r.CVCert) || !bytes.Equal(s.Face, r.Face) || !bytes.Equal(s.Info, r.Info) || !s.CardKey.Equal(r.CardKey) {
			return false
		}
	}
	if s, r := a.Support, b.Support; s != nil {
		if !bytes.Equal(s.CVCert, r.CVCert) || !bytes.Equal(s.Number, r.Number) || !bytes.Equal(s.Basic4, r.Basic4) ||
			!bytes.Equal(s.Integrity, r.Integrity) || !bytes.Equal(s.ChallengeKeyRecord, r.ChallengeKeyRecord) ||
			!s.ChallengeKey.Equal(r.ChallengeKey) {
			return false
		}
	}
	return true
}

func TestLoadDirErrors(t *testing.T) {
	p := generated(t)
	copyFile := func(from, to string) func(dir string) error {
		return func(dir string) error {
			b, err := os.ReadFile(filepath.Join(dir, from))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, to), b, 0o600)
		}
	}
	remove := func(name string) func(dir string) error {
		return func(dir string) error { return os.Remove(filepath.Join(dir, name)) }
	}
	for name, mangle := range map[string]func(dir string) error{
		"missing CRL":      remove(CRLFile),
		"missing sign CRL": remove(SignCRLFile),
		"missing CV key":   remove(CVSupportFile),
		"anchor not PEM": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, AnchorFile), p.Root, 0o644)
		},
		"CV key is a certificate": copyFile(AnchorFile, CVSurfaceFile),
		"key of another card":     copyFile(CardFile(KindExpired, CardAuthKey), CardFile(KindValid, CardAuthKey)),
		"sign key of another card": copyFile(CardFile(KindExpired, CardSignKey),
			CardFile(KindRevoked, CardSignKey)),
		"card key of another card": copyFile(CardFile(KindExpired, SurfaceCardKey),
			CardFile(KindValid, SurfaceCardKey)),
		"challenge key of another card": copyFile(CardFile(KindExpired, SupportKey),
			CardFile(KindUnknownCA, SupportKey)),
		"missing face record":            remove(CardFile(KindValid, SurfaceFace)),
		"missing integrity record":       remove(CardFile(KindExpired, SupportIntegrity)),
		"clone with another certificate": copyFile(CardFile(KindRevoked, CardAuthCert), CardFile(KindClone, CardAuthCert)),
		"secrets not JSON":               copyFile(CardFile(KindValid, CardAuthCert), CardFile(KindValid, CardSecrets)),
		"person with unknown field": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, CardFile(KindValid, CardPerson)), []byte(`{"nickname":"x"}`), 0o600)
		},
		"missing clone": func(dir string) error { return os.RemoveAll(filepath.Join(dir, "cards", KindClone)) },
		"missing surface AP": func(dir string) error {
			return os.RemoveAll(filepath.Join(dir, "cards", KindRevoked, "surface"))
		},
		"clone with an AP": func(dir string) error {
			return os.CopyFS(filepath.Join(dir, "cards", KindClone, "support"), os.DirFS(filepath.Join(dir, "cards", KindValid, "support")))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := p.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := mangle(dir); err != nil {
				t.Fatal(err)
			}
			_, err := LoadDir(dir)
			if !errors.Is(err, ErrLoad) {
				t.Fatalf("LoadDir: %v, want ErrLoad", err)
			}
			// Errors never carry secrets or personal data. The temp dir's
			// random digits may contain a 4-digit PIN by chance: the path
			// is taken out first.
			c := p.Cards[KindValid]
			msg := strings.ReplaceAll(err.Error(), dir, "<dir>")
			for _, s := range []string{c.AuthPIN, c.SignPassword, c.CollationB, c.Person.Name, c.Person.IndividualNumber} {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains card data", err)
				}
			}
		})
	}
}

func TestWriteDirIncomplete(t *testing.T) {
	p := *generated(t)
	p.Cards = maps.Clone(p.Cards)
	delete(p.Cards, KindClone)
	if err := p.WriteDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "clone") {
		t.Errorf("WriteDir without a clone: %v", err)
	}
	p = *generated(t)
	p.CVAnchors = slices.Clone(p.CVAnchors[:1])
	if err := p.WriteDir(t.TempDir()); err == nil {
		t.Error("WriteDir without a support CV anchor succeeded")
	}
}
