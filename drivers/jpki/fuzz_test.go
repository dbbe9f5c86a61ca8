package jpki

import (
	"bytes"
	"context"
	"crypto"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for every parser of card bytes, seeded from the table
// tests' fixtures. Each must not panic, must do bounded work, and whatever
// it accepts must satisfy the documented layout.

func FuzzParseCVCertificate(f *testing.F) {
	ca, ap, _ := testKeys(f)
	cv := cvCert(f, mustKeyID("6000023/001"), mustKeyID("1322121/000"), &ap.PublicKey, ca)
	f.Add(cv)
	f.Add(cat(cv, bytes.Repeat([]byte{0xFF}, 16)))
	f.Add(cv[:300])
	f.Add(hx("7F 21 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCVCertificate(b)
		if err != nil {
			return
		}
		if len(c.Body) != 297 || len(c.Signature) != 256 || !bytes.Equal(c.Issuer[:], c.Body[:16]) || !bytes.Equal(c.Subject[:], c.Body[16:32]) {
			t.Fatal("accepted a certificate off the layout")
		}
		_ = c.CheckSignatureFrom(&ca.PublicKey)
		_ = c.Issuer.String()
	})
}

func FuzzParseCardKey(f *testing.F) {
	_, _, card := testKeys(f)
	f.Add(keyValue(&card.PublicKey))
	f.Add(hx("90 01 03 91 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseCardKey(b)
		if err == nil && (k.N.BitLen() != 2048 || k.E < 3 || k.E%2 == 0) {
			t.Fatal("accepted a key that is not RSA-2048")
		}
	})
}

func FuzzParseCardFace(f *testing.F) {
	_, ap, _ := testKeys(f)
	ff := defaultFace(f)
	ff.photo, ff.name, ff.addr = []byte("JP2"), []byte("PNG1"), []byte("PNG2")
	small := cardFace(f, ff, ap)
	f.Add(small)
	f.Add(small[:len(small)-7])
	f.Add(small[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		face, err := ParseCardFace(b)
		if err != nil {
			return
		}
		if !validDate([]byte(face.BirthDate)) || !validDate([]byte(face.Expiry)) || len(face.Signature) != 256 ||
			len(face.seg1)+len(face.seg2)+len(face.seg3) > len(b) || face.CardKey == nil {
			t.Fatal("accepted a record off the layout")
		}
		_ = face.CheckSignature(&ap.PublicKey)
	})
}

func FuzzParseBasic4(f *testing.F) {
	f.Add(testBasic4File)
	f.Add(cat(testBasic4File, []byte{0xFF, 0xFF}))
	f.Add(testBasic4File[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseBasic4(b)
		if err != nil {
			return
		}
		if !utf8.ValidString(r.Name) || !utf8.ValidString(r.Address) || !validDate([]byte(r.BirthDate)) ||
			!validSex([]byte(r.Sex)) || !bytes.Contains(b, r.signed) {
			t.Fatal("accepted a record off the layout")
		}
	})
}

func FuzzParseIndividualNumber(f *testing.F) {
	f.Add(testNumberFile)
	f.Add(testNumberTLV)
	f.Add(hx("10 01 0C 35 33 37 36 38 36 36 37 37 31 38 38"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseIndividualNumber(b)
		if err == nil && (len(n) != 12 || !allDigits(n)) {
			t.Fatal("accepted a number that is not 12 digits")
		}
	})
}

func FuzzParseSupportIntegrity(f *testing.F) {
	_, ap, _ := testKeys(f)
	rec := integrity(f, testNumberFile, testBasic4File, ap)
	f.Add(rec)
	f.Add(cat(rec, []byte{0xFF}))
	f.Add(rec[:80])
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSupportIntegrity(b)
		if err != nil {
			return
		}
		if len(s.NumberDigest) != 32 || len(s.Basic4Digest) != 32 || len(s.Signature) != 256 || len(s.signed) < 68 {
			t.Fatal("accepted a record off the layout")
		}
		_ = s.CheckSignature(&ap.PublicKey)
		_ = s.CheckNumberFile(b)
	})
}

func FuzzParseChallengeKey(f *testing.F) {
	_, ap, card := testKeys(f)
	rec := challengeKey(f, &card.PublicKey, ap)
	f.Add(rec)
	f.Add(rec[:50])
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseChallengeKey(b, &ap.PublicKey)
		if err == nil && k.N.BitLen() != 2048 {
			t.Fatal("accepted a key that is not RSA-2048")
		}
	})
}

