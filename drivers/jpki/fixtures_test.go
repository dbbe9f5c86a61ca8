package jpki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Fixtures are built from the documented layouts (doc mynumbercard.md
// §3.2, §4.2, §4.4) by small helpers that compute every length themselves,
// independently of the parser.

// hx decodes hex with optional spaces.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// berLen encodes a definite length the minimal way: short, 81 xx or 82 xx xx.
func berLen(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	default:
		return []byte{0x82, byte(n >> 8), byte(n)}
	}
}

// obj builds a TLV with a one- or two-byte tag.
func obj(tag uint16, value ...[]byte) []byte {
	v := cat(value...)
	var t []byte
	if tag > 0xFF {
		t = []byte{byte(tag >> 8), byte(tag)}
	} else {
		t = []byte{byte(tag)}
	}
	return cat(t, berLen(len(v)), v)
}

var (
	keysOnce           sync.Once
	caKey, apKey, cKey *rsa.PrivateKey // CV CA, AP (EF 0004 subject), card (DF24/DF51)
)

// testKeys generates the three RSA-2048 keys once per test binary.
func testKeys(tb testing.TB) (ca, ap, card *rsa.PrivateKey) {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&caKey, &apKey, &cKey} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
	return caKey, apKey, cKey
}

// keyValue encodes a public key as the 券面 APs do: 90 03 e 91 82 01 00 n.
func keyValue(pub *rsa.PublicKey) []byte {
	n := pub.N.FillBytes(make([]byte, 256))
	e := []byte{byte(pub.E >> 16), byte(pub.E >> 8), byte(pub.E)}
	return cat([]byte{0x90, 0x03}, e, []byte{0x91, 0x82, 0x01, 0x00}, n)
}

func signSHA256(tb testing.TB, priv *rsa.PrivateKey, msg []byte) []byte {
	tb.Helper()
	h := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

func mustKeyID(s string) KeyID {
	k, err := ParseKeyID(s)
	if err != nil {
		panic(err)
	}
	return k
}

// cvCert builds an EF 0004 CV certificate signed by ca.
func cvCert(tb testing.TB, issuer, subject KeyID, pub *rsa.PublicKey, ca *rsa.PrivateKey) []byte {
	body := cat(issuer[:], subject[:], keyValue(pub))
	if len(body) != 297 {
		tb.Fatalf("CV body %d bytes", len(body))
	}
	return obj(0x7F21, obj(0x5F4E, body), obj(0x5F37, signSHA256(tb, ca, body)))
}

// faceFields are the values of a card-face record (synthetic, test card).
type faceFields struct {
	birth, sex, expiry   string
	name, addr, photo    []byte
	secCode, cardKeyBits []byte
}

func defaultFace(tb testing.TB) faceFields {
	_, _, card := testKeys(tb)
	return faceFields{
		birth: "19800217", sex: "1", expiry: "20350217",
		name:        append([]byte("\x89PNG\r\n\x1a\nNAME"), bytes.Repeat([]byte{0x11}, 300)...),
		addr:        append([]byte("\x89PNG\r\n\x1a\nADDR"), bytes.Repeat([]byte{0x22}, 500)...),
		photo:       append([]byte("\x00\x00\x00\x0CjP  \r\n"), bytes.Repeat([]byte{0x33}, 3000)...),
		secCode:     []byte("\x89PNG\r\n\x1a\nCODE"),
		cardKeyBits: keyValue(&card.PublicKey),
	}
}

// faceT is the 115-byte T of doc §4.2, computed here from the raw segments.
func faceT(seg1, seg2, seg3 []byte) []byte {
	t := hx("30 71 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 60")
	for _, s := range [][]byte{seg1, seg2, seg3} {
		h := sha256.Sum256(s)
		t = append(t, h[:]...)
	}
	return t
}

// cardFace builds a surface EF 0002 record signed by ap, with DF21 offsets
// computed from the object sizes, followed by filler.
func cardFace(tb testing.TB, f faceFields, ap *rsa.PrivateKey) []byte {
	tb.Helper()
	df22, df23, df24 := obj(0xDF22, []byte(f.birth)), obj(0xDF23, []byte(f.sex)), obj(0xDF24, f.cardKeyBits)
	df25, df26, df27 := obj(0xDF25, f.name), obj(0xDF26, f.addr), obj(0xDF27, f.photo)
	t := faceT(cat(df22, df23, df24), cat(df25, df26), df27)
	if len(t) != 115 {
		tb.Fatalf("T %d bytes", len(t))
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, ap, crypto.Hash(0), t)
	if err != nil {
		tb.Fatal(err)
	}
	objs := [][]byte{df22, df23, df24, df25, df26, df27, obj(0xDF28, sig), obj(0xDF29, []byte(f.expiry)), obj(0xDF2A, f.secCode)}
	return cat(template(0xFF20, 0xDF21, objs), bytes.Repeat([]byte{0xFF}, 7))
}

// template builds tag { tableTag offsets, objs... } with the offset table
// computed from the header sizes (offsets absolute from the file start).
func template(tag, tableTag uint16, objs [][]byte) []byte {
	inner := 0
	for _, o := range objs {
		inner += len(o)
	}
	tableLen := 2 + 1 + 2*len(objs) // DFxx, short length, entries
	total := tableLen + inner
	pos := 2 + len(berLen(total)) + tableLen
	table := make([]byte, 0, 2*len(objs))
	for _, o := range objs {
		table = append(table, byte(pos>>8), byte(pos))
		pos += len(o)
	}
	return obj(tag, obj(tableTag, table), cat(objs...))
}

// The test card's input support AP (soltia48 src/ap/text.rs tests, a
// synthetic card): EF 0001 (15-byte TLV + FF FF = 17 physical bytes) and
// EF 0002 byte for byte.
var (
	testNumberTLV  = hx("FF 10 0C 35 33 37 36 38 36 36 37 37 31 38 38")
	testNumberFile = cat(testNumberTLV, []byte{0xFF, 0xFF})
	testBasic4File = hx("ff2065df2108000e002000590064df22" +
		"0fe9bb92e6a190e38080e5b9b9e4b99f" +
		"df2336e69db1e4baace983bde6b885e7" +
		"80ace5b882e8a6b3e5b883e5ad90e58d" +
		"97efbc91efbc92efbc8defbc97efbc8d" +
		"efbc92efbc90efbc92df240831393830" +
		"30323137df250131")
)

const (
	testNumber  = "537686677188"
	testName    = "黒桐　幹也"
	testAddress = "東京都清瀬市観布子南１２－７－２０２"
	testB       = "55021720352285"
)

// integrity builds EF 0003 over the given EF 0001 physical bytes and EF 0002
// file, signed by ap.
func integrity(tb testing.TB, numberFile, basic4File []byte, ap *rsa.PrivateKey) []byte {
	h1 := sha256.Sum256(numberFile)
	// DF32: the FF20 value from DF22 to its end, DF21 skipped: FF 20 65 is 3
	// bytes, DF 21 08 + 8 is 11 more.
	h2 := sha256.Sum256(basic4File[3+11 : 3+0x65])
	signed := cat(obj(0xDF31, h1[:]), obj(0xDF32, h2[:]))
	if len(signed) != 70 {
		tb.Fatalf("signed part %d bytes", len(signed))
	}
	return obj(0xFF30, signed, obj(0xDF33, signSHA256(tb, ap, signed)))
}

// challengeKey builds EF 0007: FF50 { DF51 key, DF52 sig over TLV(DF51) }.
func challengeKey(tb testing.TB, pub *rsa.PublicKey, ap *rsa.PrivateKey) []byte {
	df51 := obj(0xDF51, keyValue(pub))
	return obj(0xFF50, df51, obj(0xDF52, signSHA256(tb, ap, df51)))
}

// exchange is one scripted APDU: the exact command expected (nil: any) and
// the answer (or a transport error).
type exchange struct {
	want []byte
	resp []byte
	err  error
}

// apduCard replays a script and fails the test on any difference, and if
// a scripted exchange was not used (see done).
type apduCard struct {
	t      testing.TB
	script []exchange
	n      int
	sent   [][]byte // the slices handed to Transmit, not copies
	copies [][]byte
}

func newAPDUCard(t testing.TB, script ...exchange) *apduCard {
	return &apduCard{t: t, script: script}
}

func (c *apduCard) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	c.sent = append(c.sent, apdu)
	c.copies = append(c.copies, bytes.Clone(apdu))
	if c.n >= len(c.script) {
		c.t.Errorf("unexpected APDU %d: % X", c.n, apdu)
		return []byte{0x6D, 0x00}, nil
	}
	x := c.script[c.n]
	c.n++
	if x.want != nil && !bytes.Equal(apdu, x.want) {
		c.t.Errorf("APDU %d = % X\nwant        % X", c.n-1, apdu, x.want)
	}
	if x.err != nil {
		return nil, x.err
	}
	return bytes.Clone(x.resp), nil
}

