package hl7

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEscape covers reference §3 and cases 36-40.
func TestEscape(t *testing.T) {
	custom := Delimiters{Field: '#', Component: '$', Repetition: '*', Escape: '!', Subcomponent: '@'}
	trunc := DefaultDelimiters
	trunc.Truncation = '#'
	tests := []struct {
		name      string
		d         Delimiters
		raw, text string
		roundTrip bool // Escape(text) == raw
	}{
		{"delimiters (36)", DefaultDelimiters, `A\F\B\S\C\T\D\R\E\E\`, `A|B^C&D~E\`, true},
		{"custom (22)", custom, "A!F!B!S!C", "A#B$C", true},
		{"hex (37)", DefaultDelimiters, `\X48454C4C4F\`, "HELLO", false},
		{"hex CR LF (37)", DefaultDelimiters, `\X0D0A\`, "\r\n", false},
		{"hex lowercase", DefaultDelimiters, `\X0d\`, "\r", false},
		{"CR escaped", DefaultDelimiters, `a\X0D\b\X0A\`, "a\rb\n", true},
		{"formatting kept (38)", DefaultDelimiters, `Line1\.br\Line2\.sp2\\H\Bold\N\`, `Line1\.br\Line2\.sp2\\H\Bold\N\`, false},
		{"unknown and lone (39)", DefaultDelimiters, `C:\temp\x`, `C:\temp\x`, false},
		{"local and charset (40)", DefaultDelimiters, `\Zmy01\\C2842\\M248442\`, `\Zmy01\\C2842\\M248442\`, false},
		{"bad hex kept", DefaultDelimiters, `\XZZ\ \X1\`, `\XZZ\ \X1\`, false},
		{"empty X kept", DefaultDelimiters, `\X\`, `\X\`, false},
		{"truncation", trunc, `O\P\NEIL`, "O#NEIL", true},
		{"P without truncation kept", DefaultDelimiters, `O\P\NEIL`, `O\P\NEIL`, false},
		{"trailing escape", DefaultDelimiters, `abc\`, `abc\`, false},
		{"no escapes", DefaultDelimiters, "plain", "plain", true},
		{"empty", DefaultDelimiters, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Unescape([]byte(tt.raw), tt.d)); got != tt.text {
				t.Errorf("Unescape(%q) = %q, want %q", tt.raw, got, tt.text)
			}
			if tt.roundTrip {
				if got := Escape(tt.text, tt.d); got != tt.raw {
					t.Errorf("Escape(%q) = %q, want %q", tt.text, got, tt.raw)
				}
			}
			// Escape/Unescape always round-trip the text.
			if got := string(Unescape([]byte(Escape(tt.text, tt.d)), tt.d)); got != tt.text {
				t.Errorf("Unescape(Escape(%q)) = %q", tt.text, got)
			}
		})
	}
}

func TestUnescapeCopies(t *testing.T) {
	raw := []byte("plain")
	out := Unescape(raw, DefaultDelimiters)
	out[0] = 'X'
	if raw[0] != 'p' {
		t.Error("Unescape aliases its input")
	}
}

// TestCharset covers reference §8 and cases 58-62.
func TestCharset(t *testing.T) {
	tests := []struct {
		file     string
		opts     Options
		charset  string
		path     string
		want     string
		wantRaw  string
		preserve bool
	}{
		{file: "58-8859-1.hl7", charset: "ISO-8859-1", path: "PID-5.1", want: "Müller", wantRaw: "M\xfcller"},
		{file: "58-8859-1.hl7", charset: "ISO-8859-1", path: "PID-5.2", want: "Jörg"},
		{file: "59-undeclared-latin1.hl7", charset: "windows-1252", path: "PID-5.1", want: "Müller"},
		{file: "59-undeclared-latin1.hl7", opts: Options{CharsetFallback: "8859/2"}, charset: "ISO-8859-2", path: "PID-5.1", want: "Müller"},
		{file: "59-undeclared-latin1.hl7", opts: Options{CharsetFallback: "no such charset"}, charset: "windows-1252", path: "PID-5.1", want: "Müller"},
		{file: "60-undeclared-utf8.hl7", charset: "UTF-8", path: "PID-5", want: "Müller"},
		{file: "61-alias.hl7", charset: "UTF-8", path: "PID-5", want: "Müller"},
		{file: "62-iso2022.hl7", charset: "ISO-2022-JP", path: "PID-5.1", want: "山田", wantRaw: "\x1b$B;3ED\x1b(B"},
		{file: "mangled-msh18.hl7", charset: "windows-1252", path: "PID-5", want: "José"},
		{file: "m1.hl7", charset: "UTF-8", path: "PID-5.1", want: "DOE"},
		{file: "18-bom.hl7", charset: "UTF-8", path: "PID-3", want: "123"},
		{file: "v28.hl7", charset: "UTF-8", path: "PID-3", want: "9"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.charset+"/"+tt.path, func(t *testing.T) {
			m, err := ParseWithOptions(readCase(t, tt.file), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Charset(); got != tt.charset {
				t.Errorf("Charset = %q, want %q", got, tt.charset)
			}
			p := MustParsePath(tt.path)
			if got := m.Get(p); got != tt.want {
				t.Errorf("Get(%s) = %q, want %q", tt.path, got, tt.want)
			}
			if tt.wantRaw != "" && string(m.GetRaw(p)) != tt.wantRaw {
				t.Errorf("GetRaw(%s) = %q, want %q (raw bytes stay as received)", tt.path, m.GetRaw(p), tt.wantRaw)
			}
		})
	}
}

func TestLookupCharset(t *testing.T) {
	for in, want := range map[string]string{
		"ASCII": "US-ASCII", "8859/1": "ISO-8859-1", "8859/15": "ISO-8859-15", "8859/9": "ISO-8859-9",
		"ISO-8859-1": "ISO-8859-1", "iso8859-1": "ISO-8859-1", "8859-1": "ISO-8859-1", "LATIN1": "ISO-8859-1",
		"UNICODE UTF-8": "UTF-8", "UTF-8": "UTF-8", "utf8": "UTF-8", "UNICODE": "UTF-8", " UNICODE UTF-8 ": "UTF-8",
		"WINDOWS-1252": "windows-1252", "CP1252": "windows-1252", "ISO IR87": "ISO-2022-JP", "ISO IR6": "US-ASCII",
		"GB 18030-2000": "GB18030", "KS X 1001": "EUC-KR", "BIG-5": "Big5", "ISO IR14": "Shift_JIS",
	} {
		if got, ok := LookupCharset(in); !ok || got != want {
			t.Errorf("LookupCharset(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "UNICODE UTF-16", "UNICODE UTF-32", "CNS 11643-1992", "UNICODE UTF-8<13>PID", "8859/99", "KLINGON"} {
		if got, ok := LookupCharset(in); ok {
			t.Errorf("LookupCharset(%q) = %q, want unknown", in, got)
		}
	}
}

// TestContentHash covers design promise 3 and cases 55-57.
func TestContentHash(t *testing.T) {
	base := mustParseCase(t, "m1.hl7").ContentHash()
	for _, tt := range []struct {
		file string
		same bool
	}{
		{"m1.hl7", true},
		{"56-new-msh7.hl7", true},
		{"56-lf.hl7", true},
		{"57-other-pid.hl7", false},
	} {
		if got := mustParseCase(t, tt.file).ContentHash() == base; got != tt.same {
			t.Errorf("%s: same hash = %v, want %v", tt.file, got, tt.same)
		}
	}
	// MSH-7 is excluded but its position is kept: moving content into it differs.
	a, _ := Parse([]byte("MSH|^~\\&|A|B|||X||ADT^A01|1\r"))
	b, _ := Parse([]byte("MSH|^~\\&|A|B||||X|ADT^A01|1\r"))
	if a.ContentHash() == b.ContentHash() {
		t.Errorf("shifting a value across MSH-7 hashes the same")
	}
	allocs := testing.AllocsPerRun(50, func() { _ = mustParseCase(t, "m1.hl7") })
	_ = allocs
	m := mustParseCase(t, "m1.hl7")
	if n := testing.AllocsPerRun(50, func() { _ = m.ContentHash() }); n > 2 {
		t.Errorf("ContentHash allocates %v times", n)
	}
}

// TestParsePath covers the path syntax.
func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
	}{
		{"PID-5", Path{seg: "PID", field: 5}},
		{"PID-5.1", Path{seg: "PID", field: 5, comp: 1}},
		{"PID-5.1.2", Path{seg: "PID", field: 5, comp: 1, sub: 2}},
		{"PID-3[2].1", Path{seg: "PID", field: 3, rep: 2, comp: 1}},
		{"PID-3[2]", Path{seg: "PID", field: 3, rep: 2}},
		{"OBX[3]-5", Path{seg: "OBX", occ: 3, field: 5}},
		{"MSH-9.2", Path{seg: "MSH", field: 9, comp: 2}},
		{"ZPI", Path{seg: "ZPI"}},
		{"OBX[12]", Path{seg: "OBX", occ: 12}},
		{"Z01-9999[9999].9999.9999", Path{seg: "Z01", field: 9999, rep: 9999, comp: 9999, sub: 9999}},
	}
	for _, tt := range tests {
		got, err := ParsePath(tt.in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Path{})); diff != "" {
			t.Errorf("ParsePath(%q) (-want +got):\n%s", tt.in, diff)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	for _, bad := range []string{"", "PI", "pid-5", "PID-", "PID-0", "PID-5.", "PID-5.0", "PID-5..1", "PID-3[0]", "PID-3[]",
		"PID-3[2", "PID-3[x]", "PID-10000", "PID-5.1.2.3", "PID_5", "PID-5 ", "1ID-5", "PID-+5", "PID--5", "OBX[1000000]-1", "PID-5[1]x"} {
		if _, err := ParsePath(bad); !errors.Is(err, ErrBadPath) {
			t.Errorf("ParsePath(%q) err = %v, want ErrBadPath", bad, err)
		}
	}
}

func TestMustParsePathPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParsePath did not panic on a bad literal")
		}
	}()
	MustParsePath("nope")
}

func TestRepairNames(t *testing.T) {
	all := RepairLF | RepairCRLF | RepairFinalTerminator | RepairBlankSegments | RepairBOM | RepairShortEncodingChars |
		RepairMissingProcessingID | RepairMissingVersion | RepairLeadingJunk
	want := []string{"lf", "crlf", "final_terminator", "blank_segments", "bom", "short_encoding_chars",
		"missing_processing_id", "missing_version", "leading_junk"}
	if diff := cmp.Diff(want, all.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	if Repairs(0).Names() != nil {
		t.Errorf("no repairs should have no names")
	}
}

// TestBatch covers reference §7 and cases 63-64.
func TestBatch(t *testing.T) {
	tests := []struct {
		file     string
		kind     BatchKind
		ids      []string
		declared int
		mismatch bool
		batch    BatchHeader
	}{
		{"63-batch.hl7", BatchBHS, []string{"M1A", "M1B"}, 2, false, BatchHeader{"LAB", "RXH", "MLLPD", "HUB", "B77"}},
		{"64-batch-count.hl7", BatchBHS, []string{"M2A", "M2B"}, 3, true, BatchHeader{"LAB", "RXH", "MLLPD", "HUB", "B78"}},
		{"fhs-batch.hl7", BatchFHS, []string{"M3A"}, 1, false, BatchHeader{"LAB", "RXH", "MLLPD", "HUB", "B9"}},
		{"headerless.hl7", Headerless, []string{"H1", "H2"}, -1, false, BatchHeader{}},
		{"m1.hl7", SingleMessage, []string{"CTL0001"}, -1, false, BatchHeader{}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readCase(t, tt.file)
			b, err := SplitBatch(raw, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range b.Messages {
				ids = append(ids, m.Header().ControlID)
				if !bytes.Equal(m.Encode(), m.Raw()) || !bytes.Contains(raw, m.Raw()) {
					t.Errorf("message %s is not a view of the frame", m.Header().ControlID)
				}
			}
			if b.Kind != tt.kind || b.DeclaredCount != tt.declared || b.CountMismatch != tt.mismatch {
				t.Errorf("Kind %v DeclaredCount %d CountMismatch %v, want %v %d %v", b.Kind, b.DeclaredCount, b.CountMismatch, tt.kind, tt.declared, tt.mismatch)
			}
			if diff := cmp.Diff(tt.ids, ids); diff != "" {
				t.Errorf("control IDs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.batch, b.Batch); diff != "" {
				t.Errorf("batch header (-want +got):\n%s", diff)
			}
			// The reply batch (case 63): one ACK per message.
			var acks [][]byte
			for _, m := range b.Messages {
				acks = append(acks, NewACK(m, AA, ackOpts()))
			}
			golden(t, "batch/"+tt.file[:len(tt.file)-4], NewBatchACK(b, acks, ackOpts()))
		})
	}
}

func TestBatchACKCase63(t *testing.T) {
	b, err := SplitBatch(readCase(t, "63-batch.hl7"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	acks := [][]byte{NewACK(b.Messages[0], AA, ackOpts()), NewACK(b.Messages[1], AA, ackOpts())}
	want := ref("BHS|^~\\&|MLLPD|HUB|LAB|RXH|<now>||||<id>|B77\n" +
		"MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.5.1\nMSA|AA|M1A\n" +
		"MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.5.1\nMSA|AA|M1B\nBTS|2\n")
	if diff := cmp.Diff(crlf(want), crlf(string(NewBatchACK(b, acks, ackOpts())))); diff != "" {
		t.Errorf("batch ACK (-want +got):\n%s", diff)
	}
	// Headerless frames get one ACK: the first message's.
	h, err := SplitBatch(readCase(t, "headerless.hl7"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := NewACK(h.Messages[0], AA, ackOpts())
	if got := NewBatchACK(h, [][]byte{first, NewACK(h.Messages[1], AA, ackOpts())}, ackOpts()); !bytes.Equal(got, first) {
		t.Errorf("headerless reply = %q, want the first ACK", got)
	}
}

func TestBatchErrors(t *testing.T) {
	const msh = "MSH|^~\\&|A|B|||2024||ADT^A01|1|P|2.5\r"
	tests := []struct {
		name, raw string
		want      error
		reason    string
	}{
		{"BHS without MSH", "BHS|^~\\&\rEVN|A01\rBTS|0\r", ErrBatchStructure, "segment outside a message"},
		{"BHS alone", "BHS|^~\\&\r", ErrBatchStructure, "batch without messages"},
		{"BHS BTS", "BHS|^~\\&\rBTS|0\r", ErrBatchStructure, "batch without messages"},
		{"FHS alone", "FHS|^~\\&\rFTS|0\r", ErrBatchStructure, "batch without messages"},
		{"two FHS", "FHS|^~\\&\r" + msh + "FHS|^~\\&\r", ErrBatchStructure, "FHS not first"},
		{"nested BHS", "BHS|^~\\&\r" + msh + "BHS|^~\\&\r" + msh, ErrBatchStructure, "BHS inside an open batch"},
		{"after FTS", "FHS|^~\\&\r" + msh + "FTS|1\r" + msh, ErrBatchStructure, "segment after FTS"},
		{"FTS without FHS", "BHS|^~\\&\r" + msh + "FTS|1\r", ErrBatchStructure, "FTS without FHS"},
		{"BHS after MSH", msh + "BHS|^~\\&\r" + msh, ErrBatchStructure, "batch segment after a message"},
		{"bad envelope delimiters", "BHS|^^\\&\r" + msh, ErrBadDelimiters, ""},
		{"bad inner message", "BHS|^~\\&\rMSH|^^\r", ErrBadDelimiters, ""},
		{"no MSH", "PID|1\r", ErrNoMSH, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := SplitBatch([]byte(tt.raw), Options{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v (batch %+v), want %v", err, b, tt.want)
			}
			var be *BatchError
			if tt.reason != "" && (!errors.As(err, &be) || be.Reason != tt.reason) {
				t.Errorf("err = %v, want reason %q", err, tt.reason)
			}
		})
	}
}

func TestEscapeControls(t *testing.T) {
	got := Escape("a\x0bb\x1cc\td\x7f", DefaultDelimiters)
	if want := `a\X0B\b\X1C\c` + "\t" + `d\X7F\`; got != want {
		t.Errorf("Escape = %q, want %q", got, want)
	}
	m := mustParseCase(t, "m1.hl7")
	if err := m.SetRaw(MustParsePath("PID-2"), []byte("a\x0bb")); !errors.Is(err, ErrBadValue) {
		t.Errorf("SetRaw with VT: %v, want ErrBadValue", err)
	}
}

// TestRenderFormatted is case 38's "render FT" helper.
func TestRenderFormatted(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{`Line1\.br\Line2\.sp2\\H\Bold\N\`, "Line1\nLine2\n\nBold"},
		{`a\.sp\b`, "a\nb"},
		{`\.in4\x\.sk2\y\.ti1\z`, "    x  y z"},
		{`\.fi\\.nf\\.ce\T`, "T"},
		{`A\F\B\X41\`, "A|BA"},
		{`keep \Zloc\ \C2842\ \.sp9999\ \.xx\`, `keep \Zloc\ \C2842\ \.sp9999\ \.xx\`},
		{"plain", "plain"},
	} {
		if got := string(RenderFormatted([]byte(tt.raw), DefaultDelimiters)); got != tt.want {
			t.Errorf("RenderFormatted(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	m := mustParseCase(t, "38-formatting.hl7")
	if got := m.GetFormatted(MustParsePath("OBX-5")); got != "Line1\nLine2\n\nBold" {
		t.Errorf("GetFormatted = %q", got)
	}
	if got := m.Get(MustParsePath("OBX-5")); got != `Line1\.br\Line2\.sp2\\H\Bold\N\` {
		t.Errorf("Get must keep formatting commands, got %q", got)
	}
}
