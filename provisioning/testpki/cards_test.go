package testpki

// The decoders in this file are written from the byte layouts of
// /work/shared/docs/mynumbercard.md (§2.5, §3.2, §4.2–§4.4), independently of
// the encoders in the package and of drivers/jpki.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"image/png"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kazashi/kazashi/provisioning/trust"
)

// tlvElem is one decoded BER-TLV element: its position in the buffer given
// to decode, the tag and the value.
type tlvElem struct {
	start  int
	tag    uint32
	header int // tag and length bytes
	value  []byte
}

func (e tlvElem) raw(buf []byte) []byte { return buf[e.start : e.start+e.header+len(e.value)] }

// decodeTLVs splits b[from:to] into BER-TLV elements: tags of one byte, or
// more when the low five bits are all set (continuation bit 0x80 in the
// following bytes); definite lengths short or 81/82/83.
func decodeTLVs(t *testing.T, b []byte, from, to int) []tlvElem {
	t.Helper()
	var out []tlvElem
	for i := from; i < to; {
		start := i
		tag := uint32(b[i])
		i++
		if tag&0x1F == 0x1F {
			for {
				if i >= to {
					t.Fatalf("truncated tag at %d", start)
				}
				tag = tag<<8 | uint32(b[i])
				i++
				if b[i-1]&0x80 == 0 {
					break
				}
			}
		}
		if i >= to {
			t.Fatalf("no length at %d", start)
		}
		n := int(b[i])
		i++
		if n > 0x80 {
			k := n - 0x80
			if k > 3 || i+k > to {
				t.Fatalf("bad length form %02X at %d", n, start)
			}
			n = 0
			for ; k > 0; k-- {
				n = n<<8 | int(b[i])
				i++
			}
		} else if n == 0x80 {
			t.Fatalf("indefinite length at %d", start)
		}
		if i+n > to {
			t.Fatalf("element at %d overruns (%d > %d)", start, i+n, to)
		}
		out = append(out, tlvElem{start: start, tag: tag, header: i - start, value: b[i : i+n]})
		i += n
	}
	return out
}

// decodeOne decodes b as exactly one TLV (no trailing bytes).
func decodeOne(t *testing.T, b []byte, tag uint32) tlvElem {
	t.Helper()
	els := decodeTLVs(t, b, 0, len(b))
	if len(els) != 1 || els[0].tag != tag {
		t.Fatalf("want exactly one %X TLV, got %d elements (first %X)", tag, len(els), els[0].tag)
	}
	return els[0]
}

// children decodes the elements inside the single template TLV of file,
// keeping their positions relative to the file's first byte.
func children(t *testing.T, file []byte, template uint32) (tlvElem, []tlvElem) {
	t.Helper()
	top := decodeOne(t, file, template)
	return top, decodeTLVs(t, file, top.header, len(file))
}

func tagsOf(els []tlvElem) []uint32 {
	out := make([]uint32, len(els))
	for i, e := range els {
		out[i] = e.tag
	}
	return out
}

// checkOffsets checks the DF21 table: one u16 BE per following element,
// each the position of that element's first tag byte in the file.
func checkOffsets(t *testing.T, els []tlvElem) {
	t.Helper()
	if els[0].tag != 0xDF21 || len(els[0].value) != 2*(len(els)-1) {
		t.Fatalf("DF21: tag %X, %d bytes for %d elements", els[0].tag, len(els[0].value), len(els)-1)
	}
	for i, e := range els[1:] {
		if off := int(binary.BigEndian.Uint16(els[0].value[2*i:])); off != e.start {
			t.Errorf("DF21 offset %d = %d, but %X starts at %d", i, off, e.tag, e.start)
		}
	}
}

// parseCardKey decodes 90 03 <e> 91 82 01 00 <256-byte n>.
func parseCardKey(t *testing.T, b []byte) *rsa.PublicKey {
	t.Helper()
	if len(b) != 265 || !bytes.Equal(b[:9], []byte{0x90, 0x03, 0x01, 0x00, 0x01, 0x91, 0x82, 0x01, 0x00}) {
		t.Fatalf("card key: %d bytes, header % X", len(b), b[:min(9, len(b))])
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(b[9:]), E: 65537}
}

