package hl7

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// AckCode is an MSA-1 acknowledgment code (table 0008).
type AckCode string

// Acknowledgment codes: original mode AA/AE/AR, enhanced-mode accept
// acknowledgments CA/CE/CR.
const (
	AA AckCode = "AA" // application accept
	AE AckCode = "AE" // application error
	AR AckCode = "AR" // application reject
	CA AckCode = "CA" // commit accept
	CE AckCode = "CE" // commit error
	CR AckCode = "CR" // commit reject
)

// Positive reports whether c accepts the message (AA or CA).
func (c AckCode) Positive() bool { return c == AA || c == CA }

// ErrorCode is an HL7 table 0357 message error condition code.
type ErrorCode int

// Table 0357 codes a relay uses (reference §5.5).
const (
	ErrCodeSegmentSequence         ErrorCode = 100
	ErrCodeRequiredFieldMissing    ErrorCode = 101
	ErrCodeDataType                ErrorCode = 102
	ErrCodeTableValue              ErrorCode = 103
	ErrCodeValueTooLong            ErrorCode = 104 // v2.7+ only: use ValueTooLongCode
	ErrCodeUnsupportedMessageType  ErrorCode = 200
	ErrCodeUnsupportedEvent        ErrorCode = 201
	ErrCodeUnsupportedProcessingID ErrorCode = 202
	ErrCodeUnsupportedVersion      ErrorCode = 203
	ErrCodeRecordLocked            ErrorCode = 206
	ErrCodeInternal                ErrorCode = 207
)

// Text returns the code's table 0357 text ("Application internal error").
func (c ErrorCode) Text() string {
	switch c {
	case 0:
		return "Message accepted"
	case 100:
		return "Segment sequence error"
	case 101:
		return "Required field missing"
	case 102:
		return "Data type error"
	case 103:
		return "Table value not found"
	case 104:
		return "Value too long"
	case 198:
		return "Non-conformant cardinality"
	case 199:
		return "Other HL7 error"
	case 200:
		return "Unsupported message type"
	case 201:
		return "Unsupported event code"
	case 202:
		return "Unsupported processing id"
	case 203:
		return "Unsupported version id"
	case 204:
		return "Unknown key identifier"
	case 205:
		return "Duplicate key identifier"
	case 206:
		return "Application record locked"
	case 207:
		return "Application internal error"
	}
	return "Error"
}

// ValueTooLongCode returns the code for an oversized frame or value: 104 for
// v2.7 and later, 207 before, where 104 does not exist (reference §5.5, §5.7).
func ValueTooLongCode(version string) ErrorCode {
	if versionAtLeast(version, 2, 7) {
		return ErrCodeValueTooLong
	}
	return ErrCodeInternal
}

// An AckError describes the ERR segment of a negative acknowledgment.
type AckError struct {
	Code       ErrorCode
	Location   string // ERR-2 (v2.5+) or ERR-1 location, components joined by '^': "MSH^1^10"; "" for none
	Diagnostic string // ERR-7 (v2.5+): technical detail for the sender's support staff; never patient data
	// UserMessage is ERR-8 (v2.5+): text for an end user; usually empty.
	UserMessage string
}

// AckOptions carry what the acknowledgment needs beyond the inbound message.
type AckOptions struct {
	Now            time.Time // MSH-7; zero means time.Now()
	ControlID      string    // the ACK's own MSH-10 (and BHS-11/FHS-11 of a batch ACK); "" derives one from Now
	App, Facility  string    // listener identity: ACK MSH-3/4 when the inbound MSH-5/6 are empty
	DefaultVersion string    // ACK MSH-12 when the inbound version is not a known 2.x; "" means "2.5.1"
	Text           string    // MSA-3 on negative ACKs; "" means the error code's text
	Error          *AckError // ERR on negative ACKs; nil there means 207
}

// defaultAckVersion is used when neither the inbound message nor the options
// give a usable version.
const defaultAckVersion = "2.5.1"

// KnownVersion reports whether v is a version of table 0104 (2.0 to 2.9.1).
func KnownVersion(v string) bool {
	_, ok := knownVersion([]byte(v))
	return ok
}

