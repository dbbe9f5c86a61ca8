package jpki

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// Era is a Japanese era (元号), numbered as the E digit of the signature
// certificate's birth date (doc mynumbercard.md §2.5): 1 明治 … 5 令和,
// 0 unknown.
type Era int

// Eras.
const (
	EraUnknown Era = 0
	EraMeiji   Era = 1 // 明治
	EraTaisho  Era = 2 // 大正
	EraShowa   Era = 3 // 昭和
	EraHeisei  Era = 4 // 平成
	EraReiwa   Era = 5 // 令和
)

func (e Era) String() string {
	switch e {
	case EraMeiji:
		return "Meiji"
	case EraTaisho:
		return "Taisho"
	case EraShowa:
		return "Showa"
	case EraHeisei:
		return "Heisei"
	case EraReiwa:
		return "Reiwa"
	}
	return "unknown"
}

// eraStarts: the first Gregorian day of each era, newest first.
//
//   - 令和 2019-05-01, 平成 1989-01-08, 昭和 1926-12-25, 大正 1912-07-30: the
//     accession dates (doc §4.1 gives 1989-01-07 = 昭和64, 1989-01-08 = 平成1,
//     2019-05-01 = 令和1; soltia48 src/data.rs Date::to_era @08c204b2 uses
//     the same four).
//   - 明治 1868-01-25 (= 慶応4年1月1日), not 1868-10-23: the era name was
//     proclaimed on 1868-10-23 (明治元年9月8日) but the edict
//     (改元の詔, "改慶應四年爲明治元年") renamed the whole year 慶応4 to
//     明治元年 retroactively, so every day from the lunar new year
//     1868-01-25 on is 明治元年; soltia48 Date::to_era uses 1868-01-25 too.
//     Gregorian dates before 1873 are proleptic (Japan counted by the lunar
//     calendar until 明治5年12月2日), and nobody born in 1868 holds a card:
//     the choice has no practical effect.
var eraStarts = []struct {
	era     Era
	y, m, d int
}{
	{EraReiwa, 2019, 5, 1},
	{EraHeisei, 1989, 1, 8},
	{EraShowa, 1926, 12, 25},
	{EraTaisho, 1912, 7, 30},
	{EraMeiji, 1868, 1, 25},
}

