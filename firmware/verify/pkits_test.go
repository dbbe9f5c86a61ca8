// PKITS 4.4.14 and 4.4.15 use end-entity certificates with negative
// serial numbers, which crypto/x509 refuses unless told otherwise.

//go:debug x509negativeserial=1

package verify_test

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
)

// pkitsCase is one entry of testdata/pkits/pkits-crl-subset.json at the module root (derived
// from pyhanko-certvalidator's NIST PKITS fixture, MIT; see SOURCE).
type pkitsCase struct {
	Section         string   `json:"section"`
	Name            string   `json:"name"`
	Expected        string   `json:"expected"`
	ErrorClass      *string  `json:"error_class"`
	EE              string   `json:"ee"`
	Intermediates   []string `json:"intermediates"`
	CRLs            []string `json:"crls"`
	TrustAnchor     string   `json:"trust_anchor"`
	CheckRevocation bool     `json:"check_revocation"`
}

// pkitsTime is the validation time pyhanko uses for the suite.
var pkitsTime = time.Date(2022, 5, 1, 0, 0, 0, 0, time.UTC)

// pkitsReason maps pyhanko's error classes to reason codes.
var pkitsReason = map[string]verify.Reason{
	"":                         verify.ReasonOK,
	"RevokedError":             verify.ReasonRevoked,
	"InsufficientRevinfoError": verify.ReasonCRLUnavailable,
	"StaleRevinfoError":        verify.ReasonCRLStale,
	"PathValidationError":      verify.ReasonUntrusted,
}

// pkitsException lists the cases whose reason differs from the mapping
// above, and why. Every one still FAILs as expected.
var pkitsException = map[string]struct {
	reason verify.Reason
	why    string
}{
	"4.15.10": {verify.ReasonCRLStale, "the only complete CRL of deltaCRL CA3 (number 1) is past its nextUpdate " +
		"(2010-06-01); the current delta CRL needs base CRL 2 or later, so it cannot be applied: only stale " +
		"revocation information exists, which is crl-stale here (pyhanko: InsufficientRevinfoError)"},
}

func readPKITS(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "pkits", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pkitsCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	c, err := verify.ParseCertificate(readPKITS(t, "certs", name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// TestPKITS runs the 76 revocation cases of NIST PKITS (sections 4.4, 4.5,
// 4.7, 4.14, 4.15) with PurposeAny at the suite's validation time, the
// trust anchor's CRL always present, through the test double of a CRL
// store (firmware/revocation runs the same cases through the real store).
func TestPKITS(t *testing.T) {
	var suite struct {
		Tests []pkitsCase `json:"tests"`
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "pkits", "pkits-crl-subset.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Tests) != 76 {
		t.Fatalf("%d cases, want 76", len(suite.Tests))
	}
	for _, tc := range suite.Tests {
		t.Run(tc.Section+"_"+tc.Name, func(t *testing.T) {
			if !tc.CheckRevocation {
				t.Fatal("case without revocation checking")
			}
			anchor := pkitsCert(t, tc.TrustAnchor)
			pool := []*x509.Certificate{anchor}
			var inter []*x509.Certificate
			for _, n := range tc.Intermediates {
				c := pkitsCert(t, n)
				inter = append(inter, c)
				pool = append(pool, c)
			}
			ders := [][]byte{readPKITS(t, "crls", "TrustAnchorRootCRL.crl")}
			for _, n := range tc.CRLs {
				if n != "TrustAnchorRootCRL.crl" {
					ders = append(ders, readPKITS(t, "crls", n))
				}
			}
			src := newMemSource(t, pool, ders...)
			for _, err := range src.refused() {
				t.Logf("store refused %v", err)
			}
			v, err := verify.New(verify.Options{
				Anchors: []*x509.Certificate{anchor}, Intermediates: inter, Revocation: src,
				Now: clock(pkitsTime), Purpose: verify.PurposeAny,
			})
			if err != nil {
				t.Fatal(err)
			}
			r := v.Verify(t.Context(), readPKITS(t, "certs", tc.EE))
			t.Logf("%s: %s", r.Reason, r.Detail)
			checkInvariants(t, r)

			class := ""
			if tc.ErrorClass != nil {
				class = *tc.ErrorClass
			}
			want, ok := pkitsReason[class]
			if !ok {
				t.Fatalf("unknown error class %q", class)
			}
			if ex, ok := pkitsException[tc.Section]; ok {
				want = ex.reason
			}
			if (tc.Expected == "PASS") != r.OK() {
				t.Errorf("%s, want %s", r.Reason, tc.Expected)
			}
			if r.Reason != want {
				t.Errorf("reason %s, want %s (%s)", r.Reason, want, class)
			}
			if taken, released := src.taken.Load(), src.released.Load(); taken != released {
				t.Errorf("%d snapshots taken, %d released", taken, released)
			}
		})
	}
}
