package hl7

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir finds the shared corpus: /work/shared/corpus beside the checkout
// (../../shared/corpus from this package directory). It fails loudly when
// the corpus is missing: skipping would hide that nothing was tested.
func corpusDir(t testing.TB) string {
	t.Helper()
	for _, dir := range []string{
		os.Getenv("MLLPD_CORPUS"),
		filepath.Join("..", "..", "shared", "corpus"),
	} {
		if dir == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, "valid")); err == nil && st.IsDir() {
			return dir
		}
	}
	t.Fatalf("HL7 corpus not found: expected ../../shared/corpus (a shared/ directory beside the checkout) or $MLLPD_CORPUS")
	return ""
}

type corpusFile struct {
	name string
	raw  []byte
}

func readCorpus(t testing.TB, sub string) []corpusFile {
	t.Helper()
	dir := filepath.Join(corpusDir(t), sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []corpusFile
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".hl7") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, corpusFile{e.Name(), raw})
	}
	if len(files) == 0 {
		t.Fatalf("no .hl7 files in %s", dir)
	}
	return files
}

// validQuirks are per-file facts from the corpus README and SOURCES.tsv.
var validQuirks = map[string]func(t *testing.T, b *Batch){
	"021-pythonhl7-batch-bhs-bts-1msg.hl7":     batchShape(BatchBHS, 1, 1),
	"022-pythonhl7-batch-bhs-bts-2msg.hl7":     batchShape(BatchBHS, 2, 2),
	"023-pythonhl7-batch-headerless-2msg.hl7":  batchShape(Headerless, 2, -1),
	"024-pythonhl7-batch-bhs-no-bts.hl7":       batchShape(BatchBHS, 1, -1),
	"025-pythonhl7-file-fhs-bhs-1msg.hl7":      batchShape(BatchFHS, 1, 1),
	"026-pythonhl7-file-fhs-2batches-3msg.hl7": batchShape(BatchFHS, 3, 3),
	"027-pythonhl7-file-fhs-no-bhs-2msg.hl7":   batchShape(BatchFHS, 2, -1),
	"036-hl7apy-rsp-k22-v27-truncation-char.hl7": func(t *testing.T, b *Batch) {
		if d := b.Messages[0].Delimiters(); d.Truncation != '#' || d.EncodingCharacters() != `^~\&#` {
			t.Errorf("delimiters %+v, want truncation #", d)
		}
	},
	"071-rusthl7-oru-r01-escape-char-star.hl7": func(t *testing.T, b *Batch) {
		if d := b.Messages[0].Delimiters(); d.Escape != '*' {
			t.Errorf("escape %q, want *", d.Escape)
		}
	},
	"075-gohl7-oru-r01-cobas-8859-1-declared.hl7": charsetIs("ISO-8859-1"),
	"076-gohl7-oul-r21-literal-13-in-msh18.hl7":   charsetIs("UTF-8"), // mangled MSH-18 = absent
}

func batchShape(kind BatchKind, n, declared int) func(*testing.T, *Batch) {
	return func(t *testing.T, b *Batch) {
		if b.Kind != kind || len(b.Messages) != n || b.DeclaredCount != declared || b.CountMismatch {
			t.Errorf("batch %v with %d messages, declared %d, mismatch %v; want %v, %d, %d, false",
				b.Kind, len(b.Messages), b.DeclaredCount, b.CountMismatch, kind, n, declared)
		}
	}
}

func charsetIs(cs string) func(*testing.T, *Batch) {
	return func(t *testing.T, b *Batch) {
		if got := b.Messages[0].Charset(); got != cs {
			t.Errorf("Charset = %q, want %q", got, cs)
		}
	}
}

func TestCorpusValid(t *testing.T) {
	files := readCorpus(t, "valid")
	names := map[string]bool{}
	for _, f := range files {
		names[f.name] = true
	}
	for name := range validQuirks {
		if !names[name] {
			t.Errorf("validQuirks names %s, which is not in the corpus", name)
		}
	}
	if len(files) != 57 {
		t.Errorf("valid corpus has %d files, README says 57", len(files))
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			b, err := SplitBatch(f.raw, Options{})
			if err != nil {
				t.Fatalf("SplitBatch: %v", err)
			}
			isBatch := strings.Contains(f.name, "batch") || strings.Contains(f.name, "file-")
			if isBatch != (b.Kind != SingleMessage) {
				t.Errorf("Kind = %v for %s", b.Kind, f.name)
			}
			if check := validQuirks[f.name]; check != nil {
				check(t, b)
			}
			for i, m := range b.Messages {
				if err := m.ValidateHeader(); err != nil {
					t.Errorf("message %d: ValidateHeader: %v", i, err)
				}
				if !bytes.Equal(m.Encode(), m.Raw()) {
					t.Errorf("message %d: Encode differs from Raw", i)
				}
				if !isSubslice(f.raw, m.Raw()) {
					t.Errorf("message %d: Raw is not a view into the frame", i)
				}
			}
			if b.Kind == SingleMessage {
				m, err := Parse(f.raw)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if !bytes.Equal(m.Encode(), f.raw) {
					t.Errorf("Encode is not byte-identical")
				}
				ack := NewACK(m, AA, AckOptions{ControlID: "X1"})
				a, err := Parse(ack)
				if err != nil {
					t.Fatalf("ACK does not parse: %v", err)
				}
				if got, want := string(a.GetRaw(MustParsePath("MSA-2"))), m.Header().ControlID; got != want {
					t.Errorf("MSA-2 = %q, want %q", got, want)
				}
				if a.Delimiters() != m.Delimiters() {
					t.Errorf("ACK delimiters %+v, want %+v", a.Delimiters(), m.Delimiters())
				}
			}
		})
	}
}

