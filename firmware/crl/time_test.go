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

// TestTimeCache runs one cache through a sequence where the cached day
// must be reused, replaced, and never let an invalid time through.
func TestTimeCache(t *testing.T) {
	var c timeCache
	steps := []struct {
		tag  byte
		in   string
		want string // RFC 3339, "" for rejected
	}{
		{tagUTCTime, "240229120000Z", "2024-02-29T12:00:00Z"},
		{tagUTCTime, "240229235959Z", "2024-02-29T23:59:59Z"}, // same day, cached
		{tagUTCTime, "240229240000Z", ""},                     // same day, bad hour
		{tagUTCTime, "240229126000Z", ""},                     // same day, bad minute
		{tagUTCTime, "240229120000X", ""},                     // same day, no Z
		{tagUTCTime, "240229000000Z", "2024-02-29T00:00:00Z"},
		{tagGenTime, "20240229000001Z", "2024-02-29T00:00:01Z"}, // other tag
		{tagUTCTime, "230229000000Z", ""},                       // 2023 has no Feb 29
		{tagUTCTime, "240229000002Z", "2024-02-29T00:00:02Z"},   // the rejected date did not replace it
		{tagUTCTime, "500101000000Z", "1950-01-01T00:00:00Z"},
		{tagGenTime, "19500101000000Z", "1950-01-01T00:00:00Z"},
		{tagGenTime, "1950010100000Z", ""},
		{tagUTCTime, "5001010000000Z", ""},
	}
	for i, s := range steps {
		got, ok := c.parse(s.tag, []byte(s.in))
		if s.want == "" {
			if ok {
				t.Errorf("step %d: %s accepted as %v", i, s.in, got)
			}
			continue
		}
		want, _ := time.Parse(time.RFC3339, s.want)
		if !ok || !got.Equal(want) {
			t.Errorf("step %d: %s = %v %v, want %v", i, s.in, got, ok, want)
		}
	}
}