// keyID is the 16-byte key ID of "DDDDDDD/NNN", written out by hand.
func keyID(s string) []byte {
	return append(append(append([]byte(s[:7]), 0x08, 0x05), s[8:]...), 0, 0, 0, 0)
}

type cvCert struct {
	issuer, subject []byte
	key             *rsa.PublicKey
	body, sig       []byte
}

func parseCV(t *testing.T, file []byte) cvCert {
	t.Helper()
	if len(file) != 568 || !bytes.Equal(file[:5], []byte{0x7F, 0x21, 0x82, 0x02, 0x33}) {
		t.Fatalf("EF 0004: %d bytes, header % X", len(file), file[:5])
	}
	top := decodeOne(t, file, 0x7F21)
	els := decodeTLVs(t, file, top.header, len(file))
	if len(els) != 2 || els[0].tag != 0x5F4E || els[1].tag != 0x5F37 || len(els[0].value) != 297 || len(els[1].value) != 256 {
		t.Fatalf("CV certificate elements %X", tagsOf(els))
	}
	if !bytes.Equal(file[5:10], []byte{0x5F, 0x4E, 0x82, 0x01, 0x29}) || !bytes.Equal(file[307:312], []byte{0x5F, 0x37, 0x82, 0x01, 0x00}) {
		t.Errorf("CV certificate headers % X / % X", file[5:10], file[307:312])
	}
	body := els[0].value
	return cvCert{issuer: body[:16], subject: body[16:32], key: parseCardKey(t, body[32:]), body: body, sig: els[1].value}
}

func verifySHA256(pub *rsa.PublicKey, msg, sig []byte) error {
	d := sha256.Sum256(msg)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
}

func genuineKinds() []string { return []string{KindValid, KindRevoked, KindExpired, KindUnknownCA} }

func TestCVAnchors(t *testing.T) {
	p := generated(t)
	want := []struct{ purpose, id string }{{"surface", "6990023/001"}, {"support", "6990033/001"}}
	if len(p.CVAnchors) != 2 {
		t.Fatalf("%d CV anchors", len(p.CVAnchors))
	}
	for i, w := range want {
		a := p.CVAnchors[i]
		if a.Purpose != w.purpose || a.IDString != w.id || !bytes.Equal(a.ID[:], keyID(w.id)) || a.Key.N.BitLen() != 2048 {
			t.Errorf("anchor %d: %s %s % X", i, a.Purpose, a.IDString, a.ID)
		}
		if !a.Key.Equal(p.CVCAKeys[w.purpose].Public()) {
			t.Errorf("%s anchor does not match its CA key", w.purpose)
		}
	}
	// Never J-LIS's own test CAs, nor a production ID.
	for _, a := range p.CVAnchors {
		if strings.HasPrefix(a.IDString, "6000") || a.IDString[0] != '6' {
			t.Errorf("anchor ID %s", a.IDString)
		}
	}
}

func TestCVCertificates(t *testing.T) {
	p := generated(t)
	surfaceCA, supportCA := p.CVAnchors[0].Key, p.CVAnchors[1].Key
	for _, kind := range genuineKinds() {
		c := p.Cards[kind]
		for _, tc := range []struct {
			name            string
			file            []byte
			ca, other       *rsa.PublicKey
			issuer, subject string
			municipality    *rsa.PrivateKey
		}{
			{"surface", c.Surface.CVCert, surfaceCA, supportCA, "6990023/001", "1399921/000", p.APKeys["surface"]},
			{"support", c.Support.CVCert, supportCA, surfaceCA, "6990033/001", "1399931/000", p.APKeys["support"]},
		} {
			cv := parseCV(t, tc.file)
			if !bytes.Equal(cv.issuer, keyID(tc.issuer)) || !bytes.Equal(cv.subject, keyID(tc.subject)) {
				t.Errorf("%s %s: issuer % X subject % X", kind, tc.name, cv.issuer, cv.subject)
			}
			if err := verifySHA256(tc.ca, cv.body, cv.sig); err != nil {
				t.Errorf("%s %s: CV signature: %v", kind, tc.name, err)
			}
			if verifySHA256(tc.other, cv.body, cv.sig) == nil {
				t.Errorf("%s %s: verifies under the other AP's CA", kind, tc.name)
			}
			if !cv.key.Equal(tc.municipality.Public()) {
				t.Errorf("%s %s: certified key is not the municipality key", kind, tc.name)
			}
		}
	}
}

