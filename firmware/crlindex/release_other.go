//go:build !linux

package crlindex

// prefetch and release are Linux page-residency hints; elsewhere the
// pages stay as the OS pleases.
func prefetch(data []byte, a, b int) {}
func release(data []byte, a, b int)  {}
