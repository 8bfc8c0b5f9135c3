// Package hl7 is mllpd's HL7 v2 message model: a lazy, zero-copy parser for
// ER7 ("pipe") messages, paths with HL7's 1-based numbering, escape and
// charset handling, edits, acknowledgment (ACK/NAK) building and batch
// splitting. It imports nothing of mllpd; the protocol facts it follows are in
// docs/hl7-mllp-reference.md (cited as "reference §n").
//
// Invariants:
//   - Parse never copies the payload and never panics. It records the
//     delimiters and the segment spans; fields are found by scanning when a
//     path is read. GetRaw never allocates and returns a view into the
//     payload: do not modify it, and keep the payload unchanged while its
//     Message is in use.
//   - Parse checks structure only (an MSH first, usable delimiters).
//     ValidateHeader is the separate check of MSH-9 and MSH-10, so a NAK can
//     be built for a message that lacks them; NewNAK works from bytes that do
//     not parse at all.
//   - Tolerated deviations (LF or CRLF terminators, missing final CR, blank
//     segments, a BOM, a 3-character MSH-2, missing MSH-11/12) are recorded
//     as Repairs, never silently normalised: Encode of an unmodified message
//     returns its payload byte for byte. Edited segments are written anew
//     with CR; untouched ones keep their bytes.
//   - Errors say where (segment, field, byte offset) and wrap a sentinel;
//     they never contain field values, which may be patient data.
//   - Raw reads return the wire bytes; decoded reads (Get) resolve escapes
//     and convert the message's charset (MSH-18, or UTF-8 when valid, or a
//     fallback) to UTF-8. An unknown or mangled MSH-18 falls back, it never
//     fails a message or its ACK.
//   - "" (two double quotes) is HL7's null and is kept distinct from an empty
//     or absent value (IsNull, SetNull).
//
// Paths use HL7's 1-based numbering ("PID-3[2].1", "OBX[3]-5", "MSH-9.2") and
// are parsed once into a Path. A path without a repetition reads the first
// one; Set on a whole field (no repetition, no component) replaces every
// repetition; FieldRaw reads every repetition for copying.
//
// Frames go through SplitBatch: a single message, a headerless run of MSH
// messages, or an FHS/BHS batch, each message a view into the frame.
// NewACK, NewNAK and NewBatchACK build replies per reference §5-§7; which
// code and which table 0357 error a situation gets is the caller's policy
// (reference §5.7), except ValueTooLongCode and AckVersion, which depend on
// the version only.
//
// A Message is safe for concurrent reads; editing needs exclusive access.
package hl7
