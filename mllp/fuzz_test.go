package mllp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader checks the Reader's properties on arbitrary streams:
//   - a payload is never longer than the limit and never holds VT or FS;
//   - an oversized frame's prefix is at most PrefixBytes;
//   - the same bytes split at arbitrary points into reads give the same
//     frames, errors and skipped count (framing does not depend on how TCP
//     cut the stream);
//   - the Reader always makes progress and ends with io.EOF or
//     io.ErrUnexpectedEOF.
func FuzzReader(f *testing.F) {
	seeds := []string{
		frame(m1),
		vt + m1 + fs,
		vt + "A" + fs + vt + "B" + fs + cr,
		"\r\n\x00 " + frame(m1),
		frame("A") + "\n" + frame("B"),
		vt + "MSH|^~\\&|LAB|RX" + frame(m1),
		frame(""),
		frame("\x06"),
		vt + "never ends",
		fs + cr + vt + vt + fs + fs + cr + cr,
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint16(64), uint64(1))
	}
	// Real payloads from the shared corpus, framed.
	files, _ := filepath.Glob("../../shared/corpus/*/*.hl7")
	if more, _ := filepath.Glob("/work/shared/corpus/*/*.hl7"); len(files) == 0 {
		files = more
	}
	for i, name := range files {
		if i >= 20 {
			break
		}
		b, err := os.ReadFile(name)
		if err == nil {
			f.Add([]byte(frame(string(b))+frame(string(b))), uint16(len(b)/2+1), uint64(i))
		}
	}

	f.Fuzz(func(t *testing.T, data []byte, maxFrame uint16, seed uint64) {
		limit := int(maxFrame)%4096 + 1
		whole := frames(t, NewReader(bytes.NewReader(data), limit), limit)

		rng := rand.New(rand.NewPCG(seed, seed>>1|1))
		var chunks []string
		for rest := data; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if rng.IntN(4) == 0 {
				n = 1 // many one-byte reads: the worst case for a state machine
			}
			chunks = append(chunks, string(rest[:n]))
			rest = rest[n:]
		}
		split := frames(t, NewReader(&chunkReader{chunks: chunks}, limit), limit)
		if len(whole.results) != len(split.results) {
			t.Fatalf("whole stream gave %d results, split stream %d", len(whole.results), len(split.results))
		}
		for i := range whole.results {
			if whole.results[i] != split.results[i] {
				t.Fatalf("result %d differs: whole %q, split %q", i, whole.results[i], split.results[i])
			}
		}
		if whole.skipped != split.skipped {
			t.Fatalf("skipped: whole %d, split %d", whole.skipped, split.skipped)
		}
	})
}

type framesRead struct {
	results []result
	skipped int64
}

// frames reads r to its end, checking each outcome's properties.
func frames(t *testing.T, r *Reader, limit int) framesRead {
	t.Helper()
	var out framesRead
	for i := 0; ; i++ {
		if i > 1<<20 {
			t.Fatal("Reader made no progress")
		}
		p, err := r.ReadFrame()
		var tl *FrameTooLargeError
		var rs *FrameRestartedError
		switch {
		case err == nil:
			if len(p) > limit {
				t.Fatalf("payload of %d bytes exceeds limit %d", len(p), limit)
			}
			if bytes.IndexByte(p, startBlock) >= 0 || bytes.IndexByte(p, endBlock) >= 0 {
				t.Fatalf("payload holds a framing byte: %q", p)
			}
		case errors.As(err, &tl):
			if tl.Size <= int64(limit) || len(tl.Prefix) > PrefixBytes || int64(len(tl.Prefix)) > tl.Size {
				t.Fatalf("bad FrameTooLargeError: size %d, limit %d, prefix %d", tl.Size, limit, len(tl.Prefix))
			}
		case errors.As(err, &rs):
			if len(rs.Fragment) > PrefixBytes || int64(len(rs.Fragment)) > rs.Size {
				t.Fatalf("bad FrameRestartedError: size %d, fragment %d", rs.Size, len(rs.Fragment))
			}
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			out.results = append(out.results, describe(p, err))
			out.skipped = r.Skipped()
			return out
		default:
			t.Fatalf("unexpected error %T: %v", err, err)
		}
		out.results = append(out.results, describe(p, err))
	}
}

// FuzzHeaderScan checks the Client's MSH-10 and MSA-2 scans on arbitrary
// bytes: no panic, and a found value is one field (no separator, no segment
// terminator) of the input.
func FuzzHeaderScan(f *testing.F) {
	f.Add([]byte(m1))
	f.Add([]byte("MSH|^~\\&|B|B|A|A|1||ACK|9|P|2.5.1\rMSA|AA|CTL0001\r"))
	f.Add([]byte("\xEF\xBB\xBF\nMSH#^~\\&#B\nMSA#AE#X#t\n"))
	f.Add([]byte("MSH"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, scan := range map[string]func([]byte) ([]byte, bool){"controlID": controlID, "ackControlID": ackControlID} {
			v, ok := scan(b)
			if !ok && v != nil {
				t.Fatalf("%s: value %q without a segment", name, v)
			}
			if bytes.ContainsAny(v, "\r\n") {
				t.Fatalf("%s: value %q spans segments", name, v)
			}
			if len(v) > 0 && !bytes.Contains(b, v) {
				t.Fatalf("%s: value %q is not in the input", name, v)
			}
		}
		if v, ok := controlID(b); ok && len(v) > 0 {
			trimmed := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")), "\r\n \x00")
			if bytes.IndexByte(v, trimmed[3]) >= 0 {
				t.Fatalf("controlID %q contains the field separator", v)
			}
		}
	})
}
