package hl7

import (
	"bytes"
	"unicode/utf8"
)

// findSeg returns the index of the occ-th (1-based, 0 = first) segment named
// name, or -1.
func (m *Message) findSeg(name string, occ int) int {
	if occ == 0 {
		occ = 1
	}
	for i := m.findSegFrom(name, 0); i >= 0; i = m.findSegFrom(name, i+1) {
		if occ--; occ == 0 {
			return i
		}
	}
	return -1
}

// nth returns the n-th (1-based) element of s split on sep; nil when there are
// fewer elements. A zero sep means the level does not exist: s is its only
// element.
func nth(s []byte, sep byte, n int) []byte {
	if sep == 0 {
		if n == 1 {
			return s
		}
		return nil
	}
	// A plain loop: elements are short, and IndexByte's per-call overhead
	// dominates at these distances.
	start := 0
	if n > 1 {
		i := 0
		for ; i < len(s); i++ {
			if s[i] == sep {
				if n--; n == 1 {
					break
				}
			}
		}
		if n > 1 {
			return nil
		}
		start = i + 1
	}
	for j := start; j < len(s); j++ {
		if s[j] == sep {
			return s[start:j]
		}
	}
	return s[start:]
}

// fieldRaw returns field n (HL7 numbering) of segment bytes s, all
// repetitions; nil when absent. For MSH, BHS and FHS, field 1 is the field
// separator itself and field 2 the encoding characters.
func fieldRaw(s []byte, f byte, n int) []byte {
	if n < 1 {
		return nil
	}
	if isHeaderName(s) {
		if len(s) < 4 || s[3] != f {
			return nil
		}
		if n == 1 {
			return s[3:4]
		}
		n-- // MSH-n is parts[n-1]
	}
	return nth(s, f, n+1)
}

// getRaw resolves p inside segment bytes s.
func getRaw(s []byte, d Delimiters, p Path) []byte {
	if p.field == 0 {
		return s
	}
	v := fieldRaw(s, d.Field, p.field)
	if v == nil {
		return nil
	}
	if p.field <= 2 && isHeaderName(s) {
		// MSH-1 and MSH-2 are read verbatim, never split (reference §2.2).
		if p.rep > 1 || p.comp > 1 || p.sub > 1 {
			return nil
		}
		return v
	}
	rep := p.rep
	if rep == 0 {
		rep = 1 // PID-3 means PID-3[1] (reference §2.3)
	}
	if v = nth(v, d.Repetition, rep); v == nil || p.comp == 0 {
		return v
	}
	if v = nth(v, d.Component, p.comp); v == nil || p.sub == 0 {
		return v
	}
	return nth(v, d.Subcomponent, p.sub)
}

// GetRaw returns the value at p as it is on the wire (escapes not resolved,
// charset not decoded). It does not allocate: the result aliases the message
// and must not be modified. It returns nil when p is absent and an empty,
// non-nil slice when p is present but empty. A path without a repetition
// reads the first one. A whole-segment path returns the segment without its
// terminator.
func (m *Message) GetRaw(p Path) []byte {
	i := m.findSeg(p.seg, p.occ)
	if i < 0 {
		return nil
	}
	return getRaw(m.segBytes(i), m.delims, p)
}

// FieldRaw returns the whole field p names, every repetition included, as on
// the wire; repetition, component and subcomponent of p are ignored. nil when
// absent. Use it to copy a repeating field between messages with SetRaw.
func (m *Message) FieldRaw(p Path) []byte {
	i := m.findSeg(p.seg, p.occ)
	if i < 0 || p.field == 0 {
		return nil
	}
	return fieldRaw(m.segBytes(i), m.delims.Field, p.field)
}

// RepetitionCount returns the number of repetitions of the field p names (0
// when the field is absent or empty).
func (m *Message) RepetitionCount(p Path) int {
	v := m.FieldRaw(p)
	if len(v) == 0 {
		return 0
	}
	if p.field <= 2 && isHeaderName([]byte(p.seg)) {
		return 1
	}
	return bytes.Count(v, []byte{m.delims.Repetition}) + 1
}

// SegmentCountOf returns the number of segments with the given ID.
func (m *Message) SegmentCountOf(name string) int {
	n := 0
	for i := 0; ; n++ {
		j := m.findSegFrom(name, i)
		if j < 0 {
			return n
		}
		i = j + 1
	}
}

func (m *Message) findSegFrom(name string, from int) int {
	f := m.delims.Field
	if len(name) != 3 {
		return -1 // paths always name 3-character IDs
	}
	n0, n1, n2 := name[0], name[1], name[2]
	for i := from; i < len(m.segs); i++ {
		var b []byte
		if s := &m.segs[i]; s.edit == 0 {
			b = m.raw[s.start:s.end]
		} else {
			b = m.edits[s.edit-1]
		}
		if len(b) >= 3 && b[0] == n0 && b[1] == n1 && b[2] == n2 && (len(b) == 3 || b[3] == f) {
			return i
		}
	}
	return -1
}

// Get returns the value at p decoded: escapes \F\ \S\ \T\ \R\ \E\ \P\ and
// \Xhh..\ resolved (formatting, local and charset escapes kept verbatim) and
// the message's charset converted to UTF-8. It returns "" when p is absent;
// IsNull tells the HL7 null "" apart.
func (m *Message) Get(p Path) string {
	v := m.GetRaw(p)
	if len(v) == 0 {
		return ""
	}
	return m.decode(v)
}

// decode unescapes and converts raw value bytes to a UTF-8 string.
func (m *Message) decode(v []byte) string {
	if m.delims.Escape != 0 && bytes.IndexByte(v, m.delims.Escape) >= 0 {
		v = unescapeAppend(make([]byte, 0, len(v)), v, m.delims)
	}
	return decodeCharset(m.charset, v)
}

// GetFormatted is Get with FT formatting commands rendered as plain text
// (see RenderFormatted): for display, never for forwarding.
func (m *Message) GetFormatted(p Path) string {
	v := m.GetRaw(p)
	if len(v) == 0 {
		return ""
	}
	return decodeCharset(m.charset, RenderFormatted(v, m.delims))
}

// IsNull reports whether the value at p is exactly "" (two double quotes):
// HL7's null, which tells a receiver to delete the stored value (reference
// §2.4). An absent or empty value is not null.
func (m *Message) IsNull(p Path) bool {
	v := m.GetRaw(p)
	return len(v) == 2 && v[0] == '"' && v[1] == '"'
}

// isASCII reports whether b holds only 7-bit bytes.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if (uint64(b[0])|uint64(b[1])<<8|uint64(b[2])<<16|uint64(b[3])<<24|
			uint64(b[4])<<32|uint64(b[5])<<40|uint64(b[6])<<48|uint64(b[7])<<56)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// headerFields holds MSH-1..MSH-20 of a header segment, by HL7 number (index
// 0 unused); absent fields are nil.
type headerFields [21][]byte

// splitHeader splits a header segment (MSH, BHS, FHS) in one pass. The ACK
// path reads a dozen MSH fields: one pass instead of one scan per field.
func splitHeader(msh []byte, f byte, out *headerFields) {
	*out = headerFields{}
	if len(msh) < 4 || msh[3] != f {
		return
	}
	out[1] = msh[3:4]
	n, start := 2, 4
	for i := 4; i <= len(msh) && n < len(out); i++ {
		if i < len(msh) && msh[i] != f {
			continue
		}
		out[n] = msh[start:i]
		n++
		start = i + 1
	}
}
