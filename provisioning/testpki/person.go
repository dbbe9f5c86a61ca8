package testpki

import (
	"errors"
	"fmt"
	"time"
)

// profile is the fixed part of a genuine card kind's holder and secrets.
// Every value is synthetic and meant to look fake: the names are 試験 (test),
// 見本 (sample), 試作 (prototype) and 検証 (verification); the towns in the
// addresses do not exist; the individual numbers start 9999 (still with a
// valid check digit).
type profile struct {
	name, address, birth, sex string
	numberBase                string // the 11 digits before the check digit
	expiryYears               int    // card expiry: the birthday this many years after the generation year
	securityCode              string
	authPIN, signPassword     string
	supportPIN                string
}

// The birth dates exercise the era boundaries of collation number B:
// 昭和 (valid), the last day of 昭和 (revoked: 昭和64), the first day of 平成
// (expired: 平成1, zero-padded "01") and a later 平成 year (unknown-ca, old
// enough at 16 to hold a signature certificate).
var profiles = map[string]profile{
	KindValid: {
		name: "試験\u3000花子", address: "東京都千代田区試験町一丁目2番3号",
		birth: "19850714", sex: "2", numberBase: "99990000001", expiryYears: 7,
		securityCode: "2851", authPIN: "1234", signPassword: "TEST1234", supportPIN: "9876",
	},
	KindRevoked: {
		name: "見本\u3000太郎", address: "東京都千代田区見本町四丁目5番6号 見本ハイツ101",
		birth: "19890107", sex: "1", numberBase: "99990000002", expiryYears: 6,
		securityCode: "0419", authPIN: "2345", signPassword: "SAMPLE2345", supportPIN: "8765",
	},
	KindExpired: {
		name: "試作\u3000次郎", address: "東京都千代田区試作通七丁目8番9号",
		birth: "19890108", sex: "1", numberBase: "99990000003", expiryYears: 8,
		securityCode: "7306", authPIN: "3456", signPassword: "PROTO3456", supportPIN: "7654",
	},
	KindUnknownCA: {
		name: "検証\u3000桜子", address: "東京都千代田区検証台十丁目11番12号",
		birth: "20100331", sex: "2", numberBase: "99990000004", expiryYears: 5,
		securityCode: "5562", authPIN: "4567", signPassword: "KAZASHI4567", supportPIN: "6543",
	},
}

// person returns the holder, with the card expiry relative to now.
func (p profile) person(now time.Time) Person {
	return Person{
		Name:             p.name,
		Address:          p.address,
		BirthDate:        p.birth,
		Sex:              p.sex,
		IndividualNumber: p.numberBase + string(rune('0'+checkDigit(p.numberBase))),
		Expiry:           fmt.Sprintf("%04d%s", now.Year()+p.expiryYears, p.birth[4:]),
		SecurityCode:     p.securityCode,
	}
}

// checkDigit returns the 検査用数字 of an individual number's first 11 digits,
// per 平成26年総務省令第85号 第5条 (the formula as quoted at
// https://mynumber.okinawa-spot.com/core/archives/227 and https://99zz.net/?p=137):
// with Pn the n-th digit counted from the least significant (n = 1..11) and
// Qn = n+1 for n ≤ 6, n−5 for n ≥ 7, the digit is 11 − (Σ Pn·Qn mod 11), or 0
// when that remainder is 0 or 1.
func checkDigit(base string) int {
	sum := 0
	for n := 1; n <= 11; n++ {
		p := int(base[11-n] - '0')
		q := n + 1
		if n >= 7 {
			q = n - 5
		}
		sum += p * q
	}
	if r := sum % 11; r > 1 {
		return 11 - r
	}
	return 0
}

// Japanese eras (元号) from their first day, Gregorian. The digit is the one
// the JPKI signature certificate's birth date starts with (doc §2.5).
var eras = []struct {
	digit int
	start time.Time
}{
	{5, date(2019, 5, 1)},   // 令和
	{4, date(1989, 1, 8)},   // 平成
	{3, date(1926, 12, 25)}, // 昭和
	{2, date(1912, 7, 30)},  // 大正
	{1, date(1868, 1, 25)},  // 明治
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

var errDate = errors.New("testpki: not a YYYYMMDD date")

// parseDate parses YYYYMMDD strictly (no normalisation of 0230 etc.).
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse("20060102", s)
	if err != nil || len(s) != 8 {
		return time.Time{}, errDate
	}
	return t, nil
}

// japaneseEra returns the era digit (1 明治 … 5 令和) and the era year of a
// Gregorian date; the first (partial) year of an era is year 1.
func japaneseEra(t time.Time) (digit, eraYear int, err error) {
	for _, e := range eras {
		if !t.Before(e.start) {
			return e.digit, t.Year() - e.start.Year() + 1, nil
		}
	}
	return 0, 0, errDate
}

// CollationNumberB returns 照合番号B (doc §4.1): the birth date as YYMMDD in
// the Japanese era year, the expiry year YYYY (Gregorian) and the 4-digit
// security code, 14 ASCII digits. birth and expiry are Gregorian YYYYMMDD.
func CollationNumberB(birth, expiry, securityCode string) (string, error) {
	b, err := parseDate(birth)
	if err != nil {
		return "", fmt.Errorf("testpki: birth date: %w", err)
	}
	if _, err := parseDate(expiry); err != nil {
		return "", fmt.Errorf("testpki: expiry: %w", err)
	}
	if len(securityCode) != 4 || !digits(securityCode) {
		return "", errors.New("testpki: security code is not 4 digits")
	}
	_, y, err := japaneseEra(b)
	if err != nil {
		return "", fmt.Errorf("testpki: birth date before 明治: %w", err)
	}
	return fmt.Sprintf("%02d%s%s%s", y, birth[4:], expiry[:4], securityCode), nil
}

// eraBirthDate is the signature certificate's birth date: era digit ‖
// Gregorian YYYYMMDD (doc §2.5; the brief fixes YYYY as Gregorian).
func eraBirthDate(birth string) (string, error) {
	b, err := parseDate(birth)
	if err != nil {
		return "", err
	}
	d, _, err := japaneseEra(b)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d%s", d, birth), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
