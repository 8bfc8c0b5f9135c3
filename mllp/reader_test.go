package mllp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// m1 is the reference's M1 message (hl7-mllp-reference §11).
const m1 = "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\r" +
	"PID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q||19700101|M\r" +
	"OBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"

const (
	vt = "\x0b"
	fs = "\x1c"
	cr = "\r"
)

func frame(p string) string { return vt + p + fs + cr }

// chunkReader returns its chunks one Read at a time, as TCP reads would.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// result is one ReadFrame outcome in a readable form.
type result struct {
	Payload string
	Err     string // "", "EOF", "unexpected EOF", "too large N", "restarted N <fragment>"
}

func describe(p []byte, err error) result {
	var tl *FrameTooLargeError
	var rs *FrameRestartedError
	switch {
	case err == nil:
		return result{Payload: string(p)}
	case errors.As(err, &tl):
		if !errors.Is(err, ErrFrameTooLarge) {
			panic("FrameTooLargeError does not match ErrFrameTooLarge")
		}
		return result{Err: "too large " + itoa(tl.Size) + " prefix " + itoa(int64(len(tl.Prefix)))}
	case errors.As(err, &rs):
		if !errors.Is(err, ErrFrameRestarted) {
			panic("FrameRestartedError does not match ErrFrameRestarted")
		}
		return result{Err: "restarted " + itoa(rs.Size) + " " + string(rs.Fragment)}
	case err == io.EOF:
		return result{Err: "EOF"}
	case err == io.ErrUnexpectedEOF:
		return result{Err: "unexpected EOF"}
	default:
		return result{Err: err.Error()}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// readAll reads until io.EOF or an error that is neither of the
// connection-preserving kinds, and returns every outcome.
func readAll(r *Reader) []result {
	var got []result
	for i := 0; i < 1000; i++ {
		p, err := r.ReadFrame()
		got = append(got, describe(p, err))
		if err != nil && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrFrameRestarted) {
			break
		}
	}
	return got
}

func TestReaderReferenceCases(t *testing.T) {
	const a = "MSH|^~\\&|A|||||||A1|P|2.5\r"
	const b = "MSH|^~\\&|B|||||||B1|P|2.5\r"
	tests := []struct {
		name        string
		chunks      []string
		max         int
		want        []result
		wantSkipped int64
	}{
		{
			name:   "1 normal frame",
			chunks: []string{frame(m1)},
			want:   []result{{Payload: m1}, {Err: "EOF"}},
		},
		{
			name:   "2 missing CR after FS then EOF",
			chunks: []string{vt + m1 + fs},
			want:   []result{{Payload: m1}, {Err: "EOF"}},
		},
		{
			name:   "3 missing CR, next frame follows",
			chunks: []string{vt + a + fs + vt + b + fs + cr},
			want:   []result{{Payload: a}, {Payload: b}, {Err: "EOF"}},
		},
		{
			name:        "4 junk before start",
			chunks:      []string{"\r\n\x00 " + frame(m1)},
			want:        []result{{Payload: m1}, {Err: "EOF"}},
			wantSkipped: 4,
		},
		{
			name:        "5 junk between frames",
			chunks:      []string{frame(a) + "\n" + frame(b)},
			want:        []result{{Payload: a}, {Payload: b}, {Err: "EOF"}},
			wantSkipped: 1,
		},
		{
			name:   "6 two frames in one read",
			chunks: []string{frame(a) + frame(b)},
			want:   []result{{Payload: a}, {Payload: b}, {Err: "EOF"}},
		},
		{
			name:   "7 one frame in three reads",
			chunks: []string{vt + "MSH|^~\\&|LA", m1[len("MSH|^~\\&|LA"):] + fs, cr},
			want:   []result{{Payload: m1}, {Err: "EOF"}},
		},
		{
			name:   "8 second VT inside a frame",
			chunks: []string{vt + "MSH|^~\\&|LAB|RX" + frame(m1)},
			want:   []result{{Err: "restarted 15 MSH|^~\\&|LAB|RX"}, {Payload: m1}, {Err: "EOF"}},
		},
		{
			name:   "9 oversized frame that ends, next frame read",
			chunks: []string{vt + strings.Repeat("x", 100), strings.Repeat("y", 50) + fs + cr + frame(a)},
			max:    64,
			want:   []result{{Err: "too large 150 prefix 150"}, {Payload: a}, {Err: "EOF"}},
		},
		{
			name:   "10 oversized frame that never ends",
			chunks: []string{vt + strings.Repeat("x", 1000)},
			max:    64,
			want:   []result{{Err: "unexpected EOF"}},
		},
		{
			name:   "11 empty frame",
			chunks: []string{frame("") + frame(a)},
			want:   []result{{Payload: ""}, {Payload: a}, {Err: "EOF"}},
		},
		{
			name:   "12 R2 commit ACK is a payload",
			chunks: []string{frame("\x06")},
			want:   []result{{Payload: "\x06"}, {Err: "EOF"}},
		},
		{
			name:   "CR of the end block arrives in the next read",
			chunks: []string{vt + a + fs, cr + vt + b + fs, cr},
			want:   []result{{Payload: a}, {Payload: b}, {Err: "EOF"}},
		},
		{
			name:        "only junk",
			chunks:      []string{"hello\r\n"},
			want:        []result{{Err: "EOF"}},
			wantSkipped: 7,
		},
		{
			name:        "stray FS and CR between frames are junk",
			chunks:      []string{frame(a) + cr + fs + cr + frame(b)},
			want:        []result{{Payload: a}, {Payload: b}, {Err: "EOF"}},
			wantSkipped: 3,
		},
		{
			name:   "EOF inside a frame",
			chunks: []string{vt + "MSH|^~"},
			want:   []result{{Err: "unexpected EOF"}},
		},
		{
			name:   "frame of exactly max bytes",
			chunks: []string{frame(strings.Repeat("z", 64))},
			max:    64,
			want:   []result{{Payload: strings.Repeat("z", 64)}, {Err: "EOF"}},
		},
		{
			name:   "restart inside an oversized frame",
			chunks: []string{vt + strings.Repeat("x", 100) + frame(a)},
			max:    64,
			want:   []result{{Err: "restarted 100 " + strings.Repeat("x", 100)}, {Payload: a}, {Err: "EOF"}},
		},
		{
			name:   "two VTs in a row",
			chunks: []string{vt + vt + a + fs + cr},
			want:   []result{{Err: "restarted 0 "}, {Payload: a}, {Err: "EOF"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(&chunkReader{chunks: append([]string(nil), tt.chunks...)}, tt.max)
			got := readAll(r)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			if r.Skipped() != tt.wantSkipped {
				t.Errorf("Skipped() = %d, want %d", r.Skipped(), tt.wantSkipped)
			}
		})
	}
}

func TestReaderOversizePrefixIsBounded(t *testing.T) {
	const size = 3 << 20 // reference case 9: 3 MiB against a 1 MiB limit
	body := bytes.Repeat([]byte("0123456789"), size/10)
	input := append(append([]byte(vt), body...), fs+cr+frame(m1)...)
	r := NewReader(bytes.NewReader(input), 1<<20)
	_, err := r.ReadFrame()
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("ReadFrame error = %v, want *FrameTooLargeError", err)
	}
	if tl.Size != int64(len(body)) || tl.Limit != 1<<20 {
		t.Errorf("Size, Limit = %d, %d; want %d, %d", tl.Size, tl.Limit, len(body), 1<<20)
	}
	if !bytes.Equal(tl.Prefix, body[:PrefixBytes]) {
		t.Errorf("Prefix is not the first %d bytes of the frame (len %d)", PrefixBytes, len(tl.Prefix))
	}
	if cap(r.buf) > 1<<20 {
		t.Errorf("frame buffer grew to %d bytes: oversized frame was buffered", cap(r.buf))
	}
	p, err := r.ReadFrame()
	if err != nil || string(p) != m1 {
		t.Errorf("next frame = %q, %v; want M1", p, err)
	}
}

// timeoutReader fails with a deadline error once its data is consumed, as a
// net.Conn whose read deadline passed.
type timeoutReader struct{ data []byte }

func (t *timeoutReader) Read(p []byte) (int, error) {
	if len(t.data) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, t.data)
	t.data = t.data[n:]
	return n, nil
}

