package jpki

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// DigestInfo prefixes of PKCS#1 v1.5 (doc mynumbercard.md §2.2, from myna Go
// common.go; RFC 8017 §9.2 note 1).
var digestInfoPrefixes = []struct {
	hash   crypto.Hash
	size   int
	prefix []byte
}{
	{crypto.SHA1, 20, []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14}},
	{crypto.SHA256, 32, []byte{0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	{crypto.SHA384, 48, []byte{0x30, 0x41, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	{crypto.SHA512, 64, []byte{0x30, 0x51, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
}

// DigestInfo encodes the PKCS#1 v1.5 DigestInfo of digest for SHA-1,
// SHA-256, SHA-384 or SHA-512: the fixed prefix of the doc's §2.2 followed
// by the digest, which must have the hash's size.
func DigestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	for _, p := range digestInfoPrefixes {
		if p.hash != h {
			continue
		}
		if len(digest) != p.size {
			return nil, fmt.Errorf("jpki: DigestInfo: %d-byte digest for a %d-byte hash", len(digest), p.size)
		}
		return append(append(make([]byte, 0, len(p.prefix)+p.size), p.prefix...), digest...), nil
	}
	return nil, fmt.Errorf("jpki: DigestInfo: unsupported hash %d", h)
}

// ParseDigestInfo is the inverse of DigestInfo. It is strict: b must be one
// of the four prefixes followed by exactly the hash's size of digest bytes.
// The digest is a copy.
func ParseDigestInfo(b []byte) (crypto.Hash, []byte, error) {
	for _, p := range digestInfoPrefixes {
		if len(b) == len(p.prefix)+p.size && bytes.HasPrefix(b, p.prefix) {
			return p.hash, clone(b[len(p.prefix):]), nil
		}
	}
	return 0, nil, fmt.Errorf("%w: not a SHA-1/256/384/512 DigestInfo (%d bytes)", ErrMalformed, len(b))
}

// sigLen is the size of an RSA-2048 signature, the only key size of the
// current card (doc §2.5, §4.2).
const sigLen = 256

// maxSignInput is the largest input an RSA-2048 PKCS#1 v1.5 signature can
// carry (256 − 11; doc §2.2, "1–245 B").
const maxSignInput = sigLen - 11

// ComputeSignature selects the private key keyFID of the JPKI AP (EFAuthKey
// or EFSignKey; the AP is selected and the key's PIN verified) and signs
// digestInfo with COMPUTE DIGITAL SIGNATURE 80 2A 00 80 Lc <digestInfo> 00:
// P1 00 = the card pads what it is given with PKCS#1 v1.5 (doc §2.2; OpenSC
// jpki_compute_signature, jpki-rs, soltia48 ap/jpki.rs). The answer is the
// 256-byte RSA-2048 signature. 6982 (security status not satisfied: no
// VERIFY first) gives ErrAccessDenied.
func ComputeSignature(ctx context.Context, card iso7816.Card, keyFID uint16, digestInfo []byte) ([]byte, error) {
	if err := checkSignInput(digestInfo); err != nil {
		return nil, err
	}
	if err := SelectEF(ctx, card, keyFID); err != nil {
		return nil, err
	}
	return computeSignature(ctx, card, 0x80, digestInfo)
}

// ChallengeSignature signs digestInfo with the default key of the selected
// card surface or input support AP: 80 2A 00 00 Lc <digestInfo> 00 (doc
// §4.5; soltia48 SurfaceAp::sign / TextAp::sign, P2 00 = the AP's default
// key). [UNCERTAIN in the doc: P1 ≠ 00 and P2 untested in these APs, and
// whether VERIFY of collation number B must come first.] The answer is
// verified by the caller with DF24 of the card-face record or DF51 of input
// support EF 0007.
func ChallengeSignature(ctx context.Context, card iso7816.Card, digestInfo []byte) ([]byte, error) {
	if err := checkSignInput(digestInfo); err != nil {
		return nil, err
	}
	return computeSignature(ctx, card, 0x00, digestInfo)
}

func checkSignInput(digestInfo []byte) error {
	if len(digestInfo) == 0 || len(digestInfo) > maxSignInput {
		return fmt.Errorf("jpki: compute signature: input of %d bytes (want 1..%d)", len(digestInfo), maxSignInput)
	}
	return nil
}

// computeSignature sends 80 2A 00 p2 with Le 256 (short APDU, Le byte 00).
// iso7816.Transceive follows 61xx and 6Cxx.
func computeSignature(ctx context.Context, card iso7816.Card, p2 byte, digestInfo []byte) ([]byte, error) {
	sig, err := iso7816.Transceive(ctx, card, iso7816.Command{CLA: 0x80, INS: 0x2A, P1: 0x00, P2: p2, Data: digestInfo, Le: 256})
	var se *iso7816.StatusError
	if errors.As(err, &se) && se.SW == iso7816.SWSecurityNotSatisfied {
		return nil, fmt.Errorf("jpki: compute signature: %w (SW %04X, security status not satisfied)", ErrAccessDenied, se.SW)
	}
	if err != nil {
		return nil, fmt.Errorf("jpki: compute signature: %w", err)
	}
	if len(sig) != sigLen {
		return nil, fmt.Errorf("%w: signature of %d bytes, want %d", ErrMalformed, len(sig), sigLen)
	}
	return sig, nil
}
