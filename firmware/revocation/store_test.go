package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	mrand "math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/crl"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var keyCache sync.Map

func newCA(t testing.TB, cn string, ku x509.KeyUsage, ecdsaKey bool) *ca {
	t.Helper()
	var key crypto.Signer
	var err error
	if ecdsaKey {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		// RSA keys are slow to make: reuse one per name.
		if k, ok := keyCache.Load(cn); ok {
			key = k.(crypto.Signer)
		} else {
			key, err = rsa.GenerateKey(rand.Reader, 2048)
			keyCache.Store(cn, key)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI-TEST"}, CommonName: "Test CA"},
		NotBefore:             t0.AddDate(-1, 0, 0),
		NotAfter:              t0.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              ku,
		SubjectKeyId:          []byte(cn),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert: c, key: key}
}

type entry struct {
	serial int64
	reason int
	extra  []pkix.Extension
}

type crlOpts struct {
	number      int64
	base        int64 // > 0: delta CRL
	this, next  time.Time
	noNext      bool
	extra       []pkix.Extension
	entries     []entry
	issuerOther *ca // sign with this key but the name of the CA
}

func (c *ca) crl(t testing.TB, o crlOpts) []byte {
	t.Helper()
	if o.this.IsZero() {
		o.this = t0
	}
	if o.next.IsZero() && !o.noNext {
		o.next = o.this.Add(48 * time.Hour)
	}
	tmpl := &x509.RevocationList{
		Number:          big.NewInt(o.number),
		ThisUpdate:      o.this,
		NextUpdate:      o.next,
		ExtraExtensions: o.extra,
	}
	if o.base > 0 {
		v, _ := asn1.Marshal(big.NewInt(o.base))
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: v})
	}
	for _, e := range o.entries {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: big.NewInt(e.serial), RevocationTime: o.this.Add(-time.Hour), ReasonCode: e.reason, ExtraExtensions: e.extra,
		})
	}
	key := c.key
	if o.issuerOther != nil {
		key = o.issuerOther.key
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if o.noNext {
		t.Fatal("x509.CreateRevocationList always writes nextUpdate; build by hand")
	}
	return der
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{MemoryLimit: 1 << 16, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func importBytes(t testing.TB, s *Store, der []byte, signers ...*x509.Certificate) (*Result, error) {
	t.Helper()
	return s.Import(context.Background(), bytes.NewReader(der), signers, nil)
}

func mustImport(t testing.TB, s *Store, der []byte, signers ...*x509.Certificate) *Result {
	t.Helper()
	r, err := importBytes(t, s, der, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// status returns the lookup answer of the only series of c's name.
func status(t testing.TB, s *Store, c *ca, serial int64) (crl.Revocation, bool, *big.Int) {
	t.Helper()
	sn := s.Snapshot()
	defer sn.Release()
	ls := sn.ByIssuer(c.cert.RawSubject)
	if len(ls) != 1 {
		t.Fatalf("%d CRLs for the issuer, want 1", len(ls))
	}
	r, ok, err := ls[0].Lookup(context.Background(), c.cert.RawSubject, big.NewInt(serial))
	if err != nil {
		t.Fatal(err)
	}
	return r, ok, ls[0].Info().Number
}

func TestImportAndLookup(t *testing.T) {
	for _, ec := range []bool{false, true} {
		c := newCA(t, "lookup", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, ec)
		s := openStore(t, t.TempDir())
		der := c.crl(t, crlOpts{number: 7, entries: []entry{{serial: 1001, reason: 1}, {serial: 1002, reason: 6}, {serial: 3, reason: 0}}})
		r := mustImport(t, s, der, c.cert)
		if r.Unchanged || r.Delta || r.Entries != 3 || r.Info.Number.Int64() != 7 {
			t.Fatalf("result %+v", r)
		}
		if rv, ok, _ := status(t, s, c, 1002); !ok || rv.Reason != crl.ReasonCertificateHold || !rv.RevokedAt.Equal(t0.Add(-time.Hour)) {
			t.Errorf("1002: listed %v reason %d at %v, want certificateHold at %v", ok, rv.Reason, rv.RevokedAt, t0.Add(-time.Hour))
		}
		if rv, ok, _ := status(t, s, c, 1001); !ok || rv.Reason != crl.ReasonKeyCompromise {
			t.Errorf("1001: listed %v reason %d, want keyCompromise", ok, rv.Reason)
		}
		for _, n := range []int64{0, 2, 4, 1000, 1003, 1<<40 + 1001} {
			if _, ok, _ := status(t, s, c, n); ok {
				t.Errorf("%d listed, was not in the CRL", n)
			}
		}
		// Another issuer's certificate with the same serial is not listed.
		sn := s.Snapshot()
		l := sn.ByIssuer(c.cert.RawSubject)[0]
		if _, ok, _ := l.Lookup(context.Background(), []byte("other issuer"), big.NewInt(1001)); ok {
			t.Error("serial listed for an issuer the CRL does not cover")
		}
		if !bytes.Equal(l.Signer().Raw, c.cert.Raw) {
			t.Error("signer is not the CA")
		}
		sn.Release()
	}
}

func TestReplayRefusedAcrossRestart(t *testing.T) {
	c := newCA(t, "replay", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	dir := t.TempDir()
	old := c.crl(t, crlOpts{number: 4, entries: []entry{{serial: 9, reason: 1}}})
	cur := c.crl(t, crlOpts{number: 5, this: t0.Add(time.Hour)})
	s := openStore(t, dir)
	mustImport(t, s, old, c.cert)
	mustImport(t, s, cur, c.cert)
	if _, err := importBytes(t, s, old, c.cert); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of #4 after #5: %v, want ErrReplay", err)
	}
	s.Close()

	// Restart, and even with the index deleted: state.json remembers #5.
	s = openStore(t, dir)
	if _, err := importBytes(t, s, old, c.cert); !errors.Is(err, ErrReplay) {
		t.Fatalf("after restart: %v, want ErrReplay", err)
	}
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+indexExt))
	for _, f := range files {
		os.Remove(f)
	}
	s = openStore(t, dir)
	if _, err := importBytes(t, s, old, c.cert); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "already seen 5") {
		t.Fatalf("index deleted: %v, want ErrReplay naming #5", err)
	}
	// The same CRL again is a no-op; the same number with other content a replay.
	mustImport(t, s, cur, c.cert)
	if r := mustImport(t, s, cur, c.cert); !r.Unchanged {
		t.Error("re-import of the current CRL was not Unchanged")
	}
	other := c.crl(t, crlOpts{number: 5, this: t0.Add(2 * time.Hour)})
	if _, err := importBytes(t, s, other, c.cert); !errors.Is(err, ErrReplay) {
		t.Errorf("same number, other content: %v, want ErrReplay", err)
	}
}

func TestDeltaMerge(t *testing.T) {
	c := newCA(t, "delta", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	s := openStore(t, t.TempDir())
	delta11 := c.crl(t, crlOpts{number: 11, base: 10, this: t0.Add(time.Hour),
		entries: []entry{{serial: 20, reason: crl.ReasonRemoveFromCRL}, {serial: 30, reason: 1}}})
	if _, err := importBytes(t, s, delta11, c.cert); !errors.Is(err, ErrNoBase) {
		t.Fatalf("delta without base: %v, want ErrNoBase", err)
	}
	base := c.crl(t, crlOpts{number: 10, entries: []entry{{serial: 10, reason: 1}, {serial: 20, reason: 6}, {serial: 40, reason: 4}}})
	mustImport(t, s, base, c.cert)
	tooNew := c.crl(t, crlOpts{number: 13, base: 12, this: t0.Add(time.Hour), entries: []entry{{serial: 50, reason: 1}}})
	if _, err := importBytes(t, s, tooNew, c.cert); !errors.Is(err, ErrNoBase) {
		t.Fatalf("delta on base #12 with complete #10: %v, want ErrNoBase", err)
	}
	r := mustImport(t, s, delta11, c.cert)
	if !r.Delta || r.Entries != 3 {
		t.Fatalf("delta result %+v, want delta with 3 entries (10, 30, 40)", r)
	}
	want := map[int64]bool{10: true, 20: false, 30: true, 40: true, 50: false}
	check := func(num int64) {
		t.Helper()
		for serial, listed := range want {
			if _, ok, n := status(t, s, c, serial); ok != listed || n.Int64() != num {
				t.Errorf("serial %d: listed %v in #%d, want %v in #%d", serial, ok, n, listed, num)
			}
		}
	}
	check(11)
	sn := s.Snapshot()
	info := sn.ByIssuer(c.cert.RawSubject)[0].Info()
	if info.BaseNumber != nil || !info.ThisUpdate.Equal(t0.Add(time.Hour)) || !info.NextUpdate.Equal(t0.Add(49*time.Hour)) {
		t.Errorf("merged info: base %v this %v next %v, want no base and the delta's window", info.BaseNumber, info.ThisUpdate, info.NextUpdate)
	}
	sn.Release()
	if r := mustImport(t, s, delta11, c.cert); !r.Unchanged {
		t.Error("re-import of the merged delta was not Unchanged")
	}
	// A cumulative delta on the same base: 20 stays removed, 30 is released
	// from the list (removeFromCRL after certificateHold), 50 is added.
	delta12 := c.crl(t, crlOpts{number: 12, base: 10, this: t0.Add(2 * time.Hour),
		entries: []entry{{serial: 20, reason: crl.ReasonRemoveFromCRL}, {serial: 30, reason: crl.ReasonRemoveFromCRL}, {serial: 50, reason: 6}}})
	mustImport(t, s, delta12, c.cert)
	want[30], want[50] = false, true
	check(12)
	if _, err := importBytes(t, s, delta11, c.cert); !errors.Is(err, ErrReplay) {
		t.Errorf("older delta after #12: %v, want ErrReplay", err)
	}
	// A new complete CRL replaces the merged state.
	mustImport(t, s, c.crl(t, crlOpts{number: 14, this: t0.Add(3 * time.Hour), entries: []entry{{serial: 60, reason: 1}}}), c.cert)
	want = map[int64]bool{10: false, 50: false, 60: true}
	check(14)
	// Restart: the merged state is served as it was.
	s2 := openStore(t, s.Dir())
	if _, ok, n := status(t, s2, c, 60); !ok || n.Int64() != 14 {
		t.Errorf("after restart: 60 listed %v in #%v", ok, n)
	}
}

func TestRefusedCRLsChangeNothing(t *testing.T) {
	c := newCA(t, "refuse", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	impostor := newCA(t, "impostor", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	noCRLSign := newCA(t, "refuse", x509.KeyUsageCertSign, false) // same key and name, no cRLSign
	s := openStore(t, t.TempDir())
	mustImport(t, s, c.crl(t, crlOpts{number: 1, entries: []entry{{serial: 5, reason: 1}}}), c.cert)
	unknownCrit := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	certIssuer := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 29}, Value: mustGeneralNamesDirectory(t, c.cert.RawSubject)}
	cases := []struct {
		name string
		der  []byte
		want error
	}{
		{"signed by another key under the same name", c.crl(t, crlOpts{number: 2, issuerOther: impostor}), ErrUntrusted},
		{"unknown critical CRL extension", c.crl(t, crlOpts{number: 2, extra: []pkix.Extension{unknownCrit}}), ErrUnsupported},
		{"unknown critical entry extension", c.crl(t, crlOpts{number: 2, entries: []entry{{serial: 6, extra: []pkix.Extension{unknownCrit}}}}), ErrUnsupported},
		{"removeFromCRL in a complete CRL", c.crl(t, crlOpts{number: 2, entries: []entry{{serial: 5, reason: crl.ReasonRemoveFromCRL}}}), ErrMalformed},
		{"certificateIssuer in a CRL that is not indirect", c.crl(t, crlOpts{number: 2, entries: []entry{{serial: 6, extra: []pkix.Extension{certIssuer}}}}), ErrMalformed},
		{"truncated", c.crl(t, crlOpts{number: 2})[:200], ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importBytes(t, s, tc.der, c.cert)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if _, ok, n := status(t, s, c, 5); !ok || n.Int64() != 1 {
				t.Errorf("after the refusal: 5 listed %v in #%v, want CRL #1 still serving", ok, n)
			}
		})
	}
	if _, err := importBytes(t, s, c.crl(t, crlOpts{number: 3}), noCRLSign.cert); !errors.Is(err, ErrUntrusted) || !errors.Is(err, crl.ErrNoCRLSign) {
		t.Errorf("signer without cRLSign: %v, want ErrUntrusted wrapping crl.ErrNoCRLSign", err)
	}
	if _, err := importBytes(t, s, c.crl(t, crlOpts{number: 3})); !errors.Is(err, ErrUntrusted) {
		t.Errorf("no signers: %v, want ErrUntrusted", err)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir(), ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func mustGeneralNamesDirectory(t testing.TB, name []byte) []byte {
	t.Helper()
	dn := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}
	dnb, err := asn1.Marshal(dn)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: dnb})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestSameNameGenerations: JPKI root generations share one subject name;
// their CRLs are separate series, each bound to its own key.
func TestSameNameGenerations(t *testing.T) {
	g1 := newCA(t, "gen2019", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	g2 := newCA(t, "gen2023", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	if !bytes.Equal(g1.cert.RawSubject, g2.cert.RawSubject) {
		t.Fatal("test CAs should share a name")
	}
	s := openStore(t, t.TempDir())
	mustImport(t, s, g1.crl(t, crlOpts{number: 100, entries: []entry{{serial: 1, reason: 1}}}), g1.cert, g2.cert)
	mustImport(t, s, g2.crl(t, crlOpts{number: 3, entries: []entry{{serial: 2, reason: 1}}}), g1.cert, g2.cert)
	sn := s.Snapshot()
	defer sn.Release()
	ls := sn.ByIssuer(g1.cert.RawSubject)
	if len(ls) != 2 {
		t.Fatalf("%d series, want 2 (a lower number from the other key is no replay)", len(ls))
	}
	for _, l := range ls {
		want := int64(1)
		if bytes.Equal(l.Signer().Raw, g2.cert.Raw) {
			want = 2
		}
		if _, ok, _ := l.Lookup(context.Background(), g1.cert.RawSubject, big.NewInt(want)); !ok {
			t.Errorf("series of signer %x lacks its own entry", l.Signer().SubjectKeyId)
		}
	}
}

func TestCorruptIndexIsSkippedAndReported(t *testing.T) {
	c := newCA(t, "corrupt", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	dir := t.TempDir()
	s := openStore(t, dir)
	r := mustImport(t, s, c.crl(t, crlOpts{number: 1, entries: []entry{{serial: 5, reason: 1}}}), c.cert)
	s.Close()
	b, err := os.ReadFile(r.File)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40
	if err := os.WriteFile(r.File, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	sn := s.Snapshot()
	if n := len(sn.ByIssuer(c.cert.RawSubject)); n != 0 {
		t.Errorf("corrupt index served %d CRLs, want none (fail closed)", n)
	}
	sn.Release()
	st := s.Status()
	if msg := st.Errors[filepath.Base(r.File)]; !strings.Contains(msg, "corrupt") {
		t.Errorf("status errors %v, want the corrupt file named", st.Errors)
	}
	// A fresh import of the same CRL repairs the series.
	mustImport(t, s, c.crl(t, crlOpts{number: 2, entries: []entry{{serial: 5, reason: 1}}}), c.cert)
	if _, ok, n := status(t, s, c, 5); !ok || n.Int64() != 2 {
		t.Errorf("after re-import: listed %v in #%v", ok, n)
	}
}

// TestSwapWhileLooking runs lookups while CRLs are swapped: every snapshot
// answers from exactly one CRL, the one its Info names.
func TestSwapWhileLooking(t *testing.T) {
	c := newCA(t, "swap", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	s := openStore(t, t.TempDir())
	// CRL #n lists exactly serial n.
	mustImport(t, s, c.crl(t, crlOpts{number: 1, entries: []entry{{serial: 1, reason: 1}}}), c.cert)
	const last = 12
	ders := make([][]byte, last+1)
	for n := 2; n <= last; n++ {
		ders[n] = c.crl(t, crlOpts{number: int64(n), this: t0.Add(time.Duration(n) * time.Minute), entries: []entry{{serial: int64(n), reason: 1}}})
	}
	var stop atomic.Bool
	var looks atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				sn := s.Snapshot()
				ls := sn.ByIssuer(c.cert.RawSubject)
				if len(ls) != 1 {
					errc <- errors.New("snapshot without exactly one CRL")
					sn.Release()
					return
				}
				n := ls[0].Info().Number.Int64()
				for k := int64(1); k <= last; k++ {
					_, ok, err := ls[0].Lookup(context.Background(), c.cert.RawSubject, big.NewInt(k))
					if err != nil || ok != (k == n) {
						errc <- errors.New("lookup answered from another CRL than the snapshot's")
						sn.Release()
						return
					}
				}
				sn.Release()
				looks.Add(1)
			}
		}()
	}
	for n := 2; n <= last; n++ {
		mustImport(t, s, ders[n], c.cert)
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if looks.Load() == 0 {
		t.Fatal("no lookup ran during the swaps")
	}
	if _, ok, n := status(t, s, c, last); !ok || n.Int64() != last {
		t.Errorf("final state #%v", n)
	}
}

// TestReloadSeesOtherProcess: kazashictl imports into the daemon's
// directory; the daemon's Reload maps it.
func TestReloadSeesOtherProcess(t *testing.T) {
	c := newCA(t, "reload", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	dir := t.TempDir()
	daemon := openStore(t, dir)
	ctl := openStore(t, dir)
	mustImport(t, ctl, c.crl(t, crlOpts{number: 1, entries: []entry{{serial: 5, reason: 1}}}), c.cert)
	sn := daemon.Snapshot()
	if n := len(sn.ByIssuer(c.cert.RawSubject)); n != 0 {
		t.Fatalf("daemon sees %d CRLs before Reload", n)
	}
	sn.Release()
	if err := daemon.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, n := status(t, daemon, c, 5); !ok || n.Int64() != 1 {
		t.Fatalf("after Reload: listed %v in #%v", ok, n)
	}
	mustImport(t, ctl, c.crl(t, crlOpts{number: 2, this: t0.Add(time.Hour)}), c.cert)
	// The daemon's own replay guard knows #2 through the shared state.
	if _, err := importBytes(t, daemon, c.crl(t, crlOpts{number: 1, this: t0.Add(-time.Hour)}), c.cert); !errors.Is(err, ErrReplay) {
		t.Errorf("daemon import of #1 after ctl imported #2: %v, want ErrReplay", err)
	}
	if err := daemon.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, n := status(t, daemon, c, 5); ok || n.Int64() != 2 {
		t.Errorf("after second Reload: 5 listed %v in #%v, want #2 without it", ok, n)
	}
}

// TestWatch: a configured file is imported once, not parsed again while
// unchanged (also after a restart), re-imported when it changes; a bad
// replacement keeps the old data serving and shows in Status; an inbox
// directory with a delta sorted before its base still ends merged.
func TestWatch(t *testing.T) {
	c := newCA(t, "watch", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	dir := t.TempDir()
	file := filepath.Join(dir, "auth.crl")
	inbox := filepath.Join(dir, "inbox")
	if err := os.Mkdir(inbox, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(path string, der []byte) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", der, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(file, c.crl(t, crlOpts{number: 1, entries: []entry{{serial: 5, reason: 1}}}))
	s := openStore(t, filepath.Join(dir, "store"))
	var imported []int64
	w := &Watch{Store: s, Files: []string{file, inbox}, Signers: []*x509.Certificate{c.cert},
		OnImport: func(_ context.Context, r *Result) { imported = append(imported, r.Info.Number.Int64()) }}
	ctx := context.Background()
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(imported) != 1 || imported[0] != 1 {
		t.Fatalf("imports %v, want [1] (the unchanged file not parsed again)", imported)
	}
	// A restart: the fingerprint file says the CRL is unchanged.
	s.Close()
	s = openStore(t, filepath.Join(dir, "store"))
	w.Store = s
	if err := w.Sync(ctx); err != nil || len(imported) != 1 {
		t.Fatalf("after restart: %v, imports %v", err, imported)
	}
	// A corrupt replacement: refused, #1 keeps serving, Status names it.
	write(file, c.crl(t, crlOpts{number: 2})[:300])
	if err := w.Sync(ctx); !errors.Is(err, ErrMalformed) {
		t.Fatalf("corrupt replacement: %v, want ErrMalformed", err)
	}
	if _, ok, n := status(t, s, c, 5); !ok || n.Int64() != 1 {
		t.Fatalf("after the refusal: listed %v in #%v, want #1", ok, n)
	}
	if msg := s.Status().Errors[file]; !strings.Contains(msg, "malformed") {
		t.Errorf("status errors %v, want auth.crl malformed", s.Status().Errors)
	}
	// A good one: imported, the error cleared.
	write(file, c.crl(t, crlOpts{number: 3, this: t0.Add(time.Hour), entries: []entry{{serial: 6, reason: 1}}}))
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, n := status(t, s, c, 6); !ok || n.Int64() != 3 {
		t.Fatalf("after the good file: listed %v in #%v", ok, n)
	}
	if len(s.Status().Errors) != 0 {
		t.Errorf("errors not cleared: %v", s.Status().Errors)
	}
	// The inbox: "a-delta.crl" sorts before "b-base.crl".
	os.Remove(file)
	w.Files = []string{inbox}
	write(filepath.Join(inbox, "a-delta.crl"), c.crl(t, crlOpts{number: 11, base: 10, this: t0.Add(3 * time.Hour), entries: []entry{{serial: 8, reason: 1}}}))
	write(filepath.Join(inbox, "b-base.crl"), c.crl(t, crlOpts{number: 10, this: t0.Add(2 * time.Hour), entries: []entry{{serial: 7, reason: 1}}}))
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []int64{7, 8} {
		if _, ok, n := status(t, s, c, serial); !ok || n.Int64() != 11 {
			t.Errorf("inbox: %d listed %v in #%v, want listed in the merged #11", serial, ok, n)
		}
	}
}

// TestDeltaMergeRandom checks merges against a map: random bases and
// deltas that add, change reasons and remove, serials of every length.
func TestDeltaMergeRandom(t *testing.T) {
	c := newCA(t, "random", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, true)
	rng := newRand(7)
	for round := range 8 {
		s := openStore(t, t.TempDir())
		model := map[int64]int{}
		var base []entry
		for range 300 {
			serial := rng.Int63n(1 << uint(8+rng.Intn(48)))
			if _, dup := model[serial]; dup {
				continue
			}
			r := []int{1, 3, 4, 6}[rng.Intn(4)] // not 0: x509 writes unspecified as no reasonCode
			model[serial] = r
			base = append(base, entry{serial: serial, reason: r})
		}
		mustImport(t, s, c.crl(t, crlOpts{number: 10, entries: base}), c.cert)
		var delta []entry
		next := map[int64]int{}
		for k, v := range model {
			next[k] = v
		}
		for _, e := range base {
			switch rng.Intn(4) {
			case 0:
				delta = append(delta, entry{serial: e.serial, reason: crl.ReasonRemoveFromCRL})
				delete(next, e.serial)
			case 1:
				delta = append(delta, entry{serial: e.serial, reason: 1})
				next[e.serial] = 1
			}
		}
		for range 100 {
			serial := rng.Int63n(1 << uint(8+rng.Intn(48)))
			if _, in := next[serial]; in {
				continue
			}
			delta = append(delta, entry{serial: serial, reason: 5})
			next[serial] = 5
		}
		r := mustImport(t, s, c.crl(t, crlOpts{number: 11, base: 10, this: t0.Add(time.Hour), entries: delta}), c.cert)
		if r.Entries != int64(len(next)) {
			t.Fatalf("round %d: %d entries after the merge, want %d", round, r.Entries, len(next))
		}
		for serial, reason := range next {
			if rv, ok, _ := status(t, s, c, serial); !ok || rv.Reason != reason {
				t.Fatalf("round %d: serial %d listed %v reason %d, want reason %d", round, serial, ok, rv.Reason, reason)
			}
		}
		for serial := range model {
			if _, in := next[serial]; in {
				continue
			}
			if _, ok, _ := status(t, s, c, serial); ok {
				t.Fatalf("round %d: removed serial %d still listed", round, serial)
			}
		}
	}
}

func newRand(seed int64) *mrand.Rand { return mrand.New(mrand.NewSource(seed)) }

// TestTruncatedUnderTheMapping: an index file cut short while mapped
// (someone truncates it in place) makes lookups fail with an error, never
// a crash and never "not listed".
func TestTruncatedUnderTheMapping(t *testing.T) {
	c := newCA(t, "truncate", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, false)
	s := openStore(t, t.TempDir())
	var entries []entry
	for i := range 20000 {
		entries = append(entries, entry{serial: int64(1e9 + i*7919), reason: 1})
	}
	r := mustImport(t, s, c.crl(t, crlOpts{number: 1, entries: entries}), c.cert)
	if err := s.DropCaches(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(r.File, 4096); err != nil {
		t.Fatal(err)
	}
	sn := s.Snapshot()
	defer sn.Release()
	l := sn.ByIssuer(c.cert.RawSubject)[0]
	_, ok, err := l.Lookup(context.Background(), c.cert.RawSubject, big.NewInt(1e9+19999*7919))
	if err == nil || ok {
		t.Fatalf("lookup in a truncated mapping: listed %v, err %v; want an error", ok, err)
	}
	if !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("error %q does not say the index is unreadable", err)
	}
}