func TestReaderResumesAfterTimeout(t *testing.T) {
	tr := &timeoutReader{data: []byte(vt + "MSH|^~")}
	r := NewReader(tr, 0)
	if _, err := r.ReadFrame(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrame error = %v, want os.ErrDeadlineExceeded", err)
	}
	if !r.inFrame {
		t.Fatal("Reader forgot it was inside a frame after a timeout")
	}
	tr.data = []byte("\\&|rest" + fs + cr)
	p, err := r.ReadFrame()
	if err != nil || string(p) != "MSH|^~\\&|rest" {
		t.Errorf("ReadFrame after timeout = %q, %v; want the whole payload", p, err)
	}
}

func TestReaderZeroAllocSteadyState(t *testing.T) {
	in := []byte(frame(m1))
	src := bytes.NewReader(in)
	r := NewReader(src, 0)
	// A frame split across reads takes the copying path; it must not
	// allocate either once the frame buffer has grown.
	split := &chunkReader{}
	rs := NewReader(split, 0)
	var pair [2]string
	head, tail := string(in[:20]), string(in[20:])
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(in)
		if p, err := r.ReadFrame(); err != nil || string(p) != m1 {
			t.Fatalf("contiguous frame: %q, %v", p, err)
		}
		pair = [2]string{head, tail}
		split.chunks = pair[:]
		if p, err := rs.ReadFrame(); err != nil || string(p) != m1 {
			t.Fatalf("split frame: %q, %v", p, err)
		}
	})
	if allocs != 0 {
		t.Errorf("allocations per frame = %v, want 0", allocs)
	}
}

