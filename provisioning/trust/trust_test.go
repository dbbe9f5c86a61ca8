package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// The fingerprints J-LIS publishes (first and last bytes as quoted in the
// project's protocol notes) must match the shipped files.
func TestShippedRoots(t *testing.T) {
	for name, want := range map[string][2]string{
		JPKIAuth2023: {"64114F29", "C322B5"},
		JPKISign2023: {"D227F6CD", "DBFA365F"},
	} {
		c, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c.Raw)
		fp := strings.ToUpper(hex.EncodeToString(sum[:]))
		if !strings.HasPrefix(fp, want[0]) || !strings.HasSuffix(fp, want[1]) {
			t.Errorf("%s fingerprint %s", name, fp)
		}
		if !c.IsCA || c.Subject.Organization[0] != "JPKI" {
			t.Errorf("%s: not the JPKI CA: %v", name, c.Subject)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Errorf("%s not self-signed: %v", name, err)
		}
	}
	roots, err := JPKIAuthRoots()
	if err != nil || len(roots) != 1 || !strings.Contains(roots[0].Subject.String(), "user authentication") {
		t.Fatalf("auth roots %v %v", roots, err)
	}
	if _, err := Load("jpki/missing.pem"); err == nil {
		t.Fatal("missing root loaded")
	}
}
