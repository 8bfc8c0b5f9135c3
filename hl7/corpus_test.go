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

func TestCorpusValid(t *testing.T) {
	files := readCorpus(t, "valid")
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

func TestCorpusEdge(t *testing.T) {
	for _, f := range readCorpus(t, "edge") {
		t.Run(f.name, func(t *testing.T) {
			b, err := SplitBatch(f.raw, Options{})
			t.Logf("SplitBatch: %v", err)
			if err == nil {
				for _, m := range b.Messages {
					t.Logf("ValidateHeader: %v, charset %s", m.ValidateHeader(), m.Charset())
					_ = m.Header()
					_ = NewACK(m, AA, AckOptions{})
				}
			}
			_ = NewNAK(f.raw, AE, AckOptions{})
		})
	}
}
