package config

import (
	"errors"
	"fmt"
)

// maxPathIndex bounds every number in an HL7 path; no message has more of anything.
const maxPathIndex = 99999

// checkHL7Path checks the syntax of an HL7 path as the hl7 package reads it:
//
//	SEG[occ][-field[rep][.component[.subcomponent]]]
//
// SEG is a capital letter then two capitals or digits ("PID", "ZPI", "OBX"); occ and rep
// are bracketed indexes ("OBX[3]-5", "PID-3[2].1"); every number starts at 1. It reports
// whether the path names a field (or a part of one) rather than whole segments.
//
// It is syntax only, written here so that config imports nothing of this module yet;
// hl7.ParsePath is the authority and can replace it.
func checkHL7Path(s string) (field bool, err error) {
	if len(s) < 3 || !isUpper(s[0]) || !isUpperOrDigit(s[1]) || !isUpperOrDigit(s[2]) {
		return false, errors.New("must start with a segment ID: a capital letter, then two capitals or digits")
	}
	i := 3
	if i < len(s) && s[i] == '[' {
		if i, err = index(s, i, "segment occurrence"); err != nil {
			return false, err
		}
	}
	if i == len(s) {
		return false, nil
	}
	if s[i] != '-' {
		return false, fmt.Errorf("unexpected %q after the segment (want -field)", s[i])
	}
	if i, err = number(s, i+1, "field"); err != nil {
		return false, err
	}
	if i < len(s) && s[i] == '[' {
		if i, err = index(s, i, "repetition"); err != nil {
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
		if i, err = number(s, i+1, part); err != nil {
			return false, err
		}
	}
	if i != len(s) {
		return false, fmt.Errorf("unexpected %q after the subcomponent", s[i])
	}
	return true, nil
}

// index reads "[n]" at s[i] and returns the position after it.
func index(s string, i int, what string) (int, error) {
	j, err := number(s, i+1, what)
	if err != nil {
		return 0, err
	}
	if j == len(s) || s[j] != ']' {
		return 0, fmt.Errorf("%s index is not closed with ]", what)
	}
	return j + 1, nil
}

// number reads a decimal number from 1 to maxPathIndex at s[i].
func number(s string, i int, what string) (int, error) {
	n, j := 0, i
	for j < len(s) && '0' <= s[j] && s[j] <= '9' {
		if n = n*10 + int(s[j]-'0'); n > maxPathIndex {
			return 0, fmt.Errorf("%s number above %d", what, maxPathIndex)
		}
		j++
	}
	if j == i {
		return 0, fmt.Errorf("want a %s number", what)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s numbers start at 1", what)
	}
	return j, nil
}

func isUpper(c byte) bool        { return 'A' <= c && c <= 'Z' }
func isUpperOrDigit(c byte) bool { return isUpper(c) || '0' <= c && c <= '9' }