// knownVersion returns v as a constant string when it is in table 0104, so
// building an ACK does not allocate for it.
func knownVersion(v []byte) (string, bool) {
	switch string(v) {
	case "2.0":
		return "2.0", true
	case "2.0D":
		return "2.0D", true
	case "2.1":
		return "2.1", true
	case "2.2":
		return "2.2", true
	case "2.3":
		return "2.3", true
	case "2.3.1":
		return "2.3.1", true
	case "2.4":
		return "2.4", true
	case "2.5":
		return "2.5", true
	case "2.5.1":
		return "2.5.1", true
	case "2.6":
		return "2.6", true
	case "2.7":
		return "2.7", true
	case "2.7.1":
		return "2.7.1", true
	case "2.8":
		return "2.8", true
	case "2.8.1":
		return "2.8.1", true
	case "2.8.2":
		return "2.8.2", true
	case "2.9":
		return "2.9", true
	case "2.9.1":
		return "2.9.1", true
	}
	return "", false
}

// AckVersion returns the version an ACK to a message of version inbound
// carries: inbound when it is a known 2.x, else def ("" means 2.5.1).
func AckVersion(inbound, def string) string { return ackVersion([]byte(inbound), def) }

func ackVersion(inbound []byte, def string) string {
	if v, ok := knownVersion(inbound); ok {
		return v
	}
	if def == "" {
		return defaultAckVersion
	}
	return def
}

