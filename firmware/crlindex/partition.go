package crlindex

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
)

// Partitioned spilling. Sorting each full buffer into a run and k-way
// merging all runs at Commit costs a heap step per entry on one core, after
// the input has ended. Instead, once input arrives out of order, the first
// full buffer is sorted to choose splitters (key prefixes at equal
// quantiles), and every spilled buffer is then only distributed, unsorted
// and in arrival order, to one file per key range (a bucket). At Commit the
// buckets are read back in key order; each is sorted in memory by a
// background goroutine while the previous one is being written out, so the
// sort of bucket i+1 and the writing of bucket i share the two cores of a
// kiosk board, and nothing is merged. A bucket larger than the memory budget
// (input far from the distribution of the first buffer: a skewed sample, or
// more entries than buckets × budget) falls back to sorted runs and a merge
// for that bucket only, so the result is the same for any input.
//
// A bucket file holds records [hi uint64 LE][lo uint64 LE][attr uint32 LE]
// [key bytes 16.. of a long key]. Equal keys fall into the same bucket (the
// bucket is a function of the key's first 16 bytes) and keep their arrival
// order in its file, so after a stable-by-arrival sort the last one still
// wins.

const (
	maxBuckets   = 64
	bucketBufLen = 64 << 10
	recHead      = 20 // hi, lo, attr
)

// partitions are the buckets of a Writer.
type partitions struct {
	split  []item // splitters' (hi, lo), ascending, distinct
	files  []*os.File
	bufs   [][]byte
	counts []int // items per bucket
	arena  []int // long-key bytes per bucket

	// A lookup table spares most items the binary search over the
	// splitters: the sample's keys share their first shift bits (ref);
	// the next 16 bits of a key with that prefix name a cell, and cell c
	// holds keys of buckets cell[c][0]..cell[c][1] only.
	shift uint
	ref   item
	cell  [][2]uint8
}

// newPartitions chooses splitters from sorted (in key order) and creates
// the bucket files in dir.
func newPartitions(dir string, sorted []item, limit int) (*partitions, error) {
	nb := min(maxBuckets, max(2, limit/(512<<10)))
	p := &partitions{}
	for i := 1; i < nb && len(sorted) > 0; i++ {
		s := sorted[i*len(sorted)/nb]
		s = item{hi: s.hi, lo: s.lo}
		if n := len(p.split); n == 0 || p.split[n-1].hi < s.hi ||
			(p.split[n-1].hi == s.hi && p.split[n-1].lo < s.lo) {
			p.split = append(p.split, s)
		}
	}
	if len(sorted) > 0 {
		first, last := &sorted[0], &sorted[len(sorted)-1]
		p.shift = uint(bits.LeadingZeros64(first.hi ^ last.hi))
		if p.shift == 64 {
			p.shift += uint(bits.LeadingZeros64(first.lo ^ last.lo))
		}
		p.shift = min(p.shift, 112)
		p.ref = item{hi: first.hi, lo: first.lo}
		p.cell = make([][2]uint8, 1<<16)
		for c := range p.cell {
			lo, hi := p.cellRange(uint64(c))
			p.cell[c] = [2]uint8{uint8(p.search(&lo, 0, len(p.split))), uint8(p.search(&hi, 0, len(p.split)))}
		}
	}
	n := len(p.split) + 1
	p.files = make([]*os.File, 0, n)
	p.bufs = make([][]byte, n)
	p.counts = make([]int, n)
	p.arena = make([]int, n)
	for range n {
		f, err := os.CreateTemp(dir, runPrefix+"b*")
		if err != nil {
			p.remove()
			return nil, fmt.Errorf("crlindex: spill: %w", err)
		}
		p.files = append(p.files, f)
	}
	return p, nil
}

// prefixMask returns the 128-bit mask of the first n bits.
func prefixMask(n uint) (hi, lo uint64) {
	if n >= 64 {
		return ^uint64(0), ^(^uint64(0) >> (n - 64))
	}
	return ^(^uint64(0) >> n), 0
}

// cellRange returns the lowest and the highest key prefix of cell c.
func (p *partitions) cellRange(c uint64) (lo, hi item) {
	mh, ml := prefixMask(p.shift)
	lo.hi, lo.lo = p.ref.hi&mh, p.ref.lo&ml
	s := 112 - p.shift // c's position from the right
	if s >= 64 {
		lo.hi |= c << (s - 64)
	} else {
		lo.hi |= c >> (64 - s)
		lo.lo |= c << s
	}
	mh, ml = prefixMask(p.shift + 16)
	hi.hi, hi.lo = lo.hi|^mh, lo.lo|^ml
	return lo, hi
}

