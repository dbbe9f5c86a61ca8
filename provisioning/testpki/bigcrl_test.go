package testpki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	oidExtIDP   = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidExtDelta = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidExtRC    = asn1.ObjectIdentifier{2, 5, 29, 21}
)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var (
	rsaCAOnce sync.Once
	rsaCA     testCA
	rsaCAErr  error
)

// newCA makes a self-signed CA (keyCertSign|cRLSign, subjectKeyIdentifier).
func newCA(key crypto.Signer) (testCA, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"JP"}, Organization: []string{Organization}, CommonName: "BigCRL test CA"},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return testCA{}, err
	}
	cert, err := x509.ParseCertificate(der)
	return testCA{cert, key}, err
}

func rsaIssuer(tb testing.TB) testCA {
	tb.Helper()
	rsaCAOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			rsaCAErr = err
			return
		}
		rsaCA, rsaCAErr = newCA(key)
	})
	if rsaCAErr != nil {
		tb.Fatal(rsaCAErr)
	}
	return rsaCA
}

var thisUpdate = time.Date(2026, 5, 1, 9, 30, 15, 0, time.UTC)

func baseCRL(ca testCA, n int) BigCRL {
	return BigCRL{
		Issuer: ca.cert, Key: ca.key, Entries: n, Seed: 42,
		Number:     big.NewInt(1234567),
		ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(48 * time.Hour),
	}
}

// idpFor is an issuingDistributionPoint value whose fullName is the
// directoryName dn: SEQUENCE { [0] { [0] { [4] Name } } } (RFC 5280 §5.2.5).
func idpFor(dn []byte) []byte {
	return derTLV(0x30, derTLV(0xA0, derTLV(0xA0, derTLV(0xA4, dn))))
}

type countWriter struct {
	bytes.Buffer
	writes int
}

