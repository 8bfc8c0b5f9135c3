package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mllpd/mllpd/store"
)

// corpusDir finds ../shared/corpus beside the repository (the layout of a
// developer checkout and of CI alike).
func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "corpus")
	if _, err := os.Stat(filepath.Join(c, "README.md")); err != nil {
		t.Fatalf("the sample corpus is missing: want %s (a shared/ directory beside the checkout): %v", c, err)
	}
	return c
}

// controlIDs returns MSH-10 of every MSH segment of payload, read with a plain
// split of each MSH line on its own field separator (independent of hl7).
func controlIDs(payload []byte) []string {
	var ids []string
	for _, seg := range strings.FieldsFunc(string(payload), func(r rune) bool { return r == '\r' || r == '\n' }) {
		if !strings.HasPrefix(seg, "MSH") || len(seg) < 4 {
			continue
		}
		f := strings.Split(seg, seg[3:4])
		if len(f) > 9 {
			ids = append(ids, f[9])
		} else {
			ids = append(ids, "")
		}
	}
	return ids
}

// msaSegments returns (MSA-1, MSA-2) of every MSA segment of a reply.
func msaSegments(reply string) [][2]string {
	var out [][2]string
	for _, seg := range strings.Split(reply, "\r") {
		if !strings.HasPrefix(seg, "MSA") || len(seg) < 4 {
			continue
		}
		f := strings.Split(seg, seg[3:4])
		for len(f) < 3 {
			f = append(f, "")
		}
		out = append(out, [2]string{f[1], f[2]})
	}
	return out
}

// TestCorpus sends every file of the shared corpus as one frame and checks its
// answer against the corpus README.
func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	td := startDaemon(t, oneListener)
	addr := td.addr(t, "pas")
	stored := 0
	for _, kind := range []string{"valid", "invalid", "edge"} {
		files, err := filepath.Glob(filepath.Join(dir, kind, "*.hl7"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no files (%v)", kind, err)
		}
		for _, f := range files {
			name := filepath.Base(f)
			t.Run(kind+"/"+name, func(t *testing.T) {
				payload, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				c := dial(t, addr) // a connection per file: one broken file cannot disturb the next
				reply := c.roundTrip(string(payload))
				msas := msaSegments(reply)
				if len(msas) == 0 {
					t.Fatalf("reply without MSA: %q", reply)
				}
				ids := controlIDs(payload)
				switch kind {
				case "valid":
					batch := strings.HasPrefix(string(payload), "BHS") || strings.HasPrefix(string(payload), "FHS")
					if batch {
						if len(msas) != len(ids) {
							t.Fatalf("ack batch has %d MSA for %d messages", len(msas), len(ids))
						}
						for i, m := range msas {
							if m != [2]string{"AA", ids[i]} {
								t.Errorf("MSA %d = %v, want AA|%s", i, m, ids[i])
							}
						}
					} else if len(msas) != 1 || msas[0] != [2]string{"AA", ids[0]} {
						t.Errorf("reply MSA = %v, want one AA|%s (reply %q)", msas, ids[0], reply)
					}
					// Every message of the file is in the store (a copy of an
					// earlier file's message was deduplicated, not lost).
					for _, id := range ids {
						recs, err := td.Store().Query(store.Filter{ControlID: id, Limit: 10})
						if err != nil {
							t.Fatal(err)
						}
						if len(recs) == 0 {
							t.Errorf("control ID %q acknowledged but not in the store", id)
						}
					}
					recs, err := td.Store().Query(store.Filter{Limit: 1000})
					if err != nil {
						t.Fatal(err)
					}
					stored = len(recs)
				case "invalid":
					want := ""
					if len(ids) > 0 {
						want = ids[0]
					}
					if msas[0] != [2]string{"AE", want} {
						t.Errorf("reply MSA = %v, want AE|%s (reply %q)", msas[0], want, reply)
					}
					if !strings.Contains(reply, "\rERR") {
						t.Errorf("NAK without ERR: %q", reply)
					}
				case "edge":
					// Documented policy (docs/interface-spec.md): a message is
					// taken when its header has MSH-9 and MSH-10; otherwise AE.
					code := msas[0][0]
					if code != "AA" && code != "AE" && code != "AR" {
						t.Errorf("reply MSA-1 = %q", code)
					}
					if want, ok := edgePolicy[name]; ok && code != want {
						t.Errorf("reply MSA-1 = %q, want %q (reply %q)", code, want, reply)
					}
				}
				if kind != "valid" {
					recs, err := td.Store().Query(store.Filter{Limit: 1000})
					if err != nil {
						t.Fatal(err)
					}
					if kind == "invalid" && len(recs) != stored {
						t.Errorf("an invalid file was stored")
					}
					stored = len(recs)
				}
			})
		}
	}
}

// edgePolicy is what mllpd answers to the corpus's edge cases.
var edgePolicy = map[string]string{
	"028-pythonhl7-nonstandard-separators-minimal.hl7":      "AE", // MSH has only MSH-3: MSH-9 and MSH-10 missing
	"065-simhospital-adt-a01-8859-1-latin1-byte.hl7":        "AE", // MSH-10 empty
	"066-simhospital-blank-segments-and-bad-segment-id.hl7": "AA", // blank segments are a repair; XX is just a segment
}
