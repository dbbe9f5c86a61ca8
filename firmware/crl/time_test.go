package crl

import (
	"testing"
	"time"
)

// TestParseTimeExhaustive compares the hand-written decoder with time.Date
// for every day from 0000 to 9999 (GeneralizedTime) and 1950..2049 (UTCTime).
func TestParseTimeExhaustive(t *testing.T) {
	d := time.Date(0, 1, 1, 23, 59, 58, 0, time.UTC)
	end := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	for ; !d.After(end); d = d.AddDate(0, 0, 1) {
		g := []byte(d.Format("20060102150405Z"))
		got, ok := parseTime(tagGenTime, g)
		if !ok || !got.Equal(d) || got.Location() != time.UTC {
			t.Fatalf("%s: %v %v", g, got, ok)
		}
		if y := d.Year(); y >= 1950 && y < 2050 {
			u := []byte(d.Format("060102150405Z"))
			got, ok := parseTime(tagUTCTime, u)
			if !ok || !got.Equal(d) {
				t.Fatalf("%s: %v %v", u, got, ok)
			}
		}
	}
	for _, bad := range []string{"20230229000000Z", "21000229000000Z", "20240431000000Z", "20240100000000Z", "20240001000000Z", "2024010100000 Z", "-0240101000000Z"} {
		if _, ok := parseTime(tagGenTime, []byte(bad)); ok {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, ok := parseTime(tagGenTime, []byte("20000229000000Z")); !ok {
		t.Error("2000-02-29 rejected")
	}
}
