package hl7map_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/hl7map"
)

// fuzzRules exercises every rule kind; the value written by the first rule
// comes from the fuzzer.
func fuzzRules(value string) []hl7map.Rule {
	return []hl7map.Rule{
		{Set: "PID-5.1", Value: value},
		{Set: "MSH-5", Value: "EPR"},
		{Copy: "PID-3[1].1", To: "PID-2"},
		{Copy: "PID-5", To: "NK1-2"},
		{Delete: "ZPI"},
		{Delete: "PID-7"},
		{Delete: "PID-3[2].4"},
		{Translate: "PV1-3.1", Table: "wards", Default: "keep"},
		{Translate: "PV1-2", Table: "wards", Default: "OTHER"},
		{Replace: "PID-5.2", Regex: `^(\w)\w*`, With: "$1."},
		{Replace: "OBX-5", Regex: `[|^&~]`, With: "-"},
	}
}

// FuzzApply checks Apply's properties on arbitrary messages: the input's
// Encode() is unchanged, the mapped copy re-parses, the value written by set
// reads back decoded, and Outbound's bytes re-parse with MSH-15/16 blank.
func FuzzApply(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hl7"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, "DOE")
		f.Add(raw, `A|B^C&D~E\F`)
		f.Add(raw, `""`)
	}
	pid51 := hl7.MustParsePath("PID-5.1")
	f.Fuzz(func(t *testing.T, raw []byte, value string) {
		m, err := hl7.Parse(raw)
		if err != nil {
			return
		}
		mp, err := hl7map.Compile(fuzzRules(value), tables)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		before := bytes.Clone(m.Encode())
		out, err := mp.Apply(m)
		if !bytes.Equal(m.Encode(), before) {
			t.Fatalf("Apply modified its input")
		}
		if err != nil {
			var ae *hl7map.ApplyError
			if !errors.As(err, &ae) {
				t.Fatalf("Apply error %T is not an *ApplyError: %v", err, err)
			}
			return
		}
		enc := out.Encode()
		again, err := hl7.Parse(enc)
		if err != nil {
			t.Fatalf("mapped message does not re-parse: %v\n%q", err, enc)
		}
		if !bytes.Equal(again.Encode(), enc) {
			t.Fatalf("mapped message is not a fixed point of Parse/Encode")
		}
		if roundTrips(value, m) && m.SegmentName(0) == "MSH" && hasSegment(out, "PID") {
			if got := out.Get(pid51); got != value {
				t.Fatalf("set PID-5.1 then Get = %q, want %q", got, value)
			}
		}

		ob, err := hl7map.Outbound(m, mp, false)
		if err != nil {
			t.Fatalf("Outbound after a successful Apply: %v", err)
		}
		if !bytes.Equal(m.Encode(), before) {
			t.Fatalf("Outbound modified its input")
		}
		if bytes.IndexByte(ob, '\n') >= 0 && bytes.IndexByte(before, '\n') < 0 {
			t.Fatalf("Outbound introduced an LF")
		}
		om, err := hl7.Parse(ob)
		if err != nil {
			t.Fatalf("Outbound bytes do not re-parse: %v", err)
		}
		if h := om.Header(); h.AcceptAckType != "" || h.AppAckType != "" {
			t.Fatalf("Outbound left MSH-15/16 = %q/%q", h.AcceptAckType, h.AppAckType)
		}
	})
}

// roundTrips reports whether value must read back unchanged after a set: text
// the message's charset and delimiters can carry (no escape character, no
// control bytes, a Unicode charset).
func roundTrips(value string, m *hl7.Message) bool {
	d := m.Delimiters()
	if d.Escape == 0 || !utf8.ValidString(value) || !strings.Contains(strings.ToUpper(m.Charset()), "UTF") {
		return false
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func hasSegment(m *hl7.Message, name string) bool {
	for i := range m.SegmentCount() {
		if m.SegmentName(i) == name {
			return true
		}
	}
	return false
}