// parseDate reads 8 ASCII digits YYYYMMDD of a real Gregorian calendar day
// (year 0001..9999).
func parseDate(b []byte) (y, m, d int, ok bool) {
	if len(b) != 8 {
		return 0, 0, 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, 0, 0, false
		}
	}
	num := func(s []byte) int {
		n := 0
		for _, c := range s {
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, m, d = num(b[0:4]), num(b[4:6]), num(b[6:8])
	if y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func validDate(b []byte) bool { _, _, _, ok := parseDate(b); return ok }

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// eraOf returns the era and era year of a Gregorian day; EraUnknown before
// 明治.
func eraOf(y, m, d int) (Era, int) {
	key := y*10000 + m*100 + d
	for _, s := range eraStarts {
		if key >= s.y*10000+s.m*100+s.d {
			return s.era, y - s.y + 1
		}
	}
	return EraUnknown, 0
}

// JapaneseEra converts a Gregorian YYYYMMDD (as in DF22) to its era and era
// year: "19800217" → 昭和 55, "19890107" → 昭和 64, "19890108" → 平成 1,
// "20190430" → 平成 31, "20190501" → 令和 1. A malformed date or one before
// 明治 (1868-01-25, see eraStarts) is an error; the error never contains
// the date.
func JapaneseEra(yyyymmdd string) (Era, int, error) {
	y, m, d, ok := parseDate([]byte(yyyymmdd))
	if !ok {
		return EraUnknown, 0, fmt.Errorf("%w: not a YYYYMMDD date (%d bytes)", ErrMalformed, len(yyyymmdd))
	}
	era, ey := eraOf(y, m, d)
	if era == EraUnknown {
		return EraUnknown, 0, fmt.Errorf("%w: date before the Meiji era", ErrMalformed)
	}
	return era, ey, nil
}

// ErrCollationMismatch: the card-face record (DF22, DF29) does not give the
// collation number B the holder typed.
var ErrCollationMismatch = errors.New("jpki: card-face record does not match the collation number")

// errCollationFormat is returned by CheckCollationBFormat; its text never
// contains digits of B.
var errCollationFormat = errors.New("jpki: collation number B must be 14 digits: birth YYMMDD (era year), expiry YYYY, 4-digit code")

// CheckCollationBFormat checks the form of collation number B (照合番号B,
// doc §4.1; soltia48 src/data.rs verification_code_b): 14 ASCII digits,
// birth YYMMDD in the Japanese era year (month 01–12, day 01–31) ‖ expiry
// year YYYY (Gregorian) ‖ the 4-digit security code printed on the card.
// Era year 00 is not rejected: for foreign residents the year digits may be
// Gregorian [UNCERTAIN, doc §4.1]. The error never echoes b.
func CheckCollationBFormat(b []byte) error {
	if len(b) != 14 {
		return errCollationFormat
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return errCollationFormat
		}
	}
	m := int(b[2]-'0')*10 + int(b[3]-'0')
	d := int(b[4]-'0')*10 + int(b[5]-'0')
	if m < 1 || m > 12 || d < 1 || d > 31 {
		return errCollationFormat
	}
	return nil
}

// MatchCollationB checks that a card-face record belongs to collation
// number b: birthDate (DF22, Gregorian YYYYMMDD) converted to its era year
// must give b[0:6] = YYMMDD, and the year of expiry (DF29) must be b[6:10]
// (doc §4.1, §6 step 6). The security code b[10:14] is not on the record
// in text form and is not compared. Comparisons are constant-time
// (crypto/subtle); a mismatch is ErrCollationMismatch naming the part that
// differs, never a value.
//
// For foreign residents the birth year in B may be Gregorian, as on the old
// 住基カード [UNCERTAIN, doc §4.1: no My Number Card source]; such a card
// would not match here.
func MatchCollationB(b []byte, birthDate, expiry string) error {
	if err := CheckCollationBFormat(b); err != nil {
		return err
	}
	_, ey, err := JapaneseEra(birthDate)
	if err != nil {
		return fmt.Errorf("%w (birth date not convertible to an era year)", ErrCollationMismatch)
	}
	if !validDate([]byte(expiry)) {
		return fmt.Errorf("%w (expiry not a YYYYMMDD date)", ErrCollationMismatch)
	}
	var want [10]byte
	if ey <= 99 {
		want[0], want[1] = byte('0'+ey/10), byte('0'+ey%10)
	}
	copy(want[2:6], birthDate[4:8])
	copy(want[6:10], expiry[0:4])
	birthOK := subtle.ConstantTimeCompare(want[0:6], b[0:6])
	expiryOK := subtle.ConstantTimeCompare(want[6:10], b[6:10])
	clear(want[:])
	switch {
	case birthOK != 1 || ey > 99:
		return fmt.Errorf("%w (birth date)", ErrCollationMismatch)
	case expiryOK != 1:
		return fmt.Errorf("%w (expiry year)", ErrCollationMismatch)
	}
	return nil
}

// ParseEraBirthDate reads the birth date of the signature certificate's SAN
// (OID 1.2.392.200149.8.5.5.4), "EYYYYMMDD" with E the era digit 0–5 (doc
// §2.5; J-LIS certificate profile). Whether YYYY is Gregorian is
// [UNCERTAIN] in the doc, so: YYYY is taken as Gregorian when the date falls
// inside era E; otherwise as an era year (0001..0064) when that gives a
// valid date inside E; otherwise ErrMalformed. E = 0 (unknown era) takes
// YYYYMMDD as Gregorian, and "000000000" gives EraUnknown with the zero
// time. The time is midnight UTC. Errors never contain the date.
func ParseEraBirthDate(s string) (Era, time.Time, error) {
	if len(s) != 9 || s[0] < '0' || s[0] > '5' || !allDigits(s[1:]) {
		return EraUnknown, time.Time{}, fmt.Errorf("%w: SAN birth date is not EYYYYMMDD (%d bytes)", ErrMalformed, len(s))
	}
	era := Era(s[0] - '0')
	digits := []byte(s[1:])
	if era == EraUnknown {
		if string(digits) == "00000000" {
			return EraUnknown, time.Time{}, nil
		}
		if y, m, d, ok := parseDate(digits); ok {
			return EraUnknown, utcDate(y, m, d), nil
		}
		return EraUnknown, time.Time{}, fmt.Errorf("%w: SAN birth date of unknown era is not a date", ErrMalformed)
	}
	if y, m, d, ok := parseDate(digits); ok {
		if e, _ := eraOf(y, m, d); e == era {
			return era, utcDate(y, m, d), nil
		}
	}
	// Era-year reading: YYYY = 0001..0064 (昭和 has the most years, 64).
	ey := int(digits[0]-'0')*1000 + int(digits[1]-'0')*100 + int(digits[2]-'0')*10 + int(digits[3]-'0')
	if ey >= 1 && ey <= 64 {
		start := eraStarts[len(eraStarts)-int(era)]
		g := []byte(fmt.Sprintf("%04d", start.y+ey-1))
		copy(digits[0:4], g)
		if y, m, d, ok := parseDate(digits); ok {
			if e, _ := eraOf(y, m, d); e == era {
				return era, utcDate(y, m, d), nil
			}
		}
	}
	return EraUnknown, time.Time{}, fmt.Errorf("%w: SAN birth date not a valid date in era %d", ErrMalformed, era)
}

func utcDate(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC) }
