package crl

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
)

// DER tags used here (X.690 §8, universal class; RFC 5280 §5.1 context tags).
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagEnumerated  = 0x0a
	tagUTCTime     = 0x17
	tagGenTime     = 0x18
	tagSequence    = 0x30
	tagSet         = 0x31
)

const (
	bufSize = 128 << 10
	// maxElement bounds any element held in memory at once (one entry,
	// the issuer Name, the crlExtensions, the signature).
	maxElement = 1 << 20
)

// parseHeader decodes a DER identifier and length (X.690 §8.1.2, §8.1.3,
// §10.1) at the start of b. hlen == 0 with msg == "" means b is too short.
func parseHeader(b []byte) (tag byte, hlen int, n uint64, msg string) {
	if len(b) < 2 {
		return 0, 0, 0, ""
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return tag, 0, 0, "high tag number form"
	}
	l := b[1]
	if l < 0x80 {
		return tag, 2, uint64(l), ""
	}
	if l == 0x80 {
		return tag, 0, 0, "indefinite length"
	}
	k := int(l & 0x7f)
	if k > 8 {
		return tag, 0, 0, "length of length too large"
	}
	if len(b) < 2+k {
		return tag, 0, 0, ""
	}
	if b[2] == 0 {
		return tag, 0, 0, "non-minimal length (leading zero octet)"
	}
	for _, c := range b[2 : 2+k] {
		n = n<<8 | uint64(c)
	}
	if n < 0x80 {
		return tag, 0, 0, "non-minimal length (long form for short length)"
	}
	return tag, 2 + k, n, ""
}

// cur is an in-memory DER cursor; off is the absolute offset of b[0].
type cur struct {
	b   []byte
	off int64
}

func (c *cur) empty() bool { return len(c.b) == 0 }

// next reads one element: its tag, whole encoding and contents.
func (c *cur) next() (tag byte, full []byte, body cur, err error) {
	// fast path: low tag number, short-form length
	if len(c.b) >= 2 && c.b[1] < 0x80 && c.b[0]&0x1f != 0x1f {
		if end := 2 + int(c.b[1]); end <= len(c.b) {
			tag, full = c.b[0], c.b[:end]
			body = cur{b: c.b[2:end], off: c.off + 2}
			c.b = c.b[end:]
			c.off += int64(end)
			return tag, full, body, nil
		}
	}
	tag, hl, n, msg := parseHeader(c.b)
	if hl == 0 {
		if msg == "" {
			msg = "truncated element header"
		}
		return 0, nil, cur{}, malformed(c.off, msg)
	}
	if n > uint64(len(c.b)-hl) {
		return 0, nil, cur{}, malformed(c.off, "length exceeds enclosing element")
	}
	end := hl + int(n)
	full = c.b[:end]
	body = cur{b: c.b[hl:end], off: c.off + int64(hl)}
	c.b = c.b[end:]
	c.off += int64(end)
	return tag, full, body, nil
}

// expect reads one element that must have tag want.
func (c *cur) expect(want byte, what string) (full []byte, body cur, err error) {
	off := c.off
	tag, full, body, err := c.next()
	if err != nil {
		return nil, cur{}, err
	}
	if tag != want {
		return nil, cur{}, malformed(off, fmt.Sprintf("%s: unexpected tag 0x%02x", what, tag))
	}
	return full, body, nil
}

// peek returns the next tag, or 0 and false at the end.
func (c *cur) peek() (byte, bool) {
	if len(c.b) == 0 {
		return 0, false
	}
	return c.b[0], true
}

// stream is a buffered DER reader over an io.Reader that hashes what it
// reads: every byte into file, the bytes of [tbsStart, tbsEnd) into tbs.
type stream struct {
	r    io.Reader
	buf  []byte
	pos  int
	end  int
	base int64 // absolute offset of buf[0]
	eof  bool

	file hash.Hash

	tbs              hash.Hash // nil until known (or for no pre-hash)
	tbsOn            bool      // TBS span set
	tbsNoHash        bool      // algorithm without a pre-hash: drop
	tbsStart, tbsEnd int64
	hashed           int64  // TBS bytes before this offset are hashed (or pending)
	pending          []byte // TBS bytes read before the hash was known

	// Past asyncAfter bytes both hashes move to a goroutine (h); the
	// stream then only copies what it reads into h's chunks.
	h *asyncHasher
}