func TestWriterOneWritePerFrame(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	for _, p := range []string{m1, "", strings.Repeat("x", 200_000)} {
		cw.writes = 0
		cw.buf.Reset()
		if err := w.WriteFrame([]byte(p)); err != nil {
			t.Fatal(err)
		}
		if cw.writes != 1 {
			t.Errorf("payload of %d bytes took %d writes, want 1", len(p), cw.writes)
		}
		if got := cw.buf.String(); got != frame(p) {
			t.Errorf("frame of %d bytes = %q..., want VT payload FS CR", len(p), got[:min(len(got), 20)])
		}
	}
	for _, bad := range []string{"a\x0bb", "a\x1cb"} {
		cw.writes = 0
		if err := w.WriteFrame([]byte(bad)); !errors.Is(err, ErrInvalidPayload) || cw.writes != 0 {
			t.Errorf("WriteFrame(%q) = %v with %d writes, want ErrInvalidPayload and none", bad, err, cw.writes)
		}
	}
}

type countingWriter struct {
	writes int
	buf    bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.buf.Write(p)
}

// TestReaderOnStart: the read-deadline hook runs only when a frame has to be
// read further from the connection, once per such wait, and never for a frame
// that arrived whole.
func TestReaderOnStart(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []string // what happened, in order: "start" or a frame's payload
	}{
		{"whole frame", []string{"\x0bMSH|a\x1c\r"}, []string{"MSH|a"}},
		{"two whole frames in one read", []string{"\x0bA\x1c\r\x0bB\x1c\r"}, []string{"A", "B"}},
		{"split frame", []string{"\x0bMSH", "|a\x1c\r"}, []string{"start", "MSH|a"}},
		{"split in three", []string{"\x0bM", "S", "H\x1c\r"}, []string{"start", "MSH"}},
		{"VT alone, then the body", []string{"\x0b", "A\x1c\r"}, []string{"start", "A"}},
		{"whole, then split", []string{"\x0bA\x1c\r\x0bB", "C\x1c\r"}, []string{"A", "start", "BC"}},
		{"junk before a whole frame", []string{"xx", "\x0bA\x1c\r"}, []string{"A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			r := NewReader(&chunkReader{chunks: append([]string(nil), tt.chunks...)}, 0)
			r.onStart = func() { got = append(got, "start") }
			for {
				p, err := r.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("ReadFrame: %v", err)
				}
				got = append(got, string(p))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
