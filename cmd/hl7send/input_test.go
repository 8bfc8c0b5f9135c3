package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	msgA = "MSH|^~\\&|PAS|RXH|EPR|RXH|20260301||ADT^A01^ADT_A01|A1|P|2.5.1\rPID|1||9990000018^^^NHS^NH\r"
	msgB = "MSH|^~\\&|PAS|RXH|EPR|RXH|20260301||ADT^A08^ADT_A01|B2|P|2.5.1\rPID|1||9990000026^^^NHS^NH\rPV1|1|I\r"
)

func lf(s string) string   { return strings.ReplaceAll(s, "\r", "\n") }
func crlf(s string) string { return strings.ReplaceAll(s, "\r", "\r\n") }
func frame(s string) string {
	return "\x0b" + s + "\x1c\r"
}

func TestSplitMessages(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one message CR", msgA, []string{msgA}},
		{"no final terminator", strings.TrimSuffix(msgA, "\r"), []string{msgA}},
		{"one message LF", lf(msgA), []string{msgA}},
		{"one message CRLF", crlf(msgA), []string{msgA}},
		{"CR then trailing CRLFLF", msgA + "\r\n\n", []string{msgA}},
		{"two by MSH, CR", msgA + msgB, []string{msgA, msgB}},
		{"two by MSH, LF", lf(msgA + msgB), []string{msgA, msgB}},
		{"two by blank line, LF", lf(msgA) + "\n" + lf(msgB) + "\n", []string{msgA, msgB}},
		{"two by blank lines, CRLF", crlf(msgA) + "\r\n\r\n" + crlf(msgB), []string{msgA, msgB}},
		{"blank lines with spaces", msgA + "  \r\t\r" + msgB, []string{msgA, msgB}},
		{"BOM", "\xef\xbb\xbf" + msgA, []string{msgA}},
		{"leading blank lines", "\n\n" + lf(msgA), []string{msgA}},
		{"mllp framed", frame(msgA) + frame(msgB), []string{msgA, msgB}},
		{"mllp framed, LF inside, newline between", frame(lf(msgA)) + "\n" + frame(lf(msgB)) + "\n", []string{msgA, msgB}},
		{"mllp framed, FS without CR", "\x0b" + msgA + "\x1c\x0b" + msgB + "\x1c", []string{msgA, msgB}},
		{"mllp restarted frame drops the partial", "\x0bMSH|^~\\&|partial\x0b" + msgB + "\x1c\r", []string{msgB}},
		{"mllp last frame without FS", frame(msgA) + "\x0b" + msgB, []string{msgA, msgB}},
		{"FHS batch", "FHS|^~\\&|X\rBHS|^~\\&|X\r" + msgA + msgB + "BTS|2\rFTS|1\r", []string{msgA, msgB}},
		{"BHS batch LF", lf("BHS|^~\\&|X\r" + msgA + msgB + "BTS|2\r"), []string{msgA, msgB}},
		{"no MSH is still sent", "PID|1||X\rPV1|1\r", []string{"PID|1||X\rPV1|1\r"}},
		{"junk before MSH is its own message", "hello\r" + msgA, []string{"hello\r", msgA}},
		{"MSHA is not an MSH line", "MSHA^~\\&AX\rPID|1\r", []string{"MSHA^~\\&AX\rPID|1\r"}},
		{"non-default field separator", "MSH*^~\\&*A\rPID*1\rMSH*^~\\&*B\r", []string{"MSH*^~\\&*A\rPID*1\r", "MSH*^~\\&*B\r"}},
		{"empty", "", nil},
		{"only blank lines", "\r\n\r\n  \n", nil},
		{"only envelope is sent as it is", "BHS|^~\\&\nBTS|0", []string{"BHS|^~\\&\rBTS|0\r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, m := range splitMessages([]byte(tt.in)) {
				got = append(got, string(m))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("splitMessages(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		in   string
		want header
	}{
		{msgA, header{Type: "ADT^A01^ADT_A01", ControlID: "A1"}},
		{"MSH|^~\\&|A|B|C|D|T||ORU^R01|\r", header{Type: "ORU^R01"}},
		{"MSH|^~\\&|A|B|C|D|T||ORU^R01", header{Type: "ORU^R01"}},
		{"MSH*^~\\&*A*B*C*D*T**ADT^A04*ID9\r", header{Type: "ADT^A04", ControlID: "ID9"}},
		{"FHS|^~\\&|X\rBHS|^~\\&\r" + msgB, header{Type: "ADT^A08^ADT_A01", ControlID: "B2"}},
		{"PID|1\r", header{}},
		{"MSH|^~\\&\r", header{}},
	}
	for _, tt := range tests {
		if got := readHeader([]byte(tt.in)); got != tt.want {
			t.Errorf("readHeader(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestWithControlIDSuffix(t *testing.T) {
	tests := []struct{ in, want string }{
		{msgA, strings.Replace(msgA, "|A1|", "|A1-x7|", 1)},
		{lf(msgA), lf(strings.Replace(msgA, "|A1|", "|A1-x7|", 1))},
		{"MSH|^~\\&|A|B|C|D|T||ORU^R01|ID", "MSH|^~\\&|A|B|C|D|T||ORU^R01|ID-x7"},
		{"MSH|^~\\&|A|B|C|D|T||ORU^R01||P\r", "MSH|^~\\&|A|B|C|D|T||ORU^R01||P\r"}, // no MSH-10: kept
		{"MSH|^~\\&|A|B\r", "MSH|^~\\&|A|B\r"},
		{"BHS|^~\\&|X\r" + msgA + msgB + "BTS|2\r",
			"BHS|^~\\&|X\r" + strings.Replace(msgA, "|A1|", "|A1-x7|", 1) + strings.Replace(msgB, "|B2|", "|B2-x7|", 1) + "BTS|2\r"},
		{"PID|1\r", "PID|1\r"},
	}
	for _, tt := range tests {
		if got := string(withControlIDSuffix([]byte(tt.in), "-x7")); got != tt.want {
			t.Errorf("withControlIDSuffix(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadInputs(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b/2.hl7":          msgB,
		"b/1.hl7":          msgA + msgB,
		"a.hl7":            lf(msgA),
		"README.md":        "# not a message",
		".hidden/x.hl7":    msgA,
		"b/testdata/x.hl7": msgA,
		"empty.txt":        "\n",
	})
	type got struct {
		Source string
		Data   string
	}
	collect := func(msgs []*message) []got {
		var out []got
		for _, m := range msgs {
			out = append(out, got{strings.TrimPrefix(filepath.ToSlash(m.source()), filepath.ToSlash(dir)+"/"), string(m.data)})
		}
		return out
	}
	msgs, warnings, err := readInputs([]string{dir}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []got{{"a.hl7", msgA}, {"b/1.hl7#1", msgA}, {"b/1.hl7#2", msgB}, {"b/2.hl7", msgB}}
	if diff := cmp.Diff(want, collect(msgs)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "empty.txt") {
		t.Errorf("warnings = %q, want one about empty.txt", warnings)
	}

	msgs, _, err = readInputs([]string{filepath.Join(dir, "b", "*.hl7"), "-"}, strings.NewReader(crlf(msgB)), false)
	if err != nil {
		t.Fatal(err)
	}
	want = []got{{"b/1.hl7#1", msgA}, {"b/1.hl7#2", msgB}, {"b/2.hl7", msgB}, {"-", msgB}}
	if diff := cmp.Diff(want, collect(msgs)); diff != "" {
		t.Errorf("glob and stdin (-want +got):\n%s", diff)
	}

	// A link to a file in a directory is read; a dangling one fails the input.
	linked := writeFiles(t, nil)
	if err := os.Symlink(filepath.Join(dir, "a.hl7"), filepath.Join(linked, "link.hl7")); err != nil {
		t.Fatal(err)
	}
	msgs, _, err = readInputs([]string{linked}, nil, false)
	if err != nil || len(msgs) != 1 || string(msgs[0].data) != msgA {
		t.Errorf("symlinked file: got %d messages, %v; want msgA", len(msgs), err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone.hl7"), filepath.Join(linked, "dangling.hl7")); err != nil {
		t.Fatal(err)
	}
	if _, _, err = readInputs([]string{linked}, nil, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling symlink: err = %v, want ErrNotExist", err)
	}

	msgs, _, err = readInputs([]string{filepath.Join(dir, "a.hl7"), filepath.Join(dir, "b", "1.hl7")}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	want = []got{{"a.hl7", lf(msgA)}, {"b/1.hl7", msgA + msgB}}
	if diff := cmp.Diff(want, collect(msgs)); diff != "" {
		t.Errorf("raw (-want +got):\n%s", diff)
	}
}

func TestReadInputsErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hl7": msgA, "empty.hl7": "", "docs/README.md": "x"})
	tests := []struct {
		name string
		args []string
		is   error
	}{
		{"missing file", []string{filepath.Join(dir, "nope.hl7")}, fs.ErrNotExist},
		{"glob without match", []string{filepath.Join(dir, "*.er7")}, nil},
		{"directory without messages", []string{filepath.Join(dir, "docs")}, nil},
		{"only empty input", []string{filepath.Join(dir, "empty.hl7")}, nil},
		{"one good, one missing", []string{filepath.Join(dir, "a.hl7"), filepath.Join(dir, "nope")}, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readInputs(tt.args, nil, false)
			var ie *inputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *inputError", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}
