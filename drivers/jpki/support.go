package jpki

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrIntegrity: a file of the input support AP does not match its digest
// in the integrity record (EF 0003).
var ErrIntegrity = errors.New("jpki: record does not match its integrity digest")

// ParseIndividualNumber parses input support EF 0001, the individual number
// (個人番号; doc mynumbercard.md §3.2, soltia48 src/ap/text.rs
// parse_my_number and its test vector FF 10 0C 35 33 37 36 38 36 36 37 37 31
// 38 38): FF 10 0C <12 ASCII digits>, a 15-byte TLV, followed on the card by
// FF FF filler (17 physical bytes). Only 00/FF may follow the object.
//
// The number may be collected only where the My Number Act permits (doc
// §7): never log, store or send it. Errors never contain it.
func ParseIndividualNumber(b []byte) (string, error) {
	top, err := parseFile(b, 0xFF10)
	if err != nil {
		return "", malformed("individual number", err)
	}
	if len(top.value) != 12 || !allDigits(string(top.value)) {
		return "", fmt.Errorf("%w: individual number: FF10 value of %d bytes is not 12 digits", ErrMalformed, len(top.value))
	}
	return string(top.value), nil
}

// Basic4 is input support EF 0002, the basic 4 information (基本4情報). All
// four are personal data: never log them.
type Basic4 struct {
	Name, Address, BirthDate, Sex string

	signed []byte // FF20 value from DF22 to its end: what DF32 of EF 0003 hashes
}

// ParseBasic4 parses input support EF 0002 as read (trailing 00/FF filler
// allowed). Layout (doc §3.2; soltia48 src/ap/text.rs Attributes @0c39784a
// and its test-card vector FF 20 65 DF 21 08 00 0E 00 20 00 59 00 64 …):
//
//	FF 20 <len>
//	  DF 21 08  4 × u16 BE: offsets of DF22..DF25 from the file's first byte
//	  DF 22     name, UTF-8 (family name U+3000 given name)
//	  DF 23     address, UTF-8
//	  DF 24 08  birth date YYYYMMDD (Gregorian)
//	  DF 25 01  sex "1"/"2"/"9", "0" unknown (ISO 5218)
//
// Strict: exactly these objects in this order, offsets equal to the actual
// positions, valid UTF-8, a valid date, a known sex digit.
func ParseBasic4(b []byte) (*Basic4, error) {
	r, err := parseBasic4(b)
	if err != nil {
		return nil, malformed("basic 4 information", err)
	}
	return r, nil
}

func parseBasic4(b []byte) (*Basic4, error) {
	top, err := parseFile(b, 0xFF20)
	if err != nil {
		return nil, err
	}
	o, err := children(top, 0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25)
	if err != nil {
		return nil, err
	}
	if err := checkOffsets(o[0], o[1:]); err != nil {
		return nil, err
	}
	for _, t := range o[1:3] {
		if len(t.value) == 0 || !utf8.Valid(t.value) {
			return nil, fmt.Errorf("%04X is not non-empty UTF-8 (%d bytes)", t.tag, len(t.value))
		}
	}
	if !validDate(o[3].value) {
		return nil, fmt.Errorf("DF24 is not a YYYYMMDD date (%d bytes)", len(o[3].value))
	}
	if !validSex(o[4].value) {
		return nil, fmt.Errorf("DF25 is not an ISO 5218 sex code (%d bytes)", len(o[4].value))
	}
	return &Basic4{
		Name:      string(o[1].value),
		Address:   string(o[2].value),
		BirthDate: string(o[3].value),
		Sex:       string(o[4].value),
		signed:    span(o[1:]...),
	}, nil
}

// SupportIntegrity is input support EF 0003, the integrity record. DF31 is
// derived from the individual number (10^12 guesses): treat the whole
// record like the number itself, never log or store it (doc §7).
type SupportIntegrity struct {
	NumberDigest, Basic4Digest, Signature []byte // DF31, DF32, DF33

	signed []byte // TLV(DF31) ‖ TLV(DF32), 70 bytes
}

