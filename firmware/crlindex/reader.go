package crlindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
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
	rec      int // entry record size, kw + 4
	n        int
	fan      []byte // (2^16+1)×4 bytes when p == 16
	ents     []byte // n records: key, attribute
	off      int    // offset of ents in the file
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
		if d[3] != 0 {
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
		el := n * (kw + 4)
		if le.Uint64(d[8:]) != pos || le.Uint64(d[16:]) != pos+fl {
			return nil, corrupt("set %d: section offsets do not match the layout", s)
		}
		end := pos + fl + el
		if end > size {
			return nil, corrupt("set %d: sections end at %d, past the file end %d", s, end, size)
		}
		st := &x.sets[s]
		st.w, st.p, st.kw, st.rec, st.n = int(w), int(p), int(kw), int(kw+4), int(n)
		st.fan = data[pos : pos+fl : pos+fl]
		st.ents = data[pos+fl : end : end]
		st.off = int(pos + fl)
		pos = end
	}
	if pos != size {
		return nil, corrupt("%d trailing bytes", size-pos)
	}
	// Checksums and structure (fan-out, key order, reason codes) are
	// checked window by window, the CRC and the structure of a window
	// concurrently; each verified window is released (dropped from this
	// process's resident pages, still in the page cache), so opening a
	// 100 MB index does not leave 100 MB resident: lookups fault in the
	// few pages they touch.
	for s := range x.sets {
		if err := x.sets[s].verify(s, data[fixedHeaderLen+s*descLen:], data); err != nil {
			return nil, err
		}
	}
	// Serial zero has no sign: the writer files it as positive, and a
	// lookup of "negative zero" searches the positive set. A negative set
	// that holds it would list an entry no Lookup can find (FuzzOpen).
	for s := 0; s < len(x.sets); s += 2 {
		st := &x.sets[s]
		if st.n == 0 {
			continue
		}
		zero := !slices.ContainsFunc(st.ents[:st.kw], func(b byte) bool { return b != 0 })
		if st.p == 16 {
			zero = zero && binary.LittleEndian.Uint32(st.fan[4:]) > 0
		}
		if zero {
			return nil, corrupt("set %d: serial zero in a negative set", s)
		}
	}
	release(data, 0, len(data))
	return x, nil
}

// verifyWindow is how many bytes of entries are checked before their
// pages are released.
const verifyWindow = 8 << 20

// verify checks the set's CRCs (d is its descriptor) and structure.
func (st *set) verify(s int, d, data []byte) error {
	le := binary.LittleEndian
	if crc32.Checksum(st.fan, castagnoli) != le.Uint32(d[24:]) {
		return corrupt("set %d: section checksum mismatch", s)
	}
	if err := st.checkFan(s); err != nil {
		return err
	}
	per := max(verifyWindow/max(st.rec, 1), 1)
	crc := uint32(0)
	bucket := 0
	base := st.off
	for a := 0; a < st.n || a == 0; a += per {
		b := min(a+per, st.n)
		prefetch(data, base+a*st.rec, base+b*st.rec)
		var wg sync.WaitGroup
		wg.Go(func() { crc = crc32.Update(crc, castagnoli, st.ents[a*st.rec:b*st.rec]) })
		ok := true
		if st.p == 0 {
			ok = st.checkRun(max(a-1, 0), b)
		} else {
			// Keys increase within a fan-out bucket: check the parts of
			// the buckets in [a-1, b).
			for ; bucket < 1<<16 && ok; bucket++ {
				fa, fb := int(le.Uint32(st.fan[4*bucket:])), int(le.Uint32(st.fan[4*bucket+4:]))
				if fa >= b {
					break
				}
				ok = st.checkRun(max(fa, a-1), min(fb, b))
				if fb > b {
					break // continues in the next window
				}
			}
		}
		wg.Wait()
		if !ok {
			return corrupt("set %d: keys out of order or bad reason code", s)
		}
		release(data, base+a*st.rec, base+b*st.rec)
		if st.n == 0 {
			break
		}
	}
	if crc != le.Uint32(d[28:]) {
		return corrupt("set %d: section checksum mismatch", s)
	}
	return nil
}

// checkFan verifies the fan-out array: 0 .. N, non-decreasing.
func (st *set) checkFan(s int) error {
	if st.p == 0 {
		return nil
	}
	le := binary.LittleEndian
	if le.Uint32(st.fan) != 0 || le.Uint32(st.fan[fanLen-4:]) != uint32(st.n) {
		return corrupt("set %d: fan-out does not span the entries", s)
	}
	for b := 4; b < fanLen; b += 4 {
		if le.Uint32(st.fan[b:]) < le.Uint32(st.fan[b-4:]) {
			return corrupt("set %d: fan-out decreases", s)
		}
	}
	return nil
}

// badReasons has bits 11..14 set: reason codes 11..14 are invalid.
const badReasons = 0x7800