func TestFaceRecord(t *testing.T) {
	p := generated(t)
	for _, kind := range genuineKinds() {
		t.Run(kind, func(t *testing.T) {
			c := p.Cards[kind]
			face := c.Surface.Face
			top, els := children(t, face, 0xFF20)
			if top.header != 5 || face[2] != 0x82 {
				t.Errorf("FF20 header % X: want the 82 long form", face[:top.header])
			}
			want := []uint32{0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25, 0xDF26, 0xDF27, 0xDF28, 0xDF29, 0xDF2A}
			if got := tagsOf(els); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("tags %X, want %X", got, want)
			}
			checkOffsets(t, els)
			v := map[uint32][]byte{}
			for _, e := range els {
				v[e.tag] = e.value
			}
			if string(v[0xDF22]) != c.Person.BirthDate || string(v[0xDF23]) != c.Person.Sex || string(v[0xDF29]) != c.Person.Expiry {
				t.Errorf("DF22 %q DF23 %q DF29 %q", v[0xDF22], v[0xDF23], v[0xDF29])
			}
			if !parseCardKey(t, v[0xDF24]).Equal(c.Surface.CardKey.Public()) {
				t.Error("DF24 is not the card key")
			}
			for _, tag := range []uint32{0xDF25, 0xDF26, 0xDF2A} {
				img, err := png.Decode(bytes.NewReader(v[tag]))
				if err != nil {
					t.Fatalf("%X: %v", tag, err)
				}
				// IHDR: bit depth at byte 24, colour type at 25 (3 = palette).
				if v[tag][24] != 1 || v[tag][25] != 3 {
					t.Errorf("%X: bit depth %d colour type %d, want a 1-bit palette PNG", tag, v[tag][24], v[tag][25])
				}
				if tag == 0xDF2A && (img.Bounds().Dx() != 24 || img.Bounds().Dy() != 12) {
					t.Errorf("security-code image %v", img.Bounds())
				}
			}
			if !bytes.HasPrefix(v[0xDF27], []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}) {
				t.Errorf("DF27 does not start with the JP2 signature box")
			}
			// DF28 with the key the EF 0004 certificate certifies.
			apKey := parseCV(t, c.Surface.CVCert).key
			verify := func(face []byte) error {
				_, els := children(t, face, 0xFF20)
				seg := func(from, to int) []byte {
					return face[els[from].start : els[to].start+els[to].header+len(els[to].value)]
				}
				h1, h2, h3 := sha256.Sum256(seg(1, 3)), sha256.Sum256(seg(4, 5)), sha256.Sum256(seg(6, 6))
				tt := []byte{0x30, 0x71, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x60}
				tt = append(append(append(tt, h1[:]...), h2[:]...), h3[:]...)
				if len(tt) != 115 {
					t.Fatalf("T is %d bytes", len(tt))
				}
				return rsa.VerifyPKCS1v15(apKey, crypto.Hash(0), tt, els[7].value)
			}
			if err := verify(face); err != nil {
				t.Errorf("DF28: %v", err)
			}
			if rsa.VerifyPKCS1v15(&c.Surface.CardKey.PublicKey, crypto.Hash(0), make([]byte, 115), els[7].value) == nil {
				t.Error("DF28 verifies under the card key")
			}
			// A photo byte is signed; the expiry is not.
			for _, tc := range []struct {
				el     int
				signed bool
			}{{6, true}, {3, true}, {5, true}, {8, false}, {9, false}} {
				mangled := bytes.Clone(face)
				mangled[els[tc.el].start+els[tc.el].header+len(els[tc.el].value)-1] ^= 1
				if err := verify(mangled); (err != nil) != tc.signed {
					t.Errorf("flipping %X: verify %v, signed %v", els[tc.el].tag, err, tc.signed)
				}
			}
		})
	}
}