func (w *countWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

func parseBig(t *testing.T, der []byte, ca testCA) *x509.RevocationList {
	t.Helper()
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := rl.CheckSignatureFrom(ca.cert); err != nil {
		t.Fatalf("CheckSignatureFrom: %v", err)
	}
	return rl
}

func findExt(exts []pkix.Extension, oid asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range exts {
		if e.Id.Equal(oid) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

// checkEntry checks entry got against index i with the given reason.
func checkEntry(t *testing.T, c BigCRL, got x509.RevocationListEntry, i int, reason int, at time.Time) {
	t.Helper()
	if got.SerialNumber.Cmp(c.Serial(i)) != 0 {
		t.Fatalf("index %d: serial differs from Serial(%d)", i, i)
	}
	if !got.RevocationTime.Equal(at) {
		t.Fatalf("index %d: revocationDate %v, want %v", i, got.RevocationTime, at)
	}
	_, has := findExt(got.Extensions, oidExtRC)
	if reason == BigReasonAbsent {
		if has || len(got.Extensions) != 0 {
			t.Fatalf("index %d: extensions %v, want none", i, got.Extensions)
		}
		return
	}
	if !has || got.ReasonCode != reason {
		t.Fatalf("index %d: reason %d (present %v), want %d", i, got.ReasonCode, has, reason)
	}
}

func TestBigCRL(t *testing.T) {
	ca := rsaIssuer(t)
	c := baseCRL(ca, 2000)
	c.IDP = idpFor(ca.cert.RawSubject)
	var w countWriter
	if err := WriteBigCRL(&w, c); err != nil {
		t.Fatal(err)
	}
	size, err := c.Size()
	if err != nil {
		t.Fatal(err)
	}
	if int64(w.Len()) != size {
		t.Fatalf("wrote %d bytes, Size() predicted %d", w.Len(), size)
	}
	rl := parseBig(t, w.Bytes(), ca)
	if !bytes.Equal(rl.RawIssuer, ca.cert.RawSubject) || !bytes.Equal(rl.AuthorityKeyId, ca.cert.SubjectKeyId) {
		t.Fatal("issuer or AKI differ")
	}
	if rl.Number.Cmp(c.Number) != 0 || !rl.ThisUpdate.Equal(c.ThisUpdate) || !rl.NextUpdate.Equal(c.NextUpdate) {
		t.Fatalf("number %v thisUpdate %v nextUpdate %v", rl.Number, rl.ThisUpdate, rl.NextUpdate)
	}
	if rl.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Fatalf("signature algorithm %v", rl.SignatureAlgorithm)
	}
	idp, ok := findExt(rl.Extensions, oidExtIDP)
	if !ok || !idp.Critical || !bytes.Equal(idp.Value, c.IDP) {
		t.Fatalf("IDP %+v", idp)
	}
	if _, ok := findExt(rl.Extensions, oidExtDelta); ok {
		t.Fatal("deltaCRLIndicator in a full CRL")
	}
	if len(rl.RevokedCertificateEntries) != c.Entries {
		t.Fatalf("%d entries", len(rl.RevokedCertificateEntries))
	}
	counts := map[int]int{}
	seen := map[string]bool{}
	for i, e := range rl.RevokedCertificateEntries {
		checkEntry(t, c, e, i, c.Reason(i), c.RevokedAt(i))
		counts[c.Reason(i)]++
		if seen[e.SerialNumber.String()] {
			t.Fatalf("index %d: duplicate serial", i)
		}
		seen[e.SerialNumber.String()] = true
		if at := e.RevocationTime; !at.Before(c.ThisUpdate) || at.Before(c.ThisUpdate.Add(-366*24*time.Hour)) {
			t.Fatalf("index %d: revocationDate %v outside the year before thisUpdate", i, at)
		}
	}
	// The documented mix: i%7==6 hold, else i%3==2 keyCompromise, else i%5==4 cessation.
	want := map[int]int{BigReasonCertificateHold: 285, BigReasonKeyCompromise: 571, BigReasonCessationOfOperation: 229, BigReasonAbsent: 915}
	for r, n := range want {
		if counts[r] != n {
			t.Errorf("reason %d: %d entries, want %d (all: %v)", r, counts[r], n, counts)
		}
	}
	if w.writes > 3 {
		t.Errorf("%d writes for a small CRL: not buffered", w.writes)
	}
}

func TestBigCRLEmptyAndNoNextUpdate(t *testing.T) {
	ca := rsaIssuer(t)
	c := baseCRL(ca, 0)
	c.NextUpdate = time.Time{}
	var buf bytes.Buffer
	if err := WriteBigCRL(&buf, c); err != nil {
		t.Fatal(err)
	}
	if size, _ := c.Size(); size != int64(buf.Len()) {
		t.Fatalf("size %d, wrote %d", size, buf.Len())
	}
	rl := parseBig(t, buf.Bytes(), ca)
	if len(rl.RevokedCertificateEntries) != 0 || !rl.NextUpdate.IsZero() {
		t.Fatalf("%d entries, nextUpdate %v", len(rl.RevokedCertificateEntries), rl.NextUpdate)
	}
}

// TestBigCRLGeneralizedTime: thisUpdate in 2050 makes the revocation dates
// straddle the UTCTime/GeneralizedTime boundary (RFC 5280 §5.1.2.6).
func TestBigCRLGeneralizedTime(t *testing.T) {
	ca := rsaIssuer(t)
	c := baseCRL(ca, 600)
	c.ThisUpdate = time.Date(2050, 3, 1, 0, 0, 1, 0, time.UTC)
	c.NextUpdate = c.ThisUpdate.Add(time.Hour)
	c.SerialBytes = 20
	var buf bytes.Buffer
	if err := WriteBigCRL(&buf, c); err != nil {
		t.Fatal(err)
	}
	if size, _ := c.Size(); size != int64(buf.Len()) {
		t.Fatalf("size %d, wrote %d", size, buf.Len())
	}
	rl := parseBig(t, buf.Bytes(), ca)
	var before, after int
	for i, e := range rl.RevokedCertificateEntries {
		checkEntry(t, c, e, i, c.Reason(i), c.RevokedAt(i))
		if n := len(c.AppendSerial(nil, i)); n != 20 {
			t.Fatalf("serial of %d bytes", n)
		}
		if e.RevocationTime.Year() < 2050 {
			before++
		} else {
			after++
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("dates do not straddle 2050: %d before, %d after", before, after)
	}
	if !rl.ThisUpdate.Equal(c.ThisUpdate) {
		t.Fatalf("thisUpdate %v", rl.ThisUpdate)
	}
}

func TestDeltaCRL(t *testing.T) {
	ca := rsaIssuer(t)
	base := baseCRL(ca, 2000)
	base.IDP = idpFor(ca.cert.RawSubject)
	removed := []int{6, 13, 1999, 0}
	this := thisUpdate.Add(6 * time.Hour)
	var buf bytes.Buffer
	if err := WriteDeltaCRL(&buf, base, big.NewInt(1234568), this, this.Add(24*time.Hour), 50, removed); err != nil {
		t.Fatal(err)
	}
	rl := parseBig(t, buf.Bytes(), ca)
	d, ok := findExt(rl.Extensions, oidExtDelta)
	if !ok || !d.Critical {
		t.Fatalf("deltaCRLIndicator %+v", d)
	}
	var baseNumber *big.Int
	if rest, err := asn1.Unmarshal(d.Value, &baseNumber); err != nil || len(rest) != 0 || baseNumber.Cmp(base.Number) != 0 {
		t.Fatalf("BaseCRLNumber %v, %v", baseNumber, err)
	}
	if idp, ok := findExt(rl.Extensions, oidExtIDP); !ok || !bytes.Equal(idp.Value, base.IDP) {
		t.Fatal("delta lost the base's IDP")
	}
	if rl.Number.Int64() != 1234568 || !rl.ThisUpdate.Equal(this) {
		t.Fatalf("number %v thisUpdate %v", rl.Number, rl.ThisUpdate)
	}
	if got := len(rl.RevokedCertificateEntries); got != len(removed)+50 {
		t.Fatalf("%d entries", got)
	}
	for k, i := range removed {
		checkEntry(t, base, rl.RevokedCertificateEntries[k], i, BigReasonRemoveFromCRL, base.RevokedAt(i))
	}
	added := base
	added.ThisUpdate = this
	for k := range 50 {
		i := 2000 + k
		checkEntry(t, base, rl.RevokedCertificateEntries[len(removed)+k], i, base.Reason(i), added.RevokedAt(i))
	}

	// A second delta on the same base with nothing added.
	buf.Reset()
	if err := WriteDeltaCRL(&buf, base, big.NewInt(1234569), this, time.Time{}, 0, []int{5}); err != nil {
		t.Fatal(err)
	}
	rl = parseBig(t, buf.Bytes(), ca)
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].ReasonCode != BigReasonRemoveFromCRL {
		t.Fatalf("%+v", rl.RevokedCertificateEntries)
	}
}

func TestBigCRLECDSA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := newCA(key)
	if err != nil {
		t.Fatal(err)
	}
	c := baseCRL(ca, 700)
	var buf bytes.Buffer
	if err := WriteBigCRL(&buf, c); err != nil {
		t.Fatal(err)
	}
	rl := parseBig(t, buf.Bytes(), ca)
	if rl.SignatureAlgorithm != x509.ECDSAWithSHA256 || len(rl.RevokedCertificateEntries) != 700 {
		t.Fatalf("%v, %d entries", rl.SignatureAlgorithm, len(rl.RevokedCertificateEntries))
	}
	for i, e := range rl.RevokedCertificateEntries {
		checkEntry(t, c, e, i, c.Reason(i), c.RevokedAt(i))
	}
	if _, err := c.Size(); err == nil {
		t.Fatal("Size with an ECDSA key succeeded")
	}
}

func TestBigCRLErrors(t *testing.T) {
	ca := rsaIssuer(t)
	for name, mod := range map[string]func(*BigCRL){
		"no number":         func(c *BigCRL) { c.Number = nil },
		"negative number":   func(c *BigCRL) { c.Number = big.NewInt(-1) },
		"no issuer":         func(c *BigCRL) { c.Issuer = nil },
		"no thisUpdate":     func(c *BigCRL) { c.ThisUpdate = time.Time{} },
		"serial too short":  func(c *BigCRL) { c.SerialBytes = 7 },
		"serial too long":   func(c *BigCRL) { c.SerialBytes = 21 },
		"remove in full":    func(c *BigCRL) { c.Remove = []int{1} },
		"remove also added": func(c *BigCRL) { c.Delta = big.NewInt(1); c.Remove = []int{3} },
		"remove twice":      func(c *BigCRL) { c.Delta = big.NewInt(1); c.First = 10; c.Remove = []int{3, 3} },
		"negative entries":  func(c *BigCRL) { c.Entries = -1 },
		"year 10000":        func(c *BigCRL) { c.NextUpdate = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		c := baseCRL(ca, 10)
		mod(&c)
		if err := WriteBigCRL(io.Discard, c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := WriteDeltaCRL(io.Discard, baseCRL(ca, 10), big.NewInt(2), thisUpdate, time.Time{}, 1, []int{10}); err == nil {
		t.Error("delta removing an index outside the base: no error")
	}
}

func TestSerialsUniqueAndFixedLength(t *testing.T) {
	c := BigCRL{Seed: -7}
	const n = 1 << 20
	seen := make(map[uint64]struct{}, n)
	var buf []byte
	for i := range n {
		buf = c.AppendSerial(buf[:0], i)
		if len(buf) != 8 || buf[0] == 0 || buf[0] >= 0x80 {
			t.Fatalf("index %d: serial %x", i, buf)
		}
		v := uint64(0)
		for _, b := range buf {
			v = v<<8 | uint64(b)
		}
		if _, dup := seen[v]; dup {
			t.Fatalf("index %d: duplicate serial", i)
		}
		seen[v] = struct{}{}
	}
	// A different seed gives a different sequence; the same seed the same.
	if c.Serial(1).Cmp((BigCRL{Seed: 8}).Serial(1)) == 0 || c.Serial(1).Cmp((BigCRL{Seed: -7}).Serial(1)) != 0 {
		t.Fatal("serials do not follow the seed")
	}
	// The permutation is a bijection: its inverse undoes it.
	k := c.keys()
	for _, i := range []uint64{0, 1, 12345, 1<<56 - 1, 0xABCDEF0123456} {
		if got := invPerm(&k, k.perm(i)); got != i {
			t.Fatalf("perm not invertible at %d: %d", i, got)
		}
	}
}

// invPerm inverts bigKeys.perm (run the Feistel rounds backwards).
func invPerm(k *bigKeys, v uint64) uint64 {
	const mask = 1<<28 - 1
	l, r := v>>28&mask, v&mask
	for j := len(k.round) - 1; j >= 0; j-- {
		l, r = r^(bigMix(l^k.round[j])&mask), l
	}
	return l<<28 | r
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 12, 34, 56, 0, time.UTC),
		time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 3, 1, 1, 2, 3, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC),
	} {
		got := appendTime(nil, tm.Unix())
		if len(got) != timeLen(tm.Unix()) {
			t.Fatalf("%v: %d bytes, timeLen %d", tm, len(got), timeLen(tm.Unix()))
		}
		var parsed time.Time
		rest, err := asn1.Unmarshal(got, &parsed)
		if tm.Year() < 1950 || tm.Year() >= 2050 {
			if got[0] != 0x18 || string(got[2:]) != tm.Format("20060102150405Z") {
				t.Fatalf("%v: %q", tm, got)
			}
		} else if got[0] != 0x17 || string(got[2:]) != tm.Format("060102150405Z") {
			t.Fatalf("%v: %q", tm, got)
		}
		if err != nil || len(rest) != 0 || !parsed.Equal(tm) {
			t.Fatalf("%v: parsed %v, %v", tm, parsed, err)
		}
	}
	// civilFromDays against the time package over a wide range.
	for d := int64(-800000); d < 3000000; d += 997 {
		y, m, dd := civilFromDays(d)
		ty, tm, td := time.Unix(d*86400, 0).UTC().Date()
		if y != ty || m != int(tm) || dd != td {
			t.Fatalf("day %d: %d-%d-%d, want %d-%d-%d", d, y, m, dd, ty, tm, td)
		}
	}
}

// TestBigCRLConstantMemory: writing 20× more entries allocates no more
// (entries are never held).
func TestBigCRLConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ca := rsaIssuer(t)
	alloc := func(n int) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := WriteBigCRL(io.Discard, baseCRL(ca, n)); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(10000), alloc(200000)
	if large > small+64<<10 || large > 1<<20 {
		t.Fatalf("allocated %d bytes for 10k entries, %d for 200k", small, large)
	}
}

// BenchmarkWriteBigCRL1M writes a 1M-entry RSA-2048 CRL (hashing and
// signing included) to io.Discard; MB/s is of the DER output.
//
//	go test -run - -bench WriteBigCRL1M -benchmem ./provisioning/testpki/
func BenchmarkWriteBigCRL1M(b *testing.B) {
	ca := rsaIssuer(b)
	c := baseCRL(ca, 1_000_000)
	size, err := c.Size()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteBigCRL(io.Discard, c); err != nil {
			b.Fatal(err)
		}
	}
}
