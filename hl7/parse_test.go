package hl7

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readCase(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "cases", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustParseCase(t testing.TB, name string) *Message {
	t.Helper()
	m, err := Parse(readCase(t, name))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return m
}

func segmentNames(m *Message) []string {
	var names []string
	for i := 0; i < m.SegmentCount(); i++ {
		names = append(names, m.SegmentName(i))
	}
	return names
}

// TestParseStructure covers reference §11.2 (cases 14-18) and the repairs.
func TestParseStructure(t *testing.T) {
	tests := []struct {
		file    string
		segs    []string
		repairs []string
		pid3    string
	}{
		{"m1.hl7", []string{"MSH", "PID", "OBX"}, nil, "12345^^^RXH^MR"},
		{"14-lf.hl7", []string{"MSH", "PID"}, []string{"lf"}, "123"},
		{"15-crlf.hl7", []string{"MSH", "PID"}, []string{"crlf"}, "123"},
		{"16-no-final-cr.hl7", []string{"MSH", "PID"}, []string{"final_terminator"}, "123"},
		{"17-blank-lines.hl7", []string{"MSH", "PID"}, []string{"blank_segments"}, "123"},
		{"18-bom.hl7", []string{"MSH", "PID"}, []string{"bom"}, "123"},
		{"18-leading-junk.hl7", []string{"MSH", "PID"}, []string{"leading_junk"}, "123"},
		{"25-short-msh2.hl7", []string{"MSH", "PID"}, []string{"short_encoding_chars"}, "123"},
		{"no-msh11-12.hl7", []string{"MSH", "SCH"}, []string{"missing_processing_id", "missing_version"}, ""},
		{"headerless.hl7", []string{"MSH", "PID", "MSH", "PID"}, []string{"lf", "final_terminator"}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readCase(t, tt.file)
			m, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.segs, segmentNames(m)); diff != "" {
				t.Errorf("segments (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.repairs, m.Repairs().Names()); diff != "" {
				t.Errorf("repairs (-want +got):\n%s", diff)
			}
			if got := string(m.GetRaw(MustParsePath("PID-3"))); tt.pid3 != "" && got != tt.pid3 {
				t.Errorf("PID-3 = %q, want %q", got, tt.pid3)
			}
			if got := m.Header().SendingApp; tt.file == "18-bom.hl7" && got != "LAB" {
				t.Errorf("MSH-3 = %q, want LAB", got)
			}
			// Stored bytes unchanged whatever the terminators.
			if !bytes.Equal(m.Encode(), raw) {
				t.Errorf("Encode() != raw")
			}
			if &m.Raw()[0] != &raw[0] {
				t.Errorf("Raw() is a copy; Parse must not copy")
			}
		})
	}
}

// TestParseErrors: typed errors with locations and without values.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    error
		segment string
		field   int
		offset  int
	}{
		{"no MSH", "PID|1||123\r", ErrNoMSH, "PID", 0, 0},
		{"SH", "SH|^~\\&|LAB\r", ErrNoMSH, "", 0, 0},
		{"empty", "", ErrNoMSH, "", 0, 0},
		{"junk only", "\r\n  \x00", ErrNoMSH, "", 0, 5},
		{"batch", "BHS|^~\\&|LAB\r", ErrNoMSH, "BHS", 0, 0},
		{"after BOM", "\xef\xbb\xbfPID|1\r", ErrNoMSH, "PID", 0, 3},
		{"MSH alone", "MSH", ErrBadDelimiters, "MSH", 1, 3},
		{"alnum field sep", "MSHA^~\\&A", ErrBadDelimiters, "MSH", 1, 3},
		{"CR field sep", "MSH\r^~\\&", ErrBadDelimiters, "MSH", 1, 3},
		{"empty MSH-2", "MSH|||LAB\r", ErrBadDelimiters, "MSH", 2, 4},
		{"2-char MSH-2", "MSH|^~|LAB\r", ErrBadDelimiters, "MSH", 2, 4},
		{"6-char MSH-2", "MSH|^~\\&#$|LAB\r", ErrBadDelimiters, "MSH", 2, 4},
		{"duplicate", "MSH|^^\\&|LAB\r", ErrBadDelimiters, "MSH", 2, 4},
		{"space delimiter", "MSH|^~ &|LAB\r", ErrBadDelimiters, "MSH", 2, 4},
		{"non-ASCII delimiter", "MSH|^~\\\xa7|LAB\r", ErrBadDelimiters, "MSH", 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			if err == nil {
				t.Fatalf("Parse succeeded: %v", segmentNames(m))
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err is %T, want *ParseError", err)
			}
			got := ParseError{Segment: pe.Segment, SegIndex: pe.SegIndex, Field: pe.Field, Offset: pe.Offset, Err: pe.Err}
			want := ParseError{Segment: tt.segment, SegIndex: 1, Field: tt.field, Offset: tt.offset, Err: tt.want}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("ParseError (-want +got):\n%s", diff)
			}
		})
	}
}