func TestSurfaceInfo(t *testing.T) {
	p := generated(t)
	info := p.Cards[KindValid].Surface.Info
	_, els := children(t, info, 0xFF30)
	if got := tagsOf(els); fmt.Sprint(got) != fmt.Sprint([]uint32{0xDF31, 0xDF32, 0xDF33, 0xDF34, 0xDF35}) {
		t.Fatalf("tags %X", got)
	}
	if !bytes.Equal(els[0].value, []byte{0x06, 0x03, 0x0E, 0x01}) || len(els[1].value) != 16 || len(els[2].value) != 1 ||
		string(els[3].value) != "13999" || len(els[4].value) != 16+256 {
		t.Errorf("EF 0003 values % X", info)
	}
	if bytes.Equal(els[1].value, keyID("1399921/000")) {
		t.Error("DF32 must not be the EF 0004 subject")
	}
}

func TestSupportFiles(t *testing.T) {
	p := generated(t)
	for _, kind := range genuineKinds() {
		t.Run(kind, func(t *testing.T) {
			c := p.Cards[kind]
			s := c.Support
			apKey := parseCV(t, s.CVCert).key

			// EF 0001: FF 10 0C <12 digits> FF FF.
			if len(s.Number) != 17 || !bytes.Equal(s.Number[:3], []byte{0xFF, 0x10, 0x0C}) || !bytes.Equal(s.Number[15:], []byte{0xFF, 0xFF}) ||
				string(s.Number[3:15]) != c.Person.IndividualNumber {
				t.Errorf("EF 0001 % X", s.Number)
			}

			// EF 0002.
			top, els := children(t, s.Basic4, 0xFF20)
			if got := tagsOf(els); fmt.Sprint(got) != fmt.Sprint([]uint32{0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25}) {
				t.Fatalf("tags %X", got)
			}
			checkOffsets(t, els)
			if string(els[1].value) != c.Person.Name || string(els[2].value) != c.Person.Address ||
				string(els[3].value) != c.Person.BirthDate || string(els[4].value) != c.Person.Sex {
				t.Errorf("basic 4: %q %q %q %q", els[1].value, els[2].value, els[3].value, els[4].value)
			}
			if len(els[3].value) != 8 || len(els[4].value) != 1 || !strings.Contains(c.Person.Name, "\u3000") {
				t.Error("birth date/sex length or the name's U+3000")
			}

			// EF 0003.
			if !bytes.Equal(s.Integrity[:5], []byte{0xFF, 0x30, 0x82, 0x01, 0x4B}) || len(s.Integrity) != 5+0x14B {
				t.Fatalf("EF 0003 header % X, %d bytes", s.Integrity[:5], len(s.Integrity))
			}
			_, ints := children(t, s.Integrity, 0xFF30)
			if got := tagsOf(ints); fmt.Sprint(got) != fmt.Sprint([]uint32{0xDF31, 0xDF32, 0xDF33}) {
				t.Fatalf("tags %X", got)
			}
			numberDigest := sha256.Sum256(s.Number)
			basic4Digest := sha256.Sum256(s.Basic4[els[1].start : top.header+len(top.value)])
			if !bytes.Equal(ints[0].value, numberDigest[:]) {
				t.Error("DF31 is not SHA-256 of the 17 bytes of EF 0001")
			}
			if !bytes.Equal(ints[1].value, basic4Digest[:]) {
				t.Error("DF32 is not SHA-256 of the FF20 value from DF22")
			}
			signed := s.Integrity[ints[0].start:ints[2].start]
			if len(signed) != 70 {
				t.Errorf("signed part %d bytes", len(signed))
			}
			if err := verifySHA256(apKey, signed, ints[2].value); err != nil {
				t.Errorf("DF33: %v", err)
			}

			// EF 0007.
			_, ck := children(t, s.ChallengeKeyRecord, 0xFF50)
			if got := tagsOf(ck); fmt.Sprint(got) != fmt.Sprint([]uint32{0xDF51, 0xDF52}) {
				t.Fatalf("tags %X", got)
			}
			if !parseCardKey(t, ck[0].value).Equal(s.ChallengeKey.Public()) {
				t.Error("DF51 is not the challenge key")
			}
			if err := verifySHA256(apKey, ck[0].raw(s.ChallengeKeyRecord), ck[1].value); err != nil {
				t.Errorf("DF52: %v", err)
			}
		})
	}
}

