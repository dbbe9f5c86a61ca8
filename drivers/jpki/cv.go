package jpki

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// KeyID names a key of the 券面 AP hierarchy (証明者鍵ID / 被証明者鍵ID):
// 7 ASCII digits ‖ 08 05 ‖ 3 ASCII digits ‖ 00 00 00 ‖ a last byte, 00 for
// the AP keys and A8 for the MF chain keys 5000020/6000020 (doc
// mynumbercard.md §4.4; soltia48 src/data.rs KeyId). Compare all 16 bytes.
// IDs starting with 5 are production, 6 the test hierarchy.
type KeyID [16]byte

// ErrBadSignature: a signature of the card's data or of a CV certificate
// does not verify under the given key.
var ErrBadSignature = errors.New("jpki: signature does not verify")

// ParseKeyID reads the printed form: "5000023/001" (last byte 00) or
// "5000020/001+A8" (last byte given in two hex digits, never "+00").
func ParseKeyID(s string) (KeyID, error) {
	var k KeyID
	id, last, hasLast := strings.Cut(s, "+")
	if len(id) != 11 || id[7] != '/' || !allDigits(id[:7]) || !allDigits(id[8:]) {
		return k, fmt.Errorf("jpki: key ID %q: want DDDDDDD/DDD[+XX]", s)
	}
	copy(k[0:7], id[:7])
	k[7], k[8] = 0x08, 0x05
	copy(k[9:12], id[8:])
	if hasLast {
		b, err := hex.DecodeString(last)
		if err != nil || len(b) != 1 || b[0] == 0 {
			return KeyID{}, fmt.Errorf("jpki: key ID %q: last byte must be two hex digits, not 00", s)
		}
		k[15] = b[0]
	}
	return k, nil
}

// String is the inverse of ParseKeyID; an ID that does not have the
// documented layout is given as 32 upper-case hex digits.
func (k KeyID) String() string {
	if allDigits(string(k[0:7])) && k[7] == 0x08 && k[8] == 0x05 && allDigits(string(k[9:12])) &&
		k[12] == 0 && k[13] == 0 && k[14] == 0 {
		s := string(k[0:7]) + "/" + string(k[9:12])
		if k[15] != 0 {
			s += fmt.Sprintf("+%02X", k[15])
		}
		return s
	}
	return strings.ToUpper(hex.EncodeToString(k[:]))
}

// Production reports an ID of the production hierarchy (first digit 5).
func (k KeyID) Production() bool { return k[0] == '5' }

