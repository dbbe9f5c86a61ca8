package crlindex

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// MemoryLimit bounds the bytes the Writer keeps for buffered entries:
	// two buffers of up to MemoryLimit/2 each (one filled by Add while the
	// other is written out in the background), 24 bytes per entry plus the
	// bytes of serials longer than 11. Beyond it, entries are spilled to
	// temp files in the Writer's directory (partition.go) and read back,
	// one key range at a time, at Commit. 0 means 32 MiB; values below 1
	// KiB are raised to 1 KiB. Small fixed buffers come on top: 64 KiB per
	// spill file (at most 64, one per key range, or 64 runs while merging a
	// key range that did not fit) and one 256 KiB fan-out array. Measured
	// with 10M 8-byte serials and the default: peak live heap 30 MiB, peak
	// RSS 45 MiB (BenchmarkBuild).
	MemoryLimit int
	// Tables is the number of tables in the file, 1..65536 (0 means 1).
	Tables int
}

const (
	defaultMemoryLimit = 32 << 20
	minMemoryLimit     = 1 << 10
	maxFanIn           = 64
	ctxEvery           = 1 << 16
	ioBufSize          = 64 << 10
)

// setStat is what Add learns about a set: an upper bound of its entry count
// (duplicates not yet removed) and its exact key width.
type setStat struct {
	count  uint64
	maxLen int
}

// Writer builds an index file. Entries may be added in any order; a
// duplicate (same table, serial and sign) replaces the one added before it:
// the LAST one added wins, which is what applying a delta CRL over a complete
// one needs. A Writer is not safe for concurrent use.
//
// Internally an entry's sort key is table (uint16 BE) | 0 negative, 1
// positive | magnitude length (uint16 BE) | magnitude, so bytes.Compare of
// keys is the file order. Buffered entries are fixed 24-byte items holding
// the key's first 16 bytes (whole keys of serials up to 11 bytes) and the
// attributes; longer keys keep their remaining bytes in an arena. While
// input arrives in key order, each full buffer extends one sorted run file
// of records [key length uint16 LE][key][attr uint32 LE] and Commit has
// nothing to sort. Once it does not, full buffers are distributed by key
// range to bucket files, and Commit sorts one bucket at a time in memory
// (radix sort; equal keys in arrival order) while the previous one is
// written out; see partition.go.
//
// Add, Commit and Abort must not be called concurrently; Abort (or a
// failed Commit) is what removes the run files, so a caller that gives up
// on a Writer must call Abort.
type Writer struct {
	dir    string
	limit  int
	tables int
	stats  []setStat

	b       *buffer // being filled
	spare   *buffer // the other one; being spilled while pending != nil
	pending chan error
	global  bool // every entry so far arrived in key order (runs ≤ 1)
	last    item // the last entry added and its arena bytes
	lastR   []byte
	runs    []*run
	parts   *partitions // buckets, once input arrived out of order
	// For tests: buckets that did not fit in memory, and merge passes
	// that reduced the fan-in of a merge.
	oversized, reductions atomic.Int32
	added                 int64

	done bool
}

// buffer holds entries in memory. There are two, each with half the
// memory limit: while one is sorted and written as a run by a background
// goroutine, Add fills the other.
type buffer struct {
	items  []item
	arena  []byte // key bytes beyond the first 16, for long keys
	sorted bool   // items are in arrival order = key order
	bw     *bufio.Writer
	keyBuf []byte
}

// item is one buffered entry.
type item struct {
	hi, lo uint64 // key bytes 0..15, big-endian, zero-padded
	attr   uint32
	// ext orders equal keys by arrival: for keys of ≤ 16 bytes the item's
	// sequence number in the buffer, for longer ones the offset of the key
	// bytes from 16 on in the arena (also increasing with arrival).
	ext uint32
}

const itemSize = 24

// keyLen is the length of the item's key.
func (it *item) keyLen() int { return 5 + int(it.hi>>24&0xFFFF) }