// independentCheckDigit is the check digit in the left-to-right form of the
// same formula: weights 6 5 4 3 2 7 6 5 4 3 2 on digits 1..11, 11 − (sum mod
// 11), 0 for remainders 0 and 1 (https://99zz.net/?p=137).
func independentCheckDigit(n string) byte {
	w := []int{6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i, c := range n[:11] {
		sum += int(c-'0') * w[i]
	}
	if r := sum % 11; r > 1 {
		return byte('0' + 11 - r)
	}
	return '0'
}

func TestIndividualNumbers(t *testing.T) {
	// Published example and the synthetic test-card vector of doc §3.2.
	for _, n := range []string{"123456789018", "537686677188"} {
		if independentCheckDigit(n) != n[11] || byte('0'+checkDigit(n[:11])) != n[11] {
			t.Errorf("%s: check digit", n)
		}
	}
	for base := 0; base < 200; base++ {
		b := fmt.Sprintf("%011d", base*7919)
		if byte('0'+checkDigit(b)) != independentCheckDigit(b+"0") {
			t.Fatalf("checkDigit(%s) disagrees", b)
		}
	}
	seen := map[string]bool{}
	for _, kind := range genuineKinds() {
		n := generated(t).Cards[kind].Person.IndividualNumber
		if len(n) != 12 || !digits(n) || !strings.HasPrefix(n, "9999") || independentCheckDigit(n) != n[11] || seen[n] {
			t.Errorf("%s: individual number %s", kind, n)
		}
		seen[n] = true
	}
}

func TestSecrets(t *testing.T) {
	p := generated(t)
	pin := regexp.MustCompile(`^[0-9]{4}$`)
	password := regexp.MustCompile(`^[A-Z0-9]{6,16}$`)
	// The era year of each birth date, by hand: 1985 = 昭和60, 1989-01-07 =
	// 昭和64, 1989-01-08 = 平成1, 2010 = 平成22.
	wantB := map[string]string{KindValid: "600714", KindRevoked: "640107", KindExpired: "010108", KindUnknownCA: "220331"}
	auth, sign := map[string]bool{}, map[string]bool{}
	for _, kind := range genuineKinds() {
		c := p.Cards[kind]
		if !pin.MatchString(c.AuthPIN) || !pin.MatchString(c.SupportPIN) || !password.MatchString(c.SignPassword) ||
			!strings.ContainsAny(c.SignPassword, "0123456789") || !strings.ContainsAny(c.SignPassword, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Errorf("%s: secret formats", kind)
		}
		if auth[c.AuthPIN] || sign[c.SignPassword] {
			t.Errorf("%s: secrets repeat another card's", kind)
		}
		auth[c.AuthPIN], sign[c.SignPassword] = true, true
		b := c.CollationB
		if len(b) != 14 || !digits(b) || b[:6] != wantB[kind] || b[6:10] != c.Person.Expiry[:4] || b[10:] != c.Person.SecurityCode {
			t.Errorf("%s: collation number B %s (birth %s expiry %s)", kind, b, c.Person.BirthDate, c.Person.Expiry)
		}
		if c.Person.Expiry[:4] <= fmt.Sprint(now.Year()+4) || c.Person.Expiry[4:] != c.Person.BirthDate[4:] {
			t.Errorf("%s: expiry %s", kind, c.Person.Expiry)
		}
	}
}

func TestCollationNumberB(t *testing.T) {
	for _, tc := range []struct{ birth, want string }{
		{"19800217", "550217"}, // the doc's test card: 昭和55
		{"19120729", "450729"}, // 明治45
		{"19120730", "010730"}, // 大正1
		{"19261224", "151224"}, // 大正15
		{"19261225", "011225"}, // 昭和1
		{"19890107", "640107"}, // 昭和64
		{"19890108", "010108"}, // 平成1
		{"20190430", "310430"}, // 平成31
		{"20190501", "010501"}, // 令和1
		{"20260401", "080401"}, // 令和8
	} {
		got, err := CollationNumberB(tc.birth, "20350217", "2285")
		if err != nil || got != tc.want+"20352285" {
			t.Errorf("CollationNumberB(%s) = %s, %v; want %s20352285", tc.birth, got, err, tc.want)
		}
	}
	for _, bad := range [][3]string{{"1980021", "20350217", "2285"}, {"19800230", "20350217", "2285"}, {"19800217", "2035", "2285"},
		{"19800217", "20350217", "228"}, {"19800217", "20350217", "22a5"}, {"18000101", "20350217", "2285"}} {
		if _, err := CollationNumberB(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("CollationNumberB(%q) succeeded", bad)
		}
	}
}

func TestPersons(t *testing.T) {
	p := generated(t)
	seen := map[string]bool{}
	for _, kind := range genuineKinds() {
		c := p.Cards[kind]
		for _, v := range []string{c.Person.Name, c.Person.Address, c.Person.BirthDate, c.Person.SecurityCode, c.Person.IndividualNumber} {
			if v == "" || seen[v] {
				t.Errorf("%s: empty or repeated value %q", kind, v)
			}
			seen[v] = true
		}
		if !strings.HasPrefix(c.Person.Address, "東京都千代田区") || (c.Person.Sex != "1" && c.Person.Sex != "2") {
			t.Errorf("%s: %+v", kind, c.Person)
		}
	}
}

// sanValues decodes the signature certificate's subjectAltName: a SEQUENCE
// of [0] { OID, [0] EXPLICIT UTF8String }.
func sanValues(t *testing.T, cert *x509.Certificate) map[string]string {
	t.Helper()
	var ext []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			if e.Critical {
				t.Error("SAN is critical")
			}
			ext = e.Value
		}
	}
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(ext, &names); err != nil || len(rest) != 0 {
		t.Fatalf("SAN: %v", err)
	}
	out := map[string]string{}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 0 || !n.IsCompound {
			t.Fatalf("GeneralName class %d tag %d: not otherName", n.Class, n.Tag)
		}
		var oid asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(n.Bytes, &oid)
		if err != nil {
			t.Fatal(err)
		}
		var explicit asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &explicit); err != nil || len(rest) != 0 || explicit.Class != asn1.ClassContextSpecific || explicit.Tag != 0 || !explicit.IsCompound {
			t.Fatalf("otherName %v value: %v", oid, err)
		}
		var str asn1.RawValue
		if rest, err = asn1.Unmarshal(explicit.Bytes, &str); err != nil || len(rest) != 0 || str.Tag != asn1.TagUTF8String || !utf8.Valid(str.Bytes) {
			t.Fatalf("otherName %v: not one UTF8String", oid)
		}
		if _, dup := out[oid.String()]; dup {
			t.Errorf("duplicate %v", oid)
		}
		out[oid.String()] = string(str.Bytes)
	}
	return out
}