const (
	asyncAfter = 1 << 20
	chunkSize  = 64 << 10
	numChunks  = 4
)

// asyncHasher computes the file and TBS hashes on its own goroutine, over
// copies of the input in the order read.
type asyncHasher struct {
	ch   chan hashChunk
	free chan []byte
	done chan struct{}

	file, tbs      hash.Hash
	tbsFrom, tbsTo int64
}

type hashChunk struct {
	off  int64 // absolute offset of data[0]
	data []byte
}

func (h *asyncHasher) run() {
	defer close(h.done)
	for c := range h.ch {
		h.file.Write(c.data)
		if h.tbs != nil {
			lo, hi := max(c.off, h.tbsFrom), min(c.off+int64(len(c.data)), h.tbsTo)
			if hi > lo {
				h.tbs.Write(c.data[lo-c.off : hi-c.off])
			}
		}
		h.free <- c.data[:cap(c.data)]
	}
}

// goAsync hands hashing over to a goroutine. Everything read so far has
// been hashed into file; the TBS bytes read so far are hashed here.
func (s *stream) goAsync() {
	front := s.base + int64(s.end)
	if s.tbsOn && s.tbs != nil {
		s.flushTBS(front)
	}
	h := &asyncHasher{
		ch:      make(chan hashChunk, numChunks),
		free:    make(chan []byte, numChunks),
		done:    make(chan struct{}),
		file:    s.file,
		tbsFrom: front,
		tbsTo:   s.tbsEnd,
	}
	if s.tbsOn {
		h.tbs = s.tbs
	}
	for range numChunks {
		h.free <- make([]byte, chunkSize)
	}
	s.h = h
	go h.run()
}

// feed passes newly read bytes to the hasher.
func (s *stream) feed(off int64, b []byte) {
	if s.h == nil {
		s.file.Write(b)
		return
	}
	for len(b) > 0 {
		c := <-s.h.free
		n := copy(c, b)
		s.h.ch <- hashChunk{off: off, data: c[:n]}
		b, off = b[n:], off+int64(n)
	}
}

// finish stops the hasher goroutine, if any, and waits for it; after it the
// hashes in s are complete. Safe to call more than once.
func (s *stream) finish() {
	if s.h == nil {
		return
	}
	close(s.h.ch)
	<-s.h.done
	s.h = nil
}

func (s *stream) off() int64 { return s.base + int64(s.pos) }

// need makes at least n bytes available at buf[pos:].
func (s *stream) need(n int) error {
	if s.end-s.pos >= n {
		return nil
	}
	return s.fill(n)
}

var errShortRead = errors.New("unexpected end of input")

func (s *stream) fill(n int) error {
	if s.pos > 0 {
		s.flushTBS(s.off())
		copy(s.buf, s.buf[s.pos:s.end])
		s.base += int64(s.pos)
		s.end -= s.pos
		s.pos = 0
	}
	if n > len(s.buf) {
		nb := make([]byte, max(n, 2*len(s.buf)))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	empty := 0
	for s.end < n {
		if s.eof {
			return errShortRead
		}
		if s.h == nil && s.base+int64(s.end) >= asyncAfter && s.tbsOn && (s.tbs != nil || s.tbsNoHash) {
			s.goAsync()
		}
		k, err := s.r.Read(s.buf[s.end:])
		if k > 0 {
			s.feed(s.base+int64(s.end), s.buf[s.end:s.end+k])
			s.end += k
			empty = 0
		}
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			return fmt.Errorf("crl: read at offset %d: %w", s.base+int64(s.end), err)
		} else if k == 0 {
			if empty++; empty > 100 {
				return fmt.Errorf("crl: read at offset %d: %w", s.base+int64(s.end), io.ErrNoProgress)
			}
		}
	}
	return nil
}