// rest returns the key bytes beyond 16 of a long key.
func (it *item) rest(arena []byte) []byte {
	n := it.keyLen() - 16
	if n <= 0 {
		return nil
	}
	return arena[it.ext : int(it.ext)+n]
}

// appendKey appends the item's whole key to dst.
func (it *item) appendKey(dst, arena []byte) []byte {
	n := it.keyLen()
	dst = binary.BigEndian.AppendUint64(dst, it.hi)
	dst = binary.BigEndian.AppendUint64(dst, it.lo)
	if n <= 16 {
		return dst[:len(dst)-16+n]
	}
	return append(dst, it.rest(arena)...)
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// cmpKeys compares the keys of a (rest ra) and b (rest rb).
func cmpKeys(a *item, ra []byte, b *item, rb []byte) int {
	if a.hi != b.hi {
		return cmpU64(a.hi, b.hi)
	}
	if a.lo != b.lo {
		return cmpU64(a.lo, b.lo)
	}
	return bytes.Compare(ra, rb) // equal 16 bytes: same length
}

// run is a spilled sorted run; its file is closed between spills and
// opened again for the merge, so many runs do not hold descriptors.
type run struct {
	path string
}

// Create starts an index whose temp and run files live in dir.
func Create(dir string, opts WriterOptions) (*Writer, error) {
	if opts.Tables == 0 {
		opts.Tables = 1
	}
	if opts.Tables < 1 || opts.Tables > MaxTables {
		return nil, fmt.Errorf("crlindex: %d tables: want 1..%d", opts.Tables, MaxTables)
	}
	if opts.MemoryLimit == 0 {
		opts.MemoryLimit = defaultMemoryLimit
	}
	if opts.MemoryLimit < minMemoryLimit {
		opts.MemoryLimit = minMemoryLimit
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("crlindex: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("crlindex: %s is not a directory", dir)
	}
	return &Writer{
		dir:    dir,
		limit:  opts.MemoryLimit,
		tables: opts.Tables,
		stats:  make([]setStat, 2*opts.Tables),
		b:      &buffer{sorted: true},
		global: true,
	}, nil
}

// Add buffers one entry. The entry is copied; e may be reused. Errors name
// the entry by its 0-based position, never by its serial.
func (w *Writer) Add(e *Entry) error {
	if w.done {
		return ErrClosed
	}
	idx := w.added
	w.added++
	mag := trimZeros(e.Serial)
	neg := e.Negative && len(mag) > 0
	switch {
	case int(e.Table) >= w.tables:
		return fmt.Errorf("crlindex: entry %d: table %d out of range (%d tables)", idx, e.Table, w.tables)
	case e.Reason < -1 || e.Reason > 10:
		return fmt.Errorf("crlindex: entry %d: reason %d out of range", idx, e.Reason)
	case len(mag) > MaxSerialLen:
		return fmt.Errorf("crlindex: entry %d: serial of %d bytes is longer than %d", idx, len(mag), MaxSerialLen)
	}
	sign := byte(1)
	if neg {
		sign = 0
	}
	var k [16]byte
	binary.BigEndian.PutUint16(k[0:], e.Table)
	k[2] = sign
	binary.BigEndian.PutUint16(k[3:], uint16(len(mag)))
	copy(k[5:], mag)
	var rest []byte
	if len(mag) > 11 {
		rest = mag[11:]
	}
	if err := w.reserve(len(rest)); err != nil {
		return err
	}
	it := item{
		hi:   binary.BigEndian.Uint64(k[0:]),
		lo:   binary.BigEndian.Uint64(k[8:]),
		attr: packAttr(e.Reason, e.RevokedAt),
		ext:  uint32(len(w.b.items)),
	}
	if rest != nil {
		it.ext = uint32(len(w.b.arena))
		w.b.arena = append(w.b.arena, rest...)
	}
	if w.added > 1 && cmpKeys(&it, rest, &w.last, w.lastR) < 0 {
		w.global = false
		if len(w.b.items) > 0 {
			w.b.sorted = false
		}
	}
	w.last = it
	w.lastR = append(w.lastR[:0], rest...)
	w.b.items = append(w.b.items, it)
	st := &w.stats[2*int(e.Table)+int(sign)]
	st.count++
	st.maxLen = max(st.maxLen, len(mag))
	return nil
}

// fits reports whether one more item with rest bytes of arena fits.
func (w *Writer) fits(rest int) bool {
	return len(w.b.items) < cap(w.b.items) && len(w.b.arena)+rest <= cap(w.b.arena)
}

// reserve makes room for one item with rest arena bytes, spilling if the
// memory limit does not allow the buffers to grow.
func (w *Writer) reserve(rest int) error {
	if w.fits(rest) || w.grow(rest) {
		return nil
	}
	if err := w.spill(); err != nil {
		return err
	}
	if w.fits(rest) || w.grow(rest) {
		return nil
	}
	// A tiny limit and an empty buffer: allow one item anyway.
	w.b.resize(max(cap(w.b.items), 1), max(cap(w.b.arena), rest))
	return nil
}

// grow enlarges the item array and/or the arena within the memory limit.
// Capacities double while small and then jump to their share of the limit
// (split by the arena bytes per item seen so far), so that growing never
// holds much more than the limit in old and new arrays together.
func (w *Writer) grow(rest int) bool {
	ic, ac := cap(w.b.items), cap(w.b.arena)
	// Half the limit per buffer, less an eighth for the old array while growing.
	budget := w.limit/2 - w.limit/16
	perItem := itemSize
	if len(w.b.items) > 0 {
		perItem += len(w.b.arena) / len(w.b.items)
	}
	itemsMax := max(budget/perItem, ic)
	if len(w.b.items) == ic {
		ic = max(2*ic, 1024)
		if ic > itemsMax/8 {
			ic = itemsMax
		}
		if ic <= len(w.b.items) {
			return false
		}
	}
	if need := len(w.b.arena) + rest; need > ac {
		arenaMax := budget - itemSize*ic
		ac = max(2*ac, need, 4096)
		if ac > arenaMax/8 {
			ac = arenaMax
		}
		if ac < need {
			return false
		}
	}
	if itemSize*ic+ac > budget {
		return false
	}
	w.b.resize(ic, ac)
	return true
}

func (w *buffer) resize(ic, ac int) {
	if ic != cap(w.items) {
		ni := make([]item, len(w.items), ic)
		copy(ni, w.items)
		w.items = ni
	}
	if ac != cap(w.arena) {
		na := make([]byte, len(w.arena), ac)
		copy(na, w.arena)
		w.arena = na
	}
}

// sortItems orders the buffered items by key, equal keys in arrival order.
func (w *buffer) sortItems() {
	if w.sorted {
		return
	}
	radixSort(w.items, 0, w.arena)
	w.sorted = true
}

// cmpItems is the total order of items: key, then arrival.
func cmpItems(a, b *item, arena []byte) int {
	if a.hi != b.hi {
		return cmpU64(a.hi, b.hi)
	}
	if a.lo != b.lo {
		return cmpU64(a.lo, b.lo)
	}
	if a.keyLen() > 16 {
		if c := bytes.Compare(a.rest(arena), b.rest(arena)); c != 0 {
			return c
		}
	}
	return cmpU64(uint64(a.ext), uint64(b.ext))
}

// keyByte returns byte d (0..15) of the item's key prefix.
func keyByte(it *item, d int) int {
	if d < 8 {
		return int(byte(it.hi >> (56 - 8*d)))
	}
	return int(byte(it.lo >> (56 - 8*(d-8))))
}

// radixSort sorts items whose keys agree on bytes before d: an in-place
// most-significant-digit radix sort (American flag sort) on the 16-byte key
// prefix, skipping bytes all items share, and a comparison sort for small
// buckets and for what the prefix does not decide. The order is total
// (cmpItems), so the result is the same as any sort's.
func radixSort(items []item, d int, arena []byte) {
	if len(items) > 64 && d < 16 {
		// Skip the leading bytes all items share, in one pass.
		var dh, dl uint64
		h0, l0 := items[0].hi, items[0].lo
		for i := range items {
			dh |= items[i].hi ^ h0
			dl |= items[i].lo ^ l0
		}
		switch {
		case dh != 0:
			d = max(d, bits.LeadingZeros64(dh)/8)
		case dl != 0:
			d = max(d, 8+bits.LeadingZeros64(dl)/8)
		default:
			d = 16
		}
	}
	if len(items) > 64 && d < 16 {
		var count [256]int
		for i := range items {
			count[keyByte(&items[i], d)]++
		}
		var start, next [256]int
		sum := 0
		for b := range count {
			start[b], next[b] = sum, sum
			sum += count[b]
		}
		for b := range count {
			end := start[b] + count[b]
			for next[b] < end {
				v := keyByte(&items[next[b]], d)
				if v == b {
					next[b]++
					continue
				}
				items[next[b]], items[next[v]] = items[next[v]], items[next[b]]
				next[v]++
			}
		}
		for b := range count {
			if count[b] > 1 {
				radixSort(items[start[b]:start[b]+count[b]], d+1, arena)
			}
		}
		return
	}
	slices.SortFunc(items, func(a, b item) int { return cmpItems(&a, &b, arena) })
}

// sameKey reports whether sorted items i and i+1 have equal keys.
func sameKey(items []item, arena []byte, i int) bool {
	a, b := &items[i], &items[i+1]
	return a.hi == b.hi && a.lo == b.lo && bytes.Equal(a.rest(arena), b.rest(arena))
}

// spill hands the filled buffer to a background goroutine, which sorts it
// and writes it as a run (dropping all but the last of equal keys), and
// continues with the other buffer. At most one spill is in flight.
func (w *Writer) spill() error {
	if len(w.b.items) == 0 {
		return nil
	}
	if err := w.waitSpill(); err != nil {
		return err
	}
	var f *os.File
	var err error
	if w.global {
		// In-order input: extend the one run.
		if len(w.runs) == 1 {
			f, err = os.OpenFile(w.runs[0].path, os.O_WRONLY|os.O_APPEND, 0)
		} else {
			f, err = os.CreateTemp(w.dir, runPrefix+"*")
			if err == nil {
				w.runs = append(w.runs, &run{path: f.Name()})
			}
		}
		if err != nil {
			return fmt.Errorf("crlindex: spill: %w", err)
		}
	}
	b := w.b
	if w.spare == nil {
		w.spare = &buffer{}
	}
	w.b, w.spare = w.spare, b
	w.b.sorted = true
	w.pending = make(chan error, 1)
	switch {
	case f != nil:
		go func(done chan<- error) { done <- b.writeRun(f) }(w.pending)
	case w.parts == nil:
		// The first buffer out of order chooses the buckets' splitters.
		// w.parts is read again only after waitSpill.
		go func(done chan<- error) {
			b.sortItems()
			p, err := newPartitions(w.dir, b.items, w.limit)
			if err == nil {
				w.parts = p
				err = p.write(b)
			}
			done <- err
		}(w.pending)
	default:
		p := w.parts
		go func(done chan<- error) { done <- p.write(b) }(w.pending)
	}
	return nil
}

// waitSpill waits for the spill in flight, if any, and returns its error.
func (w *Writer) waitSpill() error {
	if w.pending == nil {
		return nil
	}
	err := <-w.pending
	w.pending = nil
	return err
}

// writeRun sorts the buffer, appends it to f as run records, closes f and
// empties the buffer.
func (w *buffer) writeRun(f *os.File) error {
	w.sortItems()
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, ioBufSize)
	} else {
		w.bw.Reset(f)
	}
	bw := w.bw
	for i := range w.items {
		if i+1 < len(w.items) && sameKey(w.items, w.arena, i) {
			continue
		}
		it := &w.items[i]
		b := binary.LittleEndian.AppendUint16(w.keyBuf[:0], uint16(it.keyLen()))
		b = it.appendKey(b, w.arena)
		b = binary.LittleEndian.AppendUint32(b, it.attr)
		w.keyBuf = b
		bw.Write(b)
	}
	err := bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	bw.Reset(nil)
	w.items = w.items[:0]
	w.arena = w.arena[:0]
	w.sorted = true
	if err != nil {
		return fmt.Errorf("crlindex: spill: %w", err)
	}
	return nil
}

