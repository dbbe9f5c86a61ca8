package crl

import "time"

// parseTime decodes a DER Time (RFC 5280 §4.1.2.5, §5.1.2.4): UTCTime
// YYMMDDHHMMSSZ (YY < 50 is 20YY, else 19YY) or GeneralizedTime
// YYYYMMDDHHMMSSZ without fractional seconds. It does not allocate.
func parseTime(tag byte, b []byte) (time.Time, bool) {
	var c timeCache
	return c.parse(tag, b)
}

// timeCache remembers the last date decoded: the entries of a large CRL
// mostly share their revocation day with the entry before (they are listed
// in revocation order), and the calendar arithmetic is a good part of the
// cost of an entry.
type timeCache struct {
	valid bool
	tag   byte
	date  [8]byte // YYMMDD or YYYYMMDD as it was encoded
	days  int64   // days since 1970-01-01 of date
}

// parse is parseTime, reusing the day of the previous call when the date
// part is the same bytes.
func (c *timeCache) parse(tag byte, b []byte) (time.Time, bool) {
	var dl int // length of the date part
	switch {
	case tag == tagUTCTime && len(b) == 13:
		dl = 6
	case tag == tagGenTime && len(b) == 15:
		dl = 8
	default:
		return time.Time{}, false
	}
	if b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	if !c.valid || c.tag != tag || string(b[:dl]) != string(c.date[:dl]) {
		days, ok := parseDate(b[:dl])
		if !ok {
			return time.Time{}, false
		}
		c.valid, c.tag, c.days = true, tag, days
		copy(c.date[:], b[:dl])
	}
	// HHMMSS
	h, ok1 := digits2(b[dl:])
	mi, ok2 := digits2(b[dl+2:])
	sec, ok3 := digits2(b[dl+4:])
	if !ok1 || !ok2 || !ok3 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Unix(c.days*86400+int64(h*3600+mi*60+sec), 0).UTC(), true
}

// parseDate decodes YYMMDD (UTCTime) or YYYYMMDD (GeneralizedTime) into
// days since 1970-01-01.
func parseDate(b []byte) (int64, bool) {
	var year int
	if len(b) == 6 {
		yy, ok := digits2(b)
		if !ok {
			return 0, false
		}
		if yy < 50 {
			year = 2000 + yy
		} else {
			year = 1900 + yy
		}
	} else {
		hi, ok1 := digits2(b)
		lo, ok2 := digits2(b[2:])
		if !ok1 || !ok2 {
			return 0, false
		}
		year = hi*100 + lo
	}
	b = b[len(b)-4:]
	mo, ok1 := digits2(b)
	d, ok2 := digits2(b[2:])
	if !ok1 || !ok2 || mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, year) {
		return 0, false
	}
	return daysFromCivil(year, mo, d), true
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (H. Hinnant's algorithm); cheaper than time.Date.
func daysFromCivil(y, m, d int) int64 {
	y += 400 // keep y non-negative for year 0 (one 400-year era is 146097 days)
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468 - 146097
}

func digits2(b []byte) (int, bool) {
	c0, c1 := b[0]-'0', b[1]-'0'
	if c0 > 9 || c1 > 9 {
		return 0, false
	}
	return int(c0)*10 + int(c1), true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