// ParseSupportIntegrity parses input support EF 0003 as read. Layout (doc
// §3.2; soltia48 src/ap/text.rs IntegrityRecord @26c13693 and
// tests/text_records.rs, AokiApp schemaKenhojoSignature):
//
//	FF 30 82 01 4B
//	  DF 31 20 <32>         SHA-256 of EF 0001's 17 physical bytes (filler included)
//	  DF 32 20 <32>         SHA-256 of EF 0002's FF20 value from DF22 to its end
//	  DF 33 82 01 00 <256>  RSASSA-PKCS1-v1_5 SHA-256 over TLV(DF31) ‖ TLV(DF32)
//
// [UNCERTAIN, doc §3.1: which credentials open EF 0003.]
func ParseSupportIntegrity(b []byte) (*SupportIntegrity, error) {
	top, err := parseFile(b, 0xFF30)
	if err != nil {
		return nil, malformed("integrity record", err)
	}
	o, err := children(top, 0xDF31, 0xDF32, 0xDF33)
	if err == nil {
		err = firstErr(wantLen(o[0], sha256.Size), wantLen(o[1], sha256.Size), wantLen(o[2], sigLen))
	}
	if err != nil {
		return nil, malformed("integrity record", err)
	}
	return &SupportIntegrity{
		NumberDigest: clone(o[0].value),
		Basic4Digest: clone(o[1].value),
		Signature:    clone(o[2].value),
		signed:       span(o[0], o[1]),
	}, nil
}

// CheckSignature verifies DF33 with apKey, the key certified by the input
// support AP's EF 0004 CV certificate (not the card key): RSASSA-PKCS1-v1_5
// SHA-256 over TLV(DF31) ‖ TLV(DF32), headers included (doc §3.2).
func (s *SupportIntegrity) CheckSignature(apKey *rsa.PublicKey) error {
	if s.signed == nil {
		return errors.New("jpki: integrity record: not from ParseSupportIntegrity")
	}
	return verifySHA256(apKey, s.signed, s.Signature, "integrity record DF33")
}

// CheckBasic4 checks DF32 against b: SHA-256 of EF 0002's FF20 value from
// DF22 to its end, the DF21 offset table skipped, no filler (doc §3.2;
// soltia48 Attributes::digest_source: neither the whole file nor file[3:]
// matches). Mismatch: ErrIntegrity.
func (s *SupportIntegrity) CheckBasic4(b *Basic4) error {
	if b == nil || b.signed == nil {
		return errors.New("jpki: integrity record: basic 4 information not from ParseBasic4")
	}
	h := sha256.Sum256(b.signed)
	if subtle.ConstantTimeCompare(h[:], s.Basic4Digest) != 1 {
		return fmt.Errorf("%w (DF32, basic 4 information)", ErrIntegrity)
	}
	return nil
}

// CheckNumberFile checks DF31 against file, the physical bytes of EF 0001
// as ReadWholeFile returns them: 17 bytes, the FF FF filler included (the
// SHA-256 of the trimmed 15-byte TLV does not match, doc §3.2). Mismatch:
// ErrIntegrity. The comparison is constant-time.
func (s *SupportIntegrity) CheckNumberFile(file []byte) error {
	h := sha256.Sum256(file)
	defer clear(h[:])
	if subtle.ConstantTimeCompare(h[:], s.NumberDigest) != 1 {
		return fmt.Errorf("%w (DF31, individual number file)", ErrIntegrity)
	}
	return nil
}

// ParseChallengeKey parses input support EF 0007 and returns its key after
// verifying it. Layout (doc §3.2; soltia48 src/ap/text.rs SignedPublicKey):
//
//	FF 50 82 02 13
//	  DF 51 82 01 09  RSA public key 90 03 e 91 82 01 00 n (public half of key 0013)
//	  DF 52 82 01 00  RSASSA-PKCS1-v1_5 SHA-256 over TLV(DF51), by the EF 0004 key
//
// apKey is the key certified by this AP's EF 0004. The returned key
// verifies ChallengeSignature answers of the input support AP (doc §4.5).
func ParseChallengeKey(b []byte, apKey *rsa.PublicKey) (*rsa.PublicKey, error) {
	top, err := parseFile(b, 0xFF50)
	if err != nil {
		return nil, malformed("challenge key record", err)
	}
	o, err := children(top, 0xDF51, 0xDF52)
	if err == nil {
		err = wantLen(o[1], sigLen)
	}
	if err != nil {
		return nil, malformed("challenge key record", err)
	}
	key, err := parseCardKey(o[0].value)
	if err != nil {
		return nil, malformed("challenge key record DF51", err)
	}
	if err := verifySHA256(apKey, o[0].raw, o[1].value, "challenge key record DF52"); err != nil {
		return nil, err
	}
	return key, nil
}
