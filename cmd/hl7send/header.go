package main

import (
	"bytes"
)

// header is what hl7send shows of a message it sends, read straight from the MSH line's
// bytes so that it works for messages a parser would refuse too.
type header struct {
	Type      string // MSH-9 as written, e.g. "ADT^A01^ADT_A01"
	ControlID string // MSH-10 as written
}

// mshLine returns the first MSH segment of msg (without its terminator) and its offset.
// A segment starts at the beginning of msg or after a CR or LF.
func mshLine(msg []byte) (line []byte, off int, ok bool) {
	for off < len(msg) {
		end := bytes.IndexAny(msg[off:], "\r\n")
		if end < 0 {
			end = len(msg) - off
		}
		if l := msg[off : off+end]; len(l) > 4 && isSegment(l, "MSH") {
			return l, off, true
		}
		off += end + 1
	}
	return nil, 0, false
}

// fieldSpan returns the byte range [start, end) of MSH-n (n >= 2) within an MSH line, and
// whether the line has that field at all.
func fieldSpan(line []byte, n int) (start, end int, ok bool) {
	sep := line[3]
	start = 4 // MSH-2 starts after "MSH" and the separator (MSH-1)
	for f := 2; f < n; f++ {
		i := bytes.IndexByte(line[start:], sep)
		if i < 0 {
			return 0, 0, false
		}
		start += i + 1
	}
	end = len(line)
	if i := bytes.IndexByte(line[start:], sep); i >= 0 {
		end = start + i
	}
	return start, end, true
}

func readHeader(msg []byte) header {
	line, _, ok := mshLine(msg)
	if !ok {
		return header{}
	}
	var h header
	if s, e, ok := fieldSpan(line, 9); ok {
		h.Type = string(line[s:e])
	}
	if s, e, ok := fieldSpan(line, 10); ok {
		h.ControlID = string(line[s:e])
	}
	return h
}

// withControlIDSuffix returns a copy of msg in which every non-empty MSH-10 has suffix
// appended (a batch sent with --raw holds several MSH segments). A message without MSH-10
// keeps its defect: rewriting it would hide what the tester wants to see refused.
func withControlIDSuffix(msg []byte, suffix string) []byte {
	out := make([]byte, 0, len(msg)+4*len(suffix))
	rest := msg
	for {
		line, off, ok := mshLine(rest)
		if !ok {
			return append(out, rest...)
		}
		s, e, ok := fieldSpan(line, 10)
		if !ok || s == e {
			out = append(out, rest[:off+len(line)]...)
		} else {
			out = append(out, rest[:off+e]...)
			out = append(out, suffix...)
			out = append(out, rest[off+e:off+len(line)]...)
		}
		rest = rest[off+len(line):]
	}
}
