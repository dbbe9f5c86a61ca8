package jpki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// fakeCard is a minimal card-side JPKI AP with the real status words, so
// these tests exercise the reader's APDUs without any hardware.
type fakeCard struct {
	files   map[uint16][]byte
	locked  map[uint16]bool
	tries   map[uint16]int
	hasAP   bool
	apSel   bool
	ef      int // -1: none selected
	log     [][]byte
	pullAt  int // card leaves the field at this APDU number (0: never)
	maxRead int // largest Le honoured (0: 256)
}

func newFakeCard(cert []byte) *fakeCard {
	token := append([]byte("JPKIAPICCTOKEN2"), bytes.Repeat([]byte{' '}, 17)...)
	return &fakeCard{
		files:  map[uint16][]byte{EFToken: token, EFAuthCert: cert, EFAuthCA: cert, EFSignCert: cert},
		locked: map[uint16]bool{EFSignCert: true},
		tries:  map[uint16]int{EFAuthPIN: 3, EFSignPIN: 0},
		hasAP:  true,
		ef:     -1,
	}
}

func sw(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func (c *fakeCard) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	c.log = append(c.log, append([]byte(nil), apdu...))
	if c.pullAt > 0 && len(c.log) >= c.pullAt {
		return nil, iso7816.ErrCardLost
	}
	if len(apdu) < 4 {
		return sw(0x6700), nil
	}
	if apdu[0] != 0x00 {
		return sw(0x6E00), nil
	}
	switch apdu[1] {
	case 0xA4:
		if len(apdu) < 5 || int(apdu[4]) != len(apdu)-5 {
			return sw(0x6700), nil
		}
		data := apdu[5:]
		switch apdu[2] {
		case 0x04:
			if !c.hasAP || !bytes.Equal(data, AID) {
				return sw(0x6A82), nil
			}
			c.apSel, c.ef = true, -1
			return sw(0x9000), nil
		case 0x02:
			fid := uint16(data[0])<<8 | uint16(data[1])
			_, isFile := c.files[fid]
			_, isPIN := c.tries[fid]
			if !c.apSel || (!isFile && !isPIN) {
				return sw(0x6A82), nil
			}
			c.ef = int(fid)
			return sw(0x9000), nil
		}
		return sw(0x6A86), nil
	case 0xB0:
		if c.ef < 0 {
			return sw(0x6986), nil
		}
		f, ok := c.files[uint16(c.ef)]
		if !ok {
			return sw(0x6981), nil
		}
		if c.locked[uint16(c.ef)] {
			return sw(0x6982), nil
		}
		off := int(apdu[2])<<8 | int(apdu[3])
		le := 256
		if len(apdu) == 5 && apdu[4] != 0 {
			le = int(apdu[4])
		}
		if c.maxRead > 0 && le > c.maxRead {
			return sw(0x6C00 | uint16(c.maxRead)), nil
		}
		if off >= len(f) {
			return sw(0x6B00), nil
		}
		end := min(off+le, len(f))
		return append(append([]byte(nil), f[off:end]...), sw(0x9000)...), nil
	case 0x20:
		n, ok := c.tries[uint16(c.ef)]
		if !ok {
			return sw(0x6A88), nil
		}
		if len(apdu) > 4 {
			panic("test card: a PIN was presented")
		}
		if n == 0 {
			return sw(0x6984), nil
		}
		return sw(0x63C0 | uint16(n)), nil
	}
	return sw(0x6D00), nil
}

