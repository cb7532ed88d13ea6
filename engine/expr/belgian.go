package expr

import (
	"strings"
	"time"
	"unicode"
)

// NormalizeSSIN returns the 11 digits of a Belgian social security
// identification number (SSIN, INSZ/NISS; the national register number or a
// BIS number) written with the usual formatting, such as "85.07.30-033.28".
// Whitespace, dots and dashes are removed. It reports false when what remains
// is not 11 digits, when the date part is impossible (month above 12 once the
// BIS offset of 20 or 40 is removed, or day above 31), or when the check
// digits match neither the pre-2000 nor the post-2000 variant.
//
// Unknown birth dates (month or day 00) are accepted: the register issues such
// numbers.
func NormalizeSSIN(s string) (string, bool) {
	d, ok := digitsOnly(s, 11)
	if !ok {
		return "", false
	}
	month, day := ssinMonthDay(d)
	if month > 12 || day > 31 {
		return "", false
	}
	if _, ok := ssinCentury(d); !ok {
		return "", false
	}
	return d, true
}

// ValidSSIN reports whether s is a valid SSIN, formatted or not.
func ValidSSIN(s string) bool {
	_, ok := NormalizeSSIN(s)
	return ok
}

// SSINBirthDate returns the birth date (midnight UTC) encoded in a valid SSIN.
// The check digit variant that matches decides between 19xx and 20xx. It
// reports false when s is not valid or when the date is not fully known or not
// a real calendar date (month or day 00, 31 April).
func SSINBirthDate(s string) (time.Time, bool) {
	d, ok := NormalizeSSIN(s)
	if !ok {
		return time.Time{}, false
	}
	century, _ := ssinCentury(d)
	month, day := ssinMonthDay(d)
	if month == 0 || day == 0 {
		return time.Time{}, false
	}
	year := century + atoi(d[0:2])
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	// time.Date normalises 31 April to 1 May; a changed day means no such date.
	if t.Day() != day || int(t.Month()) != month {
		return time.Time{}, false
	}
	return t, true
}

// ssinMonthDay returns the birth month, with the BIS offset removed, and day
// of an 11-digit SSIN.
func ssinMonthDay(d string) (month, day int) {
	month = atoi(d[2:4])
	switch {
	case month >= 40:
		month -= 40 // BIS number, sex known when issued
	case month >= 20:
		month -= 20 // BIS number, sex unknown when issued
	}
	return month, atoi(d[4:6])
}

// ssinCentury returns 1900 or 2000 according to the check digit variant that
// matches, and false when neither does. Both cannot match: 2·10⁹ is not a
// multiple of 97.
func ssinCentury(d string) (int, bool) {
	base := atoi(d[0:9])
	check := atoi(d[9:11])
	switch check {
	case 97 - base%97:
		return 1900, true
	case 97 - (2_000_000_000+base)%97:
		return 2000, true
	}
	return 0, false
}

// NormalizeEnterpriseNumber returns the 10 digits of a Belgian enterprise
// number (KBO/BCE ondernemingsnummer/numéro d'entreprise). It accepts the
// usual writings: "0203.201.340", "BE0203201340", "BE 0203 201 340", and old
// 9-digit numbers, which get a leading 0. It reports false when the first
// digit is not 0 or 1 (numbers starting 2 to 8 are establishment units, not
// enterprises) or when the last two digits are not 97 - (first 8 mod 97).
func NormalizeEnterpriseNumber(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && strings.EqualFold(s[:2], "BE") {
		s = s[2:]
	}
	d, ok := digitsOnly(s, 10)
	if !ok {
		d, ok = digitsOnly(s, 9)
		if !ok {
			return "", false
		}
		d = "0" + d
	}
	if d[0] != '0' && d[0] != '1' {
		return "", false
	}
	if atoi(d[8:10]) != 97-atoi(d[0:8])%97 {
		return "", false
	}
	return d, true
}

// ValidEnterpriseNumber reports whether s is a valid enterprise number in any
// of the writings NormalizeEnterpriseNumber accepts.
func ValidEnterpriseNumber(s string) bool {
	_, ok := NormalizeEnterpriseNumber(s)
	return ok
}

// FormatEnterpriseNumber returns a valid enterprise number in its official
// writing, "0203.201.340".
func FormatEnterpriseNumber(s string) (string, bool) {
	d, ok := NormalizeEnterpriseNumber(s)
	if !ok {
		return "", false
	}
	return d[0:4] + "." + d[4:7] + "." + d[7:10], true
}

// digitsOnly removes whitespace, dots and dashes from s and returns the rest
// when it is exactly n ASCII digits.
func digitsOnly(s string, n int) (string, bool) {
	var b strings.Builder
	b.Grow(n)
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			if b.Len() == n {
				return "", false
			}
			b.WriteByte(byte(r))
		case r == '.' || r == '-' || unicode.IsSpace(r):
		default:
			return "", false
		}
	}
	if b.Len() != n {
		return "", false
	}
	return b.String(), true
}

// atoi converts a string already known to be at most 9 ASCII digits.
func atoi(d string) int {
	n := 0
	for i := 0; i < len(d); i++ {
		n = n*10 + int(d[i]-'0')
	}
	return n
}
