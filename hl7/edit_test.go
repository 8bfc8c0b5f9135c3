package hl7

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEdit covers Set, SetRaw, SetNull and Delete: escaping, growth,
// trailing-delimiter trimming and that only edited segments are rewritten.
func TestEdit(t *testing.T) {
	tests := []struct {
		name string
		file string
		edit func(m *Message) error
		want string // Encode() after the edit
	}{
		{"set field", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("MSH-5"), "EPR") },
			"MSH|^~\\&|LAB|RXH|EPR|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"set escapes delimiters", "30-trailing-empties-b.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5"), "A|B^C&D~E\\F\r") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F\\X0D\\\r"},
		{"set grows components", "30-trailing-empties-b.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5.3"), "Q") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123||^^Q\r"},
		{"set grows repetition and subcomponent", "30-trailing-empties-b.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-3[3].4.2"), "1.2") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123~~^^^&1.2\r"},
		{"set component keeps other repetitions", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-3[2].1"), "555") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~555^^^NHS^NH||DOE^JOHN^Q||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"set whole field replaces repetitions", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-3"), "1") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||1||DOE^JOHN^Q||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"set empty trims trailing", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-8"), "") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q||19700101\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"set last component empty trims", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5.3"), "") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"set new segment", "30-trailing-empties-b.hl7", func(m *Message) error { return m.Set(MustParsePath("ZPI-2.2"), "Y") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123\rZPI||^Y\r"},
		{"new segment after missing final CR", "16-no-final-cr.hl7", func(m *Message) error { return m.Set(MustParsePath("ZPI-1"), "1") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123\rZPI|1\r"},
		{"LF message: only the edited segment gets CR", "14-lf.hl7", func(m *Message) error { return m.Set(MustParsePath("MSH-10"), "C9") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C9|P|2.5.1\rPID|1||123\n"},
		{"LF message: untouched stays", "14-lf.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-2"), "X") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\nPID|1|X|123\r"},
		{"set null", "30-trailing-empties-b.hl7", func(m *Message) error { return m.SetNull(MustParsePath("PID-5")) },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123||\"\"\r"},
		{"copy keeps null (case 31)", "31-null.hl7", func(m *Message) error {
			return m.SetRaw(MustParsePath("NK1-2"), m.FieldRaw(MustParsePath("PID-5")))
		}, "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123||\"\"\rNK1|1|\"\"\r"},
		{"copy keeps escapes", "m1.hl7", func(m *Message) error {
			return m.SetRaw(MustParsePath("PID-2"), m.GetRaw(MustParsePath("OBX-5")))
		}, "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1|A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\|12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"delete segments (case 34)", "34-zsegment.hl7", func(m *Message) error { return m.Delete(MustParsePath("ZPI")) },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123\rPV1|1|I\r"},
		{"delete one occurrence", "34-zsegment.hl7", func(m *Message) error { return m.Delete(MustParsePath("ZPI[2]")) },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123\rZPI|1|VIP^Y\rPV1|1|I\r"},
		{"delete field", "m1.hl7", func(m *Message) error { return m.Delete(MustParsePath("PID-5")) },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~987^^^NHS^NH||||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"delete component", "m1.hl7", func(m *Message) error { return m.Delete(MustParsePath("PID-5.2")) },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^^Q||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"delete absent is no-op", "m1.hl7", func(m *Message) error { return m.Delete(MustParsePath("ZZZ-1")) },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\rPID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q||19700101|M\rOBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"},
		{"custom delimiters", "21-custom-delims.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5.1"), "O#NEIL$") },
			"MSH#$*!@#LAB#RXH#MLLPD#HUB#20240131##ADT$A01$ADT_A01#C2#P#2.5.1\rPID#1##123$$$RXH$MR*456$$$NHS$NH##O!F!NEIL!S!$JANE\rOBX#1#TX#NOTE##A!F!B!S!C\r"},
		{"latin-1 message gets latin-1 bytes", "58-8859-1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5.1"), "Müßig") },
			"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01|L1|P|2.5.1||||||8859/1\rPID|1||9||M\xfc\xdfig^J\xf6rg\r"},
		{"truncation char escaped", "23-truncation.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5"), "O#NEIL") },
			"MSH|^~\\&#|LAB|RXH|||20240131||ADT^A08^ADT_A01|C3|P|2.7\rPID|1||123||O\\P\\NEIL\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := readCase(t, tt.file)
			m, err := Parse(bytes.Clone(orig))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.edit(m); err != nil {
				t.Fatalf("edit: %v", err)
			}
			if diff := cmp.Diff(crlf(tt.want), crlf(string(m.Encode()))); diff != "" {
				t.Errorf("Encode (-want +got):\n%s", diff)
			}
			if !bytes.Equal(m.Raw(), orig) {
				t.Errorf("edit changed the raw bytes")
			}
			// The edited message re-parses to the same content.
			again, err := Parse(m.Encode())
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if again.ContentHash() != m.ContentHash() {
				t.Errorf("ContentHash differs after re-parse")
			}
		})
	}
}

