package hl7

import (
	"bytes"
	"crypto/sha256"
	"math"
)

// Repairs is the set of deviations from the standard that Parse tolerated.
// Ingest counts them per listener so an admin can see which sender misbehaves.
type Repairs uint16

// The repairs Parse records.
const (
	RepairLF                  Repairs = 1 << iota // LF alone used as a segment terminator
	RepairCRLF                                    // CRLF used as a segment terminator
	RepairFinalTerminator                         // last segment had no terminator
	RepairBlankSegments                           // empty (or whitespace-only) segments skipped
	RepairBOM                                     // a UTF-8 byte order mark before MSH
	RepairShortEncodingChars                      // MSH-2 of 3 characters (reference §2.2)
	RepairMissingProcessingID                     // MSH-11 empty (reference §4.6)
	RepairMissingVersion                          // MSH-12 empty (reference §4.6)
	RepairLeadingJunk                             // CR, LF, space or NUL before MSH
)

// Names returns the snake_case names of the repairs in r, in bit order. The
// set of names is closed, so they can be metric labels.
func (r Repairs) Names() []string {
	var names []string
	for i := 0; r>>i != 0; i++ {
		if r&(1<<i) != 0 {
			names = append(names, repairName(Repairs(1<<i)))
		}
	}
	return names
}

func repairName(r Repairs) string {
	switch r {
	case RepairLF:
		return "lf"
	case RepairCRLF:
		return "crlf"
	case RepairFinalTerminator:
		return "final_terminator"
	case RepairBlankSegments:
		return "blank_segments"
	case RepairBOM:
		return "bom"
	case RepairShortEncodingChars:
		return "short_encoding_chars"
	case RepairMissingProcessingID:
		return "missing_processing_id"
	case RepairMissingVersion:
		return "missing_version"
	case RepairLeadingJunk:
		return "leading_junk"
	}
	return "unknown"
}

// Options tune parsing.
type Options struct {
	// CharsetFallback names the charset used to decode a message whose MSH-18
	// is absent or unknown and whose bytes are not valid UTF-8 (reference §8).
	// "" or an unknown name means "windows-1252", a superset of printable
	// ISO-8859-1.
	CharsetFallback string
}

// seg is one segment: byte offsets into raw, or an edited copy.
type seg struct {
	gap   int32 // first byte of the skipped bytes before the segment (BOM, blank lines)
	start int32 // first byte of the segment ID
	end   int32 // one past the last content byte
	term  int32 // one past the terminator; == end when the terminator is missing
	edit  int32 // 0: bytes are raw[start:end]; n > 0: bytes are edits[n-1], written anew
}

// inlineSegs segments are stored in the Message itself: a typical ADT or ORU
// then costs no allocation beyond the Message.
const inlineSegs = 24

// A Message is a lazy, zero-copy view over one ER7-encoded HL7 v2 message.
// Parse records the delimiters and the segment spans; fields are found by
// scanning when a path is read. GetRaw results alias the raw bytes: they must
// not be modified, and the raw bytes must not change while the Message is in
// use. Set, SetRaw and Delete keep edited segments apart and never write to
// the raw bytes. A Message is not safe for concurrent use when one goroutine
// edits it; concurrent reads are safe.
type Message struct {
	raw     []byte
	delims  Delimiters
	repairs Repairs
	charset string
	tail    int32 // start of the bytes after the last segment's terminator
	edited  bool
	segs    []seg
	edits   [][]byte
	inline  [inlineSegs]seg
}

// Parse parses raw with default Options. See ParseWithOptions.
func Parse(raw []byte) (*Message, error) { return ParseWithOptions(raw, Options{}) }

// ParseWithOptions checks the structure of raw and records its segments. It
// skips a UTF-8 BOM and CR, LF, space or NUL before MSH; accepts CR, LF and
// CRLF terminators, blank segments and a missing final terminator, recording
// each repair. It checks that the first segment is MSH with usable delimiters;
// it does not check MSH-9 or MSH-10 (ValidateHeader does), so a NAK can still
// be built from the result. raw is not copied and must stay unchanged while
// the Message is used. Errors: *ParseError wrapping ErrNoMSH,
// ErrBadDelimiters or ErrTooLarge.
func ParseWithOptions(raw []byte, o Options) (*Message, error) {
	if len(raw) > math.MaxInt32 {
		return nil, &ParseError{Err: ErrTooLarge}
	}
	off, rep := skipLeading(raw)
	body := raw[off:]
	if len(body) < 3 || body[0] != 'M' || body[1] != 'S' || body[2] != 'H' {
		return nil, &ParseError{Segment: segmentID(body), SegIndex: 1, Offset: off, Err: ErrNoMSH}
	}
	d, _, drep, field, ok := parseDelims(body)
	if !ok {
		o := off + 3
		if field == 2 {
			o++
		}
		return nil, &ParseError{Segment: "MSH", SegIndex: 1, Field: field, Offset: o, Err: ErrBadDelimiters}
	}
	m := &Message{raw: raw, delims: d, repairs: rep | drep}
	m.segs = m.inline[:0]
	m.split(off)
	m.inspectHeader(o)
	return m, nil
}

