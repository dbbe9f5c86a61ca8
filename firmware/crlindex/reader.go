package crlindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Index is an opened, verified index file. Lookup, Iterate and the other
// accessors are safe for concurrent use, also concurrently with Close: Close
// waits for Lookups in flight and unmaps afterwards; once closed, Lookup
// answers (Entry{}, false) and Iterate ErrClosed. A caller that must never
// read "not listed" from a closed index keeps it open until it has swapped
// in the next one.
type Index struct {
	data   []byte // the mapping
	size   int64
	meta   []byte // copy of the metadata
	sets   []set  // 2 per table: negative, positive
	tables int

	closed   atomic.Bool
	inflight atomic.Int64
}

type set struct {
	w, p, kw int // key width, prefix bits, stored key bytes (w − p/8)
	n        int
	fan      []byte // (2^16+1)×4 bytes when p == 16
	keys     []byte
	attrs    []byte
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Open maps the index file at path read-only and verifies it completely:
// magic, version, file size, layout, every CRC-32C, the fan-out arrays, the
// key order and the reason codes. A damaged or truncated file yields an
// error wrapping ErrCorrupt, never an Index. Errors opening or mapping the
// file (missing, permission) are returned as they are.
func Open(path string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("crlindex: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("crlindex: %w", err)
	}
	size := fi.Size()
	if size < int64(headerLen(1)) {
		return nil, corrupt("file of %d bytes is shorter than a header", size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("crlindex: file of %d bytes is too large to map", size)
	}
	data, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("crlindex: mmap: %w", err)
	}
	x, err := parse(data)
	if err != nil {
		unmapFile(data)
		return nil, err
	}
	return x, nil
}

// parse verifies data and builds the Index over it.
func parse(data []byte) (*Index, error) {
	size := uint64(len(data))
	if size < uint64(headerLen(1)) {
		return nil, corrupt("file of %d bytes is shorter than a header", size)
	}
	if string(data[:8]) != magic {
		return nil, corrupt("bad magic")
	}
	if data[8] != formatVersion {
		return nil, corrupt("format version %d, want %d", data[8], formatVersion)
	}
	if data[9] != 0 || data[10] != 0 || data[11] != 0 {
		return nil, corrupt("reserved header bytes not zero")
	}
	le := binary.LittleEndian
	t := uint64(le.Uint32(data[12:]))
	if t < 1 || t > MaxTables {
		return nil, corrupt("%d tables", t)
	}
	hl := uint64(headerLen(int(t)))
	if size < hl {
		return nil, corrupt("file of %d bytes is shorter than its header (%d)", size, hl)
	}
	if got, want := crc32.Checksum(data[:hl-4], castagnoli), le.Uint32(data[hl-4:]); got != want {
		return nil, corrupt("header checksum mismatch")
	}
	if fs := le.Uint64(data[16:]); fs != size {
		return nil, corrupt("file is %d bytes, header says %d", size, fs)
	}
	ml := uint64(le.Uint32(data[24:]))
	if ml > MaxMetadataLen || hl+ml > size {
		return nil, corrupt("metadata length %d", ml)
	}
	meta := data[hl : hl+ml]
	if crc32.Checksum(meta, castagnoli) != le.Uint32(data[28:]) {
		return nil, corrupt("metadata checksum mismatch")
	}
	x := &Index{
		data:   data,
		size:   int64(len(data)),
		meta:   bytes.Clone(meta),
		sets:   make([]set, 2*t),
		tables: int(t),
	}
	if x.meta == nil {
		x.meta = []byte{}
	}
	pos := hl + ml
	for s := range x.sets {
		d := data[fixedHeaderLen+s*descLen:]
		w := uint64(le.Uint16(d[0:]))
		p := uint64(d[2])
		n := uint64(le.Uint32(d[4:]))
		if d[3] != 0 || le.Uint32(d[44:]) != 0 {
			return nil, corrupt("set %d: reserved bytes not zero", s)
		}
		if p != 0 && p != 16 || p == 16 && w < 2 {
			return nil, corrupt("set %d: prefix %d bits with %d-byte keys", s, p, w)
		}
		if n == 0 && (w != 0 || p != 0) {
			return nil, corrupt("set %d: empty set with key width %d", s, w)
		}
		var fl uint64
		if p == 16 {
			fl = fanLen
		}
		kw := w - p/8
		kl := n * kw
		al := n * 4
		if le.Uint64(d[8:]) != pos || le.Uint64(d[16:]) != pos+fl || le.Uint64(d[24:]) != pos+fl+kl {
			return nil, corrupt("set %d: section offsets do not match the layout", s)
		}
		end := pos + fl + kl + al
		if end > size {
			return nil, corrupt("set %d: sections end at %d, past the file end %d", s, end, size)
		}
		st := &x.sets[s]
		st.w, st.p, st.kw, st.n = int(w), int(p), int(kw), int(n)
		st.fan = data[pos : pos+fl]
		st.keys = data[pos+fl : pos+fl+kl]
		st.attrs = data[pos+fl+kl : end]
		pos = end
	}
	if pos != size {
		return nil, corrupt("%d trailing bytes", size-pos)
	}
	// Checksums and structure (fan-out, key order, reason codes) are
	// checked concurrently: both read the whole file.
	var wg sync.WaitGroup
	var crcErr error
	wg.Go(func() {
		for s := range x.sets {
			st, d := &x.sets[s], data[fixedHeaderLen+s*descLen:]
			if crc32.Checksum(st.fan, castagnoli) != le.Uint32(d[32:]) ||
				crc32.Checksum(st.keys, castagnoli) != le.Uint32(d[36:]) ||
				crc32.Checksum(st.attrs, castagnoli) != le.Uint32(d[40:]) {
				crcErr = corrupt("set %d: section checksum mismatch", s)
				return
			}
		}
	})
	var checkErr error
	for s := range x.sets {
		if checkErr = x.sets[s].check(s); checkErr != nil {
			break
		}
	}
	wg.Wait()
	if crcErr != nil {
		return nil, crcErr
	}
	if checkErr != nil {
		return nil, checkErr
	}
	return x, nil
}

// check verifies the fan-out, the strict key order and the reason codes.
func (st *set) check(s int) error {
	le := binary.LittleEndian
	// Reason codes 11..14 are invalid: bits 11..14 of badReasons. Two
	// attributes per 8-byte load.
	const badReasons = 0x7800
	var bad uint64
	a := st.attrs
	for ; len(a) >= 8; a = a[8:] {
		w := le.Uint64(a)
		bad |= badReasons>>(w>>28&15) | badReasons>>(w>>60)
	}
	if len(a) == 4 {
		bad |= badReasons >> (le.Uint32(a) >> 28)
	}
	if bad&1 != 0 {
		return corrupt("set %d: bad reason code", s)
	}
	if st.p == 0 {
		return checkOrder(st.keys, st.kw, 0, st.n, s)
	}
	if le.Uint32(st.fan) != 0 || le.Uint32(st.fan[fanLen-4:]) != uint32(st.n) {
		return corrupt("set %d: fan-out does not span the entries", s)
	}
	for b := 4; b < fanLen; b += 4 {
		if le.Uint32(st.fan[b:]) < le.Uint32(st.fan[b-4:]) {
			return corrupt("set %d: fan-out decreases", s)
		}
	}
	// Now every bucket lies within [0, N].
	for b := 0; b < 1<<16; b++ {
		lo, hi := le.Uint32(st.fan[4*b:]), le.Uint32(st.fan[4*b+4:])
		if err := checkOrder(st.keys, st.kw, int(lo), int(hi), s); err != nil {
			return err
		}
	}
	return nil
}

// checkOrder verifies keys[lo:hi] (of width kw) are strictly increasing.
func checkOrder(keys []byte, kw, lo, hi, s int) error {
	if hi-lo < 2 {
		return nil
	}
	if kw == 0 {
		return corrupt("set %d: duplicate keys", s)
	}
	if kw <= 8 { // compared as integers: load 8 bytes, keep the first kw
		shift := uint(64 - 8*kw)
		load := func(i int) uint64 {
			if o := i * kw; o+8 <= len(keys) {
				return binary.BigEndian.Uint64(keys[o:]) >> shift
			}
			var b [8]byte
			copy(b[8-kw:], keys[i*kw:(i+1)*kw])
			return binary.BigEndian.Uint64(b[:])
		}
		prev := load(lo)
		ok := true
		for i := lo + 1; i < hi; i++ {
			k := load(i)
			ok = ok && k > prev
			prev = k
		}
		if !ok {
			return corrupt("set %d: keys out of order", s)
		}
		return nil
	}
	for i := lo + 1; i < hi; i++ {
		if bytes.Compare(keys[(i-1)*kw:i*kw], keys[i*kw:(i+1)*kw]) >= 0 {
			return corrupt("set %d: keys out of order at entry %d", s, i)
		}
	}
	return nil
}

// Metadata returns the caller's metadata blob (a copy owned by the Index;
// do not modify it). It stays valid after Close.
func (x *Index) Metadata() []byte { return x.meta }

// Tables returns the number of tables.
func (x *Index) Tables() int { return x.tables }

// Len returns the number of entries (negative and positive) of a table, 0
// for a table out of range.
func (x *Index) Len(table int) int {
	if table < 0 || table >= x.tables {
		return 0
	}
	return x.sets[2*table].n + x.sets[2*table+1].n
}

// Size returns the file size in bytes.
func (x *Index) Size() int64 { return x.size }

// Lookup reports whether serial (a magnitude, leading zeros ignored) with
// the given sign is listed in table. It is exact and does not allocate; the
// returned Entry's Serial is the caller's serial without leading zeros. A
// table out of range, a serial longer than the table's keys, or a closed
// Index: (Entry{}, false).
func (x *Index) Lookup(table int, serial []byte, negative bool) (Entry, bool) {
	x.inflight.Add(1)
	if x.closed.Load() {
		x.inflight.Add(-1)
		return Entry{}, false
	}
	e, ok := x.lookup(table, serial, negative)
	x.inflight.Add(-1)
	return e, ok
}

func (x *Index) lookup(table int, serial []byte, negative bool) (Entry, bool) {
	if table < 0 || table >= x.tables {
		return Entry{}, false
	}
	mag := trimZeros(serial)
	neg := negative && len(mag) > 0
	st := &x.sets[2*table+1]
	if neg {
		st = &x.sets[2*table]
	}
	if st.n == 0 || len(mag) > st.w {
		return Entry{}, false
	}
	q := mag
	z := st.w - len(q) // the query is z zero bytes followed by q
	lo, hi := 0, st.n
	if st.p == 16 {
		var b0, b1 byte
		switch {
		case z >= 2:
		case z == 1:
			b1 = q[0]
		default:
			b0, b1 = q[0], q[1]
		}
		b := int(b0)<<8 | int(b1)
		lo = int(binary.LittleEndian.Uint32(st.fan[4*b:]))
		hi = int(binary.LittleEndian.Uint32(st.fan[4*b+4:]))
		if z >= 2 {
			z -= 2
		} else {
			q = q[2-z:]
			z = 0
		}
	}
	kw := st.kw
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k := st.keys[m*kw : m*kw+kw]
		c := 0
		for _, b := range k[:z] {
			if b != 0 {
				c = 1
				break
			}
		}
		if c == 0 {
			c = bytes.Compare(k[z:], q)
		}
		switch {
		case c < 0:
			lo = m + 1
		case c > 0:
			hi = m
		default:
			r, t := unpackAttr(binary.LittleEndian.Uint32(st.attrs[4*m:]))
			return Entry{Table: uint16(table), Serial: mag, Negative: neg, Reason: r, RevokedAt: t}, true
		}
	}
	return Entry{}, false
}