func (c *apduCard) done() {
	c.t.Helper()
	if c.n != len(c.script) {
		c.t.Errorf("%d of %d scripted APDUs used", c.n, len(c.script))
	}
}

func swb(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func ok(data ...[]byte) []byte { return cat(cat(data...), swb(0x9000)) }

// selectEF is the expected SELECT EF command.
func selectEF(fid uint16) []byte {
	return []byte{0x00, 0xA4, 0x02, 0x0C, 0x02, byte(fid >> 8), byte(fid)}
}

// readCmd is the expected READ BINARY command.
func readCmd(off, le int) []byte { return []byte{0x00, 0xB0, byte(off >> 8), byte(off), byte(le)} }

// fileCard serves one transparent file the way the card does: READ BINARY
// answers up to Le bytes with 9000, fewer than Le at the end with 6282
// (eofWarn) or 9000, and 6B00 at or past the end.
type fileCard struct {
	file    []byte
	eofWarn bool
	reads   [][2]int // offset, Le
}

func (c *fileCard) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	switch {
	case len(apdu) >= 2 && apdu[1] == 0xA4:
		return swb(0x9000), nil
	case len(apdu) == 5 && apdu[1] == 0xB0:
		off, le := int(apdu[2])<<8|int(apdu[3]), int(apdu[4])
		if le == 0 {
			le = 256
		}
		c.reads = append(c.reads, [2]int{off, le})
		if off >= len(c.file) {
			return swb(0x6B00), nil
		}
		end := min(off+le, len(c.file))
		sw := uint16(0x9000)
		if end-off < le && c.eofWarn {
			sw = 0x6282
		}
		return cat(c.file[off:end], swb(sw)), nil
	}
	return nil, fmt.Errorf("fileCard: APDU % X", apdu)
}
