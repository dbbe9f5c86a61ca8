package jpki

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"
	"testing"
)

// faceOffsets returns where DF22..DF2A start in a card-face file built by
// cardFace, read from its DF21 (bytes 5.. of FF 20 82 xx xx DF 21 12 …).
func faceOffsets(t *testing.T, file []byte) []int {
	t.Helper()
	if !bytes.Equal(file[:2], hx("FF 20")) || file[2] != 0x82 || !bytes.Equal(file[5:8], hx("DF 21 12")) {
		t.Fatalf("fixture header % X", file[:8])
	}
	var offs []int
	for i := 0; i < 9; i++ {
		offs = append(offs, int(file[8+2*i])<<8|int(file[9+2*i]))
	}
	return offs
}

func TestParseCardFace(t *testing.T) {
	_, ap, card := testKeys(t)
	ff := defaultFace(t)
	file := cardFace(t, ff, ap)
	offs := faceOffsets(t, file)
	// The first object follows FF 20 82 xx xx (5) and DF 21 12 + 18 (21).
	if offs[0] != 26 {
		t.Fatalf("DF22 at %d", offs[0])
	}
	for i, o := range offs {
		if file[o] != 0xDF || file[o+1] != byte(0x22+i) {
			t.Fatalf("offset %d → % X", i, file[o:o+2])
		}
	}
	f, err := ParseCardFace(file)
	if err != nil {
		t.Fatal(err)
	}
	if f.BirthDate != "19800217" || f.Sex != "1" || f.Expiry != "20350217" || !f.CardKey.Equal(&card.PublicKey) ||
		!bytes.Equal(f.NameImage, ff.name) || !bytes.Equal(f.AddressImage, ff.addr) || !bytes.Equal(f.Photo, ff.photo) ||
		!bytes.Equal(f.SecurityCodeImage, ff.secCode) || len(f.Signature) != 256 || !bytes.Equal(f.CardKeyBytes(), ff.cardKeyBits) {
		t.Fatal("fields differ")
	}
	// The segments are exactly the raw TLVs: seg1 = file[DF22 .. DF25).
	if !bytes.Equal(f.seg1, file[offs[0]:offs[3]]) || !bytes.Equal(f.seg2, file[offs[3]:offs[5]]) || !bytes.Equal(f.seg3, file[offs[5]:offs[6]]) {
		t.Fatal("segments differ from the file")
	}
	if err := f.CheckSignature(&ap.PublicKey); err != nil {
		t.Fatal(err)
	}
	// The result does not alias the input.
	file[offs[5]+10] ^= 0xFF
	if err := f.CheckSignature(&ap.PublicKey); err != nil {
		t.Fatal("parsed record aliases the input")
	}
	file[offs[5]+10] ^= 0xFF
	kb := f.CardKeyBytes()
	kb[0] = 0
	if f.CardKeyBytes()[0] != 0x90 {
		t.Fatal("CardKeyBytes aliases")
	}
	// The card key (DF24) does not verify DF28: only the AP's EF 0004 key does.
	if err := f.CheckSignature(&card.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("card key: %v", err)
	}
	if err := f.CheckSignature(nil); err == nil {
		t.Fatal("nil key accepted")
	}
	if err := (&CardFace{Signature: f.Signature}).CheckSignature(&ap.PublicKey); err == nil {
		t.Fatal("hand-made record accepted")
	}
	// A standard SHA-256 verification of T's digests would not do: T itself
	// is the signed 115-byte block.
	if err := rsa.VerifyPKCS1v15(&ap.PublicKey, crypto.Hash(0), faceT(f.seg1, f.seg2, f.seg3), f.Signature); err != nil {
		t.Fatal(err)
	}
}