// Iterate calls fn for every entry of table in file order: negative serials
// first, then positive ones, each by increasing magnitude. The Entry and its
// Serial are reused between calls (copy what you keep). fn's error stops the
// iteration and is returned. fn may call Close; Iterate then returns
// ErrClosed.
func (x *Index) Iterate(table int, fn func(*Entry) error) error {
	if table < 0 || table >= x.tables {
		return fmt.Errorf("crlindex: table %d out of range (%d tables)", table, x.tables)
	}
	var e Entry
	var buf []byte
	for sign := 0; sign < 2; sign++ {
		st := &x.sets[2*table+sign]
		if cap(buf) < st.w {
			buf = make([]byte, st.w)
		}
		buf = buf[:st.w]
		b := 0
		for i := 0; i < st.n; i++ {
			x.inflight.Add(1)
			if x.closed.Load() {
				x.inflight.Add(-1)
				return ErrClosed
			}
			k := buf
			if st.p == 16 {
				for binary.LittleEndian.Uint32(st.fan[4*b+4:]) <= uint32(i) {
					b++
				}
				k[0], k[1] = byte(b>>8), byte(b)
				k = k[2:]
			}
			copy(k, st.keys[i*st.kw:(i+1)*st.kw])
			a := binary.LittleEndian.Uint32(st.attrs[4*i:])
			x.inflight.Add(-1)
			e.Table = uint16(table)
			e.Serial = trimZeros(buf)
			e.Negative = sign == 0
			e.Reason, e.RevokedAt = unpackAttr(a)
			if err := fn(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close unmaps the file after the Lookups in flight have finished. Calls
// after the first return nil.
func (x *Index) Close() error {
	if !x.closed.CompareAndSwap(false, true) {
		return nil
	}
	for x.inflight.Load() != 0 {
		runtime.Gosched()
		time.Sleep(10 * time.Microsecond)
	}
	data := x.data
	x.data = nil
	if err := unmapFile(data); err != nil {
		return fmt.Errorf("crlindex: munmap: %w", err)
	}
	return nil
}