// shortErr turns a short read into ErrMalformed at the current offset.
func (s *stream) shortErr(err error) error {
	if err == errShortRead {
		return malformed(s.base+int64(s.end), "truncated input")
	}
	return err
}

// startTBS marks the TBSCertList span; its bytes are hashed as they are
// consumed.
func (s *stream) startTBS(start, end int64) {
	s.tbsOn = true
	s.tbsStart, s.tbsEnd, s.hashed = start, end, start
}

// setTBSHash sets the TBS hash (nil: no pre-hash) once the algorithm is
// known.
func (s *stream) setTBSHash(h hash.Hash) {
	if h == nil {
		s.tbsNoHash = true
	} else {
		s.tbs = h
		h.Write(s.pending)
	}
	s.pending = nil
}

// flushTBS hashes TBS bytes in the buffer below absolute offset upTo.
func (s *stream) flushTBS(upTo int64) {
	if !s.tbsOn || s.h != nil {
		return
	}
	hi := min(upTo, s.tbsEnd)
	if hi <= s.hashed {
		return
	}
	b := s.buf[s.hashed-s.base : hi-s.base]
	switch {
	case s.tbs != nil:
		s.tbs.Write(b)
	case !s.tbsNoHash:
		s.pending = append(s.pending, b...)
	}
	s.hashed = hi
}

// header reads an element header at the current position without consuming
// it; the element must end by limit.
func (s *stream) header(limit int64, what string) (tag byte, hl int, n int64, err error) {
	off := s.off()
	if off >= limit {
		return 0, 0, 0, malformed(off, what+": missing (end of the enclosing element)")
	}
	if err := s.need(2); err != nil {
		return 0, 0, 0, s.shortErr(err)
	}
	tag, hl, un, msg := parseHeader(s.buf[s.pos:s.end])
	if hl == 0 && msg == "" {
		if err := s.need(2 + int(s.buf[s.pos+1]&0x7f)); err != nil {
			return 0, 0, 0, s.shortErr(err)
		}
		tag, hl, un, msg = parseHeader(s.buf[s.pos:s.end])
	}
	if hl == 0 {
		return 0, 0, 0, malformed(off, what+": "+msg)
	}
	rem := limit - off - int64(hl)
	if rem < 0 || un > uint64(rem) || un > math.MaxInt64/2 {
		return 0, 0, 0, malformed(off, what+": length exceeds enclosing element")
	}
	return tag, hl, int64(un), nil
}

// peek returns the tag at the current position, which must be before limit.
func (s *stream) peek() (byte, error) {
	if err := s.need(1); err != nil {
		return 0, s.shortErr(err)
	}
	return s.buf[s.pos], nil
}

// elem buffers and consumes the next element (ending by limit). The slices
// returned are valid until the next call on s.
func (s *stream) elem(limit int64, what string) (tag byte, full []byte, body cur, err error) {
	off := s.off()
	tag, hl, n, err := s.header(limit, what)
	if err != nil {
		return 0, nil, cur{}, err
	}
	if n > maxElement {
		return 0, nil, cur{}, unsupported(off, what+": element too large to buffer")
	}
	total := hl + int(n)
	if err := s.need(total); err != nil {
		return 0, nil, cur{}, s.shortErr(err)
	}
	full = s.buf[s.pos : s.pos+total]
	body = cur{b: full[hl:], off: off + int64(hl)}
	s.pos += total
	return tag, full, body, nil
}

// expectElem is elem with a required tag.
func (s *stream) expectElem(limit int64, want byte, what string) (full []byte, body cur, err error) {
	off := s.off()
	tag, full, body, err := s.elem(limit, what)
	if err != nil {
		return nil, cur{}, err
	}
	if tag != want {
		return nil, cur{}, malformed(off, fmt.Sprintf("%s: unexpected tag 0x%02x", what, tag))
	}
	return full, body, nil
}

// atEOF reports whether no byte follows the current position.
func (s *stream) atEOF() (bool, error) {
	if s.end > s.pos {
		return false, nil
	}
	err := s.need(1)
	if err == errShortRead {
		return true, nil
	}
	return false, err
}
