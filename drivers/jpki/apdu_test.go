package jpki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

var ctx = context.Background()

func TestSelectApplication(t *testing.T) {
	surface := cat(hx("00 A4 04 0C 0A"), AIDSurface)
	c := newAPDUCard(t, exchange{want: surface, resp: swb(0x9000)})
	if err := SelectApplication(ctx, c, AIDSurface); err != nil {
		t.Fatal(err)
	}
	c.done()
	if !bytes.Equal(AIDSupport, hx("D3 92 10 00 31 00 01 01 04 08")) || !bytes.Equal(AIDSurface, hx("D3 92 10 00 31 00 01 01 04 02")) {
		t.Fatal("AIDs differ from doc §1")
	}
	for _, sw := range []uint16{0x6A82, 0x6A86} {
		c := newAPDUCard(t, exchange{want: cat(hx("00 A4 04 0C 0A"), AIDSupport), resp: swb(sw)})
		err := SelectApplication(ctx, c, AIDSupport)
		if !errors.Is(err, ErrNoApplication) || errors.Is(err, ErrNotJPKI) {
			t.Errorf("SW %04X: %v", sw, err)
		}
		c = newAPDUCard(t, exchange{resp: swb(sw)})
		err = SelectAP(ctx, c)
		if !errors.Is(err, ErrNotJPKI) || !errors.Is(err, ErrNoApplication) {
			t.Errorf("SelectAP SW %04X: %v", sw, err)
		}
		if err.Error() != fmt.Sprintf("jpki: no JPKI application on this card (SW %04X)", sw) {
			t.Errorf("SelectAP error text %q", err)
		}
	}
	c = newAPDUCard(t, exchange{resp: swb(0x6999)})
	err := SelectApplication(ctx, c, AIDSurface)
	var se *iso7816.StatusError
	if !errors.As(err, &se) || se.SW != 0x6999 || errors.Is(err, ErrNoApplication) {
		t.Errorf("other SW: %v", err)
	}
	c = newAPDUCard(t, exchange{err: fmt.Errorf("pn532: %w", iso7816.ErrCardLost)})
	if err := SelectAP(ctx, c); !errors.Is(err, iso7816.ErrCardLost) || errors.Is(err, ErrNotJPKI) {
		t.Errorf("card lost: %v", err)
	}
}

func TestSecretStatus(t *testing.T) {
	cases := []struct {
		sw      uint16
		tries   int // > 0: a *WrongSecretError with these tries
		blocked bool
		other   bool // a wrapped *iso7816.StatusError
	}{
		{sw: 0x9000},
		{sw: 0x63C3, tries: 3},
		{sw: 0x63C9, tries: 9},
		{sw: 0x63CA, tries: 10},
		{sw: 0x63C1, tries: 1},
		{sw: 0x63C0, blocked: true},
		{sw: 0x6984, blocked: true},
		{sw: 0x6983, blocked: true},
		{sw: 0x6982, other: true},
		{sw: 0x6A82, other: true},
		{sw: 0x6A88, other: true},
		{sw: 0x6700, other: true},
		{sw: 0x6300, other: true},
		{sw: 0x6B00, other: true},
	}
	for _, c := range cases {
		err := SecretStatus(c.sw)
		var wrong *WrongSecretError
		var se *iso7816.StatusError
		switch {
		case c.tries > 0:
			if !errors.As(err, &wrong) || wrong.TriesLeft != c.tries || !errors.Is(err, ErrWrongSecret) || errors.Is(err, ErrBlocked) {
				t.Errorf("%04X: %v", c.sw, err)
			}
		case c.blocked:
			if !errors.Is(err, ErrBlocked) || errors.Is(err, ErrWrongSecret) {
				t.Errorf("%04X: %v", c.sw, err)
			}
		case c.other:
			if !errors.As(err, &se) || se.SW != c.sw || errors.Is(err, ErrBlocked) || errors.Is(err, ErrWrongSecret) {
				t.Errorf("%04X: %v", c.sw, err)
			}
		default:
			if err != nil {
				t.Errorf("%04X: %v", c.sw, err)
			}
		}
	}
	if got := SecretStatus(0x63C2).Error(); got != "jpki: wrong PIN, password or collation number (2 tries left)" {
		t.Errorf("text %q", got)
	}
}