// skipLeading returns the offset of the first byte after a UTF-8 BOM and any
// CR, LF, space, tab or NUL, and the repairs that skipping represents.
func skipLeading(raw []byte) (int, Repairs) {
	var rep Repairs
	off := 0
	if len(raw) >= 3 && raw[0] == 0xEF && raw[1] == 0xBB && raw[2] == 0xBF {
		off, rep = 3, RepairBOM
	}
	start := off
	for off < len(raw) && isJunk(raw[off]) {
		off++
	}
	if off > start {
		rep |= RepairLeadingJunk
	}
	return off, rep
}

func isJunk(c byte) bool { return c == '\r' || c == '\n' || c == ' ' || c == '\t' || c == 0 }

// segmentID returns the segment ID at the start of b when it looks like one
// (three uppercase letters or digits, the first a letter), else "". IDs are
// not patient data; arbitrary bytes might be.
func segmentID(b []byte) string {
	if len(b) < 3 || b[0] < 'A' || b[0] > 'Z' {
		return ""
	}
	for _, c := range b[1:3] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return ""
		}
	}
	if len(b) > 3 && isAlnum(b[3]) {
		return ""
	}
	return string(b[:3])
}

// split records the segments of m.raw from off on.
func (m *Message) split(off int) {
	raw := m.raw
	n := len(raw)
	hasLF := bytes.IndexByte(raw[off:], '\n') >= 0
	gap := 0
	last := -1
	segs := m.segs // appended locally: one slice-header store at the end, not one per segment
	rep := m.repairs
	for i := off; i < n; {
		var j int
		if hasLF {
			j = i
			for j < n && raw[j] != '\r' && raw[j] != '\n' {
				j++
			}
		} else if k := bytes.IndexByte(raw[i:], '\r'); k >= 0 {
			j = i + k
		} else {
			j = n
		}
		t := j
		var trep Repairs
		if j < n {
			t = j + 1
			if raw[j] == '\n' {
				trep = RepairLF
			} else if t < n && raw[t] == '\n' {
				t++
				trep = RepairCRLF
			}
		}
		if isBlank(raw[i:j]) {
			rep |= RepairBlankSegments
			i = t
			continue
		}
		rep |= trep
		segs = append(segs, seg{gap: int32(gap), start: int32(i), end: int32(j), term: int32(t)})
		last = len(segs) - 1
		gap = t
		i = t
	}
	if last >= 0 && segs[last].term == segs[last].end {
		rep |= RepairFinalTerminator
	}
	m.segs, m.repairs, m.tail = segs, rep, int32(gap)
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if !isJunk(c) {
			return false
		}
	}
	return true
}

// segBytes returns the content of segment i (no terminator).
func (m *Message) segBytes(i int) []byte {
	s := &m.segs[i]
	if s.edit > 0 {
		return m.edits[s.edit-1]
	}
	return m.raw[s.start:s.end]
}

// Raw returns the bytes the message was parsed from, unchanged by edits.
func (m *Message) Raw() []byte { return m.raw }

// Delimiters returns the delimiters declared in MSH-1/MSH-2.
func (m *Message) Delimiters() Delimiters { return m.delims }

// Repairs returns the deviations Parse tolerated.
func (m *Message) Repairs() Repairs { return m.repairs }

// Charset returns the canonical name of the charset used to decode values:
// MSH-18 when it names a known charset (aliases accepted), else "UTF-8" when
// the bytes are valid UTF-8, else the fallback of Options (reference §8).
func (m *Message) Charset() string { return m.charset }

// SegmentCount returns the number of segments (blank ones are not counted).
func (m *Message) SegmentCount() int { return len(m.segs) }

