package hl7

import "strings"

// maxControlID is the longest MSH-10 ValidateHeader accepts: 199 characters
// from v2.7 on (20 before; real senders exceed that, so the larger bound).
const maxControlID = 199

// Header holds the MSH fields ingest, routing and ACK building use. Values
// are as on the wire (escapes not resolved), so MSA-2 can echo MSH-10 exactly.
type Header struct {
	SendingApp, SendingFacility, ReceivingApp, ReceivingFacility string // whole raw fields MSH-3..6
	Timestamp                                                    string // MSH-7 raw
	Type, Event, Structure                                       string // MSH-9.1, .2, .3
	ControlID                                                    string // MSH-10 raw
	ProcessingID                                                 string // MSH-11.1
	Version                                                      string // MSH-12.1, spaces trimmed
	AcceptAckType, AppAckType                                    string // MSH-15, MSH-16
	CharsetField                                                 string // MSH-18 repetition 1 raw
}

// inspectHeader records the header repairs and resolves the charset, in one
// pass over MSH (this runs for every message on the ACK path).
func (m *Message) inspectHeader(o Options) {
	msh := m.segBytes(0)
	d := m.delims
	// MSH-n is parts[n-1]: MSH-11, MSH-12 and MSH-18 are parts 10, 11, 17.
	// A targeted loop: cheaper than splitHeader on the per-message path.
	var msh11, msh12, msh18 []byte
	part, start := 0, 0
	for i := 0; i <= len(msh) && part <= 17; i++ {
		if i < len(msh) && msh[i] != d.Field {
			continue
		}
		switch part {
		case 10:
			msh11 = msh[start:i]
		case 11:
			msh12 = msh[start:i]
		case 17:
			msh18 = msh[start:i]
		}
		part++
		start = i + 1
	}
	if len(comp1(msh11, d)) == 0 {
		m.repairs |= RepairMissingProcessingID
	}
	if len(comp1(msh12, d)) == 0 {
		m.repairs |= RepairMissingVersion
	}
	m.charset = resolveCharset(msh18, d.Repetition, m.raw, o.CharsetFallback)
}

// comp1 returns component 1 of repetition 1 of field value v.
func comp1(v []byte, d Delimiters) []byte {
	return nth(nth(v, d.Repetition, 1), d.Component, 1)
}

// Header returns the MSH fields of m. It makes one string copy of the MSH
// segment; every field is a substring of it.
func (m *Message) Header() Header {
	msh := m.segBytes(0)
	s := string(msh) // one allocation; the fields below share it
	d := m.delims
	sub := func(v []byte) string {
		if len(v) == 0 {
			return ""
		}
		off := cap(msh) - cap(v) // v aliases msh: its offset from the capacity difference
		return s[off : off+len(v)]
	}
	var h headerFields
	splitHeader(msh, d.Field, &h)
	field := func(n int) []byte { return h[n] }
	rep1 := func(n int) []byte { return nth(field(n), d.Repetition, 1) }
	msg := rep1(9)
	return Header{
		SendingApp:        sub(field(3)),
		SendingFacility:   sub(field(4)),
		ReceivingApp:      sub(field(5)),
		ReceivingFacility: sub(field(6)),
		Timestamp:         sub(field(7)),
		Type:              sub(nth(msg, d.Component, 1)),
		Event:             sub(nth(msg, d.Component, 2)),
		Structure:         sub(nth(msg, d.Component, 3)),
		ControlID:         sub(field(10)),
		ProcessingID:      sub(comp1(field(11), d)),
		Version:           strings.TrimSpace(sub(comp1(field(12), d))),
		AcceptAckType:     sub(field(15)),
		AppAckType:        sub(field(16)),
		CharsetField:      sub(rep1(18)),
	}
}