func certOfLen(n int) []byte {
	// A DER SEQUENCE of total length n with a two-byte length.
	b := make([]byte, n)
	b[0], b[1], b[2], b[3] = 0x30, 0x82, byte((n-4)>>8), byte(n-4)
	for i := 4; i < n; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

func TestReadTokenAndCertificate(t *testing.T) {
	cert := certOfLen(1234)
	c := newFakeCard(cert)
	tok, err := ReadToken(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Label != "JPKIAPICCTOKEN2" || tok.Holder != HolderCard {
		t.Fatalf("token %+v", tok)
	}
	got, err := ReadCertificate(context.Background(), c, EFAuthCert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, cert) {
		t.Fatalf("certificate differs (%d vs %d bytes)", len(got), len(cert))
	}
	// The exact reads: 256 bytes first (Le 00), then the 978 bytes left
	// in 4 equal reads, none past the end (readRest), after the token's.
	var reads [][2]int
	for _, a := range c.log {
		if a[1] == 0xB0 {
			le := int(a[4])
			if le == 0 {
				le = 256
			}
			reads = append(reads, [2]int{int(a[2])<<8 | int(a[3]), le})
		}
	}
	want := [][2]int{{0, 32}, {0, 256}, {256, 245}, {501, 245}, {746, 244}, {990, 244}}
	if fmt.Sprint(reads) != fmt.Sprint(want) {
		t.Errorf("READ BINARY (offset, Le) %v, want %v", reads, want)
	}
}

// TestCertificateReadsFitOneFrame: for every certificate size a read of
// 256 bytes at a time would fetch in 6 READ BINARY (the 7-APDU budget),
// ReadCertificate uses no more reads, and after the first every answer
// (data and SW1-SW2) fits one ISO/IEC 14443-4 frame of FSD 256 (PCB, 253
// bytes, CRC) whenever the size allows it at all.
func TestCertificateReadsFitOneFrame(t *testing.T) {
	for n := 300; n <= 1536; n++ {
		cert := certOfLen(n)
		c := newFakeCard(cert)
		if err := SelectAP(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		got, err := ReadCertificate(context.Background(), c, EFAuthCert)
		if err != nil || !bytes.Equal(got, cert) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		reads := countINS(c.log, 0xB0)
		if want := (n + 255) / 256; reads != want {
			t.Fatalf("%d bytes: %d READ BINARY, want %d", n, reads, want)
		}
		fits := n-256 <= (reads-1)*251
		for _, a := range c.log[2:] { // after SELECT AP and SELECT EF; the first read (offset 0) is skipped below
			if a[1] != 0xB0 || (a[2] == 0 && a[3] == 0) {
				continue
			}
			if le := int(a[4]); fits && (le == 0 || le+2 > 253) {
				t.Fatalf("%d bytes: read % X does not fit one frame", n, a)
			}
		}
	}
}

func countINS(log [][]byte, ins byte) int {
	n := 0
	for _, a := range log {
		if a[1] == ins {
			n++
		}
	}
	return n
}

func TestExactAPDUs(t *testing.T) {
	c := newFakeCard(certOfLen(300))
	if _, err := ReadToken(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		{0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01},
		{0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x06},
		{0x00, 0xB0, 0x00, 0x00, 0x20},
	}
	if len(c.log) != len(want) {
		t.Fatalf("APDUs % X", c.log)
	}
	for i := range want {
		if !bytes.Equal(c.log[i], want[i]) {
			t.Errorf("APDU %d = % X, want % X", i, c.log[i], want[i])
		}
	}
}

func TestNotJPKI(t *testing.T) {
	c := newFakeCard(certOfLen(300))
	c.hasAP = false
	if _, err := ReadToken(context.Background(), c); !errors.Is(err, ErrNotJPKI) {
		t.Fatalf("err %v", err)
	}
}

func TestProtectedFile(t *testing.T) {
	c := newFakeCard(certOfLen(300))
	if err := SelectAP(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCertificate(context.Background(), c, EFSignCert); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("err %v", err)
	}
}

func TestCardPulledMidRead(t *testing.T) {
	c := newFakeCard(certOfLen(1500))
	c.pullAt = 6
	_, err := ReadToken(context.Background(), c)
	if err == nil {
		_, err = ReadCertificate(context.Background(), c, EFAuthCert)
	}
	if !errors.Is(err, iso7816.ErrCardLost) {
		t.Fatalf("err %v", err)
	}
}

func TestWrongLeRecovered(t *testing.T) {
	// A card that only serves 128 bytes per read answers 6C80; the APDU
	// layer resends with Le 80.
	cert := certOfLen(700)
	c := newFakeCard(cert)
	c.maxRead = 128
	if err := SelectAP(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCertificate(context.Background(), c, EFAuthCert)
	if err != nil || !bytes.Equal(got, cert) {
		t.Fatalf("err %v, equal %v", err, bytes.Equal(got, cert))
	}
}

func TestRetryCounter(t *testing.T) {
	c := newFakeCard(certOfLen(300))
	if err := SelectAP(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	n, err := RetryCounter(context.Background(), c, EFAuthPIN)
	if err != nil || n != 3 {
		t.Fatalf("auth PIN tries %d, %v", n, err)
	}
	if _, err := RetryCounter(context.Background(), c, EFSignPIN); !errors.Is(err, ErrBlocked) {
		t.Fatalf("blocked PIN: %v", err)
	}
	// The query never carries data: the fake card panics if a PIN is sent.
	for _, a := range c.log {
		if a[1] == 0x20 && len(a) != 4 {
			t.Fatalf("VERIFY with data: % X", a)
		}
	}
}

func TestParseToken(t *testing.T) {
	cases := map[string]Holder{
		"JPKIAPICCTOKEN2                 ": HolderCard,
		"JPKIAPICCTOKEN\x00\x00\x00":       HolderJukiCard,
		"JPKIAPGPSETOKEN ":                 HolderAndroid,
		"JPKIAPIOSTOKEN":                   HolderIPhone,
		"SOMETHINGELSE":                    HolderUnknown,
		"":                                 HolderUnknown,
	}
	for in, want := range cases {
		if got := ParseToken([]byte(in)).Holder; got != want {
			t.Errorf("ParseToken(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDERLength(t *testing.T) {
	cases := []struct {
		in   []byte
		want int
		ok   bool
	}{
		{[]byte{0x30, 0x82, 0x04, 0xCE}, 1234, true},
		{[]byte{0x30, 0x81, 0x80}, 131, true},
		{[]byte{0x30, 0x05}, 7, true},
		{[]byte{0x31, 0x05}, 0, false},
		{[]byte{0x30, 0x81, 0x05}, 0, false},       // non-minimal
		{[]byte{0x30, 0x82, 0x00, 0x10}, 0, false}, // non-minimal
		{[]byte{0x30, 0x83, 0x01, 0x00, 0x00}, 0, false},
		{[]byte{0x30, 0x82, 0xFF, 0xFF}, 0, false}, // beyond READ BINARY reach
		{[]byte{0x30, 0x82, 0x04}, 0, false},
		{[]byte{0x30}, 0, false},
	}
	for _, c := range cases {
		got, err := DERLength(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("DERLength(% X) = %d, %v", c.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("DERLength(% X) error %v is not ErrMalformed", c.in, err)
		}
	}
}

// scriptCard answers READ BINARY with fuzzer-chosen bytes.
type scriptCard struct {
	answers [][]byte
	n       int
}

func (s *scriptCard) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	if apdu[1] == 0xA4 {
		return sw(0x9000), nil
	}
	if s.n >= len(s.answers) {
		return sw(0x6B00), nil
	}
	s.n++
	return s.answers[s.n-1], nil
}

func FuzzReadCertificate(f *testing.F) {
	f.Add([]byte{0x30, 0x82, 0x01, 0x00, 0x90, 0x00}, []byte{0x01, 0x02, 0x90, 0x00})
	f.Add([]byte{0x30, 0x05, 0x90, 0x00}, []byte{0x61, 0x02})
	f.Add([]byte{0x6C, 0x04}, []byte{0x30, 0x81})
	f.Fuzz(func(t *testing.T, first, rest []byte) {
		c := &scriptCard{answers: [][]byte{first, rest, rest, rest}}
		b, err := ReadCertificate(context.Background(), c, EFAuthCert)
		if err == nil {
			n, derr := DERLength(b)
			if derr != nil || n != len(b) {
				t.Fatalf("accepted %d bytes with DER length %d (%v)", len(b), n, derr)
			}
		}
	})
}

func FuzzParseToken(f *testing.F) {
	f.Add([]byte("JPKIAPICCTOKEN2   "))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok := ParseToken(b)
		if tok.Holder != HolderUnknown && len(tok.Label) < 14 {
			t.Fatalf("label %q recognised as %s", tok.Label, tok.Holder)
		}
	})
}

// TestReadBinaryEndOfFileWarning: 6282 with data is the end of a short
// file, a warning: the token label still reads. 6282 or 6B00 with no data
// is an error, and so is 6982.
func TestReadBinaryEndOfFileWarning(t *testing.T) {
	ctx := context.Background()
	label := []byte("JPKIAPICCTOKEN2")
	short := append(bytes.Clone(label), 0x62, 0x82)
	card := newAPDUCard(t,
		exchange{want: hx("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"), resp: swb(0x9000)},
		exchange{want: hx("00 A4 02 0C 02 00 06"), resp: swb(0x9000)},
		exchange{want: readCmd(0, 32), resp: short})
	tok, err := ReadToken(ctx, card)
	if err != nil || tok.Label != string(label) || tok.Holder != HolderCard {
		t.Fatalf("ReadToken = %+v, %v", tok, err)
	}
	card.done()
	for sw, want := range map[uint16]error{0x6282: nil, 0x6B00: nil, 0x6982: ErrAccessDenied} {
		card := newAPDUCard(t, exchange{want: readCmd(0x10, 8), resp: swb(sw)})
		b, err := ReadBinary(ctx, card, 0x10, 8)
		if err == nil || b != nil {
			t.Errorf("SW %04X: ReadBinary = % X, %v; want an error", sw, b, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("SW %04X: %v, want %v", sw, err, want)
		}
		card.done()
	}
}
