package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/mllpd/mllpd/hl7"
)

// RenderJSON renders an ER7 message as JSON with decoded values (escapes
// resolved, text in UTF-8):
//
//	{"charset":"UTF-8","segments":[{"id":"PID","fields":[FIELD, ...]}, ...]}
//
// fields[i] is field i+1 (for MSH, fields[0] is MSH-1 and fields[1] MSH-2,
// both as written). Every field has the same shape, whatever its content:
// an array of repetitions, each an array of components, each an array of
// subcomponents, each a string, or null for the HL7 null "". An empty field
// is []. Trailing empty fields are not rendered.
func RenderJSON(er7 []byte) ([]byte, error) {
	m, err := hl7.Parse(er7)
	if err != nil {
		return nil, fmt.Errorf("transport: json: %w", err)
	}
	d := m.Delimiters()
	occ := map[string]int{}
	doc := jsonMessage{Charset: m.Charset(), Segments: make([]jsonSegment, 0, m.SegmentCount())}
	for _, line := range segmentLines(m) {
		name := string(line)
		if i := bytes.IndexByte(line, d.Field); i >= 0 {
			name = string(line[:i]) // as hl7 names segments
		}
		occ[name]++
		seg := jsonSegment{ID: name, Fields: []jsonField{}}
		parts := bytes.Split(line, []byte{d.Field})
		first := 1
		if name == "MSH" || name == "BHS" || name == "FHS" {
			seg.Fields = append(seg.Fields, leaf(string(d.Field)))
			if len(parts) > 1 {
				seg.Fields = append(seg.Fields, leaf(string(parts[1])))
			}
			first = 2
		}
		for i := first; i < len(parts); i++ {
			fieldNo := i
			if first == 2 {
				fieldNo = i + 1 // MSH-n is parts[n-1]
			}
			seg.Fields = append(seg.Fields, renderField(m, d, parts[i], fmt.Sprintf("%s[%d]-%d", name, occ[name], fieldNo)))
		}
		for len(seg.Fields) > 0 && len(seg.Fields[len(seg.Fields)-1]) == 0 {
			seg.Fields = seg.Fields[:len(seg.Fields)-1]
		}
		doc.Segments = append(doc.Segments, seg)
	}
	return json.Marshal(doc)
}

type jsonMessage struct {
	Charset  string        `json:"charset"`
	Segments []jsonSegment `json:"segments"`
}

type jsonSegment struct {
	ID     string      `json:"id"`
	Fields []jsonField `json:"fields"`
}

// jsonField is repetitions → components → subcomponents; nil = HL7 null.
type jsonField [][][]*string

func leaf(s string) jsonField { return jsonField{{{&s}}} }

// renderField splits raw on the delimiters for structure and reads each leaf
// through hl7's Get, which resolves escapes and converts the charset.
func renderField(m *hl7.Message, d hl7.Delimiters, raw []byte, base string) jsonField {
	if len(raw) == 0 {
		return jsonField{}
	}
	reps := bytes.Split(raw, []byte{d.Repetition})
	f := make(jsonField, len(reps))
	for r, rep := range reps {
		comps := bytes.Split(rep, []byte{d.Component})
		f[r] = make([][]*string, len(comps))
		for c, comp := range comps {
			subs := [][]byte{comp}
			if d.Subcomponent != 0 {
				subs = bytes.Split(comp, []byte{d.Subcomponent})
			}
			f[r][c] = make([]*string, len(subs))
			for s, sub := range subs {
				if string(sub) == `""` {
					continue // nil: the HL7 null
				}
				var v string
				if len(sub) > 0 {
					p := base + "[" + strconv.Itoa(r+1) + "]." + strconv.Itoa(c+1)
					if len(subs) > 1 {
						p += "." + strconv.Itoa(s+1)
					}
					if path, err := hl7.ParsePath(p); err == nil {
						v = m.Get(path)
					} else {
						v = string(hl7.Unescape(sub, d))
					}
				}
				f[r][c][s] = &v
			}
		}
	}
	return f
}

// segmentLines returns the message's segments as lines, without
// terminators, a BOM or leading junk.
func segmentLines(m *hl7.Message) [][]byte {
	raw := m.EncodeCR()
	if i := bytes.Index(raw, []byte(m.SegmentName(0))); i > 0 {
		raw = raw[i:]
	}
	var out [][]byte
	for _, l := range bytes.Split(raw, []byte{'\r'}) {
		l = bytes.TrimLeft(l, "\n")
		if len(l) == 0 || len(out) == m.SegmentCount() {
			continue
		}
		out = append(out, l)
	}
	return out
}
