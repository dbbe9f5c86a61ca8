package jpki

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// TestErrorsNeverShowSecretsOrPersonalData drives every failure path with
// inputs that contain secrets (PIN, collation number B, individual number)
// and personal data (name, address, birth date) and checks that no error
// text contains them (doc §7).
func TestErrorsNeverShowSecretsOrPersonalData(t *testing.T) {
	_, ap, _ := testKeys(t)
	secrets := []string{"1234", testB, "55021720352", testNumber, "5376866", testName, "黒桐", testAddress, "清瀬",
		"19800217", "19800230", "550217", "20350217", "20361301", "31980023"}
	var errs []error
	add := func(err error) {
		if err == nil {
			t.Errorf("expected an error (#%d)", len(errs))
		}
		errs = append(errs, err)
	}

	// Secrets on the card interface.
	for _, sw := range []uint16{0x63C2, 0x63C0, 0x6984, 0x6983, 0x6982, 0x6700} {
		card := newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{resp: swb(sw)})
		add(VerifySecret(ctx, card, EFAuthPIN, []byte("1234")))
		card = newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{resp: swb(sw)})
		add(VerifySecret(ctx, card, SurfacePINB, []byte(testB)))
	}
	add(VerifySecret(ctx, newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{err: iso7816.ErrCardLost}), EFAuthPIN, []byte("1234")))
	add(VerifySecret(ctx, newAPDUCard(t, exchange{resp: swb(0x6A82)}), EFAuthPIN, []byte("1234")))
	add(VerifySecret(ctx, newAPDUCard(t), SupportPINB, []byte(testB+"55021720352")))
	add(VerifySecret(ctx, newAPDUCard(t, exchange{resp: swb(0x9000)}, exchange{resp: []byte{0x63}}), EFAuthPIN, []byte("1234")))

	// Collation number B.
	for _, b := range []string{testB + "1", "5502172035228X", "55023220352285", "55130120352285"} {
		add(CheckCollationBFormat([]byte(b)))
	}
	add(MatchCollationB([]byte(testB), "19800218", "20350217"))
	add(MatchCollationB([]byte(testB), "19800217", "20360217"))
	add(MatchCollationB([]byte(testB), "19800230", "20350217"))
	add(MatchCollationB([]byte(testB), "19800217", "20361301"))
	add(MatchCollationB([]byte("5502172035228X"), "19800217", "20350217"))
	_, _, err := JapaneseEra("19800230")
	add(err)
	_, _, err = JapaneseEra("18000217")
	add(err)
	_, _, err = ParseEraBirthDate("319800230")
	add(err)
	_, _, err = ParseEraBirthDate("31980023")
	add(err)
	_, _, err = ParseEraBirthDate("419800217")
	add(err)

	// Individual number.
	for _, b := range [][]byte{
		cat(testNumberTLV, []byte{0x35}),
		obj(0xFF10, []byte(testNumber+"1")),
		obj(0xFF10, []byte(testNumber[:11]+"X")),
		cat(hx("FF 11 0C"), []byte(testNumber)),
		obj(0xFF10, obj(0xDF11, []byte(testNumber))),
	} {
		_, err := ParseIndividualNumber(b)
		add(err)
	}

	// Basic 4.
	b4 := func(name, addr, birth, sex string) []byte {
		return template(0xFF20, 0xDF21, [][]byte{obj(0xDF22, []byte(name)), obj(0xDF23, []byte(addr)), obj(0xDF24, []byte(birth)), obj(0xDF25, []byte(sex))})
	}
	for _, b := range [][]byte{
		b4(testName, testAddress, "19800230", "1"),
		b4(testName, testAddress, "19800217", "7"),
		b4(testName+"\xff", testAddress, "19800217", "1"),
		b4(testName, testAddress+"\xff", "19800217", "1"),
		cat(testBasic4File, []byte(testName)),
		testBasic4File[:60],
		func() []byte { b := bytes.Clone(testBasic4File); b[7]++; return b }(),
	} {
		_, err := ParseBasic4(b)
		add(err)
	}

	// Card face.
	ff := defaultFace(t)
	ff.birth = "19800230"
	_, err = ParseCardFace(cardFace(t, ff, ap))
	add(err)
	ff = defaultFace(t)
	ff.expiry = "20361301"
	_, err = ParseCardFace(cardFace(t, ff, ap))
	add(err)
	ff = defaultFace(t)
	ff.name = []byte(testName)
	good := cardFace(t, ff, ap)
	_, err = ParseCardFace(cat(good[:len(good)-7], []byte(testName)))
	add(err)
	f, err := ParseCardFace(good)
	if err != nil {
		t.Fatal(err)
	}
	f.Photo[0] ^= 1
	f.seg3[5] ^= 1
	add(f.CheckSignature(&ap.PublicKey))

	// Integrity.
	s, err := ParseSupportIntegrity(integrity(t, testNumberFile, testBasic4File, ap))
	if err != nil {
		t.Fatal(err)
	}
	add(s.CheckNumberFile([]byte(testNumber)))
	other, _ := ParseBasic4(b4(testName, testAddress, "19800218", "1"))
	add(s.CheckBasic4(other))

	// SAN.
	for _, san := range [][]byte{
		sanValue(otherName(jpkiOID(1), 0x0C, testName), otherName(jpkiOID(5), 0x0C, testAddress)),
		sanValue(otherName(jpkiOID(1), 0x0C, testName), otherName(jpkiOID(1), 0x0C, testName)),
		sanValue(otherName(jpkiOID(1), 0x1E, testName)),
		sanValue(otherName(jpkiOID(4), 0x13, "319800217"), otherName(jpkiOID(4), 0x13, "319800217")),
		cat(defaultSAN(), []byte(testName)),
	} {
		_, err := parseSignSAN(san)
		add(err)
	}

	for i, err := range errs {
		if err == nil {
			continue
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %d shows %q: %v", i, s, err)
			}
		}
		if errors.Is(err, context.Canceled) {
			t.Errorf("error %d: unexpected %v", i, err)
		}
	}
	if len(errs) < 50 {
		t.Errorf("only %d error paths", len(errs))
	}
}