// source yields records in key order; equal keys in chronological order.
type source interface {
	next() (bool, error)
	key() []byte
	attr() uint32
}

// memSource yields the sorted buffered items.
type memSource struct {
	items []item
	arena []byte
	i     int
	buf   []byte
}

func (m *memSource) next() (bool, error) {
	m.i++
	if m.i >= len(m.items) {
		return false, nil
	}
	m.buf = m.items[m.i].appendKey(m.buf[:0], m.arena)
	return true, nil
}
func (m *memSource) key() []byte  { return m.buf }
func (m *memSource) attr() uint32 { return m.items[m.i].attr }

// fileSource reads a run file; the current record is a slice of the read
// buffer, valid until the next call of next.
type fileSource struct {
	r   *bufio.Reader
	rec []byte
	k   int
}

func (f *fileSource) next() (bool, error) {
	h, err := f.r.Peek(2)
	if err != nil {
		if err == io.EOF && len(h) == 0 {
			return false, nil
		}
		return false, fmt.Errorf("crlindex: reading run: %w", io.ErrUnexpectedEOF)
	}
	f.k = int(binary.LittleEndian.Uint16(h))
	n := 2 + f.k + 4
	if f.rec, err = f.r.Peek(n); err != nil {
		return false, fmt.Errorf("crlindex: reading run: %w", io.ErrUnexpectedEOF)
	}
	f.r.Discard(n)
	return true, nil
}
func (f *fileSource) key() []byte  { return f.rec[2 : 2+f.k] }
func (f *fileSource) attr() uint32 { return binary.LittleEndian.Uint32(f.rec[2+f.k:]) }

