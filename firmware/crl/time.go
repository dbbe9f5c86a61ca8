package crl

import "time"

// parseTime decodes a DER Time (RFC 5280 §4.1.2.5, §5.1.2.4): UTCTime
// YYMMDDHHMMSSZ (YY < 50 is 20YY, else 19YY) or GeneralizedTime
// YYYYMMDDHHMMSSZ without fractional seconds. It does not allocate.
func parseTime(tag byte, b []byte) (time.Time, bool) {
	var year int
	switch {
	case tag == tagUTCTime && len(b) == 13:
		yy, ok := digits2(b[0:])
		if !ok {
			return time.Time{}, false
		}
		if yy < 50 {
			year = 2000 + yy
		} else {
			year = 1900 + yy
		}
		b = b[2:]
	case tag == tagGenTime && len(b) == 15:
		hi, ok1 := digits2(b[0:])
		lo, ok2 := digits2(b[2:])
		if !ok1 || !ok2 {
			return time.Time{}, false
		}
		year = hi*100 + lo
		b = b[4:]
	default:
		return time.Time{}, false
	}
	// b is MMDDHHMMSSZ
	if b[10] != 'Z' {
		return time.Time{}, false
	}
	mo, ok1 := digits2(b[0:])
	d, ok2 := digits2(b[2:])
	h, ok3 := digits2(b[4:])
	mi, ok4 := digits2(b[6:])
	sec, ok5 := digits2(b[8:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 ||
		mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, year) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	days := daysFromCivil(year, mo, d)
	return time.Unix(days*86400+int64(h*3600+mi*60+sec), 0).UTC(), true
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