// search returns the number of splitters ≤ it's key prefix, counting
// only splitters j..k−1 and adding j.
func (p *partitions) search(it *item, j, k int) int {
	for j < k {
		m := int(uint(j+k) >> 1)
		s := &p.split[m]
		if s.hi < it.hi || (s.hi == it.hi && s.lo <= it.lo) {
			j = m + 1
		} else {
			k = m
		}
	}
	return j
}

// bucket returns the bucket of an item: the number of splitters ≤ its key
// prefix.
func (p *partitions) bucket(it *item) int {
	if p.cell == nil {
		return p.search(it, 0, len(p.split))
	}
	mh, ml := prefixMask(p.shift)
	if h, l := it.hi&mh, it.lo&ml; h != p.ref.hi&mh || l != p.ref.lo&ml {
		// Outside the sample's common prefix: below or above every
		// splitter.
		if h < p.ref.hi&mh || (h == p.ref.hi&mh && l < p.ref.lo&ml) {
			return 0
		}
		return len(p.split)
	}
	var top uint64
	if p.shift < 64 {
		top = it.hi<<p.shift | it.lo>>(64-p.shift)
	} else {
		top = it.lo << (p.shift - 64)
	}
	r := &p.cell[top>>48]
	if r[0] == r[1] {
		return int(r[0])
	}
	return p.search(it, int(r[0]), int(r[1]))
}

// write distributes the buffer's items, in their current order, to the
// buckets and empties the buffer.
func (p *partitions) write(b *buffer) error {
	for i := range b.items {
		it := &b.items[i]
		k := p.bucket(it)
		r := it.rest(b.arena)
		buf := p.bufs[k]
		if buf == nil {
			buf = make([]byte, 0, bucketBufLen)
		}
		buf = binary.LittleEndian.AppendUint64(buf, it.hi)
		buf = binary.LittleEndian.AppendUint64(buf, it.lo)
		buf = binary.LittleEndian.AppendUint32(buf, it.attr)
		buf = append(buf, r...)
		p.counts[k]++
		p.arena[k] += len(r)
		if len(buf) > bucketBufLen-recHead-MaxSerialLen {
			if _, err := p.files[k].Write(buf); err != nil {
				return fmt.Errorf("crlindex: spill: %w", err)
			}
			buf = buf[:0]
		}
		p.bufs[k] = buf
	}
	b.items, b.arena, b.sorted = b.items[:0], b.arena[:0], true
	return nil
}

// flush writes what the buckets still buffer.
func (p *partitions) flush() error {
	for k, buf := range p.bufs {
		if len(buf) > 0 {
			if _, err := p.files[k].Write(buf); err != nil {
				return fmt.Errorf("crlindex: spill: %w", err)
			}
		}
		p.bufs[k] = nil
	}
	return nil
}

// remove closes and deletes the bucket files.
func (p *partitions) remove() {
	for _, f := range p.files {
		f.Close()
		os.Remove(f.Name())
	}
	p.files = nil
}

// readBucket appends records from r to b as items (ext in arrival order)
// until b holds max items; it returns io.EOF at the end of the bucket.
func readBucket(r *bufio.Reader, b *buffer, max int) error {
	for len(b.items) < max {
		h, err := r.Peek(recHead)
		if err != nil {
			if err == io.EOF && len(h) == 0 {
				return io.EOF
			}
			return fmt.Errorf("crlindex: reading bucket: %w", io.ErrUnexpectedEOF)
		}
		it := item{
			hi:   binary.LittleEndian.Uint64(h[0:]),
			lo:   binary.LittleEndian.Uint64(h[8:]),
			attr: binary.LittleEndian.Uint32(h[16:]),
			ext:  uint32(len(b.items)),
		}
		r.Discard(recHead)
		if n := it.keyLen() - 16; n > 0 {
			it.ext = uint32(len(b.arena))
			start := len(b.arena)
			b.arena = append(b.arena, make([]byte, n)...)
			if _, err := io.ReadFull(r, b.arena[start:]); err != nil {
				return fmt.Errorf("crlindex: reading bucket: %w", io.ErrUnexpectedEOF)
			}
		}
		b.items = append(b.items, it)
	}
	return nil
}

// loaded is one bucket ready to be written out: a sorted buffer, or for an
// oversized bucket a merge of its runs.
type loaded struct {
	src   source
	close func()
	err   error
}