// mergeSource merges sources (given oldest first) with a binary heap;
// equal keys come out oldest first. Each cursor caches its key's first 16
// bytes as integers, which decide almost every comparison.
type mergeSource struct {
	h       []*cursor
	started bool
	all     []source
}

type cursor struct {
	s      source
	age    int
	k0, k1 uint64
	key    []byte
}

func (c *cursor) load() {
	c.key = c.s.key()
	var b [16]byte
	copy(b[:], c.key)
	c.k0 = binary.BigEndian.Uint64(b[:8])
	c.k1 = binary.BigEndian.Uint64(b[8:])
}

func cursorLess(a, b *cursor) bool {
	if a.k0 != b.k0 {
		return a.k0 < b.k0
	}
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return a.age < b.age
}

func (m *mergeSource) down(i int) {
	h := m.h
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		j := l
		if r := l + 1; r < len(h) && cursorLess(h[r], h[l]) {
			j = r
		}
		if !cursorLess(h[j], h[i]) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

func (m *mergeSource) next() (bool, error) {
	if !m.started {
		m.started = true
		for i, s := range m.all {
			ok, err := s.next()
			if err != nil {
				return false, err
			}
			if ok {
				c := &cursor{s: s, age: i}
				c.load()
				m.h = append(m.h, c)
			}
		}
		for i := len(m.h)/2 - 1; i >= 0; i-- {
			m.down(i)
		}
		return len(m.h) > 0, nil
	}
	if len(m.h) == 0 {
		return false, nil
	}
	top := m.h[0]
	ok, err := top.s.next()
	if err != nil {
		return false, err
	}
	if ok {
		top.load()
	} else {
		last := len(m.h) - 1
		m.h[0] = m.h[last]
		m.h = m.h[:last]
	}
	m.down(0)
	return len(m.h) > 0, nil
}
func (m *mergeSource) key() []byte  { return m.h[0].key }
func (m *mergeSource) attr() uint32 { return m.h[0].s.attr() }

// dedupe calls emit for every distinct key of src in order, with the attr
// of the last (newest) record of that key. ctx is checked periodically.
func dedupe(ctx context.Context, src source, emit func(key []byte, attr uint32) error) error {
	var pk []byte
	var pa uint32
	pending := false
	for n := 0; ; n++ {
		if n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ok, err := src.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		k := src.key()
		if pending && bytes.Equal(k, pk) {
			pa = src.attr()
			continue
		}
		if pending {
			if err := emit(pk, pa); err != nil {
				return err
			}
		}
		pk = append(pk[:0], k...)
		pa = src.attr()
		pending = true
	}
	if pending {
		return emit(pk, pa)
	}
	return nil
}

// openSources opens runs for reading; the returned close function closes
// them all.
func (w *Writer) openSources(runs []*run) ([]source, func(), error) {
	// At least one whole record (2 + 5 + MaxSerialLen + 4 bytes) must fit.
	bufSize := min(ioBufSize, max(2048, w.limit/(len(runs)+1)))
	var srcs []source
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, r := range runs {
		f, err := os.Open(r.path)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("crlindex: %w", err)
		}
		files = append(files, f)
		srcs = append(srcs, &fileSource{r: bufio.NewReaderSize(f, bufSize)})
	}
	return srcs, closeAll, nil
}

