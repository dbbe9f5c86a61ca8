//go:build !linux

package crlindex

func resetPeakRSS()   {}
func peakRSS() uint64 { return 0 }
