package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// The SHA-256 fingerprints of the shipped roots, as listed in
// shared/trust/jpki/SOURCES.md (byte-compared across independent sources
// and, second-hand, against J-LIS's published fingerprints).
func TestShippedRoots(t *testing.T) {
	for name, want := range map[string]string{
		JPKIAuth2019: "0D98DE47FC11B7F67126874B7028B6026A803D2638D6EDFE53176953961FADE6",
		JPKIAuth2023: "64114F29620C24ED2631D46476A040E7EE740D956089C00B036A6A8118C322B5",
		JPKISign2019: "79679C33E4CC9319440F1AD120A597FF1844E2EF217063ADB176966FD5E6FBEB",
		JPKISign2023: "D227F6CDE11D35C5252178F106F843D24651944975413B539FA2FB68DBFA365F",
	} {
		c, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c.Raw)
		if fp := strings.ToUpper(hex.EncodeToString(sum[:])); fp != want {
			t.Errorf("%s fingerprint %s, want %s", name, fp, want)
		}
		if !c.IsCA || c.Subject.Organization[0] != "JPKI" {
			t.Errorf("%s: not the JPKI CA: %v", name, c.Subject)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Errorf("%s not self-signed: %v", name, err)
		}
	}
	if _, err := Load("jpki/missing.pem"); err == nil {
		t.Fatal("missing root loaded")
	}
}

// Anchors are per purpose: the authentication set holds only
// authentication roots, the signature set only signature roots, and both
// hold every current generation.
func TestRootsPerPurpose(t *testing.T) {
	auth, err := JPKIAuthRoots()
	if err != nil {
		t.Fatal(err)
	}
	sign, err := JPKISignRoots()
	if err != nil {
		t.Fatal(err)
	}
	if len(auth) != 2 || len(sign) != 2 {
		t.Fatalf("%d auth and %d sign roots, want 2 generations each", len(auth), len(sign))
	}
	years := map[int]bool{}
	for _, c := range auth {
		if !strings.Contains(c.Subject.String(), "JPKI for user authentication") {
			t.Errorf("auth set holds %v", c.Subject)
		}
		years[c.NotBefore.Year()] = true
	}
	for _, c := range sign {
		if !strings.Contains(c.Subject.String(), "JPKI for digital signature") {
			t.Errorf("sign set holds %v", c.Subject)
		}
	}
	if !years[2019] || !years[2023] {
		t.Errorf("auth generations %v, want 2019 and 2023", years)
	}
}

// The CV CA keys: SHA-256 over the raw 256-byte modulus, as in
// shared/trust/mynumber-ap/README.md; production and test never mix.
func TestCVAnchors(t *testing.T) {
	want := map[string]string{
		"5000020/001+A8": "318ab4a79346bbd993d36d31a4d766f02a239f36b10bc323458242130f927a97",
		"5000023/001":    "bb96cc1dc6502005661961f0a45ed843d007c69e3ce167eceb6b1abd5333a932",
		"5000033/001":    "409655d477547d83cbe182385acb1ea83c9828eb6e5b8bba90957c339b5f30f7",
		"6000020/001+A8": "218018727ce0d4955b0b40f468eb131d5e8375ee4a2aa58dabda524b19d29a39",
		"6000023/001":    "df70444dbe6841ec03267c25cf1bd35ff30ef8044da34ff5eedd0719e6f14530",
		"6000033/001":    "690db1b2d7b9994764a81982bc1e4cd76d9e92d0a33a895b2e71a0be8356f1ae",
	}
	for _, test := range []bool{false, true} {
		as, err := CVAnchors(test)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 3 {
			t.Fatalf("test=%v: %d anchors", test, len(as))
		}
		purposes := map[string]bool{}
		for _, a := range as {
			prefix := "5"
			if test {
				prefix = "6"
			}
			if !strings.HasPrefix(a.ID, prefix) || a.Test != test {
				t.Errorf("test=%v returned %s", test, a.ID)
			}
			n := a.Key.N.FillBytes(make([]byte, 256))
			sum := sha256.Sum256(n)
			if got := hex.EncodeToString(sum[:]); got != want[a.ID] {
				t.Errorf("%s modulus hash %s, want %s", a.ID, got, want[a.ID])
			}
			if a.Key.E != 65537 {
				t.Errorf("%s exponent %d", a.ID, a.Key.E)
			}
			purposes[a.Purpose] = true
		}
		if !purposes[PurposeSurface] || !purposes[PurposeSupport] || !purposes[PurposeMF] {
			t.Errorf("purposes %v", purposes)
		}
	}
}

func TestParseRSAPublicKeyPEM(t *testing.T) {
	for _, bad := range []string{"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := ParseRSAPublicKeyPEM([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