// TestSetGetRoundTrip: what Set writes, Get reads back.
func TestSetGetRoundTrip(t *testing.T) {
	for _, file := range []string{"m1.hl7", "21-custom-delims.hl7", "23-truncation.hl7", "58-8859-1.hl7", "v28.hl7"} {
		for _, v := range []string{"plain", "A|B^C&D~E\\F", "line1\rline2\nx", "Jörg", `""`, "", "#$*!@"} {
			m := mustParseCase(t, file)
			p := MustParsePath("ZZZ[1]-3[2].2.1")
			if err := m.Set(p, v); err != nil {
				t.Fatalf("%s: Set(%q): %v", file, v, err)
			}
			again, err := Parse(m.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if got := again.Get(p); got != v {
				t.Errorf("%s: Get after Set(%q) = %q", file, v, got)
			}
		}
	}
}

func TestEditErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		edit func(m *Message) error
		want error
	}{
		{"MSH-1", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("MSH-1"), "#") }, ErrReadOnly},
		{"MSH-2", "m1.hl7", func(m *Message) error { return m.SetRaw(MustParsePath("MSH-2"), []byte("^~")) }, ErrReadOnly},
		{"delete MSH", "m1.hl7", func(m *Message) error { return m.Delete(MustParsePath("MSH")) }, ErrReadOnly},
		{"set segment", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID"), "x") }, ErrBadPath},
		{"segment gap", "m1.hl7", func(m *Message) error { return m.Set(MustParsePath("OBX[3]-1"), "x") }, ErrNoSegment},
		{"raw CR", "m1.hl7", func(m *Message) error { return m.SetRaw(MustParsePath("PID-5"), []byte("A\rB")) }, ErrBadValue},
		{"raw field sep", "m1.hl7", func(m *Message) error { return m.SetRaw(MustParsePath("PID-5"), []byte("A|B")) }, ErrBadValue},
		{"raw component in component", "m1.hl7", func(m *Message) error { return m.SetRaw(MustParsePath("PID-5.1"), []byte("A^B")) }, ErrBadValue},
		{"no escape char", "25-short-msh2.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5"), "A^B") }, ErrCannotEscape},
		{"unrepresentable", "58-8859-1.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-5"), "€uro 日本") }, ErrUnrepresentable},
		{"ascii declared", "62-iso2022.hl7", func(m *Message) error { return m.Set(MustParsePath("PID-7"), "\x80") }, ErrUnrepresentable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParseCase(t, tt.file)
			before := bytes.Clone(m.Encode())
			err := tt.edit(m)
			var pe *PathError
			if !errors.Is(err, tt.want) || !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *PathError wrapping %v", err, tt.want)
			}
			if !bytes.Equal(m.Encode(), before) {
				t.Errorf("failed edit changed the message")
			}
		})
	}
}

func TestEncodeCR(t *testing.T) {
	tests := []struct {
		file string
		same bool // unmodified CR-only input: EncodeCR returns Raw itself
	}{
		{"m1.hl7", true}, {"14-lf.hl7", false}, {"15-crlf.hl7", false}, {"16-no-final-cr.hl7", false},
		{"17-blank-lines.hl7", false}, {"18-bom.hl7", false}, {"headerless.hl7", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := mustParseCase(t, tt.file)
			got := m.EncodeCR()
			if tt.same && &got[0] != &m.Raw()[0] {
				t.Errorf("EncodeCR copied a canonical message")
			}
			if bytes.ContainsRune(got, '\n') || got[len(got)-1] != '\r' || bytes.Contains(got, []byte("\r\r")) {
				t.Errorf("EncodeCR = %q: not CR-terminated segments", got)
			}
			if !bytes.HasPrefix(got, []byte("MSH")) {
				t.Errorf("EncodeCR keeps bytes before MSH")
			}
			again, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if again.Repairs() != 0 || again.ContentHash() != m.ContentHash() {
				t.Errorf("re-parse: repairs %v, hash equal %v", again.Repairs().Names(), again.ContentHash() == m.ContentHash())
			}
		})
	}
}

func TestClone(t *testing.T) {
	m := mustParseCase(t, "m1.hl7")
	c := m.Clone()
	if err := c.Set(MustParsePath("PID-5.1"), "ROE"); err != nil {
		t.Fatal(err)
	}
	if m.Get(MustParsePath("PID-5.1")) != "DOE" || c.Get(MustParsePath("PID-5.1")) != "ROE" {
		t.Errorf("Clone is not independent")
	}
	if &c.Raw()[0] == &m.Raw()[0] {
		t.Errorf("Clone shares raw bytes")
	}
	c2 := c.Clone()
	if err := c2.Delete(MustParsePath("OBX")); err != nil {
		t.Fatal(err)
	}
	if c.SegmentCount() != 3 || c2.SegmentCount() != 2 || !bytes.Equal(c.Clone().Encode(), c.Encode()) {
		t.Errorf("Clone of an edited message is not independent")
	}
}
