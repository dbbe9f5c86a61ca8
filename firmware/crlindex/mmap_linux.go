package crlindex

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only and shared, populating the page
// tables up front (MAP_POPULATE: one kernel pass instead of a page fault per
// 4 KiB page when Open verifies the file). The Writer never modifies a
// committed file in place (it renames a new one over it), so the mapping
// stays valid and unchanged until munmap.
func mapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
}

func unmapFile(b []byte) error { return syscall.Munmap(b) }