func TestVerifySecretAPDU(t *testing.T) {
	verify1234 := hx("00 20 00 80 04 31 32 33 34")
	cases := []struct {
		name  string
		fid   uint16
		resp  []byte
		terr  error
		check func(error) bool
	}{
		{"ok", EFAuthPIN, swb(0x9000), nil, func(err error) bool { return err == nil }},
		{"wrong", SupportPIN, swb(0x63C2), nil, func(err error) bool {
			var w *WrongSecretError
			return errors.As(err, &w) && w.TriesLeft == 2
		}},
		{"exhausting", EFAuthPIN, swb(0x63C0), nil, func(err error) bool { return errors.Is(err, ErrBlocked) }},
		{"blocked", SurfacePINB, swb(0x6984), nil, func(err error) bool { return errors.Is(err, ErrBlocked) }},
		{"card lost", EFSignPIN, nil, fmt.Errorf("pn532: no answer: %w", iso7816.ErrCardLost), func(err error) bool {
			return errors.Is(err, iso7816.ErrCardLost)
		}},
		{"6Cxx is not followed", EFAuthPIN, swb(0x6C04), nil, func(err error) bool {
			var se *iso7816.StatusError
			return errors.As(err, &se) && se.SW == 0x6C04
		}},
		{"no SW", EFAuthPIN, []byte{0x90}, nil, func(err error) bool { return errors.Is(err, iso7816.ErrShortResponse) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			card := newAPDUCard(t,
				exchange{want: selectEF(c.fid), resp: swb(0x9000)},
				exchange{want: verify1234, resp: c.resp, err: c.terr})
			secret := []byte("1234")
			err := VerifySecret(ctx, card, c.fid, secret)
			if !c.check(err) {
				t.Fatalf("err %v", err)
			}
			card.done() // exactly one VERIFY: never retried, never re-sent
			if !bytes.Equal(card.copies[1], verify1234) {
				t.Fatalf("VERIFY % X", card.copies[1])
			}
			if !bytes.Equal(card.sent[1], make([]byte, len(verify1234))) {
				t.Errorf("APDU buffer not zeroed: % X", card.sent[1])
			}
			if string(secret) != "1234" {
				t.Error("caller's secret modified")
			}
			if err != nil && strings.Contains(err.Error(), "1234") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	// Collation number B: 14 digits after SELECT 0012 (doc §4.1).
	card := newAPDUCard(t,
		exchange{want: hx("00 A4 02 0C 02 00 12"), resp: swb(0x9000)},
		exchange{want: cat(hx("00 20 00 80 0E"), []byte(testB)), resp: swb(0x9000)})
	if err := VerifySecret(ctx, card, SurfacePINB, []byte(testB)); err != nil {
		t.Fatal(err)
	}
	card.done()
	// No secret, or a too long one, sends nothing.
	for _, s := range [][]byte{nil, {}, bytes.Repeat([]byte("1"), 17)} {
		card := newAPDUCard(t)
		if err := VerifySecret(ctx, card, EFAuthPIN, s); err == nil {
			t.Errorf("secret of %d bytes accepted", len(s))
		}
		card.done()
	}
	// SELECT failing: no VERIFY.
	card = newAPDUCard(t, exchange{want: selectEF(0x0015), resp: swb(0x6A82)})
	if err := VerifySecret(ctx, card, SupportPINB, []byte(testB)); err == nil || strings.Contains(err.Error(), testB) {
		t.Errorf("err %v", err)
	}
	card.done()
}

func TestComputeSignatureAPDU(t *testing.T) {
	_, _, cardKey := testKeys(t)
	h := sha256.Sum256([]byte("document"))
	di, err := DigestInfo(crypto.SHA256, h[:])
	if err != nil || len(di) != 0x33 {
		t.Fatalf("DigestInfo %d bytes, %v", len(di), err)
	}
	sig, err := rsa.SignPKCS1v15(nil, cardKey, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	cmd := cat(hx("80 2A 00 80 33"), di, []byte{0x00})
	card := newAPDUCard(t,
		exchange{want: hx("00 A4 02 0C 02 00 1A"), resp: swb(0x9000)},
		exchange{want: cmd, resp: ok(sig)})
	got, err := ComputeSignature(ctx, card, EFSignKey, di)
	if err != nil || !bytes.Equal(got, sig) {
		t.Fatalf("signature %d bytes, %v", len(got), err)
	}
	card.done()

	// 61xx: the card hands the signature over with GET RESPONSE.
	card = newAPDUCard(t,
		exchange{want: hx("00 A4 02 0C 02 00 17"), resp: swb(0x9000)},
		exchange{want: cmd, resp: cat(sig[:200], swb(0x6138))},
		exchange{resp: ok(sig[200:])})
	if got, err := ComputeSignature(ctx, card, EFAuthKey, di); err != nil || !bytes.Equal(got, sig) {
		t.Fatalf("GET RESPONSE: %d bytes, %v", len(got), err)
	}
	card.done()

	// 6982: no VERIFY before.
	card = newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{want: cmd, resp: swb(0x6982)})
	if _, err := ComputeSignature(ctx, card, EFAuthKey, di); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("6982: %v", err)
	}
	// Other status: a clear error with the SW.
	card = newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{want: cmd, resp: swb(0x6A86)})
	_, err = ComputeSignature(ctx, card, EFAuthKey, di)
	var se *iso7816.StatusError
	if !errors.As(err, &se) || se.SW != 0x6A86 || errors.Is(err, ErrAccessDenied) {
		t.Fatalf("6A86: %v", err)
	}
	// Wrong length answer.
	card = newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{want: cmd, resp: ok(sig[:255])})
	if _, err := ComputeSignature(ctx, card, EFAuthKey, di); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short signature: %v", err)
	}
	// Card lost.
	card = newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{want: cmd, err: iso7816.ErrCardLost})
	if _, err := ComputeSignature(ctx, card, EFAuthKey, di); !errors.Is(err, iso7816.ErrCardLost) {
		t.Fatalf("lost: %v", err)
	}
	// Nothing to sign, or too much: nothing sent.
	for _, in := range [][]byte{nil, make([]byte, 246)} {
		card := newAPDUCard(t)
		if _, err := ComputeSignature(ctx, card, EFAuthKey, in); err == nil {
			t.Errorf("%d-byte input accepted", len(in))
		}
		card.done()
	}
}