func isSubslice(whole, part []byte) bool {
	if len(part) == 0 {
		return true
	}
	for i := range whole {
		if &whole[i] == &part[0] {
			return i+len(part) <= len(whole)
		}
	}
	return false
}

func TestCorpusInvalid(t *testing.T) {
	for _, f := range readCorpus(t, "invalid") {
		t.Run(f.name, func(t *testing.T) {
			b, err := SplitBatch(f.raw, Options{})
			if err == nil {
				for _, m := range b.Messages {
					if err = m.ValidateHeader(); err != nil {
						break
					}
				}
			}
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParseError
			var he *HeaderError
			var be *BatchError
			if !errors.As(err, &pe) && !errors.As(err, &he) && !errors.As(err, &be) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			nak := NewNAK(f.raw, AE, AckOptions{ControlID: "N1", App: "MLLPD", Facility: "HUB"})
			if _, err := Parse(nak); err != nil {
				t.Fatalf("NAK does not parse: %v\n%q", err, nak)
			}
			t.Logf("%v", err)
		})
	}
}

// TestCorpusEdge asserts mllpd's documented policy for the edge files (none
// may panic; each gets a parse result or a typed error and a usable reply).
func TestCorpusEdge(t *testing.T) {
	type want struct {
		headerErr int    // 0: ValidateHeader passes; else the MSH field it names
		charset   string // Message.Charset
		path, get string // one decoded read
		ackVer    string // the ACK's MSH-12
	}
	policy := map[string]want{
		// Damaged line breaks: still an MSH message; MSH-12 "2.3 PID" is not a
		// known version, so the ACK carries the default.
		"013-lenaten-oru-r01-mangled-line-breaks.hl7": {charset: "UTF-8", path: "MSH-10", get: "103392-166096531111", ackVer: "2.5.1"},
		// Non-default delimiters, no MSH-9/10: structure fine, header invalid.
		"028-pythonhl7-nonstandard-separators-minimal.hl7": {headerErr: 9, charset: "UTF-8", path: "PID-5.2", get: "EVE", ackVer: "2.5.1"},
		// Declared 8859/1 with 0xE9; MSH-10 empty.
		"065-simhospital-adt-a01-8859-1-latin1-byte.hl7": {headerErr: 10, charset: "ISO-8859-1", path: "PID-5.3", get: "José", ackVer: "2.3"},
		// Blank segments skipped, odd segment ID kept.
		"066-simhospital-blank-segments-and-bad-segment-id.hl7": {charset: "US-ASCII", path: "XX-1", ackVer: "2.3"},
	}
	files := readCorpus(t, "edge")
	if len(files) != len(policy) {
		t.Errorf("edge corpus has %d files, policy covers %d", len(files), len(policy))
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			w, ok := policy[f.name]
			if !ok {
				t.Fatalf("no documented policy for %s", f.name)
			}
			b, err := SplitBatch(f.raw, Options{})
			if err != nil {
				t.Fatalf("SplitBatch: %v", err)
			}
			m := b.Messages[0]
			err = m.ValidateHeader()
			var he *HeaderError
			switch {
			case w.headerErr == 0 && err != nil:
				t.Errorf("ValidateHeader: %v", err)
			case w.headerErr != 0 && (!errors.As(err, &he) || he.Field != w.headerErr):
				t.Errorf("ValidateHeader = %v, want MSH-%d error", err, w.headerErr)
			}
			if m.Charset() != w.charset {
				t.Errorf("Charset = %q, want %q", m.Charset(), w.charset)
			}
			if w.path == "XX-1" {
				if m.SegmentName(1) != "XX" || m.Repairs()&RepairBlankSegments == 0 {
					t.Errorf("segments %v, repairs %v", segmentNames(m), m.Repairs().Names())
				}
			} else if got := m.Get(MustParsePath(w.path)); got != w.get {
				t.Errorf("Get(%s) = %q, want %q", w.path, got, w.get)
			}
			if !bytes.Equal(m.Encode(), f.raw) {
				t.Errorf("Encode is not byte-identical")
			}
			code := AA
			if err != nil {
				code = AE
			}
			a, perr := Parse(NewNAK(f.raw, code, AckOptions{ControlID: "E1", App: "MLLPD", Facility: "HUB"}))
			if perr != nil {
				t.Fatalf("reply does not parse: %v", perr)
			}
			if got := a.Header().Version; got != w.ackVer {
				t.Errorf("ACK version %q, want %q", got, w.ackVer)
			}
		})
	}
}
