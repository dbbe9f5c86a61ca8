// Package jpki reads the JPKI application (公的個人認証 AP) of a My Number
// Card, or of a phone that carries its certificates, over any ISO 7816
// card. It identifies the holder device by the token label in EF 0006,
// never by ATR/ATQB, reads certificates with short READ BINARY commands
// and queries PIN retry counters without ever presenting a PIN.
package jpki

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// AID of the JPKI AP.
var AID = []byte{0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01}

// Elementary files of the JPKI AP.
const (
	EFSignCert  uint16 = 0x0001 // signature certificate (needs the signature password)
	EFSignCA    uint16 = 0x0002 // its CA certificate
	EFToken     uint16 = 0x0006 // token label, 32 bytes
	EFCertAvail uint16 = 0x0008 // certificate availability
	EFAuthCert  uint16 = 0x000A // user-authentication certificate
	EFAuthCA    uint16 = 0x000B // its CA certificate
	EFAuthKey   uint16 = 0x0017 // user-authentication private key (never readable)
	EFAuthPIN   uint16 = 0x0018 // user-authentication PIN (4 digits, 3 tries)
	EFSignKey   uint16 = 0x001A // signature private key (never readable)
	EFSignPIN   uint16 = 0x001B // signature password (6–16 of A–Z 0–9, 5 tries)
)

// Holder is the kind of device carrying the JPKI AP, from its token label.
type Holder string

// Holders by token label.
const (
	HolderCard     Holder = "mynumber-card"  // JPKIAPICCTOKEN2
	HolderJukiCard Holder = "juki-card"      // JPKIAPICCTOKEN (old Basic Resident Register card)
	HolderAndroid  Holder = "android-phone"  // JPKIAPGPSETOKEN
	HolderIPhone   Holder = "iphone"         // JPKIAPIOSTOKEN
	HolderUnknown  Holder = "unknown-holder" // any other label
)

var labels = []struct {
	label  string
	holder Holder
}{
	// Longest first: JPKIAPICCTOKEN is a prefix of JPKIAPICCTOKEN2.
	{"JPKIAPICCTOKEN2", HolderCard},
	{"JPKIAPICCTOKEN", HolderJukiCard},
	{"JPKIAPGPSETOKEN", HolderAndroid},
	{"JPKIAPIOSTOKEN", HolderIPhone},
}

// Errors callers branch on.
var (
	// ErrNotJPKI: the card has no JPKI AP.
	ErrNotJPKI = errors.New("jpki: no JPKI application on this card")
	// ErrAccessDenied: the file needs a PIN first (6982), e.g. the
	// authentication certificate on an Android phone.
	ErrAccessDenied = errors.New("jpki: access to the file needs a PIN")
	// ErrBlocked: the PIN is blocked; only the municipal office can reset it.
	ErrBlocked = errors.New("jpki: PIN blocked")
	// ErrMalformed: the card returned bytes that do not parse.
	ErrMalformed = errors.New("jpki: malformed data from card")
)

// maxFileSize is the largest file READ BINARY can reach with a 15-bit
// offset and one final 256-byte read.
const maxFileSize = 0x7FFF + 256

// SelectAP selects the JPKI AP by name. A card without it gives an error
// wrapping both ErrNotJPKI and ErrNoApplication.
func SelectAP(ctx context.Context, card iso7816.Card) error {
	if err := selectByName(ctx, card, AID, ErrNotJPKI); err != nil {
		if errors.Is(err, ErrNoApplication) {
			return err
		}
		return fmt.Errorf("jpki: select AP: %w", errors.Unwrap(err))
	}
	return nil
}

// SelectEF selects an elementary file of the current AP by file ID.
func SelectEF(ctx context.Context, card iso7816.Card, fid uint16) error {
	_, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xA4, P1: 0x02, P2: 0x0C, Data: []byte{byte(fid >> 8), byte(fid)}})
	if err != nil {
		return fmt.Errorf("jpki: select EF %04X: %w", fid, err)
	}
	return nil
}

// ReadBinary reads n bytes (1..256) at offset from the selected EF. An
// answer of 6282 with data (end of file before Le bytes, ISO/IEC 7816-4
// §5.6) is a warning: its data is returned without an error. 6B00 (offset
// at or past the end) is an error; so is 6982, wrapping ErrAccessDenied.
func ReadBinary(ctx context.Context, card iso7816.Card, offset, n int) ([]byte, error) {
	b, eof, err := readChunk(ctx, card, offset, n)
	if err == nil && eof && len(b) == 0 {
		return nil, fmt.Errorf("jpki: read binary at %d: end of file", offset)
	}
	return b, err
}

// Token is the parsed token label of EF 0006.
type Token struct {
	Label  string
	Holder Holder
}

// ReadToken selects the JPKI AP and reads the token label.
func ReadToken(ctx context.Context, card iso7816.Card) (Token, error) {
	if err := SelectAP(ctx, card); err != nil {
		return Token{}, err
	}
	if err := SelectEF(ctx, card, EFToken); err != nil {
		return Token{}, err
	}
	b, err := ReadBinary(ctx, card, 0, 32)
	if err != nil {
		return Token{}, err
	}
	return ParseToken(b), nil
}