func TestChallengeSignatureAPDU(t *testing.T) {
	_, _, cardKey := testKeys(t)
	nonce := []byte("0123456789abcdef")
	h := sha256.Sum256(nonce)
	di, _ := DigestInfo(crypto.SHA256, h[:])
	sig, _ := rsa.SignPKCS1v15(nil, cardKey, crypto.SHA256, h[:])
	want := cat(hx("80 2A 00 00 33 30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"), h[:], []byte{0x00})
	card := newAPDUCard(t, exchange{want: want, resp: ok(sig)})
	got, err := ChallengeSignature(ctx, card, di)
	if err != nil {
		t.Fatal(err)
	}
	card.done()
	if err := rsa.VerifyPKCS1v15(&cardKey.PublicKey, crypto.SHA256, h[:], got); err != nil {
		t.Fatal(err)
	}
	card = newAPDUCard(t, exchange{want: want, resp: swb(0x6982)})
	if _, err := ChallengeSignature(ctx, card, di); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("6982: %v", err)
	}
	card = newAPDUCard(t, exchange{want: want, resp: swb(0x6985)})
	if _, err := ChallengeSignature(ctx, card, di); err == nil || !strings.Contains(err.Error(), "6985") {
		t.Fatalf("6985: %v", err)
	}
}

