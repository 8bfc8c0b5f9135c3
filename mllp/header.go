package mllp

import "bytes"

// This file holds the small header scan the Client needs to match a reply to
// what it sent, without importing the hl7 package (mllp is a leaf).

// controlID returns MSH-10 of an HL7 message, as written on the wire, and
// whether an MSH segment was found. Leading bytes that senders put before
// MSH (a UTF-8 BOM, CR, LF, spaces, NUL) are skipped.
func controlID(msg []byte) ([]byte, bool) {
	msg = bytes.TrimLeft(bytes.TrimPrefix(msg, []byte("\xEF\xBB\xBF")), "\r\n \x00")
	if len(msg) < 4 || string(msg[:3]) != "MSH" {
		return nil, false
	}
	// MSH-1 is the separator itself: splitting the line on it gives
	// "MSH", MSH-2, MSH-3, ... so MSH-n is at index n-1.
	return field(firstLine(msg), msg[3], 9), true
}

// ackControlID returns MSA-2 of an ACK and whether an MSA segment was found.
// The field separator is the reply's own MSH-1 ('|' if it has no MSH).
func ackControlID(reply []byte) ([]byte, bool) {
	sep := byte('|')
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(reply, []byte("\xEF\xBB\xBF")), "\r\n \x00")
	if len(trimmed) >= 4 && string(trimmed[:3]) == "MSH" {
		sep = trimmed[3]
	}
	for rest := trimmed; len(rest) > 0; {
		line := firstLine(rest)
		if len(line) >= 4 && string(line[:3]) == "MSA" && line[3] == sep {
			return field(line, sep, 2), true
		}
		rest = rest[len(line):]
		rest = bytes.TrimLeft(rest, "\r\n")
	}
	return nil, false
}

// firstLine returns b up to its first CR or LF (segment terminators as real
// senders write them).
func firstLine(b []byte) []byte {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		return b[:i]
	}
	return b
}

// field returns the i-th sep-separated element of line (0-based), or nil.
func field(line []byte, sep byte, i int) []byte {
	for ; i > 0; i-- {
		j := bytes.IndexByte(line, sep)
		if j < 0 {
			return nil
		}
		line = line[j+1:]
	}
	if j := bytes.IndexByte(line, sep); j >= 0 {
		return line[:j]
	}
	return line
}
