package jpki

import (
	"errors"
	"testing"
	"time"
)

func TestJapaneseEra(t *testing.T) {
	cases := []struct {
		in   string
		era  Era
		year int
	}{
		{"19800217", EraShowa, 55}, // the test card (doc §4.1)
		{"19890107", EraShowa, 64},
		{"19890108", EraHeisei, 1},
		{"20190430", EraHeisei, 31},
		{"20190501", EraReiwa, 1},
		{"20260101", EraReiwa, 8},
		{"19261224", EraTaisho, 15},
		{"19261225", EraShowa, 1},
		{"19120729", EraMeiji, 45},
		{"19120730", EraTaisho, 1},
		{"18680125", EraMeiji, 1}, // see eraStarts: 慶応4年1月1日, renamed 明治元年
		{"18681023", EraMeiji, 1},
		{"20000229", EraHeisei, 12},
	}
	for _, c := range cases {
		era, y, err := JapaneseEra(c.in)
		if err != nil || era != c.era || y != c.year {
			t.Errorf("%s: %v %d %v", c.in, era, y, err)
		}
	}
	for _, bad := range []string{"18680124", "18000101", "1980021", "198002170", "19800230", "19000229", "19801301", "19800017", "1980-2-17", "", "00000000"} {
		if _, _, err := JapaneseEra(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if EraShowa.String() != "Showa" || Era(9).String() != "unknown" {
		t.Error("Era.String")
	}
}

func TestCollationB(t *testing.T) {
	good := []string{testB, "01010120300000", "64010720250000", "00123119990000"}
	for _, b := range good {
		if err := CheckCollationBFormat([]byte(b)); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	for _, b := range []string{"", "5502172035228", "550217203522850", "5502172035228X", "55001720352285", "55130120352285", "55020020352285", "55023220352285", "５5021720352285"} {
		if err := CheckCollationBFormat([]byte(b)); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
	cases := []struct {
		b, birth, expiry string
		ok               bool
	}{
		{testB, "19800217", "20350217", true},
		{testB, "19800217", "20351231", true},
		{"64010720300000", "19890107", "20300107", true},
		{"01010820300000", "19890108", "20300108", true},
		{"31043020300000", "20190430", "20300430", true},
		{"01050120300000", "20190501", "20300501", true},
		{testB, "19800218", "20350217", false},
		{testB, "19810217", "20350217", false}, // 昭和56
		{testB, "19800217", "20360217", false},
		{"80021720352285", "19800217", "20350217", false}, // Gregorian YY is not the era year
		{"64010820300000", "19890108", "20300108", false}, // 平成1, not 昭和64
		{testB, "1980021", "20350217", false},
		{testB, "19800217", "2035", false},
	}
	for _, c := range cases {
		err := MatchCollationB([]byte(c.b), c.birth, c.expiry)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrCollationMismatch)) {
			t.Errorf("%s %s %s: %v", c.b, c.birth, c.expiry, err)
		}
	}
	if err := MatchCollationB([]byte("5502172035228"), "19800217", "20350217"); err == nil || errors.Is(err, ErrCollationMismatch) {
		t.Errorf("bad format: %v", err)
	}
}

func TestParseEraBirthDate(t *testing.T) {
	d := func(y, m, dd int) time.Time { return time.Date(y, time.Month(m), dd, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		in   string
		era  Era
		date time.Time
	}{
		{"319800217", EraShowa, d(1980, 2, 17)},   // Gregorian YYYY
		{"300550217", EraShowa, d(1980, 2, 17)},   // era year 55
		{"319890107", EraShowa, d(1989, 1, 7)},    // last day of 昭和
		{"300640107", EraShowa, d(1989, 1, 7)},    // 昭和64
		{"419890108", EraHeisei, d(1989, 1, 8)},   // 平成1 first day
		{"400010108", EraHeisei, d(1989, 1, 8)},   // era year 1
		{"420190430", EraHeisei, d(2019, 4, 30)},  // 平成31
		{"520190501", EraReiwa, d(2019, 5, 1)},    // 令和1
		{"500010501", EraReiwa, d(2019, 5, 1)},    // era year 1
		{"219120730", EraTaisho, d(1912, 7, 30)},  // 大正1
		{"118680125", EraMeiji, d(1868, 1, 25)},   // 明治1
		{"019800217", EraUnknown, d(1980, 2, 17)}, // E = 0
		{"000000000", EraUnknown, time.Time{}},    // unknown altogether
		{"420000229", EraHeisei, d(2000, 2, 29)},  // leap day
		{"400120229", EraHeisei, d(2000, 2, 29)},  // 平成12 leap day
	}
	for _, c := range cases {
		era, got, err := ParseEraBirthDate(c.in)
		if err != nil || era != c.era || !got.Equal(c.date) {
			t.Errorf("%s: %v %v %v", c.in, era, got, err)
		}
	}
	for _, bad := range []string{
		"419890107", // Gregorian date in 昭和, labelled 平成
		"400010107", // 平成1-01-07 does not exist
		"300650101", // 昭和65
		"320190501", // 令和 date labelled 昭和
		"600010101", // no era 6
		"400000101", // era year 0
		"31980021",  // 8 digits
		"3198002170",
		"319800230",
		"3l9800217",
		"400:00101", // non-digit in the year
		"400000000", // unknown date under a known era
		"",
		"019800230",
		"000000001",
	} {
		if _, _, err := ParseEraBirthDate(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