func TestDigestInfo(t *testing.T) {
	cases := []struct {
		h      crypto.Hash
		prefix string
		size   int
	}{
		{crypto.SHA1, "30 21 30 09 06 05 2B 0E 03 02 1A 05 00 04 14", 20},
		{crypto.SHA256, "30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20", 32},
		{crypto.SHA384, "30 41 30 0D 06 09 60 86 48 01 65 03 04 02 02 05 00 04 30", 48},
		{crypto.SHA512, "30 51 30 0D 06 09 60 86 48 01 65 03 04 02 03 05 00 04 40", 64},
	}
	for _, c := range cases {
		d := bytes.Repeat([]byte{0xA5}, c.size)
		di, err := DigestInfo(c.h, d)
		if err != nil || !bytes.Equal(di, cat(hx(c.prefix), d)) {
			t.Errorf("%v: % X, %v", c.h, di, err)
		}
		h, got, err := ParseDigestInfo(di)
		if err != nil || h != c.h || !bytes.Equal(got, d) {
			t.Errorf("parse %v: %v %v", c.h, h, err)
		}
		if _, err := DigestInfo(c.h, d[1:]); err == nil {
			t.Errorf("%v: short digest accepted", c.h)
		}
		for _, bad := range [][]byte{di[:len(di)-1], append(bytes.Clone(di), 0), cat([]byte{0x31}, di[1:])} {
			if _, _, err := ParseDigestInfo(bad); !errors.Is(err, ErrMalformed) {
				t.Errorf("%v: bad DigestInfo accepted", c.h)
			}
		}
	}
	if _, err := DigestInfo(crypto.MD5, make([]byte, 16)); err == nil {
		t.Error("MD5 accepted")
	}
	if _, err := DigestInfo(crypto.Hash(999), nil); err == nil {
		t.Error("unknown hash accepted")
	}
	// The card-face T prefix (96-byte OCTET STRING) is not a DigestInfo.
	if _, _, err := ParseDigestInfo(faceT(nil, nil, nil)); err == nil {
		t.Error("115-byte T accepted")
	}
}

func TestCertAvailability(t *testing.T) {
	cases := []struct {
		in         string
		sign, auth bool
		bad        bool
	}{
		{in: "8F 8F 00", sign: true, auth: true},
		{in: "00 8F 00", auth: true},
		{in: "8F 00 00", sign: true},
		{in: "8E 8F 8F", auth: true},
		{in: "FF FF FF"},
		{in: "8F 8F", bad: true},
		{in: "8F 8F 00 00", bad: true},
		{in: "", bad: true},
	}
	for _, c := range cases {
		got, err := ParseCertAvailability(hx(c.in))
		if c.bad != (err != nil) || got.Sign != c.sign || got.Auth != c.auth {
			t.Errorf("%q: %+v %v", c.in, got, err)
		}
	}
	card := newAPDUCard(t,
		exchange{want: hx("00 A4 02 0C 02 00 08"), resp: swb(0x9000)},
		exchange{want: hx("00 B0 00 00 03"), resp: ok(hx("00 8F 00"))})
	got, err := ReadCertAvailability(ctx, card)
	if err != nil || got.Sign || !got.Auth {
		t.Fatalf("%+v %v", got, err)
	}
	card.done()
}

