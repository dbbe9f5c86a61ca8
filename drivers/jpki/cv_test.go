package jpki

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
)

func TestKeyID(t *testing.T) {
	cases := []struct {
		in  string
		hex string
	}{
		{"5000023/001", "35303030303233 0805 303031 000000 00"},
		{"6000033/001", "36303030303333 0805 303031 000000 00"},
		{"5000020/001+A8", "35303030303230 0805 303031 000000 A8"},
		{"1322121/000", "31333232313231 0805 303030 000000 00"},
	}
	for _, c := range cases {
		k, err := ParseKeyID(c.in)
		if err != nil || !bytes.Equal(k[:], hx(c.hex)) {
			t.Errorf("%s: % X %v", c.in, k[:], err)
		}
		if k.String() != c.in {
			t.Errorf("%s: String %q", c.in, k.String())
		}
	}
	if k := mustKeyID("5000023/001"); !k.Production() || k.Test() {
		t.Error("5… is production")
	}
	if k := mustKeyID("6000023/001"); k.Production() || !k.Test() {
		t.Error("6… is test")
	}
	for _, bad := range []string{"", "5000023", "500002/001", "5000023-001", "5000023/01", "500002A/001",
		"5000023/001+", "5000023/001+00", "5000023/001+A", "5000023/001+A8B", "5000023/001+ZZ", "５000023/001"} {
		if _, err := ParseKeyID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var odd KeyID
	copy(odd[:], "9200073\x08\x050010000") // ASCII padding: not the documented layout
	if got := odd.String(); got != "39323030303733080530303130303030" {
		t.Errorf("non-conforming ID %q", got)
	}
	if lower, _ := ParseKeyID("5000020/001+a8"); lower.String() != "5000020/001+A8" {
		t.Errorf("lower-case hex: %v", lower)
	}
}

func TestParseCVCertificate(t *testing.T) {
	ca, ap, _ := testKeys(t)
	issuer, subject := mustKeyID("6000023/001"), mustKeyID("1322121/000")
	cv := cvCert(t, issuer, subject, &ap.PublicKey, ca)
	file := cat(cv, bytes.Repeat([]byte{0xFF}, 32))
	c, err := ParseCVCertificate(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != issuer || c.Subject != subject || !c.PublicKey.Equal(&ap.PublicKey) || len(c.Body) != 297 || len(c.Signature) != 256 {
		t.Fatalf("parsed %v %v", c.Issuer, c.Subject)
	}
	if !bytes.Equal(c.Body, cv[10:307]) || !bytes.Equal(cv[5:10], hx("5F 4E 82 01 29")) || !bytes.Equal(cv[307:312], hx("5F 37 82 01 00")) {
		t.Fatal("body is not the 5F4E value")
	}
	if err := c.CheckSignatureFrom(&ca.PublicKey); err != nil {
		t.Fatal(err)
	}
	// The AP key (or any other) does not verify it.
	if err := c.CheckSignatureFrom(&ap.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong CA: %v", err)
	}
	if err := c.CheckSignatureFrom(nil); err == nil {
		t.Fatal("nil CA accepted")
	}
	// Flipped bytes: signature, issuer, modulus.
	for _, at := range []int{len(cv) - 1, 10, 10 + 16, 10 + 32 + 20, 312} {
		bad := bytes.Clone(cv)
		bad[at] ^= 0x01
		c, err := ParseCVCertificate(bad)
		if err != nil {
			continue // e.g. a modulus no longer odd
		}
		if err := c.CheckSignatureFrom(&ca.PublicKey); !errors.Is(err, ErrBadSignature) {
			t.Errorf("flip at %d: %v", at, err)
		}
	}
	body, sig := cv[10:307], cv[312:]
	bad := map[string][]byte{
		"wrong outer tag":  cat(hx("7F 22"), cv[2:]),
		"wrong body tag":   obj(0x7F21, obj(0x5F4F, body), obj(0x5F37, sig)),
		"swapped":          obj(0x7F21, obj(0x5F37, sig), obj(0x5F4E, body)),
		"body 296":         obj(0x7F21, obj(0x5F4E, body[:296]), obj(0x5F37, sig)),
		"body 298":         obj(0x7F21, obj(0x5F4E, body, []byte{0}), obj(0x5F37, sig)),
		"sig 255":          obj(0x7F21, obj(0x5F4E, body), obj(0x5F37, sig[:255])),
		"extra object":     obj(0x7F21, obj(0x5F4E, body), obj(0x5F37, sig), obj(0x42, []byte{1})),
		"no signature":     obj(0x7F21, obj(0x5F4E, body)),
		"garbage after":    cat(cv, []byte{0xFF, 0x01}),
		"truncated":        cv[:len(cv)-1],
		"header only":      cv[:5],
		"empty":            nil,
		"exponent missing": obj(0x7F21, obj(0x5F4E, body[:32], hx("91 82 01 00"), body[32+5:], []byte{0, 0, 0, 0, 0}), obj(0x5F37, sig)),
	}
	for name, b := range bad {
		if _, err := ParseCVCertificate(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Without the 7F21 template (GET DATA form) is not accepted here.
	if _, err := ParseCVCertificate(cv[5:]); err == nil {
		t.Error("bare body accepted")
	}
	// 00 filler is fine too.
	if _, err := ParseCVCertificate(cat(cv, make([]byte, 8))); err != nil {
		t.Error(err)
	}
}

func TestParseCardKey(t *testing.T) {
	_, _, card := testKeys(t)
	good := keyValue(&card.PublicKey)
	if len(good) != 265 || !bytes.Equal(good[:9], cat(hx("90 03 01 00 01 91 82 01 00"))[:9]) {
		t.Fatalf("fixture % X", good[:9])
	}
	k, err := ParseCardKey(good)
	if err != nil || !k.Equal(&card.PublicKey) {
		t.Fatalf("%v", err)
	}
	n := good[9:]
	even := bytes.Clone(n)
	even[255] &^= 1
	small := bytes.Clone(n)
	small[0] &^= 0x80
	bad := map[string][]byte{
		"e 2 even":       cat(hx("90 01 02 91 82 01 00"), n),
		"e 1":            cat(hx("90 01 01 91 82 01 00"), n),
		"e leading zero": cat(hx("90 04 00 01 00 01 91 82 01 00"), n),
		"e 5 bytes":      cat(hx("90 05 01 00 00 00 01 91 82 01 00"), n),
		"e empty":        cat(hx("90 00 91 82 01 00"), n),
		"n first":        cat(hx("91 82 01 00"), n, hx("90 03 01 00 01")),
		"n 255":          cat(hx("90 03 01 00 01 91 81 FF"), n[:255]),
		"n 257":          cat(hx("90 03 01 00 01 91 82 01 01"), n, []byte{1}),
		"n even":         cat(hx("90 03 01 00 01 91 82 01 00"), even),
		"n 2047 bits":    cat(hx("90 03 01 00 01 91 82 01 00"), small),
		"trailing":       cat(good, []byte{0x00}),
		"truncated":      good[:264],
		"wrong tag":      cat(hx("92 03 01 00 01"), good[5:]),
		"empty":          nil,
		"e over 2^31":    cat(hx("90 04 80 00 00 01 91 82 01 00"), n),
		"n truncated":    cat(hx("90 03 01 00 01 91 83 00 01 00"), n[:255]),
	}
	for name, b := range bad {
		if _, err := ParseCardKey(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A non-minimal but consistent length is BER and accepted.
	k, err = ParseCardKey(cat(hx("90 81 03 01 00 01 91 83 00 01 00"), n))
	if err != nil || k.E != 65537 {
		t.Errorf("non-minimal lengths: %v", err)
	}
	k, err = ParseCardKey(cat(hx("90 01 03 91 82 01 00"), n))
	if err != nil || k.E != 3 || k.N.Cmp(new(big.Int).SetBytes(n)) != 0 {
		t.Errorf("e = 3: %v", err)
	}
}
