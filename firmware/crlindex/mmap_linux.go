package crlindex

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only and shared. The Writer never
// modifies a committed file in place (it renames a new one over it), so the
// mapping stays valid and unchanged until munmap.
func mapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
}

func unmapFile(b []byte) error { return syscall.Munmap(b) }

var pageSize = os.Getpagesize()

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14): fault a range in
// with one call instead of one fault per page.
const madvPopulateRead = 0x16

// prefetch populates data[a:b]'s page tables ahead of a sequential check;
// older kernels refuse the advice, which only costs page faults.
func prefetch(data []byte, a, b int) {
	a &^= pageSize - 1
	if b > a {
		_ = syscall.Madvise(data[a:b], madvPopulateRead)
	}
}

// release drops the pages wholly inside data[a:b] from this process
// (MADV_DONTNEED on a read-only shared file mapping: the next access
// faults them in again from the page cache, unchanged).
func release(data []byte, a, b int) {
	a = (a + pageSize - 1) &^ (pageSize - 1)
	b &^= pageSize - 1
	if b > a {
		_ = syscall.Madvise(data[a:b], syscall.MADV_DONTNEED)
	}
}