func FuzzParseSignSAN(f *testing.F) {
	f.Add(defaultSAN())
	f.Add(sanValue(obj(0x82, []byte("example.jp"))))
	f.Add(sanValue(otherName(jpkiOID(4), 0x13, "319800217")))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseSignSAN(b)
		if err == nil && (!utf8.ValidString(a.Name) || !utf8.ValidString(a.Address)) {
			t.Fatal("accepted invalid UTF-8")
		}
	})
}

func FuzzParseEraBirthDate(f *testing.F) {
	for _, s := range []string{"319800217", "300550217", "419890108", "400010108", "520190501", "000000000", "118680125", "400:00101"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		era, d, err := ParseEraBirthDate(s)
		if err != nil {
			return
		}
		if era < EraUnknown || era > EraReiwa {
			t.Fatalf("era %d", era)
		}
		if era != EraUnknown {
			if e, _ := eraOf(d.Year(), int(d.Month()), d.Day()); e != era {
				t.Fatalf("%v is not in era %v", d, era)
			}
		}
	})
}

func FuzzJapaneseEra(f *testing.F) {
	for _, s := range []string{"19800217", "19890107", "19890108", "20190430", "20190501", "18680125"} {
		f.Add(s, testB)
	}
	f.Fuzz(func(t *testing.T, date, b string) {
		era, y, err := JapaneseEra(date)
		if err == nil && (era == EraUnknown || y < 1) {
			t.Fatalf("era %v year %d", era, y)
		}
		_ = MatchCollationB([]byte(b), date, date)
		_ = CheckCollationBFormat([]byte(b))
	})
}

func FuzzParseDigestInfo(f *testing.F) {
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		di, _ := DigestInfo(h, make([]byte, h.Size()))
		f.Add(di)
	}
	f.Add(faceT(nil, nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, d, err := ParseDigestInfo(b)
		if err != nil {
			return
		}
		again, err := DigestInfo(h, d)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatal("DigestInfo does not round-trip")
		}
	})
}

func FuzzParseCertAvailability(f *testing.F) {
	f.Add(hx("8F 8F 00"))
	f.Add(hx("00 8F 00"))
	f.Add(hx("8F"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseCertAvailability(b)
		if err == nil && (len(b) != 3 || a.Sign != (b[0] == 0x8F) || a.Auth != (b[1] == 0x8F)) {
			t.Fatal("wrong availability")
		}
	})
}

func FuzzSecretStatus(f *testing.F) {
	for _, sw := range []uint16{0x9000, 0x63C3, 0x63C1, 0x63C0, 0x6984, 0x6983, 0x6982, 0x6A82, 0x6300} {
		f.Add(sw)
	}
	f.Fuzz(func(t *testing.T, sw uint16) {
		err := SecretStatus(sw)
		if (err == nil) != (sw == 0x9000) {
			t.Fatalf("%04X: %v", sw, err)
		}
	})
}

func FuzzParseKeyID(f *testing.F) {
	for _, s := range []string{"5000023/001", "5000020/001+A8", "6000033/001", "bad"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyID(s)
		if err != nil {
			return
		}
		again, err := ParseKeyID(k.String())
		if err != nil || again != k {
			t.Fatalf("%q does not round-trip (%q)", s, k.String())
		}
	})
}

// FuzzReadTLVFile serves a fuzzed file and checks ReadTLVFile returns
// exactly one TLV that parses with its own header.
func FuzzReadTLVFile(f *testing.F) {
	f.Add(testNumberFile, false)
	f.Add(testBasic4File, true)
	f.Add(hx("7F 21 82 02 33 00"), true)
	f.Fuzz(func(t *testing.T, file []byte, warn bool) {
		c := &fileCard{file: file, eofWarn: warn}
		got, err := ReadTLVFile(context.Background(), c, 0x0001)
		if err != nil {
			return
		}
		one, perr := parseOne(got, 0)
		if perr != nil || len(one.raw) != len(got) || !bytes.HasPrefix(file, got) {
			t.Fatalf("returned %d bytes that are not one TLV (%v)", len(got), perr)
		}
		if len(c.reads) > 2+maxTLV/256 {
			t.Fatalf("%d reads", len(c.reads))
		}
	})
}