// versionAtLeast compares the major.minor of a version string.
func versionAtLeast(v string, major, minor int) bool {
	maj, rest, _ := strings.Cut(strings.TrimSpace(v), ".")
	mnr, _, _ := strings.Cut(rest, ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(strings.TrimSuffix(mnr, "D"))
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || a == major && b >= minor
}

// ackSource is what an acknowledgment copies from the inbound header: raw
// field bytes, already valid in delims.
type ackSource struct {
	delims                               Delimiters
	sendApp, sendFac, rcvApp, rcvFac     []byte
	trigger, controlID, procID, charsets []byte
	version                              []byte // MSH-12.1, trimmed
}

func sourceOf(m *Message) ackSource {
	d := m.delims
	var h headerFields
	splitHeader(m.segBytes(0), d.Field, &h)
	f := func(n int) []byte { return h[n] }
	return ackSource{
		delims:    d,
		sendApp:   f(3),
		sendFac:   f(4),
		rcvApp:    f(5),
		rcvFac:    f(6),
		trigger:   nth(nth(f(9), d.Repetition, 1), d.Component, 2),
		controlID: f(10),
		procID:    f(11),
		charsets:  f(18),
		version:   bytes.TrimSpace(comp1(f(12), d)),
	}
}

// NewACK builds the acknowledgment of m (reference §5.3): the same
// delimiters; MSH-3/4 = inbound MSH-5/6 (or o.App/o.Facility when empty) and
// MSH-5/6 = inbound MSH-3/4, whole fields; MSH-7 = o.Now; MSH-9 by version
// (§4.3); MSH-10 = o.ControlID; MSH-11 copied ("P" when empty); MSH-12 =
// AckVersion; MSH-18 copied. MSA-2 is the inbound MSH-10 verbatim. A
// negative code adds MSA-3 and ERR (ERR-1 form before v2.5, ERR-2/3/4/7/8
// from v2.5). It works on messages that fail ValidateHeader; a nil m gets
// the NAK of a payload without MSH.
func NewACK(m *Message, code AckCode, o AckOptions) []byte {
	if m == nil {
		return buildACK(ackSource{delims: DefaultDelimiters}, code, o)
	}
	return buildACK(sourceOf(m), code, o)
}

func buildACK(src ackSource, code AckCode, o AckOptions) []byte {
	d := src.delims
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	version := ackVersion(src.version, o.DefaultVersion)
	b := make([]byte, 0, 256)
	b = append(b, "MSH"...)
	b = append(b, d.Field)
	b = d.appendEncoding(b)
	b = append(b, d.Field)
	b = appendOr(b, src.rcvApp, o.App, d)
	b = append(b, d.Field)
	b = appendOr(b, src.rcvFac, o.Facility, d)
	b = append(b, d.Field)
	b = append(b, src.sendApp...)
	b = append(b, d.Field)
	b = append(b, src.sendFac...)
	b = append(b, d.Field)
	b = appendTS(b, now)
	b = append(b, d.Field, d.Field)
	b = appendAckType(b, src.trigger, version, d)
	b = append(b, d.Field)
	b = appendControlID(b, o, now, d)
	b = append(b, d.Field)
	if len(src.procID) > 0 {
		b = append(b, src.procID...)
	} else {
		b = append(b, 'P')
	}
	b = append(b, d.Field)
	b = append(b, version...)
	if len(src.charsets) > 0 {
		for i := 13; i <= 18; i++ {
			b = append(b, d.Field)
		}
		b = append(b, src.charsets...)
	}
	b = append(b, '\r')

	b = append(b, "MSA"...)
	b = append(b, d.Field)
	b = append(b, code...)
	b = append(b, d.Field)
	b = append(b, src.controlID...)
	if code.Positive() {
		return append(b, '\r')
	}
	e := o.Error
	if e == nil {
		e = &AckError{Code: ErrCodeInternal}
	}
	text := o.Text
	if text == "" {
		text = e.Code.Text()
	}
	b = append(b, d.Field)
	b = appendText(b, text, d)
	b = append(b, '\r')
	return appendERR(b, e, version, d)
}

// appendOr appends raw when it is not empty, else the escaped text alt.
func appendOr(b, raw []byte, alt string, d Delimiters) []byte {
	if len(raw) > 0 {
		return append(b, raw...)
	}
	return appendText(b, alt, d)
}

// appendText appends free text escaped with d. Without an escape character,
// delimiter characters are replaced by spaces: the text is informative only.
func appendText(b []byte, s string, d Delimiters) []byte {
	if d.Escape != 0 {
		return escapeAppend(b, s, d)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if escapeCode(c, d) != 0 {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// appendTS appends t as an HL7 DTM with seconds and zone offset.
func appendTS(b []byte, t time.Time) []byte {
	return t.AppendFormat(b, "20060102150405-0700")
}

func appendControlID(b []byte, o AckOptions, now time.Time, d Delimiters) []byte {
	if o.ControlID != "" {
		return appendText(b, o.ControlID, d)
	}
	// Unique enough for a fallback: nanosecond time. Callers inject their own.
	return now.UTC().AppendFormat(b, "20060102150405.000000000")
}

// appendAckType appends the ACK's MSH-9 (reference §4.3): ACK^<trigger>^ACK
// from v2.4, ACK^<trigger> for 2.2 to 2.3.1, ACK alone for 2.0/2.1 or when
// the inbound trigger is empty.
func appendAckType(b, trigger []byte, version string, d Delimiters) []byte {
	b = append(b, "ACK"...)
	if len(trigger) == 0 || !versionAtLeast(version, 2, 2) {
		return b
	}
	b = append(b, d.Component)
	b = append(b, trigger...)
	if versionAtLeast(version, 2, 4) {
		b = append(b, d.Component)
		b = append(b, "ACK"...)
	}
	return b
}

// appendERR appends the ERR segment in the form of version (reference §5.4).
func appendERR(b []byte, e *AckError, version string, d Delimiters) []byte {
	loc := strings.Split(e.Location, "^")
	if e.Location == "" {
		loc = nil
	}
	code := strconv.AppendInt(nil, int64(e.Code), 10)
	b = append(b, "ERR"...)
	b = append(b, d.Field)
	if !versionAtLeast(version, 2, 5) {
		// ERR-1 (ELD): segment^sequence^field^code&text&HL70357.
		for i := 0; i < 3; i++ {
			if i < len(loc) {
				b = appendText(b, loc[i], d)
			}
			b = append(b, d.Component)
		}
		b = append(b, code...)
		if d.Subcomponent != 0 {
			b = append(b, d.Subcomponent)
			b = appendText(b, e.Code.Text(), d)
			b = append(b, d.Subcomponent)
			b = append(b, "HL70357"...)
		}
		return append(b, '\r')
	}
	// ERR-1 empty; ERR-2 location; ERR-3 code^text^HL70357; ERR-4 E;
	// ERR-7 diagnostic; ERR-8 user message.
	b = append(b, d.Field)
	for i, c := range loc {
		if i > 0 {
			b = append(b, d.Component)
		}
		b = appendText(b, c, d)
	}
	b = append(b, d.Field)
	b = append(b, code...)
	b = append(b, d.Component)
	b = appendText(b, e.Code.Text(), d)
	b = append(b, d.Component)
	b = append(b, "HL70357"...)
	b = append(b, d.Field, 'E')
	if e.Diagnostic != "" || e.UserMessage != "" {
		b = append(b, d.Field, d.Field, d.Field)
		b = appendText(b, e.Diagnostic, d)
		if e.UserMessage != "" {
			b = append(b, d.Field)
			b = appendText(b, e.UserMessage, d)
		}
	}
	return append(b, '\r')
}

// NewNAK builds a negative acknowledgment from raw bytes that may not parse at
// all (reference §6). When raw parses it is NewACK. Otherwise the MSH line is
// salvaged: its field separator and MSH-2 when usable (else |^~\&), MSH-3..6,
// MSH-9.2, MSH-10, MSH-11, MSH-12 and MSH-18 by position; copied values are
// re-escaped when the delimiters had to change. With no MSH at all (or a batch
// header without one) the NAK is built from o alone, MSA-2 empty. code is
// used as given.
func NewNAK(raw []byte, code AckCode, o AckOptions) []byte {
	off, _ := skipLeading(raw)
	body := raw[off:]
	if hasID(body, "MSH") {
		if m, err := Parse(body); err == nil {
			return NewACK(m, code, o)
		}
		return buildACK(salvage(body), code, o)
	}
	if hasID(body, "BHS") || hasID(body, "FHS") {
		// A broken batch: answer for its first message when it has one.
		if i := indexSegment(body, "MSH"); i >= 0 {
			if m, err := Parse(lineAt(body, i)); err == nil {
				return NewACK(m, code, o)
			}
			return buildACK(salvage(body[i:]), code, o)
		}
		// BHS/FHS share MSH's positions for 1-7 only: keep the delimiters
		// and the applications.
		src := salvage(body)
		src.controlID, src.trigger, src.procID, src.charsets, src.version = nil, nil, nil, nil, nil
		return buildACK(src, code, o)
	}
	return buildACK(ackSource{delims: DefaultDelimiters}, code, o)
}

func hasID(b []byte, id string) bool {
	return len(b) >= 3 && string(b[:3]) == id && (len(b) == 3 || !isAlnum(b[3]))
}

// indexSegment returns the offset of the first segment with the given ID
// that starts a line in b, or -1.
func indexSegment(b []byte, id string) int {
	for i := 0; i < len(b); {
		if hasID(b[i:], id) && (i == 0 || b[i-1] == '\r' || b[i-1] == '\n') {
			return i
		}
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			return -1
		}
		i += j + 1
	}
	return -1
}

// lineAt returns b from i to the end of its line.
func lineAt(b []byte, i int) []byte {
	b = b[i:]
	if j := bytes.IndexAny(b, "\r\n"); j >= 0 {
		return b[:j]
	}
	return b
}

// salvage picks header fields by position from a header line whose
// delimiters may be unusable.
func salvage(body []byte) ackSource {
	line := lineAt(body, 0)
	src := ackSource{delims: DefaultDelimiters}
	if len(line) < 4 || !isDelimByte(line[3]) {
		return src
	}
	f := line[3]
	d, _, _, _, ok := parseDelims(line)
	if ok {
		src.delims = d
	}
	comp := byte('^')
	if ok {
		comp = d.Component
	} else if len(line) > 4 && line[4] != f && isDelimByte(line[4]) {
		comp = line[4]
	}
	field := func(n int) []byte {
		v := nth(line, f, n) // MSH-n is parts[n-1], the n-th element
		if ok || v == nil {
			return v
		}
		// Delimiters changed: make the copy text in the default set.
		return escapeAppend(nil, string(v), src.delims)
	}
	src.sendApp, src.sendFac, src.rcvApp, src.rcvFac = field(3), field(4), field(5), field(6)
	src.controlID, src.procID, src.charsets = field(10), field(11), field(18)
	if t := nth(nth(line, f, 9), comp, 2); t != nil {
		if ok {
			src.trigger = t
		} else {
			src.trigger = escapeAppend(nil, string(t), src.delims)
		}
	}
	v := nth(line, f, 12)
	if ok {
		v = comp1(v, d)
	} else {
		v = nth(v, comp, 1)
	}
	src.version = bytes.TrimSpace(v)
	return src
}