func TestReadTLVFile(t *testing.T) {
	ca, ap, _ := testKeys(t)
	cv := cvCert(t, mustKeyID("6000023/001"), mustKeyID("1322121/000"), &ap.PublicKey, ca)
	if len(cv) != 568 || !bytes.Equal(cv[:5], hx("7F 21 82 02 33")) {
		t.Fatalf("CV fixture %d bytes % X", len(cv), cv[:5])
	}
	for _, warn := range []bool{false, true} {
		c := &fileCard{file: cat(cv, bytes.Repeat([]byte{0xFF}, 100)), eofWarn: warn}
		got, err := ReadTLVFile(ctx, c, SurfaceEFCVCert)
		if err != nil || !bytes.Equal(got, cv) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		// 568 bytes: 256, then the 312 left in two equal reads (readRest).
		want := [][2]int{{0, 256}, {256, 156}, {412, 156}}
		if fmt.Sprint(c.reads) != fmt.Sprint(want) {
			t.Errorf("reads %v, want %v", c.reads, want)
		}
	}
	// EF 0001: the 15-byte TLV inside the first read, filler not returned.
	c := &fileCard{file: testNumberFile}
	got, err := ReadTLVFile(ctx, c, SupportEFNumber)
	if err != nil || !bytes.Equal(got, testNumberTLV) {
		t.Fatalf("EF 0001: % X %v", got, err)
	}
	// A file shorter than the first read (6282 with the bytes).
	c = &fileCard{file: hx("53 03 01 02 03"), eofWarn: true}
	if got, err := ReadTLVFile(ctx, c, 0x0005); err != nil || len(got) != 5 {
		t.Fatalf("short file: % X %v", got, err)
	}
	// Truncated: the header promises more than the file holds.
	for _, warn := range []bool{false, true} {
		c = &fileCard{file: cv[:400], eofWarn: warn}
		if _, err := ReadTLVFile(ctx, c, SurfaceEFCVCert); !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated (6282 %v): %v", warn, err)
		}
	}
	// Bad headers.
	for _, f := range [][]byte{hx("FF FF FF FF FF FF FF FF"), hx("7F 21 84 00 00 01 00"), hx("7F 21 83 01 00 00"), {}} {
		c = &fileCard{file: f}
		if _, err := ReadTLVFile(ctx, c, 0x0004); !errors.Is(err, ErrMalformed) {
			t.Errorf("% X: %v", f, err)
		}
	}
	// Needs a PIN.
	card := newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{want: readCmd(0, 0), resp: swb(0x6982)})
	if _, err := ReadTLVFile(ctx, card, SupportEFBasic4); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("6982: %v", err)
	}
	// Card lost mid-file.
	card = newAPDUCard(t, exchange{resp: swb(0x9000)},
		exchange{want: readCmd(0, 0), resp: ok(cv[:256])},
		exchange{want: readCmd(256, 156), err: iso7816.ErrCardLost})
	if _, err := ReadTLVFile(ctx, card, SurfaceEFCVCert); !errors.Is(err, iso7816.ErrCardLost) {
		t.Errorf("lost: %v", err)
	}
	card.done()
	// A card answering more than asked.
	card = newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{want: readCmd(0, 0), resp: ok(bytes.Repeat(cv[:1], 257))})
	if _, err := ReadTLVFile(ctx, card, SurfaceEFCVCert); !errors.Is(err, ErrMalformed) {
		t.Errorf("long answer: %v", err)
	}
}

func TestReadWholeFile(t *testing.T) {
	for _, warn := range []bool{false, true} {
		c := &fileCard{file: testNumberFile, eofWarn: warn}
		got, err := ReadWholeFile(ctx, c, SupportEFNumber, 256)
		if err != nil || !bytes.Equal(got, testNumberFile) || len(got) != 17 {
			t.Fatalf("EF 0001: % X %v", got, err)
		}
	}
	// Ends exactly at a chunk boundary: 6B00 on the next read.
	big := bytes.Repeat([]byte{0xAB}, 512)
	c := &fileCard{file: big}
	got, err := ReadWholeFile(ctx, c, 0x0002, 4096)
	if err != nil || len(got) != 512 {
		t.Fatalf("512: %d %v", len(got), err)
	}
	if fmt.Sprint(c.reads) != "[[0 256] [256 256] [512 256]]" {
		t.Errorf("reads %v", c.reads)
	}
	// Exactly max: confirmed by a 1-byte read.
	c = &fileCard{file: testNumberFile}
	if got, err := ReadWholeFile(ctx, c, SupportEFNumber, 17); err != nil || len(got) != 17 {
		t.Fatalf("max 17: %d %v", len(got), err)
	}
	if fmt.Sprint(c.reads) != "[[0 17] [17 1]]" {
		t.Errorf("reads %v", c.reads)
	}
	// Longer than max.
	c = &fileCard{file: big}
	if _, err := ReadWholeFile(ctx, c, 0x0002, 300); !errors.Is(err, ErrMalformed) {
		t.Errorf("too long: %v", err)
	}
	// Empty file.
	c = &fileCard{}
	if got, err := ReadWholeFile(ctx, c, 0x0002, 10); err != nil || len(got) != 0 {
		t.Errorf("empty: %d %v", len(got), err)
	}
	for _, m := range []int{0, -1, maxFileSize + 1} {
		if _, err := ReadWholeFile(ctx, &fileCard{}, 0x0002, m); err == nil {
			t.Errorf("max %d accepted", m)
		}
	}
}