// ValidateHeader checks what an accepting listener needs beyond Parse
// (reference §5.7): MSH-9 with a message code and a trigger event, and MSH-10
// present, at most 199 characters, without control characters. The error is a
// *HeaderError carrying the table 0357 code for the NAK.
func (m *Message) ValidateHeader() error {
	msh := m.segBytes(0)
	d := m.delims
	msg := nth(fieldRaw(msh, d.Field, 9), d.Repetition, 1)
	if typ, ev := nth(msg, d.Component, 1), nth(msg, d.Component, 2); isEmptyOrNull(typ) || isEmptyOrNull(ev) {
		return &HeaderError{Field: 9, Code: ErrCodeRequiredFieldMissing, Err: ErrMissingField}
	}
	id := fieldRaw(msh, d.Field, 10)
	if isEmptyOrNull(id) {
		return &HeaderError{Field: 10, Code: ErrCodeRequiredFieldMissing, Err: ErrMissingField}
	}
	if len(id) > maxControlID {
		return &HeaderError{Field: 10, Code: ErrCodeDataType, Err: ErrMalformedField}
	}
	for _, c := range id {
		if c < ' ' || c == 0x7f {
			return &HeaderError{Field: 10, Code: ErrCodeDataType, Err: ErrMalformedField}
		}
	}
	return nil
}

func isEmptyOrNull(v []byte) bool {
	return len(v) == 0 || len(v) == 2 && v[0] == '"' && v[1] == '"'
}

// EnhancedMode reports whether the sender asked for enhanced-mode
// acknowledgments: MSH-15 or MSH-16 valued (reference §4.7, §5.2).
func (h Header) EnhancedMode() bool { return h.AcceptAckType != "" || h.AppAckType != "" }

// WantsAcceptAck applies reference §5.2's decision table for an
// enhanced-mode accept acknowledgment: AL always; NE never; ER only on error;
// SU only on success. A blank MSH-15 (with MSH-16 valued) and a value outside
// table 0155 count as AL: a sender that waits gets an answer.
func (h Header) WantsAcceptAck(success bool) bool {
	switch strings.TrimSpace(h.AcceptAckType) {
	case "NE":
		return false
	case "ER":
		return !success
	case "SU":
		return success
	}
	return true
}

// SalvageHeader reads what it can of the MSH at the start of raw (after a BOM
// and leading junk) even when Parse fails, for logs, metrics and the
// rejected log of a broken or truncated frame (reference §6): fields are
// taken by position from the MSH line, split on its field separator, and
// components on MSH-2's first character (or '^'). ok is false when raw does
// not start with MSH and a usable field separator.
func SalvageHeader(raw []byte) (h Header, ok bool) {
	off, _ := skipLeading(raw)
	body := raw[off:]
	if m, err := Parse(body); err == nil {
		return m.Header(), true
	}
	if !hasID(body, "MSH") || len(body) < 4 || !isDelimByte(body[3]) {
		return Header{}, false
	}
	line := lineAt(body, 0)
	d := Delimiters{Field: line[3], Component: '^', Repetition: '~'}
	if len(line) > 4 && line[4] != d.Field && isDelimByte(line[4]) {
		d.Component = line[4]
	}
	if len(line) > 5 && line[5] != d.Field && line[5] != d.Component && isDelimByte(line[5]) {
		d.Repetition = line[5]
	}
	var f headerFields
	splitHeader(line, d.Field, &f)
	s := func(v []byte) string { return string(v) }
	msg := nth(f[9], d.Repetition, 1)
	return Header{
		SendingApp:        s(f[3]),
		SendingFacility:   s(f[4]),
		ReceivingApp:      s(f[5]),
		ReceivingFacility: s(f[6]),
		Timestamp:         s(f[7]),
		Type:              s(nth(msg, d.Component, 1)),
		Event:             s(nth(msg, d.Component, 2)),
		Structure:         s(nth(msg, d.Component, 3)),
		ControlID:         s(f[10]),
		ProcessingID:      s(comp1(f[11], d)),
		Version:           strings.TrimSpace(s(comp1(f[12], d))),
		AcceptAckType:     s(f[15]),
		AppAckType:        s(f[16]),
		CharsetField:      s(nth(f[18], d.Repetition, 1)),
	}, true
}