// Test reports an ID of the test hierarchy (first digit 6).
func (k KeyID) Test() bool { return k[0] == '6' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// CVCertificate is the card-verifiable certificate of EF 0004 of both 券面
// APs (and of MF 00F8/7F21). Layout (doc §4.4; soltia48 src/data.rs
// CardVerifiableCertificate @08c204b2, AokiApp schema.ts @0c5a6aa5: high
// confidence, two parsers):
//
//	7F 21 82 02 33                 563-byte value; the file is 568 bytes + filler
//	  5F 4E 82 01 29               body, exactly 297 bytes:
//	     [0..16)   issuer key ID   (証明者鍵ID)
//	     [16..32)  subject key ID  (被証明者鍵ID)
//	     [32..297) 90 03 <e> 91 82 01 00 <256-byte n>
//	  5F 37 82 01 00               signature, 256 bytes
//
// No CPI, CHAT, dates or 7F49: this is not an ISO 7816-8/EAC certificate.
type CVCertificate struct {
	Issuer, Subject KeyID
	PublicKey       *rsa.PublicKey
	Body            []byte // the 297-byte 5F4E value (signed)
	Signature       []byte // 5F37, 256 bytes
}

const cvBodyLen = 16 + 16 + cardKeyLen

// ParseCVCertificate parses a 7F21 certificate; b is the object, optionally
// followed by 00/FF filler (the whole file as read).
func ParseCVCertificate(b []byte) (*CVCertificate, error) {
	c, err := parseCV(b)
	if err != nil {
		return nil, malformed("CV certificate", err)
	}
	return c, nil
}

func parseCV(b []byte) (*CVCertificate, error) {
	top, err := parseFile(b, 0x7F21)
	if err != nil {
		return nil, err
	}
	objs, err := children(top, 0x5F4E, 0x5F37)
	if err != nil {
		return nil, err
	}
	body, sig := objs[0], objs[1]
	if err := wantLen(body, cvBodyLen); err != nil {
		return nil, err
	}
	if err := wantLen(sig, sigLen); err != nil {
		return nil, err
	}
	key, err := parseCardKey(body.value[32:])
	if err != nil {
		return nil, err
	}
	c := &CVCertificate{PublicKey: key, Body: clone(body.value), Signature: clone(sig.value)}
	copy(c.Issuer[:], body.value[0:16])
	copy(c.Subject[:], body.value[16:32])
	return c, nil
}

// CheckSignatureFrom verifies the certificate with the CA key named by its
// issuer ID: RSASSA-PKCS1-v1_5 with SHA-256 and the standard DigestInfo over
// the 297-byte 5F4E value (its header 5F 4E 82 01 29 excluded), full padding
// check (doc §4.4; soltia48 verify_with, the signature scheme is from that
// source only). ca must come from the trust store, never from the same card.
func (c *CVCertificate) CheckSignatureFrom(ca *rsa.PublicKey) error {
	if ca == nil {
		return errors.New("jpki: CV certificate: no CA key")
	}
	return verifySHA256(ca, c.Body, c.Signature, "CV certificate")
}

// verifySHA256 checks an RSASSA-PKCS1-v1_5 SHA-256 signature over msg.
func verifySHA256(pub *rsa.PublicKey, msg, sig []byte, what string) error {
	if pub == nil {
		return fmt.Errorf("jpki: %s: no key", what)
	}
	h := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		return fmt.Errorf("%w (%s)", ErrBadSignature, what)
	}
	return nil
}

// cardKeyLen is the size of the card's RSA-2048 key object:
// 90 03 <3-byte e> 91 82 01 00 <256-byte n>.
const cardKeyLen = 2 + 3 + 4 + 256

// ParseCardKey parses the RSA public key objects the 券面 APs use (doc §4.2
// DF24, §4.3 DF12/DF42, §3.2 DF51, §4.4 in the CV body): 90 <e> followed by
// 91 <n>, exponent first, nothing else. Strict: e is 1–4 bytes without a
// leading zero, odd and at least 3; n is exactly 256 bytes with its top bit
// set (RSA-2048, the only size of the current card) and odd. The usual
// encoding is 90 03 01 00 01 91 82 01 00 <n> (265 bytes).
func ParseCardKey(b []byte) (*rsa.PublicKey, error) {
	k, err := parseCardKey(b)
	if err != nil {
		return nil, malformed("RSA key", err)
	}
	return k, nil
}

func parseCardKey(b []byte) (*rsa.PublicKey, error) {
	objs, err := children(tlv{raw: b, value: b}, 0x90, 0x91)
	if err != nil {
		return nil, fmt.Errorf("RSA key: %v", err)
	}
	e, n := objs[0].value, objs[1].value
	if len(e) < 1 || len(e) > 4 || e[0] == 0 {
		return nil, fmt.Errorf("RSA key: exponent of %d bytes", len(e))
	}
	var ev uint64
	for _, c := range e {
		ev = ev<<8 | uint64(c)
	}
	if ev < 3 || ev%2 == 0 || ev > 1<<31-1 {
		return nil, errors.New("RSA key: exponent not odd in 3..2^31-1")
	}
	if len(n) != 256 || n[0]&0x80 == 0 || n[255]&1 == 0 {
		return nil, fmt.Errorf("RSA key: modulus of %d bytes is not a 2048-bit odd number", len(n))
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev)}, nil
}
