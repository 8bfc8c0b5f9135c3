package config

import (
	"errors"
	"fmt"
)

// Bounds of the numbers in an HL7 path, as hl7.ParsePath has them: a field, repetition,
// component or subcomponent up to 9999, a segment occurrence up to 999999 (large results
// carry thousands of OBX segments), each written with at most 6 digits.
const (
	maxPathIndex      = 9999
	maxPathOccurrence = 999999
	maxPathDigits     = 6
)

// checkHL7Path checks the syntax of an HL7 path as the hl7 package reads it:
//
//	SEG[occ][-field[rep][.component[.subcomponent]]]
//
// SEG is a capital letter then two capitals or digits ("PID", "ZPI", "OBX"); occ and rep
// are bracketed indexes ("OBX[3]-5", "PID-3[2].1"); every number starts at 1. It reports
// whether the path names a field (or a part of one) rather than whole segments.
//
// It is syntax only, written here so that config imports nothing of this module yet;
// hl7.ParsePath is the authority and can replace it (hl7_agreement_test.go checks that the
// two accept the same strings).
func checkHL7Path(s string) (field bool, err error) {
	if len(s) < 3 || !isUpper(s[0]) || !isUpperOrDigit(s[1]) || !isUpperOrDigit(s[2]) {
		return false, errors.New("must start with a segment ID: a capital letter, then two capitals or digits")
	}
	i := 3
	if i < len(s) && s[i] == '[' {
		if i, err = index(s, i, "segment occurrence", maxPathOccurrence); err != nil {
			return false, err
		}
	}
	if i == len(s) {
		return false, nil
	}
	if s[i] != '-' {
		return false, fmt.Errorf("unexpected %q after the segment (want -field)", s[i])
	}
	if i, err = number(s, i+1, "field", maxPathIndex); err != nil {
		return false, err
	}
	if i < len(s) && s[i] == '[' {
		if i, err = index(s, i, "repetition", maxPathIndex); err != nil {
			return false, err
		}
	}
	for _, part := range []string{"component", "subcomponent"} {
		if i == len(s) {
			return true, nil
		}
		if s[i] != '.' {
			return false, fmt.Errorf("unexpected %q (want .%s)", s[i], part)
		}
		if i, err = number(s, i+1, part, maxPathIndex); err != nil {
			return false, err
		}
	}
	if i != len(s) {
		return false, fmt.Errorf("unexpected %q after the subcomponent", s[i])
	}
	return true, nil
}

// index reads "[n]" at s[i] and returns the position after it.
func index(s string, i int, what string, max int) (int, error) {
	j, err := number(s, i+1, what, max)
	if err != nil {
		return 0, err
	}
	if j == len(s) || s[j] != ']' {
		return 0, fmt.Errorf("%s index is not closed with ]", what)
	}
	return j + 1, nil
}

// number reads a decimal number from 1 to max at s[i] and returns the position after it.
func number(s string, i int, what string, max int) (int, error) {
	n, j := 0, i
	for j < len(s) && '0' <= s[j] && s[j] <= '9' {
		if j-i == maxPathDigits {
			return 0, fmt.Errorf("%s number longer than %d digits", what, maxPathDigits)
		}
		n = n*10 + int(s[j]-'0')
		j++
	}
	switch {
	case j == i:
		return 0, fmt.Errorf("want a %s number", what)
	case n == 0:
		return 0, fmt.Errorf("%s numbers start at 1", what)
	case n > max:
		return 0, fmt.Errorf("%s number above %d", what, max)
	}
	return j, nil
}

func isUpper(c byte) bool        { return 'A' <= c && c <= 'Z' }
func isUpperOrDigit(c byte) bool { return isUpper(c) || '0' <= c && c <= '9' }
