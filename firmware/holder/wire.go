package holder

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Limits of the line protocol.
const (
	maxLine  = 4096 // bytes per line, "\n" included; longer lines close the connection
	maxValue = 64   // decoded bytes of an answer value; longer values are a format error
	maxKey   = 32   // decoded bytes of a member name we compare; longer names are unknown
	maxID    = 1<<53 - 1
)

// errMalformed is returned by parseClientLine; its text never contains
// bytes of the line.
var errMalformed = errors.New("holder: malformed message")

type msgType uint8

const (
	msgAnswer msgType = iota + 1
	msgCancel
)

// clientMsg is a parsed client line.
type clientMsg struct {
	typ      msgType
	id       uint64
	value    []byte // answer only; decoded into a slice owned by the caller
	overlong bool   // answer value longer than maxValue (value is nil)
}

// parseClientLine parses one client line (without the trailing "\n").
// It accepts exactly one JSON object with the members "type" ("answer" or
// "cancel"), "id" (a non-negative integer) and, for answers only, "value"
// (a string); other members with scalar values are skipped. It rejects
// nested objects and arrays, duplicate members, invalid UTF-8, lone
// surrogates and anything after the object but white space.
//
// The value is decoded into a new slice, never into a string; on any error
// that slice is zeroed before returning. The caller zeroes line.
func parseClientLine(line []byte) (m clientMsg, err error) {
	s := scanner{b: line}
	var (
		typ                      []byte
		keyBuf                   [maxKey]byte
		typBuf                   [maxKey]byte
		seenType, seenID, seenVa bool
	)
	defer func() {
		if err != nil {
			clear(m.value[:cap(m.value)])
			m = clientMsg{}
		}
	}()
	s.ws()
	if !s.eat('{') {
		return m, errMalformed
	}
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			key, long, err := s.str(keyBuf[:0], maxKey)
			if err != nil {
				return m, err
			}
			if long {
				key = nil
			}
			s.ws()
			if !s.eat(':') {
				return m, errMalformed
			}
			s.ws()
			switch string(key) { // no allocation: the compiler compares in place
			case "type":
				if seenType {
					return m, errMalformed
				}
				seenType = true
				var tlong bool
				typ, tlong, err = s.str(typBuf[:0], maxKey)
				if err != nil {
					return m, err
				}
				if tlong {
					typ = nil
				}
			case "id":
				if seenID {
					return m, errMalformed
				}
				seenID = true
				if m.id, err = s.uint(); err != nil {
					return m, err
				}
			case "value":
				if seenVa {
					return m, errMalformed
				}
				seenVa = true
				m.value = make([]byte, 0, maxValue)
				var vlong bool
				m.value, vlong, err = s.str(m.value, maxValue)
				if err != nil {
					return m, err
				}
				if vlong {
					clear(m.value[:cap(m.value)])
					m.value, m.overlong = nil, true
				}
			default:
				if err := s.skipScalar(); err != nil {
					return m, err
				}
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return m, errMalformed
		}
	}
	s.ws()
	if s.i != len(s.b) || !seenType || !seenID {
		return m, errMalformed
	}
	switch string(typ) {
	case "answer":
		if !seenVa {
			return m, errMalformed
		}
		m.typ = msgAnswer
	case "cancel":
		if seenVa {
			return m, errMalformed
		}
		m.typ = msgCancel
	default:
		return m, errMalformed
	}
	return m, nil
}