// TestErrorsHoldNoValues: an error text never contains field content.
func TestErrorsHoldNoValues(t *testing.T) {
	for _, raw := range []string{
		"MSH|^^SECRET|DOE^JOHN\r",
		"PATIENTDOE|1\r",
		"MSH|^~\\&|DOE|JOHN|||20240101||SECRET\r",
		"BHS|^~\\&|DOE\rPID|SECRET\r",
	} {
		var err error
		if _, err = SplitBatch([]byte(raw), Options{}); err == nil {
			m, _ := Parse([]byte(raw))
			err = m.ValidateHeader()
		}
		if err == nil {
			t.Fatalf("%q: no error", raw)
		}
		for _, secret := range []string{"SECRET", "DOE", "JOHN", "PATIENT"} {
			if bytes.Contains([]byte(err.Error()), []byte(secret)) {
				t.Errorf("error %q echoes %q", err, secret)
			}
		}
	}
}

// TestDelimiters covers cases 19-25.
func TestDelimiters(t *testing.T) {
	tests := []struct {
		file string
		want Delimiters
		enc  string
	}{
		{"m1.hl7", DefaultDelimiters, `^~\&`},
		{"21-custom-delims.hl7", Delimiters{Field: '#', Component: '$', Repetition: '*', Escape: '!', Subcomponent: '@'}, "$*!@"},
		{"23-truncation.hl7", Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&', Truncation: '#'}, `^~\&#`},
		{"24-four-chars-v27.hl7", DefaultDelimiters, `^~\&`},
		{"25-short-msh2.hl7", Delimiters{Field: '|', Component: '^', Repetition: '~', Subcomponent: '&'}, "^~&"},
		{"25-short-msh2-escape.hl7", Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\'}, `^~\`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := mustParseCase(t, tt.file)
			if diff := cmp.Diff(tt.want, m.Delimiters()); diff != "" {
				t.Errorf("Delimiters (-want +got):\n%s", diff)
			}
			if got := m.Delimiters().EncodingCharacters(); got != tt.enc {
				t.Errorf("EncodingCharacters = %q, want %q", got, tt.enc)
			}
			if got := string(m.GetRaw(MustParsePath("MSH-2"))); got != tt.enc {
				t.Errorf("MSH-2 = %q, want %q", got, tt.enc)
			}
			if got := m.Header().SendingApp; got != "LAB" {
				t.Errorf("MSH-3 = %q, want LAB", got)
			}
		})
	}
}

