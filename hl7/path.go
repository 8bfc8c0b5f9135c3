package hl7

import (
	"fmt"
	"strconv"
)

// maxIndex bounds every number in a path, so a path can neither overflow nor
// make Set grow a segment without bound.
const maxIndex = 9999

// maxOccurrence bounds the segment occurrence: large results carry thousands
// of OBX segments.
const maxOccurrence = 999999

// A Path addresses a segment, field, repetition, component or subcomponent
// with HL7's 1-based numbering: "PID-5", "PID-5.1", "PID-5.1.2",
// "PID-3[2].1" (second repetition), "OBX[3]-5" (third OBX), "MSH-9.2", or a
// segment alone ("ZPI", for Delete). MSH, BHS and FHS count as HL7 counts
// them: MSH-1 is the field separator, MSH-2 the encoding characters.
//
// An index that is not given is 0 in the accessors: an absent occurrence or
// repetition means the first one when reading. Paths are parsed once (at
// config load) and are comparable values.
type Path struct {
	seg   string
	occ   int // segment occurrence, 0 = not given (first)
	field int // 0 = the whole segment
	rep   int // 0 = not given
	comp  int // 0 = the whole repetition
	sub   int // 0 = the whole component
}

// ParsePath parses s. Errors wrap ErrBadPath; the text quotes s (paths come
// from config, never from messages).
func ParsePath(s string) (Path, error) {
	var p Path
	bad := func(why string) (Path, error) {
		return Path{}, fmt.Errorf("%w %q: %s", ErrBadPath, s, why)
	}
	if len(s) < 3 {
		return bad("segment ID must be 3 characters")
	}
	if s[0] < 'A' || s[0] > 'Z' {
		return bad("segment ID must start with an uppercase letter")
	}
	for _, c := range []byte(s[1:3]) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return bad("segment ID must be uppercase letters and digits")
		}
	}
	p.seg = s[:3]
	i := 3
	num := func(max int) (int, bool) {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j-i > 6 {
			return 0, false
		}
		n, err := strconv.Atoi(s[i:j])
		if err != nil || n < 1 || n > max {
			return 0, false
		}
		i = j
		return n, true
	}
	bracket := func(max int) (int, bool) {
		i++ // '['
		n, ok := num(max)
		if !ok || i >= len(s) || s[i] != ']' {
			return 0, false
		}
		i++
		return n, true
	}
	if i < len(s) && s[i] == '[' {
		n, ok := bracket(maxOccurrence)
		if !ok {
			return bad("segment occurrence must be [n] with 1 <= n <= 999999")
		}
		p.occ = n
	}
	if i == len(s) {
		return p, nil
	}
	if s[i] != '-' {
		return bad("expected '-' after the segment")
	}
	i++
	var ok bool
	if p.field, ok = num(maxIndex); !ok {
		return bad("field must be a number from 1 to 9999")
	}
	if i < len(s) && s[i] == '[' {
		if p.rep, ok = bracket(maxIndex); !ok {
			return bad("repetition must be [n] with 1 <= n <= 9999")
		}
	}
	if i < len(s) && s[i] == '.' {
		i++
		if p.comp, ok = num(maxIndex); !ok {
			return bad("component must be a number from 1 to 9999")
		}
		if i < len(s) && s[i] == '.' {
			i++
			if p.sub, ok = num(maxIndex); !ok {
				return bad("subcomponent must be a number from 1 to 9999")
			}
		}
	}
	if i != len(s) {
		return bad("unexpected text after the path")
	}
	return p, nil
}

// MustParsePath is ParsePath for literals in code; it panics on a bad path,
// which is a programming error, never input.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the path in the syntax ParsePath reads; indexes that were
// not given are left out.
func (p Path) String() string {
	b := make([]byte, 0, 24)
	b = append(b, p.seg...)
	if p.occ > 0 {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(p.occ), 10)
		b = append(b, ']')
	}
	if p.field == 0 {
		return string(b)
	}
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(p.field), 10)
	if p.rep > 0 {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(p.rep), 10)
		b = append(b, ']')
	}
	if p.comp > 0 {
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(p.comp), 10)
		if p.sub > 0 {
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(p.sub), 10)
		}
	}
	return string(b)
}

// Segment returns the segment ID.
func (p Path) Segment() string { return p.seg }

// Occurrence returns the segment occurrence (1-based), 0 when not given.
func (p Path) Occurrence() int { return p.occ }

// Field returns the field number, 0 for a whole-segment path.
func (p Path) Field() int { return p.field }

// Repetition returns the repetition (1-based), 0 when not given.
func (p Path) Repetition() int { return p.rep }

// Component returns the component (1-based), 0 for the whole repetition.
func (p Path) Component() int { return p.comp }

// Subcomponent returns the subcomponent (1-based), 0 for the whole component.
func (p Path) Subcomponent() int { return p.sub }

// IsSegment reports whether p names a whole segment ("ZPI").
func (p Path) IsSegment() bool { return p.seg != "" && p.field == 0 }
