//go:build unix && !linux

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
