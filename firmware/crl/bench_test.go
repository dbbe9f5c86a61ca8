package crl

import (
	"bytes"
	"context"
	"crypto/x509"
	"math/big"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"
)

var (
	bigOnce sync.Once
	bigDER  []byte
)

const bigEntries = 100_000

// bigCRL is a 100k-entry RSA-2048 CRL, 8-byte serials (positive), a mix
// of reasons, generated once per process.
func bigCRL(tb testing.TB) []byte {
	bigOnce.Do(func() {
		r := mrand.New(mrand.NewPCG(7, 8))
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.Add(24 * time.Hour)}
		tmpl.RevokedCertificateEntries = make([]x509.RevocationListEntry, bigEntries)
		reasons := []int{0, 0, 1, 6, 4}
		for i := range tmpl.RevokedCertificateEntries {
			tmpl.RevokedCertificateEntries[i] = x509.RevocationListEntry{
				SerialNumber:   new(big.Int).SetUint64(r.Uint64() >> 1),
				RevocationTime: t0.Add(-time.Duration(r.IntN(1e6)) * time.Second),
				ReasonCode:     reasons[r.IntN(len(reasons))],
			}
		}
		bigDER = mustCRL(tb, testCAs()["rsa"], tmpl)
	})
	return bigDER
}

func BenchmarkParse(b *testing.B) {
	der := bigCRL(b)
	b.SetBytes(int64(len(der)))
	b.ReportAllocs()
	var sum int
	for b.Loop() {
		p, err := Parse(context.Background(), bytes.NewReader(der), func(e *Entry) error {
			sum += len(e.Serial)
			return nil
		})
		if err != nil || p.Entries != bigEntries {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/bigEntries, "ns/entry")
}

func BenchmarkStdlibParse(b *testing.B) {
	der := bigCRL(b)
	b.SetBytes(int64(len(der)))
	b.ReportAllocs()
	for b.Loop() {
		rl, err := x509.ParseRevocationList(der)
		if err != nil || len(rl.RevokedCertificateEntries) != bigEntries {
			b.Fatal(err)
		}
	}
}

// TestAllocsIndependentOfEntries: the steady state allocates nothing per
// entry (UTCTime parsed by hand, serial and issuer buffers reused).
func TestAllocsIndependentOfEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("generates CRLs")
	}
	r := mrand.New(mrand.NewPCG(9, 10))
	count := func(n int) float64 {
		tmpl, _ := randomCRL(r, n)
		tmpl.ExtraExtensions = nil
		der := mustCRL(t, testCAs()["p256"], tmpl)
		return testing.AllocsPerRun(5, func() {
			if _, err := Parse(context.Background(), bytes.NewReader(der), func(*Entry) error { return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := count(10), count(5000)
	t.Logf("allocs: 10 entries %.0f, 5000 entries %.0f", small, large)
	// a few buffer growths (certificateIssuer Names) are allowed, not one per entry
	if large > small+10 {
		t.Errorf("allocations grow with entries: %.0f for 10, %.0f for 5000", small, large)
	}
}
