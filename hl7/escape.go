package hl7

import "bytes"

// Escape returns s with every delimiter character replaced by its escape
// sequence (\F\ \S\ \T\ \R\ \E\, \P\ for the truncation character) and control
// characters other than TAB written as \Xhh\ (CR as \X0D\): a value can
// neither split a segment nor carry the MLLP framing bytes 0x0B and 0x1C. With no
// escape character in d (a 3-character MSH-2), s is returned unchanged: use
// Message.Set, which reports ErrCannotEscape instead.
func Escape(s string, d Delimiters) string {
	if d.Escape == 0 || !needsEscape(s, d) {
		return s
	}
	return string(escapeAppend(make([]byte, 0, len(s)+8), s, d))
}

func needsEscape(s string, d Delimiters) bool {
	for i := 0; i < len(s); i++ {
		if escapeCode(s[i], d) != 0 {
			return true
		}
	}
	return false
}

// escapeCode returns the letter of the escape sequence for c, 'X' for a
// control character, or 0 when c needs none.
func escapeCode(c byte, d Delimiters) byte {
	switch {
	case c < ' ' && c != '\t' || c == 0x7f:
		return 'X'
	case c == d.Field:
		return 'F'
	case c == d.Component:
		return 'S'
	case c == d.Subcomponent && c != 0:
		return 'T'
	case c == d.Repetition:
		return 'R'
	case c == d.Escape && c != 0:
		return 'E'
	case c == d.Truncation && c != 0:
		return 'P'
	}
	return 0
}

func escapeAppend(dst []byte, s string, d Delimiters) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch code := escapeCode(c, d); code {
		case 0:
			dst = append(dst, c)
		case 'X':
			dst = append(dst, d.Escape, 'X', hex[c>>4], hex[c&15], d.Escape)
		default:
			dst = append(dst, d.Escape, code, d.Escape)
		}
	}
	return dst
}

// Unescape returns raw with the delimiter escapes \F\ \S\ \T\ \R\ \E\ \P\ and
// hex escapes \Xhh..\ resolved. Formatting (\H\ \N\ \.br\ ...), local (\Z..\)
// and charset (\C..\ \M..\) escapes, unknown sequences and a lone escape
// character are kept verbatim (reference §3). The result is a new slice.
func Unescape(raw []byte, d Delimiters) []byte {
	if d.Escape == 0 || bytes.IndexByte(raw, d.Escape) < 0 {
		return append([]byte(nil), raw...)
	}
	return unescapeAppend(make([]byte, 0, len(raw)), raw, d)
}

// RenderFormatted is Unescape plus the FT formatting commands rendered as
// plain text (reference §3, case 38): \.br\ is a line break, \.sp<n>\ n line
// breaks (one without n), \.sk<n>\, \.in<n>\ and \.ti<n>\ n spaces; \H\ \N\
// \.fi\ \.nf\ \.ce\ are dropped. Local and charset escapes stay verbatim. Use
// it for display (JSON, logs with bodies); forwarding uses the raw bytes.
func RenderFormatted(raw []byte, d Delimiters) []byte {
	if d.Escape == 0 || bytes.IndexByte(raw, d.Escape) < 0 {
		return append([]byte(nil), raw...)
	}
	return unescape(make([]byte, 0, len(raw)), raw, d, true)
}

func unescapeAppend(dst, raw []byte, d Delimiters) []byte { return unescape(dst, raw, d, false) }

// render appends the plain-text form of formatting command seq (without its
// escape characters); ok is false for a sequence that is not one.
func render(dst, seq []byte) ([]byte, bool) {
	switch string(seq) {
	case "H", "N", ".fi", ".nf", ".ce":
		return dst, true
	case ".br":
		return append(dst, '\n'), true
	}
	if len(seq) < 3 || seq[0] != '.' {
		return dst, false
	}
	n := 1
	if arg := seq[3:]; len(arg) > 0 {
		if len(arg) > 3 {
			return dst, false
		}
		n = 0
		for _, c := range arg {
			if c < '0' || c > '9' {
				return dst, false
			}
			n = n*10 + int(c-'0')
		}
	}
	switch string(seq[1:3]) {
	case "sp":
		return append(dst, bytes.Repeat([]byte{'\n'}, n)...), true
	case "sk", "in", "ti":
		return append(dst, bytes.Repeat([]byte{' '}, n)...), true
	}
	return dst, false
}

func unescape(dst, raw []byte, d Delimiters, formatted bool) []byte {
	e := d.Escape
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, e)
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		raw = raw[i:]
		j := bytes.IndexByte(raw[1:], e)
		if j < 0 {
			return append(dst, raw...) // lone escape character: verbatim
		}
		seq := raw[1 : 1+j]
		whole := raw[:j+2]
		raw = raw[j+2:]
		if len(seq) == 1 {
			var c byte
			switch seq[0] {
			case 'F':
				c = d.Field
			case 'S':
				c = d.Component
			case 'T':
				c = d.Subcomponent
			case 'R':
				c = d.Repetition
			case 'E':
				c = d.Escape
			case 'P':
				c = d.Truncation
			}
			if c != 0 {
				dst = append(dst, c)
				continue
			}
		}
		if len(seq) >= 3 && seq[0] == 'X' && len(seq)%2 == 1 {
			if out, ok := appendHex(dst, seq[1:]); ok {
				dst = out
				continue
			}
		}
		if formatted {
			if out, ok := render(dst, seq); ok {
				dst = out
				continue
			}
		}
		dst = append(dst, whole...)
	}
	return dst
}

// appendHex decodes pairs of hex digits; ok is false (dst unchanged in
// length) when h is not valid hex.
func appendHex(dst, h []byte) ([]byte, bool) {
	for i := 0; i < len(h); i++ {
		if unhex(h[i]) < 0 {
			return dst, false
		}
	}
	for i := 0; i+1 < len(h); i += 2 {
		dst = append(dst, byte(unhex(h[i])<<4|unhex(h[i+1])))
	}
	return dst, true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
