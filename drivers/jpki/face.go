package jpki

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// CardFace is the card-face record, EF 0002 of the card surface AP, readable
// after VERIFY of collation number B (or A). Layout (doc mynumbercard.md
// §4.2; soltia48 src/ap/surface.rs CardFace @26c13693, myna src/visual.rs
// @1d6bd482, jpki-rs, AokiApp schema.ts):
//
//	FF20 template
//	  DF21  9 × u16 BE: offsets of DF22..DF2A, absolute from the file's first byte
//	  DF22  birth date YYYYMMDD (Gregorian ASCII)      signed, seg1
//	  DF23  sex, 1 ASCII digit (JIS X 0303: 1/2/0/9)   signed, seg1
//	  DF24  card RSA-2048 key 90 03 e 91 82 01 00 n    signed, seg1
//	  DF25  name image (PNG, 1-bit)                    signed, seg2
//	  DF26  address image (PNG, 1-bit)                 signed, seg2
//	  DF27  photo (JPEG 2000, greyscale)               signed, seg3
//	  DF28  signature, 256 bytes
//	  DF29  expiry YYYYMMDD                            NOT signed
//	  DF2A  security-code image (PNG)                  NOT signed
//
// The DF28 layout and scheme rest on a single source (soltia48
// CardFace::verify, tests/signatures.rs @26c13693: verified on a real test
// card's files) [UNCERTAIN: single source].
//
// All fields are personal data: never log them. The images are kept as
// read and not decoded here.
type CardFace struct {
	BirthDate                      string         // DF22 YYYYMMDD Gregorian (personal data)
	Sex                            string         // DF23
	CardKey                        *rsa.PublicKey // DF24
	NameImage, AddressImage, Photo []byte         // DF25, DF26, DF27
	Signature                      []byte         // DF28
	Expiry                         string         // DF29 YYYYMMDD — NOT signed
	SecurityCodeImage              []byte         // DF2A — NOT signed

	cardKey          []byte // raw DF24 value
	seg1, seg2, seg3 []byte // the three signed segments exactly as on the card
}

// Tags of the card-face record, in file order.
var faceTags = []uint16{0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25, 0xDF26, 0xDF27, 0xDF28, 0xDF29, 0xDF2A}

// ParseCardFace parses surface EF 0002 as read (trailing 00/FF filler
// allowed). It is strict: the ten objects DF21..DF2A in this order and
// nothing else in FF20, the DF21 offsets equal to where DF22..DF2A actually
// start, valid calendar dates in DF22 and DF29, a sex digit of JIS X 0303,
// a well-formed RSA-2048 card key, non-empty images, a 256-byte signature.
// It does not verify DF28: call CheckSignature.
func ParseCardFace(b []byte) (*CardFace, error) {
	f, err := parseFace(b)
	if err != nil {
		return nil, malformed("card-face record", err)
	}
	return f, nil
}

func parseFace(b []byte) (*CardFace, error) {
	top, err := parseFile(b, 0xFF20)
	if err != nil {
		return nil, err
	}
	o, err := children(top, faceTags...)
	if err != nil {
		return nil, err
	}
	if err := checkOffsets(o[0], o[1:]); err != nil {
		return nil, err
	}
	if !validDate(o[1].value) {
		return nil, fmt.Errorf("DF22 is not a YYYYMMDD date (%d bytes)", len(o[1].value))
	}
	if !validSex(o[2].value) {
		return nil, fmt.Errorf("DF23 is not a JIS X 0303 sex code (%d bytes)", len(o[2].value))
	}
	key, err := parseCardKey(o[3].value)
	if err != nil {
		return nil, fmt.Errorf("DF24: %v", err)
	}
	for _, img := range []tlv{o[4], o[5], o[6], o[9]} {
		if err := nonEmpty(img); err != nil {
			return nil, err
		}
	}
	if err := wantLen(o[7], sigLen); err != nil {
		return nil, err
	}
	if !validDate(o[8].value) {
		return nil, fmt.Errorf("DF29 is not a YYYYMMDD date (%d bytes)", len(o[8].value))
	}
	return &CardFace{
		BirthDate:         string(o[1].value),
		Sex:               string(o[2].value),
		CardKey:           key,
		NameImage:         clone(o[4].value),
		AddressImage:      clone(o[5].value),
		Photo:             clone(o[6].value),
		Signature:         clone(o[7].value),
		Expiry:            string(o[8].value),
		SecurityCodeImage: clone(o[9].value),
		cardKey:           clone(o[3].value),
		seg1:              span(o[1], o[2], o[3]),
		seg2:              span(o[4], o[5]),
		seg3:              span(o[6]),
	}, nil
}

// faceDigestInfoPrefix starts the 115-byte T that DF28 signs: a DigestInfo
// with the SHA-256 OID but a 96-byte OCTET STRING holding three digests
// (doc §4.2; soltia48 sha256_digest_info with 96 bytes).
var faceDigestInfoPrefix = []byte{0x30, 0x71, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x60}

// signedT builds T = prefix ‖ SHA-256(seg1) ‖ SHA-256(seg2) ‖ SHA-256(seg3).
func (f *CardFace) signedT() []byte {
	t := make([]byte, 0, len(faceDigestInfoPrefix)+3*sha256.Size)
	t = append(t, faceDigestInfoPrefix...)
	for _, seg := range [][]byte{f.seg1, f.seg2, f.seg3} {
		h := sha256.Sum256(seg)
		t = append(t, h[:]...)
	}
	return t
}

// CheckSignature verifies DF28 with apKey, the key certified by this AP's
// EF 0004 CV certificate (not DF24): EM = 00 01 FF…FF 00 ‖ T with the
// 115-byte T of signedT, checked with rsa.VerifyPKCS1v15(apKey,
// crypto.Hash(0), T, sig), full padding (doc §4.2). seg1 = TLV(DF22) ‖
// TLV(DF23) ‖ TLV(DF24), seg2 = TLV(DF25) ‖ TLV(DF26), seg3 = TLV(DF27), each
// as on the card. DF29 (expiry) and DF2A (security-code image) are not
// covered.
func (f *CardFace) CheckSignature(apKey *rsa.PublicKey) error {
	if apKey == nil {
		return errors.New("jpki: card-face record: no AP key")
	}
	if f.seg1 == nil || f.seg2 == nil || f.seg3 == nil {
		return errors.New("jpki: card-face record: not from ParseCardFace")
	}
	if err := rsa.VerifyPKCS1v15(apKey, crypto.Hash(0), f.signedT(), f.Signature); err != nil {
		return fmt.Errorf("%w (card-face record DF28)", ErrBadSignature)
	}
	return nil
}

// CardKeyBytes returns a copy of the raw DF24 value, e.g. for a keyed
// card_key_id.
func (f *CardFace) CardKeyBytes() []byte { return clone(f.cardKey) }

// validSex accepts one ASCII digit of JIS X 0303 / ISO 5218: 0 unknown,
// 1 male, 2 female, 9 not applicable (doc §3.2, §4.2).
func validSex(b []byte) bool {
	return len(b) == 1 && (b[0] == '0' || b[0] == '1' || b[0] == '2' || b[0] == '9')
}
