package crlindex

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestBucketTable checks the cell table against a plain binary search over
// the splitters, for samples whose common prefix ends before, at and after
// the 64-bit boundary and at the 112-bit clamp, with keys inside and
// outside the sample's range and right at the splitters.
func TestBucketTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shift := range []uint{0, 3, 40, 63, 64, 65, 100, 112, 120, 128} {
		base := item{hi: rng.Uint64(), lo: rng.Uint64()}
		mh, ml := prefixMask(shift)
		sample := make([]item, 5000)
		for i := range sample {
			r := item{hi: rng.Uint64(), lo: rng.Uint64()}
			if i%7 == 0 { // clustered keys: cells with several buckets
				r.hi, r.lo = r.hi&^0xff, r.lo&^0xff
			}
			sample[i] = item{hi: base.hi&mh | r.hi&^mh, lo: base.lo&ml | r.lo&^ml}
		}
		slices.SortFunc(sample, func(a, b item) int {
			if a.hi != b.hi {
				return cmpU64(a.hi, b.hi)
			}
			return cmpU64(a.lo, b.lo)
		})
		p, err := newPartitions(t.TempDir(), sample, 32<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.split) < 2 && shift < 120 {
			t.Fatalf("shift %d: %d splitters", shift, len(p.split))
		}
		probe := func(it item) {
			if got, want := p.bucket(&it), p.search(&it, 0, len(p.split)); got != want {
				t.Fatalf("shift %d (table %d): key %016x%016x in bucket %d, want %d", shift, p.shift, it.hi, it.lo, got, want)
			}
		}
		for _, s := range p.split {
			probe(s)
			probe(item{hi: s.hi, lo: s.lo - 1})
			probe(item{hi: s.hi, lo: s.lo + 1})
		}
		for range 20000 {
			it := sample[rng.IntN(len(sample))]
			switch rng.IntN(4) {
			case 0: // anywhere
				it = item{hi: rng.Uint64(), lo: rng.Uint64()}
			case 1: // same prefix, random rest
				it = item{hi: base.hi&mh | rng.Uint64()&^mh, lo: base.lo&ml | rng.Uint64()&^ml}
			case 2: // near a sample key
				it.lo ^= uint64(rng.IntN(1 << 12))
			}
			probe(it)
		}
		probe(item{})
		probe(item{hi: ^uint64(0), lo: ^uint64(0)})
		p.remove()
	}
}

// countdownCtx is a context whose Err turns to Canceled after n calls, so
// a test can cancel Commit deterministically at the n-th check.
type countdownCtx struct {
	context.Context
	n atomic.Int64
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestCommitCancelledWhileReadingBuckets cancels Commit at each of its
// context checks in turn (in the bucket loader goroutine and in the writing
// loop, with a bucket that needs the run-and-merge fallback): Commit must
// return Canceled, leave no temp, run or bucket file, and stop the loader.
func TestCommitCancelledWhileReadingBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	entries := genEntries(rng, 150000, 1, 8, true)
	for i := range 100000 { // one key range the sample did not see: oversized
		entries = append(entries, Entry{Serial: []byte{0xff, 0xfe, byte(i >> 16), byte(i >> 8), byte(i), 1, 2, 3}, Reason: 1, RevokedAt: baseTime})
	}
	before := runtime.NumGoroutine()
	for calls := int64(0); ; calls++ {
		dir := t.TempDir()
		w, err := Create(dir, WriterOptions{MemoryLimit: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for i := range entries {
			if err := w.Add(&entries[i]); err != nil {
				t.Fatal(err)
			}
		}
		w.waitSpill() // w.parts is set by the spill goroutine
		buckets := len(w.parts.counts)
		ctx := &countdownCtx{Context: context.Background()}
		ctx.n.Store(calls)
		err = w.Commit(ctx, filepath.Join(dir, "x"), nil)
		if err == nil {
			if calls < 4 {
				t.Fatalf("Commit finished after only %d context checks", calls)
			}
			if w.oversized.Load() == 0 {
				t.Fatal("no oversized bucket: the case does not exercise the fallback")
			}
			if w.oversized.Load() == int32(buckets) {
				t.Fatal("every bucket oversized: the case does not exercise the in-memory path")
			}
			assertOnly(t, dir, "x")
			t.Logf("Commit checks the context %d times", calls)
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at check %d: Commit = %v", calls, err)
		}
		assertOnly(t, dir)
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left running (%d before)", n, before)
	}
}
