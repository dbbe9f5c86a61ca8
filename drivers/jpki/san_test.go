package jpki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// jpkiOID is the DER of OID 1.2.392.200149.8.5.5.n.
func jpkiOID(n byte) []byte { return obj(0x06, hx("2A 83 08 8C 9B 55 08 05 05"), []byte{n}) }

// otherName builds [0] { OID, [0] { string } } with a string of tag strTag.
func otherName(oid []byte, strTag byte, s string) []byte {
	return obj(0xA0, oid, obj(0xA0, obj(uint16(strTag), []byte(s))))
}

var testSAN = []struct {
	n   byte
	tag byte
	s   string
}{
	{1, 0x0C, testName},
	{2, 0x0C, "00000"},
	{3, 0x13, "1"},
	{4, 0x13, "319800217"},
	{5, 0x0C, testAddress},
	{6, 0x0C, "0000000000000000000"},
}

func sanValue(names ...[]byte) []byte { return obj(0x30, names...) }

func defaultSAN() []byte {
	var names [][]byte
	for _, a := range testSAN {
		names = append(names, otherName(jpkiOID(a.n), a.tag, a.s))
	}
	return sanValue(names...)
}

func certWithSAN(t *testing.T, san []byte) *x509.Certificate {
	t.Helper()
	_, _, key := testKeys(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sign-test", Country: []string{"JP"}},
		NotBefore:    time.Unix(1700000000, 0),
		NotAfter:     time.Unix(1900000000, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	if san != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseSignAttributes(t *testing.T) {
	want := SignAttributes{Name: testName, NameSubst: "00000", Sex: "1", BirthDate: "319800217", Address: testAddress, AddressSubst: "0000000000000000000"}
	a, err := ParseSignAttributes(certWithSAN(t, defaultSAN()))
	if err != nil || *a != want {
		t.Fatalf("%+v %v", a, err)
	}
	// Other general names and other otherName OIDs are skipped.
	mixed := sanValue(
		obj(0x82, []byte("example.jp")), // dNSName
		otherName(obj(0x06, hx("2A 03 04")), 0x0C, "x"),
		otherName(jpkiOID(7), 0x0C, "x"), // .7: not one of ours
		otherName(jpkiOID(5), 0x0C, testAddress),
		otherName(jpkiOID(1), 0x16, "ASCII NAME"), // IA5String
		otherName(jpkiOID(3), 0x0C, "2"),
		otherName(jpkiOID(4), 0x0C, "419890108"),
	)
	a, err = parseSignSAN(mixed)
	if err != nil || a.Name != "ASCII NAME" || a.Sex != "2" || a.BirthDate != "419890108" || a.NameSubst != "" || a.AddressSubst != "" {
		t.Fatalf("mixed: %+v %v", a, err)
	}
	// No SAN at all, or none of ours: ErrNoSignAttributes.
	if _, err := ParseSignAttributes(certWithSAN(t, nil)); !errors.Is(err, ErrNoSignAttributes) {
		t.Fatalf("no SAN: %v", err)
	}
	if _, err := parseSignSAN(sanValue(obj(0x82, []byte("example.jp")))); !errors.Is(err, ErrNoSignAttributes) {
		t.Fatalf("DNS only: %v", err)
	}
	if _, err := ParseSignAttributes(nil); err == nil {
		t.Fatal("nil cert accepted")
	}
	without := func(n byte) []byte {
		var names [][]byte
		for _, a := range testSAN {
			if a.n != n {
				names = append(names, otherName(jpkiOID(a.n), a.tag, a.s))
			}
		}
		return sanValue(names...)
	}
	bad := map[string][]byte{
		"address missing": without(5),
		"sex missing":     without(3),
		"duplicate birth": sanValue(otherName(jpkiOID(1), 0x0C, "a"), otherName(jpkiOID(3), 0x13, "1"), otherName(jpkiOID(4), 0x13, "319800217"),
			otherName(jpkiOID(5), 0x0C, "a"), otherName(jpkiOID(4), 0x13, "319800218")),
		"BMPString":      sanValue(otherName(jpkiOID(1), 0x1E, "\x00A"), otherName(jpkiOID(3), 0x13, "1"), otherName(jpkiOID(4), 0x13, "319800217"), otherName(jpkiOID(5), 0x0C, "a")),
		"bad UTF-8":      sanValue(otherName(jpkiOID(1), 0x0C, "\xE9\xBB"), otherName(jpkiOID(3), 0x13, "1"), otherName(jpkiOID(4), 0x13, "319800217"), otherName(jpkiOID(5), 0x0C, "a")),
		"implicit value": sanValue(obj(0xA0, jpkiOID(1), obj(0x80, []byte("x")))),
		"two strings":    sanValue(obj(0xA0, jpkiOID(1), obj(0xA0, obj(0x0C, []byte("a")), obj(0x0C, []byte("b"))))),
		"not a SEQUENCE": obj(0x31, otherName(jpkiOID(1), 0x0C, "a")),
		"trailing":       cat(defaultSAN(), []byte{0x00}),
		"truncated":      defaultSAN()[:50],
		"empty":          nil,
		"OID broken":     sanValue(obj(0xA0, obj(0x06, nil), obj(0xA0, obj(0x0C, []byte("a"))))),
		"primitive [0]":  sanValue(obj(0x80, jpkiOID(1))),
	}
	for name, b := range bad {
		_, err := parseSignSAN(b)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
		if name == "duplicate birth" && !strings.Contains(err.Error(), ".4 twice") {
			t.Errorf("duplicate: %v", err)
		}
	}
}