// scanner walks a JSON text without allocating.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str decodes a JSON string, appending at most max bytes to dst. long
// reports that the decoded string had more than max bytes (the rest was
// validated but not stored).
func (s *scanner) str(dst []byte, max int) (out []byte, long bool, err error) {
	if !s.eat('"') {
		return dst, false, errMalformed
	}
	put := func(p ...byte) {
		if len(dst)+len(p) > max {
			long = true
			return
		}
		dst = append(dst, p...)
	}
	for {
		if s.i >= len(s.b) {
			return dst, long, errMalformed
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return dst, long, nil
		case c < 0x20:
			return dst, long, errMalformed
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return dst, long, errMalformed
			}
			e := s.b[s.i+1]
			s.i += 2
			switch e {
			case '"', '\\', '/':
				put(e)
			case 'b':
				put('\b')
			case 'f':
				put('\f')
			case 'n':
				put('\n')
			case 'r':
				put('\r')
			case 't':
				put('\t')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return dst, long, errMalformed
				}
				if 0xDC00 <= r && r <= 0xDFFF {
					return dst, long, errMalformed // lone low surrogate
				}
				if 0xD800 <= r && r <= 0xDBFF {
					if !s.eat('\\') || !s.eat('u') {
						return dst, long, errMalformed
					}
					lo, ok := s.hex4()
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return dst, long, errMalformed
					}
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				}
				var enc [utf8.UTFMax]byte
				n := utf8.EncodeRune(enc[:], r)
				put(enc[:n]...)
				clear(enc[:])
			default:
				return dst, long, errMalformed
			}
		case c < utf8.RuneSelf:
			put(c)
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n <= 1 {
				return dst, long, errMalformed
			}
			put(s.b[s.i : s.i+n]...)
			s.i += n
		}
	}
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// uint parses a JSON number that must be a non-negative integer ≤ maxID
// (no sign, fraction or exponent; no leading zeros, as JSON requires).
func (s *scanner) uint() (uint64, error) {
	start := s.i
	var v uint64
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		v = v*10 + uint64(s.b[s.i]-'0')
		s.i++
		if v > maxID {
			return 0, errMalformed
		}
	}
	n := s.i - start
	if n == 0 || n > 1 && s.b[start] == '0' {
		return 0, errMalformed
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, errMalformed
		}
	}
	return v, nil
}

// skipScalar skips a string, number, true, false or null.
func (s *scanner) skipScalar() error {
	if s.i >= len(s.b) {
		return errMalformed
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, err := s.str(nil, 0)
		return err
	case c == '-' || '0' <= c && c <= '9':
		return s.skipNumber()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return nil
		}
	}
	return errMalformed // objects, arrays and anything invalid
}

// skipNumber skips -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) skipNumber() error {
	s.eat('-')
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.eat('0') {
		// a leading zero stands alone
	} else if digits() == 0 {
		return errMalformed
	}
	if s.eat('.') && digits() == 0 {
		return errMalformed
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return errMalformed
		}
	}
	return nil
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte { return appendBytesString(dst, []byte(s)) }

// appendBytesString appends b as a JSON string without converting it to a
// string (secrets on the client side stay in buffers the caller zeroes).
// Invalid UTF-8 becomes U+FFFD.
func appendBytesString(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, b[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

func requestLine(id uint64, r Request) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"type":"request","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(r.Kind))
	b = append(b, `,"tries_left":`...)
	b = strconv.AppendInt(b, int64(r.TriesLeft), 10)
	b = append(b, `,"profile":`...)
	b = appendString(b, r.Profile)
	return append(b, "}\n"...)
}

func doneLine(id uint64) []byte {
	b := append([]byte(`{"type":"done","id":`), strconv.FormatUint(id, 10)...)
	return append(b, "}\n"...)
}

func errorLine(id uint64, msg string) []byte {
	b := append([]byte(`{"type":"error","id":`), strconv.FormatUint(id, 10)...)
	b = append(b, `,"error":`...)
	b = appendString(b, msg)
	return append(b, "}\n"...)
}

// attributesLine encodes a by hand, so that no copy of the personal data
// stays in encoding/json's pooled buffers; the writer zeroes the line.
func attributesLine(a Attributes) []byte {
	b := make([]byte, 0, 256+len(a.Name)+len(a.Address))
	b = append(b, `{"type":"attributes","profile":`...)
	b = appendString(b, a.Profile)
	for _, f := range [...]struct{ k, v string }{
		{"name", a.Name}, {"address", a.Address}, {"birth_date", a.BirthDate}, {"sex", a.Sex},
		{"individual_number", a.IndividualNumber},
	} {
		if f.v == "" && f.k == "individual_number" {
			continue
		}
		b = append(b, ',', '"')
		b = append(b, f.k...)
		b = append(b, '"', ':')
		b = appendString(b, f.v)
	}
	return append(b, "}\n"...)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