// reduce merges the oldest runs until at most maxFanIn−1 remain, so that a
// final merge (those runs and one more source) has bounded fan-in. It
// returns the runs that remain, also on error (for the caller to remove).
func (w *Writer) reduce(ctx context.Context, runs []*run) ([]*run, error) {
	for len(runs) > maxFanIn-1 {
		group := runs[:maxFanIn]
		srcs, closeSrcs, err := w.openSources(group)
		if err != nil {
			return runs, err
		}
		f, err := os.CreateTemp(w.dir, runPrefix+"*")
		if err != nil {
			closeSrcs()
			return runs, fmt.Errorf("crlindex: merge: %w", err)
		}
		nr := &run{path: f.Name()}
		bw := bufio.NewWriterSize(f, ioBufSize)
		var hdr [2]byte
		err = dedupe(ctx, &mergeSource{all: srcs}, func(k []byte, a uint32) error {
			binary.LittleEndian.PutUint16(hdr[:], uint16(len(k)))
			bw.Write(hdr[:])
			bw.Write(k)
			var ab [4]byte
			binary.LittleEndian.PutUint32(ab[:], a)
			_, err := bw.Write(ab[:])
			return err
		})
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		closeSrcs()
		if err != nil {
			os.Remove(nr.path)
			return runs, fmt.Errorf("crlindex: merge: %w", err)
		}
		removeRuns(group)
		runs = append([]*run{nr}, runs[maxFanIn:]...)
		w.reductions.Add(1)
	}
	return runs, nil
}

