// PKITS 4.4.14/15 use negative serial numbers, which Go's x509 refuses by
// default since Go 1.23; kazashictl opts in the same way (its main.go).
//
//go:debug x509negativeserial=1
package ctl

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/verify"
)

// pkitsDir holds the NIST PKITS revocation subset (public domain; the case
// list from pyhanko-certvalidator, MIT), shared with firmware/verify's tests.
const pkitsDir = "../../testdata/pkits"

// pkitsTime is the validation time the upstream harness uses.
var pkitsTime = time.Date(2022, 5, 1, 0, 0, 0, 0, time.UTC)

type pkitsCase struct {
	Section       string   `json:"section"`
	Name          string   `json:"name"`
	Expected      string   `json:"expected"`
	ErrorClass    string   `json:"error_class"`
	EE            string   `json:"ee"`
	Intermediates []string `json:"intermediates"`
	CRLs          []string `json:"crls"`
	TrustAnchor   string   `json:"trust_anchor"`
}

// pkitsReasons maps the harness's error classes to our reasons. An
// insufficient-revocation-information case whose only covering CRL is
// past its nextUpdate is crl-stale here, which is still "no usable
// revocation information".
var pkitsReasons = map[string][]verify.Reason{
	"":                          {verify.ReasonOK},
	"RevokedError":              {verify.ReasonRevoked},
	"InsufficientRevinfoError":  {verify.ReasonCRLUnavailable, verify.ReasonCRLStale},
	"StaleRevinfoError":         {verify.ReasonCRLStale},
	"PathValidationError":       {verify.ReasonUntrusted},
	"NotYetValidError":          {verify.ReasonNotYetValid},
	"ExpiredError":              {verify.ReasonExpired},
	"InvalidCertificateError":   {verify.ReasonMalformed},
	"PathBuildingError":         {verify.ReasonUntrusted},
	"DisallowedAlgorithmError":  {verify.ReasonUntrusted},
	"InvalidSignatureError":     {verify.ReasonUntrusted},
	"CertificateValidatorError": {verify.ReasonUntrusted},
}

// TestPKITS runs the 76 NIST PKITS revocation cases (sections 4.4, 4.5,
// 4.7.4-5, 4.14, 4.15) through VerifyCert, the code path of `kazashictl
// verify cert`: CRL files imported into a revocation store, then path
// building and RFC 5280 §6.3 checking.
func TestPKITS(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(pkitsDir, "pkits-crl-subset.json"))
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests []pkitsCase `json:"tests"`
	}
	if err := json.Unmarshal(b, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Tests) != 76 {
		t.Fatalf("%d cases, want 76", len(suite.Tests))
	}
	certs := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(pkitsDir, "certs", n))
		}
		return out
	}
	for _, tc := range suite.Tests {
		t.Run(tc.Section+"_"+tc.Name, func(t *testing.T) {
			crls := []string{filepath.Join(pkitsDir, "crls", "TrustAnchorRootCRL.crl")}
			for _, c := range tc.CRLs {
				if p := filepath.Join(pkitsDir, "crls", c); !slices.Contains(crls, p) {
					crls = append(crls, p)
				}
			}
			v, err := VerifyCert(context.Background(), certs(tc.EE)[0], VerifyCertOptions{
				Trust: certs(tc.TrustAnchor), Intermediates: certs(tc.Intermediates...), CRLs: crls, At: pkitsTime,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := pkitsReasons[tc.ErrorClass]
			if want == nil {
				t.Fatalf("unmapped error class %q", tc.ErrorClass)
			}
			if v.Valid != (tc.Expected == "PASS") || !slices.Contains(want, v.Reason) {
				t.Errorf("got valid=%v reason %s (%s), want %s %v; CRL imports: %+v", v.Valid, v.Reason, v.Detail, tc.Expected, want, v.CRLs)
			}
		})
	}
}
