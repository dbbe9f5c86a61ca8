package jpki

import (
	"context"
	"errors"
	"fmt"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// CertAvailability is JPKI EF 0008: which certificates the card carries
// (doc mynumbercard.md §2.1). Read it before asking for the signature
// password: a card without a signature certificate (00 8F 00, e.g. a holder
// under 15) has no use for it.
type CertAvailability struct{ Sign, Auth bool }

// certPresent is the only value of an EF 0008 byte that means "present";
// anything else is treated as absent (doc §2.1).
const certPresent = 0x8F

// ParseCertAvailability parses EF 0008: exactly 3 bytes, byte 0 the
// signature certificate, byte 1 the authentication certificate, byte 2
// unknown (ignored).
func ParseCertAvailability(b []byte) (CertAvailability, error) {
	if len(b) != 3 {
		return CertAvailability{}, fmt.Errorf("%w: EF 0008 of %d bytes, want 3", ErrMalformed, len(b))
	}
	return CertAvailability{Sign: b[0] == certPresent, Auth: b[1] == certPresent}, nil
}

// ReadCertAvailability selects and reads EF 0008 of the (already selected)
// JPKI AP.
func ReadCertAvailability(ctx context.Context, card iso7816.Card) (CertAvailability, error) {
	if err := SelectEF(ctx, card, EFCertAvail); err != nil {
		return CertAvailability{}, err
	}
	b, err := ReadBinary(ctx, card, 0, 3)
	if err != nil {
		return CertAvailability{}, err
	}
	return ParseCertAvailability(b)
}

// Status words of READ BINARY past the end of a file (doc §1, §2.3).
const (
	swEndOfFile    uint16 = 0x6282 // fewer bytes than Le: end reached
	swOffsetBeyond uint16 = 0x6B00 // offset at or past the end
)

// readChunk reads up to n (1..256) bytes at off. eof reports an end-of-file
// answer (6282 with the bytes before the end, or 6B00 with none); a short
// answer with 9000 is returned as it is.
func readChunk(ctx context.Context, card iso7816.Card, off, n int) (data []byte, eof bool, err error) {
	if off < 0 || off > 0x7FFF || n < 1 || n > 256 {
		return nil, false, fmt.Errorf("jpki: READ BINARY offset %d length %d out of range", off, n)
	}
	b, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xB0, P1: byte(off >> 8), P2: byte(off), Le: n})
	var se *iso7816.StatusError
	switch {
	case err == nil:
	case errors.As(err, &se) && se.SW == swEndOfFile:
		eof = true
	case errors.As(err, &se) && se.SW == swOffsetBeyond:
		return nil, true, nil
	case errors.As(err, &se) && se.SW == iso7816.SWSecurityNotSatisfied:
		return nil, false, fmt.Errorf("%w (SW %04X)", ErrAccessDenied, se.SW)
	default:
		return nil, false, fmt.Errorf("jpki: read binary at %d: %w", off, err)
	}
	if len(b) > n {
		return nil, false, fmt.Errorf("%w: READ BINARY returned %d bytes for %d", ErrMalformed, len(b), n)
	}
	return b, eof, nil
}

// tlvHeaderRead is the first READ BINARY of ReadTLVFile: a whole short
// APDU's worth (Le 00), which holds the header (a two-byte tag and an 83
// length take 6 bytes) and the first 250 bytes of content. A certificate
// of 1.3 KB then takes 6 READ BINARY instead of 7 (an 8-byte header read
// first), and with the SELECT 7 APDUs, the budget of make bench. A file
// shorter than 256 bytes answers 6282 with what it has (ISO/IEC 7816-4
// §11.2.3), which readChunk accepts as the end.
const tlvHeaderRead = 256

// ReadTLVFile selects fid in the current application and reads the one
// BER-TLV object at its start, without the filler after it. A first READ
// BINARY of 256 bytes gives the header (1–2 byte tag, short or 81/82/83
// length); the rest of the object is read by readRest, in reads of at most 256
// bytes (doc §1; myna reader.rs). The object may be at most 32 KiB. A file that
// ends (6282, 6B00, an empty answer) before the object is complete is
// ErrMalformed.
func ReadTLVFile(ctx context.Context, card iso7816.Card, fid uint16) ([]byte, error) {
	if err := SelectEF(ctx, card, fid); err != nil {
		return nil, err
	}
	first, _, err := readChunk(ctx, card, 0, tlvHeaderRead)
	if err != nil {
		return nil, err
	}
	_, hdr, n, err := parseHeader(first)
	if err != nil {
		return nil, malformed(fmt.Sprintf("EF %04X", fid), err)
	}
	total := hdr + n
	if total > maxTLV {
		return nil, fmt.Errorf("%w: EF %04X: object of %d bytes beyond %d", ErrMalformed, fid, total, maxTLV)
	}
	out := make([]byte, 0, total)
	out = append(out, first[:min(len(first), total)]...)
	return readRest(ctx, card, fid, out, total)
}

// ReadWholeFile selects fid in the current application and reads it from
// offset 0 to its end, filler included: until 6B00, 6282 or an answer
// shorter than asked for. Used where the physical bytes matter, e.g. input
// support EF 0001, whose 17 physical bytes DF31 of EF 0003 hashes (doc
// §3.2). A file longer than max bytes (1..32 KiB + 256) is an error; a file
// of exactly max bytes is confirmed by one more 1-byte read answering
// end-of-file.
func ReadWholeFile(ctx context.Context, card iso7816.Card, fid uint16, max int) ([]byte, error) {
	if max < 1 || max > maxFileSize {
		return nil, fmt.Errorf("jpki: read EF %04X: limit %d out of range 1..%d", fid, max, maxFileSize)
	}
	if err := SelectEF(ctx, card, fid); err != nil {
		return nil, err
	}
	var out []byte
	for len(out) < max {
		want := min(256, max-len(out))
		chunk, eof, err := readChunk(ctx, card, len(out), want)
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		if eof || len(chunk) < want {
			return out, nil
		}
		if len(out) > 0x7FFF && len(out) < max {
			return nil, fmt.Errorf("%w: EF %04X: no end of file within READ BINARY reach", ErrMalformed, fid)
		}
	}
	if max <= 0x7FFF {
		more, _, err := readChunk(ctx, card, max, 1)
		if err != nil {
			return nil, err
		}
		if len(more) != 0 {
			return nil, fmt.Errorf("%w: EF %04X longer than %d bytes", ErrMalformed, fid, max)
		}
	}
	return out, nil
}
