package hl7

import (
	"bytes"
	"slices"
)

// Set writes value, plain text, at p: it is encoded in the message's charset
// and escaped with its delimiters. Missing fields, repetitions,
// components and a missing segment (appended at the end of the message) are
// created; trailing empty delimiters of the edited field and segment are
// dropped (reference §2.4). A path without a repetition and without a
// component replaces the whole field, every repetition; with a component it
// edits the first repetition. MSH-1 and MSH-2 cannot be set. Errors are
// *PathError wrapping ErrReadOnly, ErrBadPath, ErrNoSegment,
// ErrCannotEscape or ErrUnrepresentable.
func (m *Message) Set(p Path, value string) error {
	d := m.delims
	// Encode first, then escape the bytes: in Shift_JIS, Big5 or GB18030 a
	// character's second byte can equal a delimiter ('\' is the classic), and
	// escaping the encoded bytes keeps it from splitting the value. Get
	// unescapes before decoding, so the round trip holds.
	enc, err := encodeCharset(m.charset, value)
	if err != nil {
		return &PathError{Op: "set", Path: p.String(), Err: err}
	}
	if !needsEscape(string(enc), d) {
		return m.set(p, enc, "set")
	}
	if d.Escape == 0 {
		return &PathError{Op: "set", Path: p.String(), Err: ErrCannotEscape}
	}
	return m.set(p, escapeAppend(make([]byte, 0, len(enc)+8), string(enc), d), "set")
}

// SetNull writes HL7's null "" at p: the receiver deletes its stored value.
func (m *Message) SetNull(p Path) error { return m.set(p, []byte(`""`), "set") }

// SetRaw writes already-escaped bytes at p, as they come from GetRaw or
// FieldRaw of a message with the same delimiters (copying keeps "" and
// escapes). raw must not contain CR, LF, the MLLP bytes 0x0B and 0x1C, the
// field separator, or a delimiter
// of the addressed level or above (ErrBadValue); otherwise as Set.
func (m *Message) SetRaw(p Path, raw []byte) error {
	d := m.delims
	bad := []byte{'\r', '\n', 0x0b, 0x1c, d.Field}
	switch {
	case p.sub > 0:
		bad = append(bad, d.Repetition, d.Component, d.Subcomponent)
	case p.comp > 0:
		bad = append(bad, d.Repetition, d.Component)
	case p.rep > 0:
		bad = append(bad, d.Repetition)
	}
	for _, c := range bad {
		if c != 0 && bytes.IndexByte(raw, c) >= 0 {
			return &PathError{Op: "set", Path: p.String(), Err: ErrBadValue}
		}
	}
	return m.set(p, raw, "set")
}

// Delete removes what p names. A segment path removes every segment with
// that ID, or only the given occurrence ("OBX[2]"); a field, repetition,
// component or subcomponent path clears that value (an empty value, not
// null). MSH and its fields 1 and 2 cannot be deleted. Deleting what is
// absent is not an error.
func (m *Message) Delete(p Path) error {
	if p.field > 0 {
		if m.findSeg(p.seg, p.occ) < 0 {
			return nil
		}
		return m.set(p, nil, "delete")
	}
	if p.seg == "MSH" {
		return &PathError{Op: "delete", Path: p.String(), Err: ErrReadOnly}
	}
	if p.occ > 0 {
		if i := m.findSeg(p.seg, p.occ); i >= 0 {
			m.removeSeg(i)
		}
		return nil
	}
	for i := m.findSegFrom(p.seg, 0); i >= 0; i = m.findSegFrom(p.seg, i) {
		m.removeSeg(i)
	}
	return nil
}

func (m *Message) removeSeg(i int) {
	m.segs = slices.Delete(m.segs, i, i+1)
	m.edited = true
}

// set splices raw into the segment p names.
func (m *Message) set(p Path, raw []byte, op string) error {
	fail := func(err error) error { return &PathError{Op: op, Path: p.String(), Err: err} }
	if p.field == 0 {
		return fail(ErrBadPath)
	}
	header := p.seg == "MSH" || p.seg == "BHS" || p.seg == "FHS"
	if header && p.field <= 2 {
		return fail(ErrReadOnly)
	}
	d := m.delims
	if p.sub > 1 && d.Subcomponent == 0 {
		return fail(ErrBadPath)
	}
	i := m.findSeg(p.seg, p.occ)
	var buf []byte
	if i < 0 {
		occ := p.occ
		if occ == 0 {
			occ = 1
		}
		if occ != m.SegmentCountOf(p.seg)+1 {
			return fail(ErrNoSegment)
		}
		buf = []byte(p.seg)
	} else {
		buf = bytes.Clone(m.segBytes(i))
	}

	k := p.field // index in the split on the field separator
	if header {
		k--
	}
	buf, fa, fb := locate(buf, 0, len(buf), d.Field, k)
	a, b := fa, fb
	if p.rep > 0 || p.comp > 0 {
		rep := max(p.rep, 1)
		buf, a, b = locate(buf, a, b, d.Repetition, rep-1)
		if p.comp > 0 {
			buf, a, b = locate(buf, a, b, d.Component, p.comp-1)
			if p.sub > 0 && d.Subcomponent != 0 {
				buf, a, b = locate(buf, a, b, d.Subcomponent, p.sub-1)
			}
		}
	}
	buf = slices.Replace(buf, a, b, raw...)
	// Drop trailing empty repetitions, components and subcomponents of the
	// edited field, then trailing empty fields of the segment.
	fe := fa
	if j := bytes.IndexByte(buf[fa:], d.Field); j >= 0 {
		fe = fa + j
	} else {
		fe = len(buf)
	}
	te := fe
	for te > fa && isLevelSep(buf[te-1], d) {
		te--
	}
	buf = slices.Delete(buf, te, fe)
	minLen := len(p.seg)
	if header {
		minLen = 4 + len(d.appendEncoding(nil))
	}
	for len(buf) > minLen && buf[len(buf)-1] == d.Field {
		buf = buf[:len(buf)-1]
	}

	switch {
	case i < 0:
		m.edits = append(m.edits, buf)
		m.segs = append(m.segs, seg{gap: -1, start: -1, end: -1, term: -1, edit: int32(len(m.edits))})
	case m.segs[i].edit > 0:
		m.edits[m.segs[i].edit-1] = buf
	default:
		m.edits = append(m.edits, buf)
		m.segs[i].edit = int32(len(m.edits))
	}
	m.edited = true
	return nil
}

func isLevelSep(c byte, d Delimiters) bool {
	return c == d.Repetition || c == d.Component || c != 0 && c == d.Subcomponent
}

// locate returns the bounds of element n (0-based) of buf[lo:hi] split on
// sep, inserting separators at hi when there are fewer elements.
func locate(buf []byte, lo, hi int, sep byte, n int) ([]byte, int, int) {
	start := lo
	for i := 0; i < n; i++ {
		j := bytes.IndexByte(buf[start:hi], sep)
		if j < 0 {
			ins := n - i
			buf = slices.Insert(buf, hi, bytes.Repeat([]byte{sep}, ins)...)
			return buf, hi + ins, hi + ins
		}
		start += j + 1
	}
	end := hi
	if j := bytes.IndexByte(buf[start:hi], sep); j >= 0 {
		end = start + j
	}
	return buf, start, end
}