// checkRun reports whether the entries [lo, hi) have valid reason codes and
// strictly increasing keys.
func (st *set) checkRun(lo, hi int) bool {
	if hi <= lo {
		return true
	}
	kw, rec, ents := st.kw, st.rec, st.ents[lo*st.rec:hi*st.rec]
	var bad uint32
	for o := rec - 1; o < len(ents); o += rec {
		bad |= badReasons >> (ents[o] >> 4)
	}
	if bad&1 != 0 {
		return false
	}
	if hi-lo < 2 {
		return true
	}
	switch {
	case kw == 0:
		return false // two equal (empty) keys
	case kw >= 4 && kw <= 8:
		// Compared as integers: a record has ≥ 8 bytes, load 8 and keep
		// the key's.
		shift := uint(64 - 8*kw)
		prev := binary.BigEndian.Uint64(ents) >> shift
		inc := true
		for o := rec; o+8 <= len(ents); o += rec {
			k := binary.BigEndian.Uint64(ents[o:]) >> shift
			inc = inc && k > prev
			prev = k
		}
		return inc
	default:
		for o := rec; o < len(ents); o += rec {
			if bytes.Compare(ents[o-rec:o-rec+kw], ents[o:o+kw]) >= 0 {
				return false
			}
		}
		return true
	}
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

// ErrUnreadable is returned by Find when the mapped file faulted: it was
// truncated or became unreadable under the mapping.
var ErrUnreadable = errors.New("crlindex: index file unreadable under its mapping")

// Find is Lookup for callers that must never mistake a failure for "not
// listed": a closed Index gives ErrClosed, and a fault while reading the
// mapping (the file truncated in place, an I/O error of the device) gives
// ErrUnreadable instead of crashing the process.
func (x *Index) Find(table int, serial []byte, negative bool) (e Entry, ok bool, err error) {
	x.inflight.Add(1)
	defer x.inflight.Add(-1)
	if x.closed.Load() {
		return Entry{}, false, ErrClosed
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			e, ok, err = Entry{}, false, faultError(r)
		}
	}()
	e, ok = x.lookup(table, serial, negative)
	return e, ok, nil
}

// faultError turns a recovered memory fault into ErrUnreadable. A fault
// under SetPanicOnFault panics with a runtime.Error that has an Addr
// method (runtime/debug docs); anything else is a bug and panics again.
func faultError(r any) error {
	fault, isFault := r.(interface {
		runtime.Error
		Addr() uintptr
	})
	if !isFault {
		panic(r)
	}
	return fmt.Errorf("%w: fault at %#x", ErrUnreadable, fault.Addr())
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
	if m := st.find(lo, hi, z, q); m >= 0 {
		r, t := unpackAttr(binary.LittleEndian.Uint32(st.ents[m*st.rec+st.kw:]))
		return Entry{Table: uint16(table), Serial: mag, Negative: neg, Reason: r, RevokedAt: t}, true
	}
	return Entry{}, false
}

// cmpKey compares the key of entry m with the query (z zero bytes, then q).
func cmpKey(ents []byte, rec, kw, m, z int, q []byte) int {
	k := ents[m*rec : m*rec+kw]
	for _, b := range k[:z] {
		if b != 0 {
			return 1
		}
	}
	return bytes.Compare(k[z:], q)
}

// find returns the index in [lo, hi) of the key equal to the query (z zero
// bytes, then q), or -1. Serials are mostly random or dense, so the first
// probe is interpolated as if the keys were spread evenly over their value
// range, then the search gallops from there (probes near the estimate share
// cache lines) and ends in a binary search: O(log n) probes at worst, about
// two cache lines for evenly spread keys.
func (st *set) find(lo, hi, z int, q []byte) int {
	ents, rec, kw := st.ents, st.rec, st.kw
	if hi-lo > 8 {
		var b [8]byte
		if z < 8 {
			copy(b[z:], q)
		}
		e, _ := bits.Mul64(binary.BigEndian.Uint64(b[:]), uint64(hi-lo))
		m := lo + int(e)
		c := cmpKey(ents, rec, kw, m, z, q)
		switch {
		case c == 0:
			return m
		case c < 0: // in (m, hi)
			lo = m + 1
			for step := 1; m+step < hi; step <<= 1 {
				r := m + step
				cr := cmpKey(ents, rec, kw, r, z, q)
				if cr == 0 {
					return r
				}
				if cr > 0 {
					hi = r
					break
				}
				lo = r + 1
			}
		default: // in [lo, m)
			hi = m
			for step := 1; m-step >= lo; step <<= 1 {
				r := m - step
				cr := cmpKey(ents, rec, kw, r, z, q)
				if cr == 0 {
					return r
				}
				if cr < 0 {
					lo = r + 1
					break
				}
				hi = r
			}
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := cmpKey(ents, rec, kw, m, z, q)
		switch {
		case c < 0:
			lo = m + 1
		case c > 0:
			hi = m
		default:
			return m
		}
	}
	return -1
}

// Iterate calls fn for every entry of table in file order: negative serials
// first, then positive ones, each by increasing magnitude. The Entry and its
// Serial are reused between calls (copy what you keep). fn's error stops the
// iteration and is returned. fn may call Close; Iterate then returns
// ErrClosed.
func (x *Index) Iterate(table int, fn func(*Entry) error) (err error) {
	// As in Find, a fault of the mapping is an error, not a crash; held
	// says whether the fault came while the in-flight count was raised.
	held := false
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = faultError(r)
			if held {
				x.inflight.Add(-1)
			}
		}
	}()
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
		released := 0 // entries below this offset were released
		for i := 0; i < st.n; i++ {
			x.inflight.Add(1)
			held = true
			if x.closed.Load() {
				x.inflight.Add(-1)
				return ErrClosed
			}
			// A full pass (a delta merge, a diff) need not stay resident.
			if o := i * st.rec; o-released >= verifyWindow {
				release(x.data, st.off+released, st.off+o)
				released = o
			}
			k := buf
			if st.p == 16 {
				for binary.LittleEndian.Uint32(st.fan[4*b+4:]) <= uint32(i) {
					b++
				}
				k[0], k[1] = byte(b>>8), byte(b)
				k = k[2:]
			}
			r := st.ents[i*st.rec : (i+1)*st.rec]
			copy(k, r[:st.kw])
			a := binary.LittleEndian.Uint32(r[st.kw:])
			x.inflight.Add(-1)
			held = false
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
