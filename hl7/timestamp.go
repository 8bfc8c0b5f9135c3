package hl7

import (
	"fmt"
	"strconv"
	"time"
)

// Precision is how much of a timestamp a sender gave.
type Precision int

// Timestamp precisions, from YYYY to fractions of a second.
const (
	PrecisionYear Precision = iota + 1
	PrecisionMonth
	PrecisionDay
	PrecisionHour
	PrecisionMinute
	PrecisionSecond
	PrecisionFraction
)

// ParseTimestamp reads an HL7 TS/DTM value (MSH-7 and others):
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ] (reference §4.2). Only
// component 1 is read (a v2.5 TS may carry ^precision). A value without an
// offset is in the sender's local time, which the caller supplies as local
// (nil means UTC). Values are for display: callers must never reject a
// message because this fails. Errors wrap ErrMalformedField and hold no value.
func ParseTimestamp(v string, local *time.Location) (time.Time, Precision, error) {
	if i := indexAny(v, "^&"); i >= 0 {
		v = v[:i]
	}
	bad := func() (time.Time, Precision, error) {
		return time.Time{}, 0, fmt.Errorf("%w: timestamp of %d characters", ErrMalformedField, len(v))
	}
	if local == nil {
		local = time.UTC
	}
	s := v
	loc := local
	if n := len(s); n > 0 && s[n-1] == 'Z' { // seen in the wild: a trailing Z for UTC
		s, loc = s[:n-1], time.UTC
	} else if i := indexAny(s, "+-"); i >= 0 {
		z := s[i:]
		if len(z) != 5 || !allDigits(z[1:]) {
			return bad()
		}
		h, _ := strconv.Atoi(z[1:3])
		m, _ := strconv.Atoi(z[3:5])
		if h > 14 || m > 59 {
			return bad()
		}
		off := h*3600 + m*60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
		s = s[:i]
	}
	date, frac, hasFrac := cutByte(s, '.')
	if !allDigits(date) || hasFrac && (len(date) != 14 || frac == "" || len(frac) > 9 || !allDigits(frac)) {
		return bad()
	}
	var p Precision
	switch len(date) {
	case 4:
		p = PrecisionYear
	case 6:
		p = PrecisionMonth
	case 8:
		p = PrecisionDay
	case 10:
		p = PrecisionHour
	case 12:
		p = PrecisionMinute
	case 14:
		p = PrecisionSecond
	default:
		return bad()
	}
	num := func(a, b, def int) int {
		if len(date) < b {
			return def
		}
		n, _ := strconv.Atoi(date[a:b])
		return n
	}
	year, month, day := num(0, 4, 0), num(4, 6, 1), num(6, 8, 1)
	hour, minute, sec := num(8, 10, 0), num(10, 12, 0), num(12, 14, 0)
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return bad()
	}
	nsec := 0
	if hasFrac {
		p = PrecisionFraction
		n, _ := strconv.Atoi(frac)
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day {
		return bad() // 31 February and the like
	}
	return t, p, nil
}

func indexAny(s, chars string) int {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return i
			}
		}
	}
	return -1
}

func cutByte(s string, c byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