func TestCardFaceSignatureCoverage(t *testing.T) {
	_, ap, _ := testKeys(t)
	file := cardFace(t, defaultFace(t), ap)
	offs := faceOffsets(t, file)
	cases := []struct {
		name   string
		at     int // byte to change
		to     byte
		breaks bool
	}{
		{"photo byte (seg3)", offs[5] + 100, 0x34, true},
		{"birth date digit (seg1)", offs[0] + 3 + 7, '8', true},
		{"sex (seg1)", offs[1] + 3, '2', true},
		{"card key modulus (seg1)", offs[2] + 3 + 9 + 100, 0x00, true},
		{"name image (seg2)", offs[3] + 20, 0x00, true},
		{"address image (seg2)", offs[4] + 600, 0x00, true},
		{"signature", offs[6] + 3 + 1 + 200, 0x00, true},
		{"expiry DF29 (not signed)", offs[7] + 3 + 3, '6', false},
		{"security code image DF2A (not signed)", offs[8] + 3 + 9, 'X', false},
	}
	for _, c := range cases {
		bad := bytes.Clone(file)
		if bad[c.at] == c.to {
			t.Fatalf("%s: byte already %02X", c.name, c.to)
		}
		bad[c.at] = c.to
		f, err := ParseCardFace(bad)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err = f.CheckSignature(&ap.PublicKey)
		if c.breaks != errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// DF29 changed to another year still verifies: the caller must not rely
	// on DF29 alone (doc §6 step 6).
	bad := bytes.Clone(file)
	copy(bad[offs[7]+3:], "20400101")
	f, err := ParseCardFace(bad)
	if err != nil || f.Expiry != "20400101" || f.CheckSignature(&ap.PublicKey) != nil {
		t.Fatalf("DF29: %v", err)
	}
}

func TestParseCardFaceMalformed(t *testing.T) {
	_, ap, _ := testKeys(t)
	ff := defaultFace(t)
	file := cardFace(t, ff, ap)
	offs := faceOffsets(t, file)
	tlvEnd := len(file) - 7 // before the FF filler
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(file)) }
	withFace := func(edit func(*faceFields)) []byte {
		g := ff
		edit(&g)
		return cardFace(t, g, ap)
	}
	cases := map[string][]byte{
		"wrong tag":            mutate(func(b []byte) []byte { b[1] = 0x21; return b }),
		"offset 0 off by one":  mutate(func(b []byte) []byte { b[9]++; return b }),
		"offset 8 off by one":  mutate(func(b []byte) []byte { b[8+17]--; return b }),
		"offsets swapped":      mutate(func(b []byte) []byte { b[9], b[11] = b[11], b[9]; return b }),
		"truncated":            file[:tlvEnd-1],
		"truncated header":     file[:4],
		"garbage after":        cat(file[:tlvEnd], []byte{0xFF, 0x00, 0x42}),
		"DF21 short":           cat(obj(0xFF20, obj(0xDF21, make([]byte, 16)), file[offs[0]:tlvEnd])),
		"no DF21":              cat(obj(0xFF20, file[offs[0]:tlvEnd])),
		"DF2A missing":         mutate(func(b []byte) []byte { return b[:offs[8]] }),
		"bad birth date":       withFace(func(g *faceFields) { g.birth = "19800230" }),
		"birth date 7 digits":  withFace(func(g *faceFields) { g.birth = "1980021" }),
		"birth date letters":   withFace(func(g *faceFields) { g.birth = "1980O217" }),
		"bad expiry":           withFace(func(g *faceFields) { g.expiry = "20351301" }),
		"sex 3":                withFace(func(g *faceFields) { g.sex = "3" }),
		"sex two digits":       withFace(func(g *faceFields) { g.sex = "11" }),
		"card key malformed":   withFace(func(g *faceFields) { g.cardKeyBits = g.cardKeyBits[:200] }),
		"empty photo":          withFace(func(g *faceFields) { g.photo = nil }),
		"empty security image": withFace(func(g *faceFields) { g.secCode = nil }),
		"filler inside FF20": func() []byte {
			inner := cat(file[5:tlvEnd], []byte{0xFF, 0xFF})
			return cat(obj(0xFF20, inner))
		}(),
		"empty": nil,
	}
	for name, b := range cases {
		if _, err := ParseCardFace(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A signature of another length.
	b := mutate(func(b []byte) []byte { return b })
	sigAt := offs[6]
	short := cat(b[:sigAt], obj(0xDF28, b[sigAt+4:sigAt+4+255]), b[offs[7]:tlvEnd])
	if _, err := ParseCardFace(short); !errors.Is(err, ErrMalformed) {
		t.Errorf("255-byte signature: %v", err)
	}
}

// TestParseCardFaceReasons pins the reason for the main rejections.
func TestParseCardFaceReasons(t *testing.T) {
	_, ap, _ := testKeys(t)
	file := cardFace(t, defaultFace(t), ap)
	cases := []struct {
		name, why string
		edit      func(b []byte)
	}{
		{"wrong tag", "want FF20", func(b []byte) { b[1] = 0x21 }},
		{"offset off by one", "offset table entry 0 (DF22) says 27, object at 26", func(b []byte) { b[9]++ }},
		{"last offset", "offset table entry 8 (DF2A)", func(b []byte) { b[8+17]-- }},
		{"filler", "byte 42 at offset", func(b []byte) { b[len(b)-1] = 0x42 }},
		{"DF23 tag", "tag DF24 at offset", func(b []byte) { b[26+11+1] = 0x24 }},
	}
	for _, c := range cases {
		b := bytes.Clone(file)
		c.edit(b)
		_, err := ParseCardFace(b)
		if !errors.Is(err, ErrMalformed) || !bytes.Contains([]byte(err.Error()), []byte(c.why)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
