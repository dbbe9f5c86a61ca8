package jpki

import (
	"context"
	"errors"
	"fmt"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// ErrWrongSecret: the card refused the PIN, password or collation number and
// has tries left. Errors for it are *WrongSecretError values.
var ErrWrongSecret = errors.New("jpki: wrong PIN, password or collation number")

// WrongSecretError is a refused secret (63Cx, x > 0) with the number of
// tries the card says are left. It matches ErrWrongSecret with errors.Is.
type WrongSecretError struct{ TriesLeft int }

func (e *WrongSecretError) Error() string {
	return fmt.Sprintf("%v (%d tries left)", ErrWrongSecret, e.TriesLeft)
}

// Is makes errors.Is(err, ErrWrongSecret) true.
func (e *WrongSecretError) Is(target error) bool { return target == ErrWrongSecret }

// SecretStatus maps the status word of a VERIFY that presented a secret
// (doc mynumbercard.md §2.3; myna Go Verify, soltia48 card.rs
// interpret_retries): 9000 → nil; 63Cx with x > 0 → *WrongSecretError
// {TriesLeft: x}; 63C0 (the exhausting attempt), 6984 (blocked) and 6983
// (ISO "authentication method blocked", not seen on this card but treated as
// blocked) → ErrBlocked; anything else → a wrapped *iso7816.StatusError.
func SecretStatus(sw uint16) error {
	switch {
	case sw == iso7816.SWOK:
		return nil
	case sw&0xFFF0 == 0x63C0 && sw&0x0F != 0:
		return &WrongSecretError{TriesLeft: int(sw & 0x0F)}
	case sw == 0x63C0, sw == iso7816.SWRefDataBlocked, sw == iso7816.SWAuthBlocked:
		return fmt.Errorf("%w (SW %04X)", ErrBlocked, sw)
	}
	return fmt.Errorf("jpki: verify: %w", &iso7816.StatusError{INS: 0x20, SW: sw})
}

// maxSecret bounds what VERIFY carries: the longest credential of the card
// is the 16-character signature password (doc §2.2); 14-digit collation
// number B, 12-digit A.
const maxSecret = 16

// VerifySecret selects the key reference fid in the current application
// (00 A4 02 0C 02 fid) and presents secret with exactly one VERIFY,
// 00 20 00 80 Lc <secret> (doc §2.2, §4.1). It never retries and never
// re-sends: a VERIFY whose answer was lost may have cost a try, so the
// caller re-queries the counter (RetryCounter) on the next tap (doc §2.4).
//
// The APDU is built in a buffer of its own, handed to card.Transmit
// directly (iso7816.Transceive would copy it into buffers this function
// cannot zero, and would re-send on 6Cxx), and zeroed right after. The
// caller owns secret and zeroes it. The status word is mapped by
// SecretStatus. A transport error is returned wrapped as it is, so
// errors.Is(err, iso7816.ErrCardLost) works. No error text ever contains the
// secret.
//
// secret must be 1..16 bytes: an empty VERIFY is the retry query, whose
// 63Cx answer would be misread as a refusal.
func VerifySecret(ctx context.Context, card iso7816.Card, fid uint16, secret []byte) error {
	if len(secret) == 0 || len(secret) > maxSecret {
		return fmt.Errorf("jpki: verify EF %04X: secret of %d bytes (want 1..%d)", fid, len(secret), maxSecret)
	}
	if err := SelectEF(ctx, card, fid); err != nil {
		return err
	}
	apdu := make([]byte, 5+len(secret))
	defer clear(apdu) // also on a panicking Card
	apdu[0], apdu[1], apdu[2], apdu[3], apdu[4] = 0x00, 0x20, 0x00, 0x80, byte(len(secret))
	copy(apdu[5:], secret)
	resp, err := card.Transmit(ctx, apdu)
	clear(apdu)
	if err != nil {
		return fmt.Errorf("jpki: verify EF %04X: %w", fid, err)
	}
	if len(resp) < 2 {
		return fmt.Errorf("jpki: verify EF %04X: %w (%d bytes)", fid, iso7816.ErrShortResponse, len(resp))
	}
	sw := uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])
	if err := SecretStatus(sw); err != nil {
		var wrong *WrongSecretError
		if errors.As(err, &wrong) {
			return err
		}
		return fmt.Errorf("jpki: verify EF %04X: %w", fid, err)
	}
	return nil
}