func TestSignHierarchy(t *testing.T) {
	p := generated(t)
	root, authRoot := parse(t, p.SignRoot), parse(t, p.Root)
	real, err := trust.Load(trust.JPKISign2023)
	if err != nil {
		t.Fatal(err)
	}
	var gotRDN, realRDN pkix.RDNSequence
	if _, err := asn1.Unmarshal(root.RawSubject, &gotRDN); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(real.RawSubject, &realRDN); err != nil {
		t.Fatal(err)
	}
	if g, r := gotRDN.String(), strings.Replace(realRDN.String(), "O=JPKI,", "O=JPKI-TEST,", 1); g != r {
		t.Errorf("sign root %q, want %q", g, r)
	}
	if a, b := tags(t, root.RawSubject), tags(t, real.RawSubject); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("string tags %v, real %v", a, b)
	}
	if err := root.CheckSignatureFrom(root); err != nil || !root.IsCA || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("sign root: %v", err)
	}
	if !p.SignRootKey.PublicKey.Equal(root.PublicKey) || bytes.Equal(root.RawSubject, authRoot.RawSubject) || root.PublicKey.(*rsa.PublicKey).Equal(authRoot.PublicKey) {
		t.Error("sign root key or name")
	}

	wantEra := map[string]string{KindValid: "3", KindRevoked: "3", KindExpired: "4", KindUnknownCA: "4"}
	for _, kind := range genuineKinds() {
		t.Run(kind, func(t *testing.T) {
			c := p.Cards[kind]
			leaf, ca := parse(t, c.SignCert), parse(t, c.SignCACert)
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment || leaf.IsCA {
				t.Errorf("key usage %b", leaf.KeyUsage)
			}
			for _, e := range leaf.Extensions {
				if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 15}) && !e.Critical {
					t.Error("keyUsage not critical")
				}
			}
			if leaf.SignatureAlgorithm != x509.SHA256WithRSA || leaf.PublicKey.(*rsa.PublicKey).N.BitLen() != 2048 || !c.SignKey.PublicKey.Equal(leaf.PublicKey) {
				t.Error("algorithm, size or key")
			}
			if len(leaf.Subject.Names) != 1 || len(leaf.Subject.CommonName) != 32 {
				t.Errorf("subject %v: want a single opaque CN", leaf.Subject)
			}
			if err := leaf.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not signed by the CA it carries: %v", err)
			}
			if err := leaf.CheckSignatureFrom(root); (err == nil) != (kind != KindUnknownCA) {
				t.Errorf("signed by the genuine sign root: %v", err == nil)
			}
			if leaf.CheckSignatureFrom(authRoot) == nil || parse(t, c.Cert).CheckSignatureFrom(root) == nil {
				t.Error("a certificate verifies under the other purpose's root")
			}
			if !bytes.Equal(leaf.RawIssuer, root.RawSubject) || !bytes.Equal(leaf.AuthorityKeyId, root.SubjectKeyId) {
				t.Error("issuer name or AKI")
			}
			if kind == KindUnknownCA && (bytes.Equal(c.SignCACert, p.SignRoot) || !bytes.Equal(ca.SubjectKeyId, root.SubjectKeyId)) {
				t.Error("impostor sign CA")
			}
			if !leaf.NotAfter.Equal(parse(t, c.Cert).NotAfter) {
				t.Error("sign and auth certificates expire at different times")
			}

			san := sanValues(t, leaf)
			pr := c.Person
			want := map[string]string{
				"1.2.392.200149.8.5.5.1": pr.Name,
				"1.2.392.200149.8.5.5.2": strings.Repeat("0", utf8.RuneCountInString(pr.Name)),
				"1.2.392.200149.8.5.5.3": pr.Sex,
				"1.2.392.200149.8.5.5.4": wantEra[kind] + pr.BirthDate,
				"1.2.392.200149.8.5.5.5": pr.Address,
				"1.2.392.200149.8.5.5.6": strings.Repeat("0", utf8.RuneCountInString(pr.Address)),
			}
			if fmt.Sprint(san) != fmt.Sprint(want) {
				t.Errorf("SAN %q, want %q", san, want)
			}
		})
	}
}

