package jpki

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestParseIndividualNumber(t *testing.T) {
	for _, in := range [][]byte{testNumberTLV, testNumberFile, cat(testNumberTLV, []byte{0, 0, 0xFF})} {
		n, err := ParseIndividualNumber(in)
		if err != nil || n != testNumber {
			t.Errorf("% X: %v", in, err)
		}
	}
	bad := map[string][]byte{
		"wrong tag FF11":      cat(hx("FF 11"), testNumberTLV[2:]),
		"CoreExtendedNFC 10":  cat(hx("10 01 0C"), testNumberTLV[3:]),
		"11 digits":           obj(0xFF10, []byte(testNumber[:11])),
		"13 digits":           obj(0xFF10, []byte(testNumber+"1")),
		"letter":              obj(0xFF10, []byte("53768667718X")),
		"truncated":           testNumberTLV[:14],
		"garbage after":       cat(testNumberTLV, []byte{0xFF, 0x35}),
		"empty":               nil,
		"length says 0x0D":    cat(hx("FF 10 0D"), testNumberTLV[3:], []byte{0xFF}),
		"three-byte tag form": cat(hx("FF 90 10 0C"), testNumberTLV[3:]),
	}
	for name, b := range bad {
		if _, err := ParseIndividualNumber(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseBasic4(t *testing.T) {
	// soltia48's test-card vector: FF 20 65 DF 21 08 00 0E 00 20 00 59 00 64 …
	if !bytes.Equal(testBasic4File[:14], hx("FF 20 65 DF 21 08 00 0E 00 20 00 59 00 64")) || len(testBasic4File) != 3+0x65 {
		t.Fatal("vector")
	}
	for _, in := range [][]byte{testBasic4File, cat(testBasic4File, bytes.Repeat([]byte{0xFF}, 20))} {
		b, err := ParseBasic4(in)
		if err != nil {
			t.Fatal(err)
		}
		if b.Name != testName || b.Address != testAddress || b.BirthDate != "19800217" || b.Sex != "1" {
			t.Fatalf("%+v", b)
		}
		// The signed part is the FF20 value from DF22 to its end.
		if !bytes.Equal(b.signed, testBasic4File[14:]) {
			t.Fatal("signed part")
		}
	}
	// Built by the fixture helper: same bytes as the vector.
	built := template(0xFF20, 0xDF21, [][]byte{
		obj(0xDF22, []byte(testName)), obj(0xDF23, []byte(testAddress)),
		obj(0xDF24, []byte("19800217")), obj(0xDF25, []byte("1"))})
	if !bytes.Equal(built, testBasic4File) {
		t.Fatalf("helper builds % X", built)
	}
	mut := func(at int, v byte) []byte { b := bytes.Clone(testBasic4File); b[at] = v; return b }
	bad := map[string][]byte{
		"offset 0 (soltia48 test)": mut(7, 0x0F),
		"offset 3":                 mut(13, 0x65),
		"wrong tag":                mut(1, 0x30),
		"DF21 7 bytes":             template(0xFF20, 0xDF21, nil),
		"invalid UTF-8 name": template(0xFF20, 0xDF21, [][]byte{
			obj(0xDF22, []byte{0xE9, 0xBB}), obj(0xDF23, []byte(testAddress)), obj(0xDF24, []byte("19800217")), obj(0xDF25, []byte("1"))}),
		"empty address": template(0xFF20, 0xDF21, [][]byte{
			obj(0xDF22, []byte(testName)), obj(0xDF23, nil), obj(0xDF24, []byte("19800217")), obj(0xDF25, []byte("1"))}),
		"bad date": template(0xFF20, 0xDF21, [][]byte{
			obj(0xDF22, []byte(testName)), obj(0xDF23, []byte(testAddress)), obj(0xDF24, []byte("19800017")), obj(0xDF25, []byte("1"))}),
		"sex 5": template(0xFF20, 0xDF21, [][]byte{
			obj(0xDF22, []byte(testName)), obj(0xDF23, []byte(testAddress)), obj(0xDF24, []byte("19800217")), obj(0xDF25, []byte("5"))}),
		"fields swapped": template(0xFF20, 0xDF21, [][]byte{
			obj(0xDF23, []byte(testAddress)), obj(0xDF22, []byte(testName)), obj(0xDF24, []byte("19800217")), obj(0xDF25, []byte("1"))}),
		"truncated":     testBasic4File[:len(testBasic4File)-1],
		"garbage after": cat(testBasic4File, []byte{0x01}),
	}
	for name, b := range bad {
		if _, err := ParseBasic4(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSupportIntegrity(t *testing.T) {
	_, ap, card := testKeys(t)
	rec := integrity(t, testNumberFile, testBasic4File, ap)
	if !bytes.Equal(rec[:5], hx("FF 30 82 01 4B")) || !bytes.Equal(rec[5:7], hx("DF 31")) || !bytes.Equal(rec[75:80], hx("DF 33 82 01 00")) {
		t.Fatalf("fixture % X", rec[:8])
	}
	s, err := ParseSupportIntegrity(cat(rec, []byte{0xFF, 0xFF}))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.signed) != 70 || !bytes.Equal(s.signed, rec[5:75]) {
		t.Fatalf("signed part of %d bytes", len(s.signed))
	}
	if err := s.CheckSignature(&ap.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSignature(&card.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("card key: %v", err)
	}
	b4, err := ParseBasic4(testBasic4File)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckBasic4(b4); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckNumberFile(testNumberFile); err != nil {
		t.Fatal(err)
	}
	// The trimmed 15 bytes do not match DF31 (doc §3.2), nor the whole
	// EF 0002 or file[3:] DF32.
	if err := s.CheckNumberFile(testNumberTLV); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("15 bytes: %v", err)
	}
	for _, wrong := range [][]byte{testBasic4File, testBasic4File[3:]} {
		h := sha256.Sum256(wrong)
		if bytes.Equal(h[:], s.Basic4Digest) {
			t.Fatal("DF32 over the wrong bytes")
		}
	}
	other := bytes.Clone(testBasic4File)
	other[len(other)-1] = '2' // sex 2
	b4x, err := ParseBasic4(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckBasic4(b4x); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("changed basic 4: %v", err)
	}
	if err := s.CheckBasic4(&Basic4{Name: testName}); err == nil {
		t.Fatal("hand-made Basic4 accepted")
	}
	if err := s.CheckBasic4(nil); err == nil {
		t.Fatal("nil accepted")
	}
	// Flipped digest or signature byte.
	for _, at := range []int{8, 44, 80, len(rec) - 1} {
		bad := bytes.Clone(rec)
		bad[at] ^= 0x80
		s, err := ParseSupportIntegrity(bad)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CheckSignature(&ap.PublicKey); !errors.Is(err, ErrBadSignature) {
			t.Errorf("flip at %d: %v", at, err)
		}
	}
	h := make([]byte, 32)
	sig := make([]byte, 256)
	bad := map[string][]byte{
		"wrong tag":     cat(hx("FF 31"), rec[2:]),
		"DF31 31":       obj(0xFF30, obj(0xDF31, h[:31]), obj(0xDF32, h), obj(0xDF33, sig)),
		"DF32 missing":  obj(0xFF30, obj(0xDF31, h), obj(0xDF33, sig)),
		"DF33 255":      obj(0xFF30, obj(0xDF31, h), obj(0xDF32, h), obj(0xDF33, sig[:255])),
		"extra":         obj(0xFF30, obj(0xDF31, h), obj(0xDF32, h), obj(0xDF33, sig), obj(0xDF34, nil)),
		"truncated":     rec[:len(rec)-1],
		"garbage after": cat(rec, []byte{0x12}),
	}
	for name, b := range bad {
		if _, err := ParseSupportIntegrity(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseChallengeKey(t *testing.T) {
	ca, ap, card := testKeys(t)
	rec := challengeKey(t, &card.PublicKey, ap)
	if !bytes.Equal(rec[:5], hx("FF 50 82 02 13")) || !bytes.Equal(rec[5:9], hx("DF 51 82 01")) {
		t.Fatalf("fixture % X", rec[:9])
	}
	k, err := ParseChallengeKey(cat(rec, make([]byte, 3)), &ap.PublicKey)
	if err != nil || !k.Equal(&card.PublicKey) {
		t.Fatalf("%v", err)
	}
	if _, err := ParseChallengeKey(rec, &ca.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong AP key: %v", err)
	}
	if _, err := ParseChallengeKey(rec, nil); err == nil {
		t.Fatal("nil key accepted")
	}
	for _, at := range []int{9 + 100, len(rec) - 1} {
		bad := bytes.Clone(rec)
		bad[at] ^= 0x02
		if _, err := ParseChallengeKey(bad, &ap.PublicKey); !errors.Is(err, ErrBadSignature) {
			t.Errorf("flip at %d: %v", at, err)
		}
	}
	df51 := obj(0xDF51, keyValue(&card.PublicKey))
	bad := map[string][]byte{
		"wrong tag":    cat(hx("FF 51"), rec[2:]),
		"no DF52":      obj(0xFF50, df51),
		"DF52 first":   obj(0xFF50, obj(0xDF52, make([]byte, 256)), df51),
		"bad key":      obj(0xFF50, obj(0xDF51, []byte{0x90, 0x01, 0x03}), obj(0xDF52, make([]byte, 256))),
		"DF52 of 128":  obj(0xFF50, df51, obj(0xDF52, make([]byte, 128))),
		"truncated":    rec[:100],
		"garbage":      cat(rec, []byte{0x01}),
		"empty":        nil,
		"only FF":      bytes.Repeat([]byte{0xFF}, 16),
		"wrong inner":  obj(0xFF50, obj(0xDF41, keyValue(&card.PublicKey)), obj(0xDF52, make([]byte, 256))),
		"length 84":    cat(hx("FF 50 84 00 00 02 13"), rec[5:]),
		"indefinite":   cat(hx("FF 50 80"), rec[5:]),
		"big length":   cat(hx("FF 50 83 FF FF FF"), rec[5:]),
		"3-byte tag":   cat(hx("FF D0 50 82 02 13"), rec[5:]),
		"header only":  rec[:4],
		"one byte":     rec[:1],
		"DF51 in DF51": obj(0xFF50, obj(0xDF51, df51), obj(0xDF52, make([]byte, 256))),
	}
	for name, b := range bad {
		if _, err := ParseChallengeKey(b, &ap.PublicKey); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
