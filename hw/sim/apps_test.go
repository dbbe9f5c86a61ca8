package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

const (
	selectSurface = "00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 02"
	selectSupport = "00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08"
)

// testCard returns a testpki card of kind and its fresh virtual card (its
// own retry counters).
func testCard(t *testing.T, kind string) (testpki.Card, *JPKICard) {
	t.Helper()
	pki, err := testpki.Shared()
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := pki.Cards[kind]
	if !ok {
		t.Fatalf("test PKI has no %q card", kind)
	}
	c, err := FromTestPKI(tc)
	if err != nil {
		t.Fatal(err)
	}
	return tc, c
}

// verifyAPDU is VERIFY 00 20 00 80 with an ASCII value.
func verifyAPDU(secret string) string {
	return fmt.Sprintf("00 20 00 80 %02X %s", len(secret), spaced([]byte(secret)))
}

// wrongLike returns a value of the same format as s that differs from it.
func wrongLike(s string) string {
	b := []byte(s)
	if b[len(b)-1] == '0' {
		b[len(b)-1] = '1'
	} else {
		b[len(b)-1] = '0'
	}
	return string(b)
}

// transmit sends one APDU and returns the answer.
func transmit(t *testing.T, c Target, apdu []byte) []byte {
	t.Helper()
	resp, err := c.Transmit(context.Background(), apdu)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readAll reads the current EF in 256-byte steps up to 6B00/6282.
func readAll(t *testing.T, c Target) []byte {
	t.Helper()
	var out []byte
	for off := 0; off < 0x8000; off += 256 {
		resp := transmit(t, c, []byte{0x00, 0xB0, byte(off >> 8), byte(off), 0x00})
		n := len(resp) - 2
		switch swc := resp[n:]; {
		case bytes.Equal(swc, h("90 00")):
			out = append(out, resp[:n]...)
		case bytes.Equal(swc, h("62 82")):
			return append(out, resp[:n]...)
		case bytes.Equal(swc, h("6B 00")):
			return out
		default:
			t.Fatalf("READ BINARY at %d: SW % X", off, swc)
		}
	}
	return out
}

// signAPDU builds 80 2A 00 <p2> Lc DigestInfo(SHA-256(msg)) 00.
func signAPDU(p2 byte, msg []byte) ([]byte, []byte) {
	digest := sha256.Sum256(msg)
	di := append(h("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"), digest[:]...)
	apdu := append([]byte{0x80, 0x2A, 0x00, p2, byte(len(di))}, di...)
	return append(apdu, 0x00), digest[:]
}

// checkSignature checks a 258-byte signature answer against pub.
func checkSignature(t *testing.T, resp []byte, pub *rsa.PublicKey, digest []byte) {
	t.Helper()
	if len(resp) != 258 || !bytes.Equal(resp[256:], h("90 00")) {
		t.Fatalf("signature answer of %d bytes, SW % X", len(resp), resp[len(resp)-2:])
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, resp[:256]); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

// TestJPKISignKey: EF 001A signs after VERIFY 001B, and the signature
// verifies with the signature certificate's key (doc §2.1, §2.2).
func TestJPKISignKey(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	apdu, digest := signAPDU(0x80, []byte("document"))
	apduSeq(t, c, [][2]string{
		{selectJPKI, "90 00"},
		{"00 A4 02 0C 02 00 08", "90 00"}, {"00 B0 00 00 03", "8F 8F 00 90 00"},
		{"00 A4 02 0C 02 00 1A", "90 00"},
		{hex.EncodeToString(apdu), "69 82"},
		{"00 A4 02 0C 02 00 18", "90 00"}, {verifyAPDU(tc.AuthPIN), "90 00"},
		{"00 A4 02 0C 02 00 1A", "90 00"},
		{hex.EncodeToString(apdu), "69 82"}, // the auth PIN does not open the signature key
		{"00 A4 02 0C 02 00 1B", "90 00"}, {verifyAPDU(tc.SignPassword), "90 00"},
		{"00 A4 02 0C 02 00 1A", "90 00"},
	})
	cert, err := x509.ParseCertificate(tc.SignCert)
	if err != nil {
		t.Fatal(err)
	}
	checkSignature(t, transmit(t, c, apdu), cert.PublicKey.(*rsa.PublicKey), digest)
	// By SFI (80 2A 00 9A), without selecting the key EF (doc §2.2).
	apduSeq(t, c, [][2]string{{"00 A4 02 0C 02 00 06", "90 00"}})
	sfi, digest := signAPDU(0x9A, []byte("other"))
	checkSignature(t, transmit(t, c, sfi), cert.PublicKey.(*rsa.PublicKey), digest)
	if c.WTX(apdu) != 1 {
		t.Error("no WTX before signing")
	}
}

// TestJPKISignCertNeedsPassword: EF 0001 answers 6982 until VERIFY 001B
// (doc §2.1), then the signature certificate.
func TestJPKISignCertNeedsPassword(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	apduSeq(t, c, [][2]string{
		{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 01", "90 00"}, {"00 B0 00 00 04", "69 82"},
		{"00 A4 02 0C 02 00 1B", "90 00"}, {verifyAPDU(wrongLike(tc.SignPassword)), "63 C4"},
		{"00 A4 02 0C 02 00 01", "90 00"}, {"00 B0 00 00 04", "69 82"},
		{"00 20 00 9B " + verifyAPDU(tc.SignPassword)[12:], "90 00"}, // by SFI, no SELECT
		{"00 B0 00 00 04", spaced(tc.SignCert[:4]) + "90 00"},
	})
	if got := readAll(t, c); !bytes.Equal(got, tc.SignCert) {
		t.Fatalf("EF 0001: %d bytes, want the %d-byte signature certificate", len(got), len(tc.SignCert))
	}
	if n := c.Tries(JPKISignPassword); n != 5 {
		t.Fatalf("tries after the right password = %d, want 5 (reset)", n)
	}
}

// TestSurfaceCollationB: B's counter (10 tries), reset by the right value,
// exhausted with 63 C0 then 69 84 (doc §2.3, §4.1).
func TestSurfaceCollationB(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	wrong := wrongLike(tc.CollationB)
	apduSeq(t, c, [][2]string{
		{selectSurface, "90 00"},
		{"00 A4 02 0C 02 00 02", "90 00"}, {"00 B0 00 00 10", "69 82"},
		{"00 A4 02 0C 02 00 12", "90 00"},
		{"00 20 00 80", "63 CA"},
		{verifyAPDU(wrong), "63 C9"},
		{"00 20 00 80", "63 C9"}, // the query changes nothing
		{"00 20 00 80", "63 C9"},
		{verifyAPDU("5502172035"), "63 C8"}, // malformed counts as wrong
		{verifyAPDU(tc.CollationB), "90 00"},
		{"00 20 00 80", "63 CA"}, // reset to the maximum
		{"00 A4 02 0C 02 00 02", "90 00"},
		{"00 B0 00 00 04", spaced(tc.Surface.Face[:4]) + "90 00"},
		{"00 A4 02 0C 02 00 12", "90 00"},
	})
	for i := 9; i >= 0; i-- {
		apduSeq(t, c, [][2]string{{verifyAPDU(wrong), fmt.Sprintf("63 C%X", i)}})
	}
	apduSeq(t, c, [][2]string{
		{verifyAPDU(tc.CollationB), "69 84"}, // blocked: even the right value fails
		{verifyAPDU(wrong), "69 84"},
		{"00 20 00 80", "63 C0"},
		{"00 A4 02 0C 02 00 02", "90 00"}, {"00 B0 00 00 10", "69 82"},
	})
	if n := c.TriesOf(APSurface, SurfaceCollationB); n != 0 {
		t.Fatalf("TriesOf(surface, 0012) = %d, want 0", n)
	}
	c.PowerOn()
	apduSeq(t, c, [][2]string{{selectSurface, "90 00"}, {"00 A4 02 0C 02 00 12", "90 00"}, {"00 20 00 80", "63 C0"}})
}

// TestSurfaceFiles: the free EFs, READ BINARY ends, SELECT EF errors, and
// a card-face record read after B equal to the testpki file.
func TestSurfaceFiles(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	s := tc.Surface
	apduSeq(t, c, [][2]string{
		{selectSurface, "90 00"},
		{"00 A4 02 0C 02 00 04", "90 00"}, {"00 B0 00 00 04", spaced(s.CVCert[:4]) + "90 00"},
		{fmt.Sprintf("00 B0 %02X %02X 00", len(s.CVCert)>>8, len(s.CVCert)&0xFF), "6B 00"},
		{"00 A4 02 0C 02 00 03", "90 00"}, {"00 B0 00 00 02", spaced(s.Info[:2]) + "90 00"},
		{"00 A4 02 0C 02 00 0A", "6A 82"},                           // the JPKI AP's EFs are not here
		{"00 A4 02 0C 02 00 13", "6A 82"},                           // collation number A is not modelled
		{"00 A4 02 0C 02 00 11", "90 00"}, {"00 20 00 80", "63 C3"}, // birth-date key
		{"00 A4 02 0C 02 00 12", "90 00"}, {"00 B0 00 00 01", "69 81"},
		{verifyAPDU(tc.CollationB), "90 00"},
		{"00 A4 02 0C 02 00 02", "90 00"},
	})
	if got := readAll(t, c); !bytes.Equal(got, s.Face) {
		t.Fatalf("EF 0002: %d bytes, want the %d-byte card-face record", len(got), len(s.Face))
	}
	// The last chunk: short read with 6282.
	last := len(s.Face) - 3
	want := spaced(s.Face[last:]) + "62 82"
	apduSeq(t, c, [][2]string{{fmt.Sprintf("00 B0 %02X %02X 10", last>>8, last&0xFF), want}})
	// 0003 and 0004 need nothing, even right after a fresh selection.
	apduSeq(t, c, [][2]string{
		{selectSurface, "90 00"}, {"00 A4 02 0C 02 00 03", "90 00"}, {"00 B0 00 00 01", spaced(s.Info[:1]) + "90 00"},
	})
}

// TestSecurityClearedOnReselect: SELECT by DF name, of the same AP or
// another, clears the verified state (doc §2.4); SELECT EF does not.
func TestSecurityClearedOnReselect(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	verifyB := [][2]string{{selectSurface, "90 00"}, {"00 A4 02 0C 02 00 12", "90 00"}, {verifyAPDU(tc.CollationB), "90 00"}}
	readFace := [][2]string{{"00 A4 02 0C 02 00 02", "90 00"}, {"00 B0 00 00 01", spaced(tc.Surface.Face[:1]) + "90 00"}}
	denied := [][2]string{{"00 A4 02 0C 02 00 02", "90 00"}, {"00 B0 00 00 01", "69 82"}}

	apduSeq(t, c, verifyB)
	apduSeq(t, c, readFace)
	apduSeq(t, c, [][2]string{{"00 A4 02 0C 02 00 04", "90 00"}}) // SELECT EF keeps it
	apduSeq(t, c, readFace)
	apduSeq(t, c, [][2]string{{"00 A4 00 00", "90 00"}}) // 00 A4 00 00 changes nothing once an AP is selected
	apduSeq(t, c, readFace)
	apduSeq(t, c, [][2]string{{selectSurface, "90 00"}}) // the same AP again
	apduSeq(t, c, denied)

	apduSeq(t, c, verifyB)
	apduSeq(t, c, [][2]string{{selectJPKI, "90 00"}, {selectSurface, "90 00"}}) // another AP and back
	apduSeq(t, c, denied)

	apduSeq(t, c, verifyB)
	apduSeq(t, c, [][2]string{{"00 A4 04 0C 05 D3 92 10 00 31", "6A 82"}, {selectSurface, "90 00"}}) // a failed SELECT too
	apduSeq(t, c, denied)

	// JPKI: VERIFY 0018, select the AP again, sign → 6982.
	sign, _ := signAPDU(0x80, []byte("nonce"))
	apduSeq(t, c, [][2]string{
		{selectJPKI, "90 00"}, {selectPIN, "90 00"}, {verifyAPDU(tc.AuthPIN), "90 00"},
		{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 17", "90 00"}, {hex.EncodeToString(sign), "69 82"},
	})
}

// TestSecurityClearedOnPowerOn: power-off loses the verified state and the
// selection, not the counters (doc §2.4).
func TestSecurityClearedOnPowerOn(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	apduSeq(t, c, [][2]string{
		{selectSurface, "90 00"}, {"00 A4 02 0C 02 00 12", "90 00"},
		{verifyAPDU(wrongLike(tc.CollationB)), "63 C9"},
		{verifyAPDU(tc.CollationB), "90 00"},
		{verifyAPDU(wrongLike(tc.CollationB)), "63 C9"},
		{verifyAPDU(tc.CollationB), "90 00"},
	})
	c.PowerOn()
	apduSeq(t, c, [][2]string{
		{"00 A4 02 0C 02 00 02", "6A 82"}, // nothing selected
		{selectSurface, "90 00"},
		{"00 A4 02 0C 02 00 02", "90 00"}, {"00 B0 00 00 01", "69 82"},
	})
	apduSeq(t, c, [][2]string{{"00 A4 02 0C 02 00 12", "90 00"}, {verifyAPDU(wrongLike(tc.CollationB)), "63 C9"}})
	c.PowerOn()
	if n := c.TriesOf(APSurface, SurfaceCollationB); n != 9 {
		t.Fatalf("tries after power-on = %d, want 9 (non-volatile)", n)
	}
}

// TestSurfaceChallenge: GET CHALLENGE, and 80 2A 00 00 signing with the
// card key (DF24) only after B in the current selection (doc §4.5).
func TestSurfaceChallenge(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	apdu, digest := signAPDU(0x00, []byte("kiosk nonce"))
	apduSeq(t, c, [][2]string{
		{selectSurface, "90 00"},
		{hex.EncodeToString(apdu), "69 82"}, // not without B
		{"00 A4 02 0C 02 00 12", "90 00"}, {verifyAPDU(tc.CollationB), "90 00"},
		{"80 2A 00 80 03 01 02 03 00", "6A 86"},
		{"80 2A 01 00 03 01 02 03 00", "6A 86"},
		{"80 2A 00 00 00", "67 00"},
		{"00 88 00 00 03 01 02 03 00", "69 85"},
		{"80 AE 00 00 01 00", "66 F1"},
		{"00 84 00 01 10", "6A 86"},
		{"00 84 00 00 00 00 10", "69 85"}, // extended Le
	})
	a := transmit(t, c, h("00 84 00 00 10"))
	b := transmit(t, c, h("00 84 00 00 10"))
	if len(a) != 18 || !bytes.Equal(a[16:], h("90 00")) || bytes.Equal(a, b) {
		t.Fatalf("GET CHALLENGE: % X then % X", a, b)
	}
	if r := transmit(t, c, h("00 84 00 00 00")); len(r) != 258 {
		t.Fatalf("GET CHALLENGE Le 00: %d bytes", len(r))
	}
	checkSignature(t, transmit(t, c, apdu), &tc.Surface.CardKey.PublicKey, digest)
	if c.WTX(apdu) != 1 {
		t.Error("no WTX before signing")
	}
	// The card key is not the auth key.
	resp := transmit(t, c, apdu)
	if rsa.VerifyPKCS1v15(&tc.Key.PublicKey, crypto.SHA256, digest, resp[:256]) == nil {
		t.Fatal("the surface AP signed with the JPKI auth key")
	}
	apduSeq(t, c, [][2]string{{selectSurface, "90 00"}, {hex.EncodeToString(apdu), "69 82"}})
	apduSeq(t, c, [][2]string{{selectJPKI, "90 00"}, {"00 84 00 00 10", "6D 00"}, {"00 88 00 00 03 01 02 03 00", "69 82"}})
}

// TestSupportAP: PIN and B access rules, the blocked 0012, challenge
// signing (doc §3.1, §3.2).
func TestSupportAP(t *testing.T) {
	tc, c := testCard(t, testpki.KindValid)
	s := tc.Support
	var steps [][2]string
	steps = append(steps, [2]string{selectSupport, "90 00"})
	for _, fid := range []string{"00 01", "00 02", "00 03", "00 07"} {
		steps = append(steps, [2]string{"00 A4 02 0C 02 " + fid, "90 00"}, [2]string{"00 B0 00 00 04", "69 82"})
	}
	apdu, digest := signAPDU(0x00, []byte("nonce"))
	steps = append(steps,
		[2]string{hex.EncodeToString(apdu), "69 82"},
		[2]string{"00 A4 02 0C 02 00 04", "90 00"}, [2]string{"00 B0 00 00 04", spaced(s.CVCert[:4]) + "90 00"},
		[2]string{"00 A4 02 0C 02 00 12", "90 00"}, [2]string{"00 20 00 80", "63 C0"},
		[2]string{verifyAPDU("1234"), "69 84"}, [2]string{"00 20 00 80", "63 C0"},
		// B opens 0002 and 0007, not 0001 or 0003.
		[2]string{"00 A4 02 0C 02 00 15", "90 00"}, [2]string{"00 20 00 80", "63 CA"},
		[2]string{verifyAPDU(tc.CollationB), "90 00"},
		[2]string{"00 A4 02 0C 02 00 01", "90 00"}, [2]string{"00 B0 00 00 04", "69 82"},
		[2]string{"00 A4 02 0C 02 00 03", "90 00"}, [2]string{"00 B0 00 00 04", "69 82"},
		[2]string{"00 A4 02 0C 02 00 02", "90 00"}, [2]string{"00 B0 00 00 04", spaced(s.Basic4[:4]) + "90 00"},
		[2]string{"00 A4 02 0C 02 00 07", "90 00"}, [2]string{"00 B0 00 00 04", spaced(s.ChallengeKeyRecord[:4]) + "90 00"},
	)
	apduSeq(t, c, steps)
	checkSignature(t, transmit(t, c, apdu), &s.ChallengeKey.PublicKey, digest)

	// The PIN: wrong decrements, right opens 0001–0003 and signing.
	apduSeq(t, c, [][2]string{
		{selectSupport, "90 00"}, {"00 A4 02 0C 02 00 11", "90 00"},
		{"00 20 00 80", "63 C3"},
		{verifyAPDU(wrongLike(tc.SupportPIN)), "63 C2"},
		{verifyAPDU(tc.SupportPIN), "90 00"},
		{"00 20 00 80", "63 C3"},
		{"00 A4 02 0C 02 00 01", "90 00"},
	})
	if got := readAll(t, c); !bytes.Equal(got, s.Number) {
		t.Fatalf("EF 0001 = %d bytes, want the %d-byte number file", len(got), len(s.Number))
	}
	apduSeq(t, c, [][2]string{{"00 A4 02 0C 02 00 03", "90 00"}})
	if got := readAll(t, c); !bytes.Equal(got, s.Integrity) {
		t.Fatalf("EF 0003 = %d bytes, want %d", len(got), len(s.Integrity))
	}
	checkSignature(t, transmit(t, c, apdu), &s.ChallengeKey.PublicKey, digest)
	// The support PIN does not cross into the surface AP, nor B.
	apduSeq(t, c, [][2]string{{selectSurface, "90 00"}, {"00 A4 02 0C 02 00 02", "90 00"}, {"00 B0 00 00 01", "69 82"}})
	if n := c.TriesOf(APSupport, SupportPIN); n != 3 {
		t.Fatalf("support PIN tries %d, want 3", n)
	}
	if n := c.TriesOf(APSupport, SupportBlocked); n != 0 {
		t.Fatalf("support 0012 tries %d, want 0", n)
	}
}

// TestSupportPINExhausted: 3 wrong PINs block the input support AP's PIN:
// 63 C2, 63 C1, 63 C0, then 69 84.
func TestSupportPINExhausted(t *testing.T) {
	tc, c := testCard(t, testpki.KindExpired)
	w := verifyAPDU(wrongLike(tc.SupportPIN))
	apduSeq(t, c, [][2]string{
		{selectSupport, "90 00"}, {"00 20 00 91 " + w[12:], "63 C2"}, // by SFI
		{"00 A4 02 0C 02 00 11", "90 00"},
		{w, "63 C1"}, {w, "63 C0"}, {w, "69 84"}, {verifyAPDU(tc.SupportPIN), "69 84"}, {"00 20 00 80", "63 C0"},
	})
}

// TestClone: the clone has the JPKI AP only (issue 5).
func TestClone(t *testing.T) {
	tc, c := testCard(t, testpki.KindClone)
	apduSeq(t, c, [][2]string{
		{selectSurface, "6A 82"}, {"00 A4 02 0C 02 00 12", "6A 82"},
		{selectSupport, "6A 82"}, {"00 A4 02 0C 02 00 11", "6A 82"},
		{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"00 B0 00 00 04", spaced(tc.Cert[:4]) + "90 00"},
	})
	if c.HasApplication(APSurface) || c.HasApplication(APSupport) || !c.HasApplication(APJPKI) {
		t.Fatal("clone applications")
	}
	if c.TriesOf(APSurface, SurfaceCollationB) != -1 || c.TriesOf(APSupport, SupportPIN) != -1 {
		t.Fatal("clone reports 券面 AP tries")
	}
	if c.TriesOf(APJPKI, JPKIAuthPIN) != 3 || c.TriesOf(APJPKI, JPKISignPassword) != 5 || c.Tries(0x1234) != 0 {
		t.Fatal("clone JPKI tries")
	}
	// Its auth key is its own: a signature does not verify with the
	// copied certificate.
	apdu, digest := signAPDU(0x80, []byte("nonce"))
	apduSeq(t, c, [][2]string{{selectPIN, "90 00"}, {verifyAPDU(tc.AuthPIN), "90 00"}, {"00 A4 02 0C 02 00 17", "90 00"}})
	resp := transmit(t, c, apdu)
	cert, err := x509.ParseCertificate(tc.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest, resp[:256]) == nil {
		t.Fatal("the clone's signature verifies with the copied certificate")
	}
}

// TestFromTestPKIAllKinds: every kind builds; all but the clone carry the
// three APs with the documented counters.
func TestFromTestPKIAllKinds(t *testing.T) {
	for _, kind := range testpki.Kinds() {
		_, c := testCard(t, kind)
		want := map[string]int{"jpki/0018": 3, "jpki/001B": 5, "surface/0012": 10, "support/0011": 3, "support/0015": 10, "support/0012": 0}
		if kind == testpki.KindClone {
			want = map[string]int{"jpki/0018": 3, "jpki/001B": 5, "surface/0012": -1, "support/0011": -1, "support/0015": -1, "support/0012": -1}
		}
		for k, n := range want {
			var fid uint16
			ap, f, _ := strings.Cut(k, "/")
			fmt.Sscanf(f, "%04X", &fid)
			if got := c.TriesOf(ap, fid); got != n {
				t.Errorf("%s: TriesOf(%s) = %d, want %d", kind, k, got, n)
			}
		}
	}
}

func TestNewJPKICardSecretFormats(t *testing.T) {
	cert, ca, _ := testCerts(t)
	for name, cfg := range map[string]JPKIConfig{
		"auth PIN":       {AuthPIN: "12345"},
		"password":       {SignPassword: "abc"},
		"surface B":      {Surface: &SurfaceAP{CollationB: "123"}},
		"birth key":      {Surface: &SurfaceAP{BirthKey: "1980021"}},
		"support PIN":    {Support: &SupportAP{PIN: "12a4"}},
		"support B":      {Support: &SupportAP{CollationB: "1234567890123X"}},
		"EF on a key":    {Surface: &SurfaceAP{Files: map[uint16][]byte{0x0012: {1}}}},
		"EF on a PIN":    {Support: &SupportAP{Files: map[uint16][]byte{0x0011: {1}}}},
		"EF on blocked":  {Support: &SupportAP{Files: map[uint16][]byte{0x0012: {1}}}},
		"EF on B (0015)": {Support: &SupportAP{Files: map[uint16][]byte{0x0015: {1}}}},
	} {
		cfg.Token, cfg.AuthCert, cfg.AuthCACert = "JPKIAPICCTOKEN2", cert, ca
		_, err := NewJPKICard(cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, secret := range []string{"12345", "abc", "1980021", "12a4", "1234567890123X"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q shows the secret", name, err)
			}
		}
	}
	// Defaults: a surface AP without B uses DefaultCollationB.
	c, err := NewJPKICard(JPKIConfig{Token: "JPKIAPICCTOKEN2", AuthCert: cert, AuthCACert: ca, Surface: &SurfaceAP{}, Support: &SupportAP{}})
	if err != nil {
		t.Fatal(err)
	}
	apduSeq(t, c, [][2]string{
		{selectSurface, "90 00"}, {"00 A4 02 0C 02 00 12", "90 00"}, {verifyAPDU(DefaultCollationB), "90 00"},
		{"00 A4 02 0C 02 00 11", "6A 82"},       // no birth-date key configured
		{"80 2A 00 00 03 01 02 03 00", "6A 88"}, // no card key configured
		{selectSupport, "90 00"}, {"00 A4 02 0C 02 00 11", "90 00"}, {verifyAPDU(DefaultSupportPIN), "90 00"},
		{"00 A4 02 0C 02 00 01", "6A 82"}, // no files configured
	})
}