// bucketSource yields the records of all buckets in key order. A goroutine
// loads and sorts bucket i+1 while the caller consumes bucket i.
type bucketSource struct {
	ch   chan loaded
	stop chan struct{}
	done chan struct{}
	cur  loaded
	end  bool
	err  error
}

// startBuckets starts loading p's buckets with two buffers of budget bytes
// each; w provides run files for oversized buckets. The partitions must be
// flushed. close must be called.
func (w *Writer) startBuckets(ctx context.Context, p *partitions, bufs [2]*buffer, budget int) *bucketSource {
	bs := &bucketSource{ch: make(chan loaded), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(bs.done)
		defer close(bs.ch)
		for k, f := range p.files {
			b := bufs[k%2]
			l := w.loadBucket(ctx, f, p.counts[k], p.arena[k], b, budget)
			select {
			case bs.ch <- l:
			case <-bs.stop:
				if l.close != nil {
					l.close()
				}
				return
			}
			if l.err != nil {
				return
			}
		}
	}()
	return bs
}

// loadBucket reads bucket f (n items, arena bytes of long keys) into b and
// sorts it, or, if it does not fit in budget, sorts it in chunks into runs
// and returns their merge.
func (w *Writer) loadBucket(ctx context.Context, f *os.File, n, arena int, b *buffer, budget int) loaded {
	if err := ctx.Err(); err != nil {
		return loaded{err: err}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return loaded{err: fmt.Errorf("crlindex: reading bucket: %w", err)}
	}
	r := bufio.NewReaderSize(f, ioBufSize)
	b.items, b.arena = b.items[:0], b.arena[:0]
	if n*itemSize+arena <= budget {
		if cap(b.items) < n {
			b.items = make([]item, 0, n)
		}
		if cap(b.arena) < arena {
			b.arena = make([]byte, 0, arena)
		}
		if err := readBucket(r, b, n); err != nil && err != io.EOF {
			return loaded{err: err}
		}
		if len(b.items) != n || len(b.arena) != arena {
			return loaded{err: fmt.Errorf("crlindex: reading bucket: %w", io.ErrUnexpectedEOF)}
		}
		radixSort(b.items, 0, b.arena)
		return loaded{src: &memSource{items: b.items, arena: b.arena, i: -1}}
	}
	// Oversized: sorted runs of what fits, merged.
	w.oversized.Add(1)
	per := max(1, budget/(itemSize+max(0, arena/max(n, 1))))
	var runs []*run
	for {
		b.items, b.arena = b.items[:0], b.arena[:0]
		err := readBucket(r, b, per)
		if err != nil && err != io.EOF {
			removeRuns(runs)
			return loaded{err: err}
		}
		if len(b.items) > 0 {
			rf, cerr := os.CreateTemp(w.dir, runPrefix+"*")
			if cerr != nil {
				removeRuns(runs)
				return loaded{err: fmt.Errorf("crlindex: spill: %w", cerr)}
			}
			runs = append(runs, &run{path: rf.Name()})
			b.sorted = false
			if werr := b.writeRun(rf); werr != nil {
				removeRuns(runs)
				return loaded{err: werr}
			}
		}
		if err == io.EOF {
			break
		}
	}
	runs, err := w.reduce(ctx, runs)
	if err != nil {
		removeRuns(runs)
		return loaded{err: err}
	}
	srcs, closeSrcs, err := w.openSources(runs)
	if err != nil {
		removeRuns(runs)
		return loaded{err: err}
	}
	return loaded{src: &mergeSource{all: srcs}, close: func() { closeSrcs(); removeRuns(runs) }}
}

func removeRuns(runs []*run) {
	for _, r := range runs {
		os.Remove(r.path)
	}
}

func (bs *bucketSource) next() (bool, error) {
	for {
		if bs.end {
			return false, bs.err
		}
		if bs.cur.src != nil {
			ok, err := bs.cur.src.next()
			if err != nil || ok {
				return ok, err
			}
			if bs.cur.close != nil {
				bs.cur.close()
			}
			bs.cur = loaded{}
		}
		l, ok := <-bs.ch
		if !ok {
			bs.end = true
			return false, nil
		}
		if l.err != nil {
			bs.end, bs.err = true, l.err
			return false, l.err
		}
		bs.cur = l
	}
}

func (bs *bucketSource) key() []byte  { return bs.cur.src.key() }
func (bs *bucketSource) attr() uint32 { return bs.cur.src.attr() }

// close stops the loader and releases what it holds.
func (bs *bucketSource) close() {
	close(bs.stop)
	<-bs.done
	if bs.cur.close != nil {
		bs.cur.close()
	}
	bs.cur = loaded{}
}
