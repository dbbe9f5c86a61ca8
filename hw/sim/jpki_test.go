package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
)

const (
	selectJPKI = "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"
	selectAuth = "00 A4 02 0C 02 00 0A"
	selectPIN  = "00 A4 02 0C 02 00 18"
)

// apduSeq sends APDUs in order and checks each full response.
func apduSeq(t *testing.T, c Target, steps [][2]string) {
	t.Helper()
	for _, s := range steps {
		got, err := c.Transmit(context.Background(), h(s[0]))
		if err != nil {
			t.Fatalf("%s: %v", s[0], err)
		}
		if !bytes.Equal(got, h(s[1])) {
			t.Fatalf("APDU %s\n got % X\nwant %s", s[0], got, s[1])
		}
	}
}

func TestJPKIFileSystem(t *testing.T) {
	cert, ca, _ := testCerts(t)
	token := "4A 50 4B 49 41 50 49 43 43 54 4F 4B 45 4E 32" + strings.Repeat(" 20", 17)
	tests := []struct {
		name  string
		steps [][2]string
	}{
		{"token label", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 06", "90 00"}, {"00 B0 00 00 20", token + " 90 00"}}},
		{"token with Le 00 gives 32 bytes and 6282", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 06", "90 00"}, {"00 B0 00 00 00", token + " 62 82"}}},
		{"availability without a signature cert", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 08", "90 00"}, {"00 B0 00 00 03", "00 8F 00 90 00"}}},
		{"auth cert first bytes", [][2]string{{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"00 B0 00 00 04", spaced(cert[:4]) + "90 00"}}},
		{"auth cert at an offset", [][2]string{{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"00 B0 01 02 03", spaced(cert[0x102:0x105]) + "90 00"}}},
		{"CA cert", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 0B", "90 00"}, {"00 B0 00 00 02", spaced(ca[:2]) + "90 00"}}},
		{"offset at the end", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 08", "90 00"}, {"00 B0 00 03 01", "6B 00"}}},
		{"offset past the end", [][2]string{{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"00 B0 7F 00 01", "6B 00"}}},
		{"signature cert needs the password", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 01", "90 00"}, {"00 B0 00 00 04", "69 82"}}},
		{"sign CA absent", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 02", "6A 82"}}},
		{"missing EF", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 12 34", "6A 82"}}},
		{"EF before the AP", [][2]string{{selectAuth, "6A 82"}}},
		{"unknown AID", [][2]string{{"00 A4 04 0C 07 A0 00 00 02 48 04 00", "6A 82"}, {selectAuth, "6A 82"}}},
		{"read with nothing selected", [][2]string{{"00 B0 00 00 10", "69 86"}}},
		{"read after AP only", [][2]string{{selectJPKI, "90 00"}, {"00 B0 00 00 10", "69 86"}}},
		{"read a PIN EF", [][2]string{{selectJPKI, "90 00"}, {selectPIN, "90 00"}, {"00 B0 00 00 10", "69 81"}}},
		{"read without Le", [][2]string{{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"00 B0 00 00", "67 00"}}},
		{"read by SFI", [][2]string{{selectJPKI, "90 00"}, {"00 B0 8A 00 10", "6A 86"}}},
		{"select with wrong Lc", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 03 00 0A", "67 00"}}},
		{"select MF", [][2]string{{"00 A4 00 00", "6A 86"}}},
		{"wrong CLA", [][2]string{{"10 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "6E 00"}, {"80 B0 00 00 01", "6E 00"}}},
		{"unknown INS", [][2]string{{"00 CA 00 00 00", "6D 00"}, {"00 84 00 00 08", "6D 00"}}},
		{"APDU too short", [][2]string{{"00 A4", "67 00"}}},
		{"Lc beyond the data", [][2]string{{"00 A4 04 0C 0A D3 92", "67 00"}}},
		{"PIN retry query", [][2]string{{selectJPKI, "90 00"}, {selectPIN, "90 00"}, {"00 20 00 80", "63 C3"}}},
		{"signature password retry query", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 1B", "90 00"}, {"00 20 00 80", "63 C5"}}},
		{"VERIFY on a binary EF", [][2]string{{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"00 20 00 80", "69 86"}}},
		{"VERIFY wrong P2", [][2]string{{selectJPKI, "90 00"}, {selectPIN, "90 00"}, {"00 20 00 81", "6A 86"}}},
		{"sign without PIN", [][2]string{{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 17", "90 00"}, {"80 2A 00 80 03 01 02 03 00", "69 82"}}},
		{"sign on a binary EF", [][2]string{{selectJPKI, "90 00"}, {selectAuth, "90 00"}, {"80 2A 00 80 03 01 02 03 00", "69 85"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			apduSeq(t, newTestCard(t), tc.steps)
		})
	}
}

// TestJPKIPIN: the retry counter is real and non-volatile; the verified
// state is lost at power-up; a correct PIN resets the counter.
func TestJPKIPIN(t *testing.T) {
	c := newTestCard(t)
	apduSeq(t, c, [][2]string{
		{selectJPKI, "90 00"}, {selectPIN, "90 00"},
		{"00 20 00 80 04 39 39 39 39", "63 C2"}, // wrong
		{"00 20 00 80", "63 C2"},
		{"00 20 00 80 03 31 32 33", "63 C1"}, // malformed counts as wrong
		{"00 20 00 80 04 31 32 33 34", "90 00"},
		{"00 20 00 80", "63 C3"},
	})
	c.PowerOn()
	apduSeq(t, c, [][2]string{
		{selectJPKI, "90 00"}, {"00 A4 02 0C 02 00 17", "90 00"},
		{"80 2A 00 80 03 01 02 03 00", "69 82"}, // verification lost at power-up
		{selectPIN, "90 00"},
		{"00 20 00 80 04 30 30 30 30", "63 C2"},
		{"00 20 00 80 04 30 30 30 30", "63 C1"},
		{"00 20 00 80 04 30 30 30 30", "63 C0"},
		{"00 20 00 80 04 31 32 33 34", "69 84"}, // blocked: even the right PIN fails
		{"00 20 00 80", "63 C0"},
	})
	c.PowerOn()
	if n := c.Tries(JPKIAuthPIN); n != 0 {
		t.Fatalf("tries after power-up = %d, want 0 (non-volatile)", n)
	}
}

// TestJPKISign: after the PIN, COMPUTE DIGITAL SIGNATURE on EF 0017 signs a
// DigestInfo with the card's key (RSA PKCS#1 v1.5).
func TestJPKISign(t *testing.T) {
	_, _, key := testCerts(t)
	c := newTestCard(t)
	apduSeq(t, c, [][2]string{{selectJPKI, "90 00"}, {selectPIN, "90 00"}, {"00 20 00 80 04 31 32 33 34", "90 00"}, {"00 A4 02 0C 02 00 17", "90 00"}})
	digest := sha256.Sum256([]byte("kiosk nonce"))
	di := append(h("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"), digest[:]...)
	apdu := append(append(h("80 2A 00 80"), byte(len(di))), di...)
	apdu = append(apdu, 0x00)
	resp, err := c.Transmit(context.Background(), apdu)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp) != 258 || !bytes.Equal(resp[256:], h("90 00")) {
		t.Fatalf("signature answer of %d bytes, SW % X", len(resp), resp[len(resp)-2:])
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], resp[:256]); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

func TestNewJPKICardErrors(t *testing.T) {
	cert, ca, _ := testCerts(t)
	if _, err := NewJPKICard(JPKIConfig{Token: strings.Repeat("X", 33), AuthCert: cert, AuthCACert: ca}); err == nil {
		t.Error("a 33-byte token label was accepted")
	}
	if _, err := NewJPKICard(JPKIConfig{Token: "JPKIAPICCTOKEN2"}); err == nil {
		t.Error("a card without certificates was accepted")
	}
	c, err := NewJPKICard(JPKIConfig{Token: "JPKIAPICCTOKEN2", AuthCert: cert, AuthCACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if tb := c.TypeB(); tb.ProtInfo != DefaultProtInfo || tb.FSC() != 256 {
		t.Errorf("default activation data %+v", tb)
	}
}
