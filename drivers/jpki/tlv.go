package jpki

import "fmt"

// BER-TLV as the 券面 APs write it (doc mynumbercard.md §1, §3.2, §4.2,
// §4.4; soltia48 src/tlv/ber.rs): a one-byte tag, or a two-byte tag when the
// low five bits of the first byte are all set (FF20, DF21, 7F21, 5F4E …);
// a definite length, short (< 80) or long with one to three length bytes
// (81, 82, 83). Longer tags, the indefinite form and four-byte lengths do not
// occur on the card and are rejected. Like soltia48, a non-minimal long
// length (82 00 20) is accepted: BER allows it, and every signature is
// computed over the raw bytes as read, so it cannot change what is verified.
//
// Error messages name tags, offsets and lengths only, never values. The
// helpers here return plain errors; each exported parser wraps them once
// with malformed, so callers see ErrMalformed and a single "jpki:" prefix.

// tlv is one object, with its offset in the buffer it was parsed from.
type tlv struct {
	tag   uint16
	off   int    // offset of the tag's first byte
	raw   []byte // tag, length and value, as on the card
	value []byte
}

// maxTLV bounds every object: no file of the card is larger than READ
// BINARY's reach, and ReadTLVFile reads at most 32 KiB.
const maxTLV = 32 << 10

// parseHeader reads a tag and length from the start of b. It needs only the
// header, not the value.
func parseHeader(b []byte) (tag uint16, hdr, n int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, fmt.Errorf("TLV header truncated (%d bytes)", len(b))
	}
	tag, hdr = uint16(b[0]), 1
	if b[0]&0x1F == 0x1F {
		if b[1]&0x80 != 0 {
			return 0, 0, 0, fmt.Errorf("tag longer than two bytes (%02X %02X …)", b[0], b[1])
		}
		tag, hdr = uint16(b[0])<<8|uint16(b[1]), 2
	}
	if len(b) < hdr+1 {
		return 0, 0, 0, fmt.Errorf("TLV %04X: length truncated", tag)
	}
	l := b[hdr]
	hdr++
	switch {
	case l < 0x80:
		n = int(l)
	case l >= 0x81 && l <= 0x83:
		k := int(l & 0x7F)
		if len(b) < hdr+k {
			return 0, 0, 0, fmt.Errorf("TLV %04X: length truncated", tag)
		}
		for _, c := range b[hdr : hdr+k] {
			n = n<<8 | int(c)
		}
		hdr += k
	default:
		return 0, 0, 0, fmt.Errorf("TLV %04X: length form %02X", tag, l)
	}
	if n > maxTLV {
		return 0, 0, 0, fmt.Errorf("TLV %04X: length %d beyond %d", tag, n, maxTLV)
	}
	return tag, hdr, n, nil
}

// parseOne reads one complete object at b[0:]; base is b's offset in the
// file, for tlv.off.
func parseOne(b []byte, base int) (tlv, error) {
	tag, hdr, n, err := parseHeader(b)
	if err != nil {
		return tlv{}, err
	}
	if len(b)-hdr < n {
		return tlv{}, fmt.Errorf("TLV %04X at offset %d: %d value bytes, %d present", tag, base, n, len(b)-hdr)
	}
	return tlv{tag: tag, off: base, raw: b[: hdr+n : hdr+n], value: b[hdr : hdr+n : hdr+n]}, nil
}

// parseFile reads the single top-level object of a file, with tag want.
// After it only 00/FF filler may follow (doc §1: "TLV files carry 00/FF
// filler").
func parseFile(b []byte, want uint16) (tlv, error) {
	t, err := parseOne(b, 0)
	if err != nil {
		return tlv{}, err
	}
	if t.tag != want {
		return tlv{}, fmt.Errorf("file starts with tag %04X, want %04X", t.tag, want)
	}
	for i, c := range b[len(t.raw):] {
		if c != 0x00 && c != 0xFF {
			return tlv{}, fmt.Errorf("byte %02X at offset %d after the %04X object (only 00/FF filler allowed)", c, len(t.raw)+i, want)
		}
	}
	return t, nil
}

// children parses the template value of t into exactly the objects tags,
// in this order, filling the value completely. Offsets are from the file
// start, as DF21 counts them.
//
// Strict: soltia48 (src/data.rs TlvFields) stops at a 00/FF byte inside a
// template value, but no documented layout has filler inside a template,
// so here any byte that is not the next expected object is an error.
func children(t tlv, tags ...uint16) ([]tlv, error) {
	name := fmt.Sprintf("%04X", t.tag)
	if t.tag == 0 {
		name = "value" // a bare run of objects, e.g. an RSA key
	}
	out := make([]tlv, 0, len(tags))
	hdr := len(t.raw) - len(t.value)
	rest, pos := t.value, t.off+hdr
	for _, want := range tags {
		if len(rest) == 0 {
			return nil, fmt.Errorf("%s ends before %04X", name, want)
		}
		c, err := parseOne(rest, pos)
		if err != nil {
			return nil, err
		}
		if c.tag != want {
			return nil, fmt.Errorf("%s: tag %04X at offset %d, want %04X", name, c.tag, pos, want)
		}
		out = append(out, c)
		rest, pos = rest[len(c.raw):], pos+len(c.raw)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%s: %d bytes after its last object (offset %d)", name, len(rest), pos)
	}
	return out, nil
}

// wantLen checks a fixed value length.
func wantLen(t tlv, n int) error {
	if len(t.value) != n {
		return fmt.Errorf("%04X value of %d bytes, want %d", t.tag, len(t.value), n)
	}
	return nil
}

// nonEmpty checks that a value is present.
func nonEmpty(t tlv) error {
	if len(t.value) == 0 {
		return fmt.Errorf("%04X is empty", t.tag)
	}
	return nil
}

// checkOffsets compares an offset table (DF21: u16 big-endian, absolute from
// the file's first byte) with where the objects actually start (soltia48
// src/data.rs check_offsets; doc §3.2, §4.2).
func checkOffsets(table tlv, objs []tlv) error {
	if len(table.value) != 2*len(objs) {
		return fmt.Errorf("offset table %04X of %d bytes for %d objects", table.tag, len(table.value), len(objs))
	}
	for i, o := range objs {
		declared := int(table.value[2*i])<<8 | int(table.value[2*i+1])
		if declared != o.off {
			return fmt.Errorf("offset table entry %d (%04X) says %d, object at %d", i, o.tag, declared, o.off)
		}
	}
	return nil
}

// clone copies b (nil stays nil), so parsed records never alias the input.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// span copies the bytes from the first to the last object of a contiguous
// run, as on the card.
func span(objs ...tlv) []byte {
	var out []byte
	for _, o := range objs {
		out = append(out, o.raw...)
	}
	return out
}

// malformed wraps an internal parse error as ErrMalformed, naming the record.
func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
