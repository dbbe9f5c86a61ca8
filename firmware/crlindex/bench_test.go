package crlindex

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks build indexes of 1M and 10M entries with random 8-byte
// serials added in random order through the Writer (default MemoryLimit),
// once per process, in a temp directory under $TMPDIR (use a real disk for
// the cold numbers: tmpfs pages cannot be evicted).

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var (
	benchDir  string
	benchMu   sync.Mutex
	benchIdx  = map[int]*benchIndex{}
	benchSeed = uint64(0x6b617a617368690a)
)

type benchIndex struct {
	path  string
	n     int
	build buildStats
}

type buildStats struct {
	elapsed  time.Duration
	added    time.Duration // time in Add (the rest is Commit: merge, write, fsync)
	size     int64
	peakHeap uint64
	peakRSS  uint64 // 0 where unknown
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// benchSerial is serial i of the generated set (8 random bytes); a miss is
// drawn from another stream.
func benchSerial(buf *[8]byte, i int, miss bool) []byte {
	s := benchSeed
	if miss {
		s = ^s
	}
	binary.BigEndian.PutUint64(buf[:], splitmix(s+uint64(i)))
	return buf[:]
}

// heapSampler records the peak of live heap objects while running.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	// Live heap after each GC (garbage awaiting collection is not counted:
	// how much of it the runtime lets accumulate is GOGC/GOMEMLIMIT's call).
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	go func() {
		defer close(h.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) finish() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

// buildBench writes n generated entries to path and measures it.
func buildBench(tb testing.TB, dir, path string, n int) buildStats {
	runtime.GC()
	resetPeakRSS()
	h := startHeapSampler()
	start := time.Now()
	w, err := Create(dir, WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var buf [8]byte
	e := Entry{Reason: 1}
	for i := 0; i < n; i++ {
		e.Serial = benchSerial(&buf, i, false)
		e.Reason = i%12 - 1
		e.RevokedAt = baseTime.Add(time.Duration(i) * time.Second)
		if err := w.Add(&e); err != nil {
			tb.Fatal(err)
		}
	}
	added := time.Since(start)
	if err := w.Commit(context.Background(), path, []byte(`{"bench":true}`)); err != nil {
		tb.Fatal(err)
	}
	st := buildStats{elapsed: time.Since(start), added: added, peakHeap: h.finish(), peakRSS: peakRSS()}
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	st.size = fi.Size()
	return st
}

func getBenchIndex(b *testing.B, n int) *benchIndex {
	benchMu.Lock()
	defer benchMu.Unlock()
	if bi := benchIdx[n]; bi != nil {
		return bi
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "crlindex-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
	}
	path := filepath.Join(benchDir, fmt.Sprintf("idx-%d", n))
	bi := &benchIndex{path: path, n: n, build: buildBench(b, benchDir, path, n)}
	benchIdx[n] = bi
	return bi
}

var benchSizes = []struct {
	name string
	n    int
}{{"1M", 1_000_000}, {"10M", 10_000_000}}

func BenchmarkBuild(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			dir := b.TempDir()
			b.ReportAllocs()
			var st buildStats
			for i := 0; i < b.N; i++ {
				st = buildBench(b, dir, filepath.Join(dir, "idx"), sz.n)
			}
			b.ReportMetric(float64(sz.n)/st.elapsed.Seconds(), "entries/s")
			b.ReportMetric(st.added.Seconds(), "add-s")
			b.ReportMetric((st.elapsed - st.added).Seconds(), "commit-s")
			b.ReportMetric(float64(st.size)/float64(sz.n), "bytes/entry")
			b.ReportMetric(float64(st.peakHeap)/(1<<20), "peak-live-heap-MiB")
			if st.peakRSS > 0 {
				b.ReportMetric(float64(st.peakRSS)/(1<<20), "peak-RSS-MiB")
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			bi := getBenchIndex(b, sz.n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				x, err := Open(bi.path)
				if err != nil {
					b.Fatal(err)
				}
				x.Close()
			}
		})
	}
}

func BenchmarkLookupWarm(b *testing.B) {
	for _, sz := range benchSizes {
		for _, miss := range []bool{false, true} {
			name := sz.name + "/hit"
			if miss {
				name = sz.name + "/miss"
			}
			b.Run(name, func(b *testing.B) {
				bi := getBenchIndex(b, sz.n)
				x, err := Open(bi.path)
				if err != nil {
					b.Fatal(err)
				}
				defer x.Close()
				var buf [8]byte
				b.ReportAllocs()
				b.ResetTimer()
				found := 0
				for i := 0; i < b.N; i++ {
					// A pseudo-random walk over the entries: no cache-friendly order.
					if _, ok := x.Lookup(0, benchSerial(&buf, int(splitmix(uint64(i))%uint64(sz.n)), miss), false); ok {
						found++
					}
				}
				b.StopTimer()
				if want := b.N; !miss && found != want || miss && found != 0 {
					b.Fatalf("found %d of %d (miss=%v)", found, b.N, miss)
				}
			})
		}
	}
}

func BenchmarkLookupWarmParallel(b *testing.B) {
	bi := getBenchIndex(b, 10_000_000)
	x, err := Open(bi.path)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var seed atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		var buf [8]byte
		s := seed.Add(1) << 40
		for i := 0; pb.Next(); i++ {
			x.Lookup(0, benchSerial(&buf, int(splitmix(s+uint64(i))%uint64(bi.n)), false), false)
		}
	})
}