func TestSignCRL(t *testing.T) {
	p := generated(t)
	root := parse(t, p.SignRoot)
	crl, err := x509.ParseRevocationList(p.SignCRL)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(crl.RawIssuer, root.RawSubject) || !bytes.Equal(crl.AuthorityKeyId, root.SubjectKeyId) || crl.Number.Int64() != now.Unix() {
		t.Error("sign CRL issuer, AKI or number")
	}
	revoked := parse(t, p.Cards[KindRevoked].SignCert)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(revoked.SerialNumber) != 0 {
		t.Errorf("sign CRL entries %v, want the revoked card's sign cert", crl.RevokedCertificateEntries)
	}
	if auth, _ := x509.ParseRevocationList(p.CRL); auth.CheckSignatureFrom(root) == nil {
		t.Error("auth CRL verifies under the sign root")
	}
}

func TestClone(t *testing.T) {
	p := generated(t)
	v, c := p.Cards[KindValid], p.Cards[KindClone]
	if !bytes.Equal(c.Cert, v.Cert) || !bytes.Equal(c.CACert, v.CACert) || !bytes.Equal(c.SignCert, v.SignCert) || !bytes.Equal(c.SignCACert, v.SignCACert) {
		t.Error("clone does not carry the valid card's certificates byte for byte")
	}
	if c.Key.Equal(v.Key) || c.SignKey.Equal(v.SignKey) || c.Key.PublicKey.Equal(parse(t, c.Cert).PublicKey) || c.SignKey.PublicKey.Equal(parse(t, c.SignCert).PublicKey) {
		t.Error("clone shares a key with the valid card or its certificates")
	}
	if c.Surface != nil || c.Support != nil || c.Person != (Person{}) {
		t.Error("clone has card applications or a person")
	}
	if c.AuthPIN != v.AuthPIN || c.SignPassword != v.SignPassword || c.Token != Token {
		t.Error("clone's secrets are not the valid card's defaults")
	}
}

func TestShared(t *testing.T) {
	a, err := Shared()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Shared()
	if err != nil || a != b || len(a.Cards) != len(Kinds()) {
		t.Errorf("Shared: %p %p %v", a, b, err)
	}
}