// TestGet covers cases 19-24 and 28-40: raw and decoded reads by path.
func TestGet(t *testing.T) {
	type read struct {
		path, raw, decoded string
		absent, null       bool
	}
	tests := []struct {
		file  string
		reads []read
	}{
		{"m1.hl7", []read{ // cases 19, 20, 28, 36
			{path: "MSH-1", raw: "|", decoded: "|"},
			{path: "MSH-2", raw: `^~\&`, decoded: `^~\&`},
			{path: "MSH-3", raw: "LAB", decoded: "LAB"},
			{path: "MSH-4", raw: "RXH", decoded: "RXH"},
			{path: "MSH-7", raw: "20240131123045+0100", decoded: "20240131123045+0100"},
			{path: "MSH-9", raw: "ORU^R01^ORU_R01", decoded: "ORU^R01^ORU_R01"},
			{path: "MSH-9.2", raw: "R01", decoded: "R01"},
			{path: "MSH-10", raw: "CTL0001", decoded: "CTL0001"},
			{path: "MSH-12", raw: "2.5.1", decoded: "2.5.1"},
			{path: "MSH-13", absent: true},
			{path: "MSH-2.2", absent: true},
			{path: "PID-1", raw: "1", decoded: "1"},
			{path: "PID-3", raw: "12345^^^RXH^MR", decoded: "12345^^^RXH^MR"},
			{path: "PID-3[1]", raw: "12345^^^RXH^MR", decoded: "12345^^^RXH^MR"},
			{path: "PID-3[1].1", raw: "12345", decoded: "12345"},
			{path: "PID-3[2].1", raw: "987", decoded: "987"},
			{path: "PID-3[2].5", raw: "NH", decoded: "NH"},
			{path: "PID-3[3].1", absent: true},
			{path: "PID-3.2", raw: "", decoded: ""},
			{path: "PID-5", raw: "DOE^JOHN^Q", decoded: "DOE^JOHN^Q"},
			{path: "PID-5.1", raw: "DOE", decoded: "DOE"},
			{path: "PID-5.2", raw: "JOHN", decoded: "JOHN"},
			{path: "PID-5.1.1", raw: "DOE", decoded: "DOE"},
			{path: "PID-5.1.2", absent: true},
			{path: "PID-4", raw: "", decoded: ""},
			{path: "PID-99", absent: true},
			{path: "PID[2]-1", absent: true},
			{path: "ZZZ-1", absent: true},
			{path: "OBX-5", raw: `A\F\B\S\C\T\D\R\E\E\`, decoded: `A|B^C&D~E\`},
			{path: "OBX[1]-5", raw: `A\F\B\S\C\T\D\R\E\E\`, decoded: `A|B^C&D~E\`},
		}},
		{"21-custom-delims.hl7", []read{ // cases 21, 22
			{path: "MSH-1", raw: "#", decoded: "#"},
			{path: "MSH-9.2", raw: "A01", decoded: "A01"},
			{path: "MSH-10", raw: "C2", decoded: "C2"},
			{path: "PID-3[2].1", raw: "456", decoded: "456"},
			{path: "PID-3[2].4", raw: "NHS", decoded: "NHS"},
			{path: "PID-5.2", raw: "JANE", decoded: "JANE"},
			{path: "OBX-5", raw: "A!F!B!S!C", decoded: "A#B$C"},
		}},
		{"23-truncation.hl7", []read{{path: "MSH-3", raw: "LAB", decoded: "LAB"}, {path: "PID-5", raw: "O#BRIEN", decoded: "O#BRIEN"}}},
		{"24-four-chars-v27.hl7", []read{{path: "PID-5", raw: "O#BRIEN", decoded: "O#BRIEN"}}},
		{"25-short-msh2.hl7", []read{ // no escape character: '\' is data
			{path: "PID-5.1", raw: `C:\TEMP`, decoded: `C:\TEMP`},
			{path: "PID-5.2.2", raw: "B", decoded: "B"},
		}},
		{"25-short-msh2-escape.hl7", []read{ // no subcomponent separator: '&' is data
			{path: "PID-5", raw: `A\S\B&C`, decoded: "A^B&C"},
			{path: "PID-5.1.1", raw: `A\S\B&C`, decoded: "A^B&C"},
			{path: "PID-5.1.2", absent: true},
		}},
		{"29-subcomponents.hl7", []read{
			{path: "PID-3.4", raw: "RXH&1.2.3&ISO", decoded: "RXH&1.2.3&ISO"},
			{path: "PID-3.4.1", raw: "RXH", decoded: "RXH"},
			{path: "PID-3.4.2", raw: "1.2.3", decoded: "1.2.3"},
			{path: "PID-3.4.3", raw: "ISO", decoded: "ISO"},
			{path: "PID-3.5", raw: "MR", decoded: "MR"},
		}},
		{"30-trailing-empties-a.hl7", []read{{path: "PID-3", raw: "123", decoded: "123"}, {path: "PID-7", absent: true}, {path: "PID-5", raw: "", decoded: ""}}},
		{"30-trailing-empties-b.hl7", []read{{path: "PID-3", raw: "123", decoded: "123"}, {path: "PID-7", absent: true}, {path: "PID-5", absent: true}}},
		{"31-null.hl7", []read{{path: "PID-5", raw: `""`, decoded: `""`, null: true}}},
		{"31-empty.hl7", []read{{path: "PID-5", raw: "", decoded: ""}}},
		{"32-component-null.hl7", []read{{path: "PID-5.1", raw: "DOE", decoded: "DOE"}, {path: "PID-5.2", raw: `""`, decoded: `""`, null: true}, {path: "PID-5", raw: `DOE^""`, decoded: `DOE^""`}}},
		{"33-quotes.hl7", []read{{path: "NTE-3", raw: `"see note"`, decoded: `"see note"`}}},
		{"34-zsegment.hl7", []read{{path: "ZPI-2.2", raw: "Y", decoded: "Y"}, {path: "ZPI[2]-1", raw: "2", decoded: "2"}, {path: "ZPI[3]-1", absent: true}, {path: "ZPI", raw: "ZPI|1|VIP^Y", decoded: "ZPI|1|VIP^Y"}}},
		{"35-extra-fields.hl7", []read{{path: "PID-45", raw: "F45", decoded: "F45"}, {path: "PID-46", absent: true}}},
		{"37-hex.hl7", []read{{path: "OBX-5", raw: `\X48454C4C4F\`, decoded: "HELLO"}, {path: "OBX-6", raw: `\X0D0A\`, decoded: "\r\n"}}},
		{"38-formatting.hl7", []read{{path: "OBX-5", raw: `Line1\.br\Line2\.sp2\\H\Bold\N\`, decoded: `Line1\.br\Line2\.sp2\\H\Bold\N\`}}},
		{"39-broken-escapes.hl7", []read{{path: "OBX-5", raw: `C:\temp\x`, decoded: `C:\temp\x`}}},
		{"40-local-charset-escapes.hl7", []read{{path: "OBX-5", raw: `A\Zmy01\B\C2842\C`, decoded: `A\Zmy01\B\C2842\C`}}},
		{"41-msh10-escape.hl7", []read{{path: "MSH-10", raw: `ID\F\7`, decoded: "ID|7"}}},
		{"66-adt-a04.hl7", []read{{path: "MSH-9.1", raw: "ADT", decoded: "ADT"}, {path: "MSH-9.2", raw: "A04", decoded: "A04"}, {path: "MSH-9.3", raw: "ADT_A01", decoded: "ADT_A01"}}},
		{"66-adt-a04-v23.hl7", []read{{path: "MSH-9.2", raw: "A04", decoded: "A04"}, {path: "MSH-9.3", absent: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := mustParseCase(t, tt.file)
			for _, r := range tt.reads {
				p := MustParsePath(r.path)
				raw := m.GetRaw(p)
				if r.absent {
					if raw != nil {
						t.Errorf("%s = %q, want absent (nil)", r.path, raw)
					}
					if got := m.Get(p); got != "" {
						t.Errorf("Get(%s) = %q, want empty", r.path, got)
					}
					continue
				}
				if raw == nil {
					t.Errorf("%s is absent, want %q", r.path, r.raw)
					continue
				}
				if string(raw) != r.raw {
					t.Errorf("GetRaw(%s) = %q, want %q", r.path, raw, r.raw)
				}
				if got := m.Get(p); got != r.decoded {
					t.Errorf("Get(%s) = %q, want %q", r.path, got, r.decoded)
				}
				if got := m.IsNull(p); got != r.null {
					t.Errorf("IsNull(%s) = %v, want %v", r.path, got, r.null)
				}
			}
		})
	}
}

// TestTrailingEmptiesEquivalent: case 30, every path reads the same.
func TestTrailingEmptiesEquivalent(t *testing.T) {
	a, b := mustParseCase(t, "30-trailing-empties-a.hl7"), mustParseCase(t, "30-trailing-empties-b.hl7")
	for f := 1; f <= 8; f++ {
		for c := 0; c <= 2; c++ {
			p := Path{seg: "PID", field: f, comp: c}
			if a.Get(p) != b.Get(p) {
				t.Errorf("%s: %q vs %q", p, a.Get(p), b.Get(p))
			}
		}
	}
}

func TestRepetitionCount(t *testing.T) {
	m := mustParseCase(t, "m1.hl7")
	for path, want := range map[string]int{"PID-3": 2, "PID-5": 1, "PID-4": 0, "PID-99": 0, "MSH-2": 1, "ZZZ-1": 0} {
		if got := m.RepetitionCount(MustParsePath(path)); got != want {
			t.Errorf("RepetitionCount(%s) = %d, want %d", path, got, want)
		}
	}
	if got := string(m.FieldRaw(MustParsePath("PID-3[2].1"))); got != "12345^^^RXH^MR~987^^^NHS^NH" {
		t.Errorf("FieldRaw(PID-3) = %q", got)
	}
}

// TestGetRawDoesNotAllocate is the zero-allocation promise of GetRaw.
func TestGetRawDoesNotAllocate(t *testing.T) {
	m := mustParseCase(t, "m1.hl7")
	paths := []Path{MustParsePath("PID-3[2].5"), MustParsePath("MSH-10"), MustParsePath("OBX-5"), MustParsePath("ZZZ-1")}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			_ = m.GetRaw(p)
		}
	})
	if allocs != 0 {
		t.Errorf("GetRaw allocates %v times", allocs)
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		file string
		want Header
	}{
		{"m1.hl7", Header{SendingApp: "LAB", SendingFacility: "RXH", ReceivingApp: "MLLPD", ReceivingFacility: "HUB",
			Timestamp: "20240131123045+0100", Type: "ORU", Event: "R01", Structure: "ORU_R01", ControlID: "CTL0001",
			ProcessingID: "P", Version: "2.5.1"}},
		{"50-enhanced.hl7", Header{SendingApp: "LAB", SendingFacility: "RXH", ReceivingApp: "MLLPD", ReceivingFacility: "HUB",
			Timestamp: "20240131123045+0100", Type: "ORU", Event: "R01", Structure: "ORU_R01", ControlID: "CTL0001",
			ProcessingID: "P", Version: "2.5.1", AcceptAckType: "AL", AppAckType: "NE"}},
		{"v28.hl7", Header{SendingApp: "LAB", SendingFacility: "RXH", Timestamp: "20240131123045+0100", Type: "ADT",
			Event: "A04", Structure: "ADT_A01", ControlID: "V28", ProcessingID: "T", Version: "2.8", CharsetField: "UNICODE UTF-8"}},
		{"62-iso2022.hl7", Header{SendingApp: "LAB", SendingFacility: "RXH", ReceivingApp: "MLLPD", ReceivingFacility: "HUB",
			Timestamp: "20240131", Type: "ADT", Event: "A01", ControlID: "L5", ProcessingID: "P", Version: "2.5.1", CharsetField: "ASCII"}},
		{"no-msh11-12.hl7", Header{SendingApp: "SCHED", SendingFacility: "RXH", ReceivingApp: "MLLPD", ReceivingFacility: "HUB",
			Timestamp: "20240131", Type: "SIU", Event: "S12", ControlID: "S1"}},
		{"41-msh10-escape.hl7", Header{SendingApp: "LAB", SendingFacility: "RXH", ReceivingApp: "MLLPD", ReceivingFacility: "HUB",
			Timestamp: "20240131", Type: "ADT", Event: "A01", Structure: "ADT_A01", ControlID: `ID\F\7`, ProcessingID: "P", Version: "2.5.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mustParseCase(t, tt.file).Header()); diff != "" {
				t.Errorf("Header (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateHeader(t *testing.T) {
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'A'
	}
	tests := []struct {
		name, raw string
		field     int
		code      ErrorCode
		sentinel  error
	}{
		{"ok", "MSH|^~\\&|A|B|||20240101||ADT^A01|C1|P|2.5\r", 0, 0, nil},
		{"ok without MSH-11/12", "MSH|^~\\&|A|B|||20240101||ADT^A01|C1\r", 0, 0, nil},
		{"MSH-9 empty", "MSH|^~\\&|A|B|||20240101|||C1|P|2.3\r", 9, ErrCodeRequiredFieldMissing, ErrMissingField},
		{"MSH-9 no code", "MSH|^~\\&|A|B|||20240101||^A01|C1|P|2.3\r", 9, ErrCodeRequiredFieldMissing, ErrMissingField},
		{"MSH-9 no trigger", "MSH|^~\\&|A|B|||20240101||ADT|C1|P|2.3\r", 9, ErrCodeRequiredFieldMissing, ErrMissingField},
		{"MSH-9 null", "MSH|^~\\&|A|B|||20240101||\"\"|C1|P|2.3\r", 9, ErrCodeRequiredFieldMissing, ErrMissingField},
		{"MSH-10 empty", "MSH|^~\\&|A|B|||20240101||ADT^A01||P|2.3\r", 10, ErrCodeRequiredFieldMissing, ErrMissingField},
		{"MSH-10 absent", "MSH|^~\\&|A|B|||20240101||ADT^A01\r", 10, ErrCodeRequiredFieldMissing, ErrMissingField},
		{"MSH-10 too long", "MSH|^~\\&|A|B|||20240101||ADT^A01|" + string(long) + "|P|2.3\r", 10, ErrCodeDataType, ErrMalformedField},
		{"MSH-10 control char", "MSH|^~\\&|A|B|||20240101||ADT^A01|C\x011|P|2.3\r", 10, ErrCodeDataType, ErrMalformedField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			err = m.ValidateHeader()
			if tt.sentinel == nil {
				if err != nil {
					t.Fatalf("ValidateHeader: %v", err)
				}
				return
			}
			var he *HeaderError
			if !errors.As(err, &he) || !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want *HeaderError wrapping %v", err, tt.sentinel)
			}
			if he.Field != tt.field || he.Code != tt.code {
				t.Errorf("HeaderError{Field %d, Code %d}, want {%d, %d}", he.Field, he.Code, tt.field, tt.code)
			}
		})
	}
}