// ParseToken reads a token label, padded with spaces or NULs.
func ParseToken(b []byte) Token {
	label := string(bytes.TrimRight(b, " \x00"))
	for _, l := range labels {
		if label == l.label {
			return Token{Label: label, Holder: l.holder}
		}
	}
	return Token{Label: label, Holder: HolderUnknown}
}

// ReadCertificate selects fid in the JPKI AP (already selected) and reads
// one DER certificate. The first READ BINARY asks for 256 bytes (Le 00):
// its first 4 give the DER length, so a certificate of up to 1536 bytes
// takes 6 READ BINARY, 7 APDUs with the SELECT (an EF shorter than 256
// bytes answers 6282 with what it has, ISO/IEC 7816-4 §11.2.3). The rest
// is read by readRest, never past the certificate's end.
func ReadCertificate(ctx context.Context, card iso7816.Card, fid uint16) ([]byte, error) {
	if err := SelectEF(ctx, card, fid); err != nil {
		return nil, err
	}
	first, _, err := readChunk(ctx, card, 0, 256)
	if err != nil {
		return nil, err
	}
	total, err := DERLength(first)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, total)
	out = append(out, first[:min(len(first), total)]...)
	return readRest(ctx, card, fid, out, total)
}

// readRest reads bytes len(out)..total of the current EF after out. It
// makes as few READ BINARY as reads of 256 bytes would, but of equal size
// (1044 bytes left: 5 reads of 209, not 4 of 256 and one of 20): a
// response of 256 bytes and SW1-SW2 does not fit one frame of the
// largest size ISO/IEC 14443-4 allows (FSD 256: PCB, 253 bytes, CRC), so
// the card would chain it over two frames and an extra round trip; 209
// bytes fit. An answer shorter than asked (a card with a smaller buffer,
// or one that resent after 6Cxx) only means more reads.
func readRest(ctx context.Context, card iso7816.Card, fid uint16, out []byte, total int) ([]byte, error) {
	for len(out) < total {
		left := total - len(out)
		reads := (left + 255) / 256
		want := (left + reads - 1) / reads
		chunk, eof, err := readChunk(ctx, card, len(out), want)
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		if len(chunk) == 0 || (eof && len(out) < total) {
			return nil, fmt.Errorf("%w: EF %04X ends after %d of %d bytes", ErrMalformed, fid, len(out), total)
		}
	}
	return out, nil
}

// DERLength returns the total encoded length (header included) of the DER
// SEQUENCE starting at b, from its first bytes (at least 4 for the long
// forms used by certificates).
func DERLength(b []byte) (int, error) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, fmt.Errorf("%w: not a DER SEQUENCE (% X)", ErrMalformed, b)
	}
	l := int(b[1])
	hdr := 2
	switch {
	case l < 0x80:
	case l == 0x81 || l == 0x82:
		k := l & 0x7F
		if len(b) < 2+k {
			return 0, fmt.Errorf("%w: truncated DER length", ErrMalformed)
		}
		l = 0
		for _, c := range b[2 : 2+k] {
			l = l<<8 | int(c)
		}
		if (k == 1 && l < 0x80) || (k == 2 && l < 0x100) {
			return 0, fmt.Errorf("%w: non-minimal DER length", ErrMalformed)
		}
		hdr += k
	default:
		return 0, fmt.Errorf("%w: DER length form %02X", ErrMalformed, b[1])
	}
	if total := hdr + l; total <= maxFileSize {
		return total, nil
	}
	return 0, fmt.Errorf("%w: DER length %d beyond READ BINARY reach", ErrMalformed, hdr+l)
}

// RetryCounter returns how many tries the PIN in EF fid has left, by
// VERIFY without data: no PIN is presented and no try is used. A blocked PIN
// returns 0 with ErrBlocked. -1 means the PIN is already verified in this
// card session, so the card does not say how many tries are left.
func RetryCounter(ctx context.Context, card iso7816.Card, fid uint16) (int, error) {
	if err := SelectEF(ctx, card, fid); err != nil {
		return 0, err
	}
	_, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0x20, P1: 0x00, P2: 0x80})
	var se *iso7816.StatusError
	switch {
	case err == nil:
		// 9000 without a PIN: already verified in this session. The card
		// does not say how many tries are left; report "not blocked".
		return -1, nil
	case errors.As(err, &se) && se.SW&0xFFF0 == 0x63C0:
		if n := int(se.SW & 0x0F); n > 0 {
			return n, nil
		}
		return 0, ErrBlocked
	case errors.As(err, &se) && (se.SW == iso7816.SWRefDataBlocked || se.SW == iso7816.SWAuthBlocked):
		return 0, ErrBlocked
	}
	return 0, fmt.Errorf("jpki: retry counter of EF %04X: %w", fid, err)
}
