package hl7

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so callers
// branch with errors.Is; the typed errors below add the location.
var (
	// ErrNoMSH: the first segment (after a BOM and leading CR, LF, space or NUL)
	// is not MSH. A payload starting with BHS or FHS also gets it from Parse:
	// batches go through SplitBatch.
	ErrNoMSH = errors.New("hl7: first segment is not MSH")
	// ErrBadDelimiters: MSH-1/MSH-2 do not define usable delimiters (MSH-2 empty,
	// shorter than 3 or longer than 5 characters, repeated characters, a
	// delimiter equal to the field separator, alphanumeric or non-printable).
	ErrBadDelimiters = errors.New("hl7: unusable delimiters in MSH-1/MSH-2")
	// ErrTooLarge: the payload exceeds the 2 GiB the offsets can address.
	ErrTooLarge = errors.New("hl7: message too large")
	// ErrMissingField: a required header field is empty or absent.
	ErrMissingField = errors.New("hl7: required field missing")
	// ErrMalformedField: a header field is present but not usable (too long,
	// control characters).
	ErrMalformedField = errors.New("hl7: malformed field")
	// ErrBadPath: a path string does not follow the path syntax, or a path
	// does not fit the operation (for example Set on a whole segment).
	ErrBadPath = errors.New("hl7: bad path")
	// ErrReadOnly: MSH-1 and MSH-2 (and the whole MSH segment) cannot be
	// changed or deleted: they define the delimiters of everything else.
	ErrReadOnly = errors.New("hl7: field cannot be changed")
	// ErrNoSegment: Set addressed a segment occurrence more than one past the
	// last existing one.
	ErrNoSegment = errors.New("hl7: no such segment")
	// ErrBadValue: a raw value given to SetRaw contains a segment terminator
	// or a delimiter that would change the structure above the addressed level.
	ErrBadValue = errors.New("hl7: value would break the message structure")
	// ErrCannotEscape: a value holds a delimiter character but the message has
	// no escape character (3-character MSH-2).
	ErrCannotEscape = errors.New("hl7: value needs escaping but the message has no escape character")
	// ErrUnrepresentable: a value holds a character the message's charset
	// cannot represent.
	ErrUnrepresentable = errors.New("hl7: character not representable in the message charset")
	// ErrBatchStructure: a batch envelope is broken (see BatchError).
	ErrBatchStructure = errors.New("hl7: broken batch envelope")
)

// A ParseError reports where Parse found the message unusable. Its text names
// the segment, field and byte offset, never a field value (values may be
// patient data).
type ParseError struct {
	Segment  string // segment ID ("MSH"); "" when the bytes do not look like one
	SegIndex int    // 1-based position of the segment in the message
	Field    int    // 1-based field number (HL7 numbering); 0: the whole segment
	Offset   int    // byte offset in the raw payload
	Err      error  // ErrNoMSH, ErrBadDelimiters, ErrTooLarge
}

// Error returns the sentinel's text with the location, never a value.
func (e *ParseError) Error() string {
	loc := e.Segment
	if loc == "" {
		loc = "segment"
	}
	if e.Field > 0 {
		loc = fmt.Sprintf("%s-%d", loc, e.Field)
	}
	return fmt.Sprintf("%v at %s (segment %d, byte %d)", e.Err, loc, e.SegIndex, e.Offset)
}

// Unwrap returns the sentinel.
func (e *ParseError) Unwrap() error { return e.Err }

// A HeaderError reports an MSH field that ValidateHeader found missing or
// malformed, with the table 0357 code a NAK should carry.
type HeaderError struct {
	Field int       // 9 or 10
	Code  ErrorCode // ErrCodeRequiredFieldMissing or ErrCodeDataType
	Err   error     // ErrMissingField or ErrMalformedField
}

// Error names the field and the table 0357 code.
func (e *HeaderError) Error() string {
	return fmt.Sprintf("%v: MSH-%d (HL7 error %d)", e.Err, e.Field, int(e.Code))
}

// Unwrap returns the sentinel.
func (e *HeaderError) Unwrap() error { return e.Err }

// A BatchError reports a broken batch envelope: a BHS or FHS without any MSH,
// a second FHS, a BHS inside an open BHS, a segment outside any message, or
// segments after FTS. Per reference §7 the whole frame gets AE/100.
type BatchError struct {
	Segment  string // the offending segment's ID
	SegIndex int    // 1-based position in the frame
	Offset   int    // byte offset in the frame
	Reason   string // fixed text, no values: "second FHS", "BHS inside open batch", ...
}

// Error names the reason and where the envelope broke.
func (e *BatchError) Error() string {
	return fmt.Sprintf("%v: %s at %s (segment %d, byte %d)", ErrBatchStructure, e.Reason, e.Segment, e.SegIndex, e.Offset)
}

// Unwrap returns ErrBatchStructure.
func (e *BatchError) Unwrap() error { return ErrBatchStructure }

// A PathError reports a failed Set, SetRaw or Delete.
type PathError struct {
	Op   string // "set", "delete"
	Path string // the path (paths are config text, never values)
	Err  error
}

// Error names the operation and the path (config text, not message data).
func (e *PathError) Error() string { return fmt.Sprintf("hl7: %s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the sentinel.
func (e *PathError) Unwrap() error { return e.Err }