// SegmentName returns the ID of segment i (0-based): the bytes before its
// first field separator. It returns "" when i is out of range.
func (m *Message) SegmentName(i int) string {
	if i < 0 || i >= len(m.segs) {
		return ""
	}
	return string(segName(m.segBytes(i), m.delims.Field))
}

func segName(s []byte, f byte) []byte {
	if i := bytes.IndexByte(s, f); i >= 0 {
		return s[:i]
	}
	return s
}

// Clone returns an independent copy of m (raw bytes included) for editing.
func (m *Message) Clone() *Message {
	c := &Message{
		raw:     bytes.Clone(m.raw),
		delims:  m.delims,
		repairs: m.repairs,
		charset: m.charset,
		tail:    m.tail,
		edited:  m.edited,
	}
	if len(m.segs) <= inlineSegs {
		c.segs = c.inline[:len(m.segs)]
		copy(c.segs, m.segs)
	} else {
		c.segs = append([]seg(nil), m.segs...)
	}
	if len(m.edits) > 0 {
		c.edits = make([][]byte, len(m.edits))
		for i, e := range m.edits {
			c.edits[i] = bytes.Clone(e)
		}
	}
	return c
}

// Encode returns the message as ER7 bytes. An unmodified message encodes to
// Raw() exactly, whatever its terminators (the returned slice is Raw() itself:
// do not modify it). In an edited message, untouched segments keep their
// bytes and terminators; edited and added segments are written anew with CR.
func (m *Message) Encode() []byte {
	if !m.edited {
		return m.raw
	}
	out := make([]byte, 0, len(m.raw)+64)
	needCR := false
	for i := range m.segs {
		s := &m.segs[i]
		if needCR {
			out = append(out, '\r')
			needCR = false
		}
		if s.start >= 0 {
			out = append(out, m.raw[s.gap:s.start]...)
		}
		if s.edit > 0 {
			out = append(out, m.edits[s.edit-1]...)
			out = append(out, '\r')
			continue
		}
		out = append(out, m.raw[s.start:s.term]...)
		needCR = s.term == s.end
	}
	if !needCR && len(m.segs) > 0 && m.segs[len(m.segs)-1].edit == 0 {
		// Trailing bytes after the last original segment (blank lines) stay,
		// as long as that segment is still last.
		out = append(out, m.raw[m.tail:]...)
	}
	return out
}

// EncodeCR returns the message with every segment terminated by a single CR
// and nothing before MSH or between segments: the form for outbound copies. A
// message that is already in that form and unmodified returns Raw() itself.
func (m *Message) EncodeCR() []byte {
	if !m.edited && m.isCanonical() {
		return m.raw
	}
	out := make([]byte, 0, len(m.raw)+64)
	for i := range m.segs {
		out = append(out, m.segBytes(i)...)
		out = append(out, '\r')
	}
	return out
}

// isCanonical reports whether raw is exactly CR-terminated segments.
func (m *Message) isCanonical() bool {
	if int(m.tail) != len(m.raw) {
		return false
	}
	for i := range m.segs {
		s := &m.segs[i]
		if s.gap != s.start || s.term != s.end+1 || m.raw[s.end] != '\r' {
			return false
		}
	}
	return true
}

// ContentHash returns the SHA-256 of the message's segments with MSH-7
// removed (its field separators kept) and every segment terminated by CR: a
// resend with a new timestamp or other terminators hashes the same
// (design promise 3). Edits are included.
func (m *Message) ContentHash() [32]byte {
	h := sha256.New()
	f := m.delims.Field
	for i := range m.segs {
		b := m.segBytes(i)
		if isHeaderName(segName(b, f)) && len(b) >= 4 && b[3] == f {
			// MSH-7 is parts[6] of the split on the field separator.
			if a, e, ok := partBounds(b, f, 6); ok {
				h.Write(b[:a])
				b = b[e:]
			}
		}
		h.Write(b)
		h.Write([]byte{'\r'})
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// partBounds returns the bounds of parts[k] of s split on sep.
func partBounds(s []byte, sep byte, k int) (int, int, bool) {
	a := 0
	for ; k > 0; k-- {
		i := bytes.IndexByte(s[a:], sep)
		if i < 0 {
			return 0, 0, false
		}
		a += i + 1
	}
	e := len(s)
	if i := bytes.IndexByte(s[a:], sep); i >= 0 {
		e = a + i
	}
	return a, e, true
}
