package hl7

// Delimiters are the separators a message declares in MSH-1 and MSH-2. A zero
// byte means the role is absent: Escape or Subcomponent when MSH-2 has only
// three characters, Truncation before v2.7 (MSH-2 of four characters).
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent, Truncation byte
}

// DefaultDelimiters are the recommended |^~\& used when a message declares
// none that can be read.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters returns MSH-2 as the message writes it: component,
// repetition, escape, subcomponent and, when present, truncation; a missing
// role is left out (the 3-character forms "^~&" and "^~\").
func (d Delimiters) EncodingCharacters() string {
	b := make([]byte, 0, 5)
	b = d.appendEncoding(b)
	return string(b)
}

func (d Delimiters) appendEncoding(b []byte) []byte {
	b = append(b, d.Component, d.Repetition)
	if d.Escape != 0 {
		b = append(b, d.Escape)
	}
	if d.Subcomponent != 0 {
		b = append(b, d.Subcomponent)
	}
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return b
}

// isDelimByte reports whether c may serve as a delimiter: printable ASCII,
// not a letter or digit (a segment ID must stay readable), not a space.
func isDelimByte(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !isAlnum(c)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// isHeaderName reports whether a segment ID has the MSH-1 numbering quirk.
func isHeaderName(s []byte) bool {
	if len(s) < 3 || len(s) > 3 && isAlnum(s[3]) {
		return false
	}
	switch string(s[:3]) {
	case "MSH", "BHS", "FHS":
		return true
	}
	return false
}

// parseDelims reads MSH-1 and MSH-2 (or BHS/FHS-1/2) from the start of seg, a
// header segment. It returns the delimiters, the length of MSH-2 and the
// repairs (a 3-character MSH-2). On failure field is 1 or 2.
func parseDelims(seg []byte) (d Delimiters, encLen int, rep Repairs, field int, ok bool) {
	if len(seg) < 4 || !isDelimByte(seg[3]) {
		return d, 0, 0, 1, false
	}
	d.Field = seg[3]
	enc := seg[4:]
	for i, c := range enc {
		if c == d.Field || c == '\r' || c == '\n' {
			enc = enc[:i]
			break
		}
	}
	if len(enc) < 3 || len(enc) > 5 {
		return d, len(enc), 0, 2, false
	}
	for i, c := range enc {
		if !isDelimByte(c) {
			return d, len(enc), 0, 2, false
		}
		for _, c2 := range enc[:i] {
			if c == c2 {
				return d, len(enc), 0, 2, false
			}
		}
	}
	d.Component, d.Repetition = enc[0], enc[1]
	switch len(enc) {
	case 3:
		// Real senders drop one role (reference §2.2): "^~&" keeps the
		// subcomponent separator, "^~\" the escape character.
		if enc[2] == '\\' {
			d.Escape = enc[2]
		} else {
			d.Subcomponent = enc[2]
		}
		rep = RepairShortEncodingChars
	case 4, 5:
		d.Escape, d.Subcomponent = enc[2], enc[3]
		if len(enc) == 5 {
			d.Truncation = enc[4]
		}
	}
	return d, len(enc), rep, 0, true
}
