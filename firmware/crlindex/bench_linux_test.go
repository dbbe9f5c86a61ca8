//go:build linux

package crlindex

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// resetPeakRSS resets the kernel's peak-RSS counter (VmHWM) of this process
// (Linux ≥ 4.0: write "5" to /proc/self/clear_refs).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM in bytes, 0 if unknown.
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// BenchmarkLookupCold measures a Lookup whose pages are not in memory: before
// every lookup the mapping's pages are dropped from this process
// (madvise MADV_DONTNEED) and then from the page cache
// (posix_fadvise POSIX_FADV_DONTNEED), so the lookup's fan-out, key and
// attribute pages are read from storage again by page faults, as after a
// reboot. Only the lookup is timed (ns/op is overridden with it); the
// numbers depend on the storage under $TMPDIR (meaningless on tmpfs).
func BenchmarkLookupCold(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			bi := getBenchIndex(b, sz.n)
			x, err := Open(bi.path)
			if err != nil {
				b.Fatal(err)
			}
			defer x.Close()
			f, err := os.Open(bi.path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var buf [8]byte
			var timed time.Duration
			majflt0 := majorFaults()
			for i := 0; i < b.N; i++ {
				if err := syscall.Madvise(x.data, syscall.MADV_DONTNEED); err != nil {
					b.Fatal(err)
				}
				if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
					b.Fatal(err)
				}
				s := benchSerial(&buf, int(splitmix(uint64(i))%uint64(sz.n)), false)
				t0 := time.Now()
				_, ok := x.Lookup(0, s, false)
				timed += time.Since(t0)
				if !ok {
					b.Fatal("not found")
				}
			}
			b.ReportMetric(float64(timed.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(majorFaults()-majflt0)/float64(b.N), "majfaults/op")
		})
	}
}

func majorFaults() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int64(ru.Majflt)
}