// Temp file name prefixes (RemoveTemps).
const (
	runPrefix = ".kzcrlix-run-"
	tmpPrefix = ".kzcrlix-tmp-"
)

// RemoveTemps removes the run and temp files that Writers which did not
// finish (a crash, a kill) left in dir. Call it at start-up, when no Writer
// uses dir. It returns the number of files removed.
func RemoveTemps(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("crlindex: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if e.Type().IsRegular() && (strings.HasPrefix(name, runPrefix) || strings.HasPrefix(name, tmpPrefix)) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return n, fmt.Errorf("crlindex: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// Commit merges everything added, writes the index to a temp file in the
// directory of finalPath, fsyncs it, renames it to finalPath (replacing an
// existing file atomically: a reader that has the old file open keeps
// reading the old data) and fsyncs the directory. All temp and run files are
// removed, whatever the outcome; the Writer cannot be used afterwards.
// ctx is checked every 65536 entries while merging; cancellation returns
// ctx.Err().
func (w *Writer) Commit(ctx context.Context, finalPath string, metadata []byte) (err error) {
	if w.done {
		return ErrClosed
	}
	defer w.cleanup()
	if len(metadata) > MaxMetadataLen {
		return fmt.Errorf("crlindex: metadata of %d bytes exceeds %d", len(metadata), MaxMetadataLen)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.waitSpill(); err != nil {
		return err
	}
	var src source
	if w.parts != nil {
		// The last buffer joins the buckets, which are then read back in
		// order (partition.go).
		if err := w.parts.write(w.b); err != nil {
			return err
		}
		if err := w.parts.flush(); err != nil {
			return err
		}
		bs := w.startBuckets(ctx, w.parts, [2]*buffer{w.b, w.spare}, w.limit/2-w.limit/16)
		defer bs.close()
		src = bs
	} else {
		w.b.sortItems()
		src = &memSource{items: w.b.items, arena: w.b.arena, i: -1}
	}
	// Runs exist only from input that arrived in order (runs ≤ 1 then) or
	// without partitions; they are older than the buffer and the buckets.
	if w.runs, err = w.reduce(ctx, w.runs); err != nil {
		return err
	}
	if len(w.runs) > 0 {
		srcs, closeSrcs, err := w.openSources(w.runs)
		if err != nil {
			return err
		}
		defer closeSrcs()
		src = &mergeSource{all: append(srcs, src)}
	}

	dir := filepath.Dir(finalPath)
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(finalPath)+"-*")
	if err != nil {
		return fmt.Errorf("crlindex: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	fw := &fileWriter{w: w, f: f}
	if err := fw.write(ctx, src, metadata); err != nil {
		return err
	}
	if !skipSync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("crlindex: fsync: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("crlindex: close: %w", err)
	}
	f = nil
	if err := os.Rename(tmp, finalPath); err != nil {
		return fmt.Errorf("crlindex: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("crlindex: fsync directory: %w", err)
	}
	return nil
}

// skipSync is set by fuzz tests only, where fsync dominates the run time.
var skipSync = false

func syncDir(dir string) error {
	if skipSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort discards everything and removes all temp and run files. It is safe
// to call more than once and after Commit.
func (w *Writer) Abort() {
	w.cleanup()
}

func (w *Writer) cleanup() {
	w.done = true
	w.waitSpill()
	removeRuns(w.runs)
	w.runs = nil
	if w.parts != nil {
		w.parts.remove()
		w.parts = nil
	}
	w.b, w.spare, w.lastR = nil, nil, nil
}

// secBuf buffers one section, computing its CRC, and writes it at
// increasing offsets of out.
type secBuf struct {
	buf []byte
	crc uint32
	n   int64
	out io.Writer
}

func (s *secBuf) reset(out io.Writer) {
	s.buf, s.crc, s.n, s.out = s.buf[:0], 0, 0, out
}

func (s *secBuf) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	s.crc = crc32.Update(s.crc, castagnoli, s.buf)
	s.n += int64(len(s.buf))
	_, err := s.out.Write(s.buf)
	s.buf = s.buf[:0]
	return err
}

type setDesc struct {
	w, p   int
	n      uint64
	fanOff int64
	entOff int64
	crcFan uint32
	crcEnt uint32
}

// fileWriter lays out the final file.
type fileWriter struct {
	w    *Writer
	f    *os.File
	pos  int64
	desc []setDesc

	cur     int // current set, -1 before the first
	fan     []uint32
	scratch []byte
	ents    secBuf
}

func (fw *fileWriter) write(ctx context.Context, src source, metadata []byte) error {
	w := fw.w
	nsets := 2 * w.tables
	fw.desc = make([]setDesc, nsets)
	hl := headerLen(w.tables)
	if _, err := fw.f.WriteAt(metadata, int64(hl)); err != nil {
		return fmt.Errorf("crlindex: write: %w", err)
	}
	fw.pos = int64(hl + len(metadata))
	fw.cur = -1
	fw.ents.buf = make([]byte, 0, ioBufSize)
	err := dedupe(ctx, src, func(k []byte, a uint32) error {
		si := int(binary.BigEndian.Uint16(k))*2 + int(k[2])
		for fw.cur < si {
			if err := fw.finishSet(); err != nil {
				return err
			}
			fw.startSet(fw.cur + 1)
		}
		return fw.add(k[5:], a)
	})
	if err != nil {
		return err
	}
	for fw.cur < nsets {
		if err := fw.finishSet(); err != nil {
			return err
		}
		if fw.cur+1 < nsets {
			fw.startSet(fw.cur + 1)
		} else {
			fw.cur = nsets
		}
	}

	hdr := make([]byte, hl)
	copy(hdr, magic)
	hdr[8] = formatVersion
	binary.LittleEndian.PutUint32(hdr[12:], uint32(w.tables))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(fw.pos))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(len(metadata)))
	binary.LittleEndian.PutUint32(hdr[28:], crc32.Checksum(metadata, castagnoli))
	for s, d := range fw.desc {
		b := hdr[fixedHeaderLen+s*descLen:]
		binary.LittleEndian.PutUint16(b[0:], uint16(d.w))
		b[2] = byte(d.p)
		binary.LittleEndian.PutUint32(b[4:], uint32(d.n))
		binary.LittleEndian.PutUint64(b[8:], uint64(d.fanOff))
		binary.LittleEndian.PutUint64(b[16:], uint64(d.entOff))
		binary.LittleEndian.PutUint32(b[24:], d.crcFan)
		binary.LittleEndian.PutUint32(b[28:], d.crcEnt)
	}
	binary.LittleEndian.PutUint32(hdr[hl-4:], crc32.Checksum(hdr[:hl-4], castagnoli))
	if _, err := fw.f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("crlindex: write: %w", err)
	}
	return nil
}

func (fw *fileWriter) startSet(si int) {
	fw.cur = si
	st := fw.w.stats[si]
	d := &fw.desc[si]
	d.w = st.maxLen
	if st.count == 0 {
		d.w = 0
	}
	d.p = choosePrefix(d.w, st.count)
	d.fanOff = fw.pos
	if d.p == 16 {
		// The fan-out is known at the end of the set; its place is kept.
		if fw.fan == nil {
			fw.fan = make([]uint32, 1<<16+1)
		}
		clear(fw.fan)
		fw.pos += fanLen
	}
	d.entOff = fw.pos
	if cap(fw.scratch) < d.w {
		fw.scratch = make([]byte, d.w)
	}
	fw.scratch = fw.scratch[:d.w]
	fw.ents.reset(io.NewOffsetWriter(fw.f, d.entOff))
}

func (fw *fileWriter) add(mag []byte, a uint32) error {
	d := &fw.desc[fw.cur]
	if len(mag) > d.w {
		return errors.New("crlindex: internal error: key wider than its set")
	}
	k := fw.scratch
	z := d.w - len(mag)
	clear(k[:z])
	copy(k[z:], mag)
	if d.p == 16 {
		fw.fan[int(k[0])<<8|int(k[1])]++
		k = k[2:]
	}
	d.n++
	fw.ents.buf = append(fw.ents.buf, k...)
	fw.ents.buf = binary.LittleEndian.AppendUint32(fw.ents.buf, a)
	if len(fw.ents.buf) >= ioBufSize-len(k)-4 {
		if err := fw.ents.flush(); err != nil {
			return fmt.Errorf("crlindex: write: %w", err)
		}
	}
	return nil
}

func (fw *fileWriter) finishSet() error {
	if fw.cur < 0 {
		return nil
	}
	d := &fw.desc[fw.cur]
	if d.n > 1<<32-1 {
		return errors.New("crlindex: more than 2^32-1 entries in one set")
	}
	if err := fw.ents.flush(); err != nil {
		return fmt.Errorf("crlindex: write: %w", err)
	}
	d.crcEnt = fw.ents.crc
	fw.pos = d.entOff + fw.ents.n
	if d.p == 16 {
		fb := make([]byte, fanLen)
		var sum uint32
		for b := 0; b <= 1<<16; b++ {
			binary.LittleEndian.PutUint32(fb[4*b:], sum)
			if b < 1<<16 {
				sum += fw.fan[b]
			}
		}
		d.crcFan = crc32.Checksum(fb, castagnoli)
		if _, err := fw.f.WriteAt(fb, d.fanOff); err != nil {
			return fmt.Errorf("crlindex: write: %w", err)
		}
	}
	return nil
}
