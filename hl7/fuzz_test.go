package hl7

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns the local corpus copy and the reference cases.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, dir := range []string{"corpus/valid", "corpus/invalid", "corpus/edge", "cases"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.hl7"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no seeds in testdata/%s", dir)
		}
		for _, name := range files {
			raw, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, raw)
		}
	}
	return seeds
}

// checkTyped fails unless err is one of the package's typed errors.
func checkTyped(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	var be *BatchError
	if !errors.As(err, &pe) && !errors.As(err, &be) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
}

// FuzzParse: Parse never panics and returns typed errors; what parses
// encodes to its input byte for byte, reads stay inside it, its canonical form
// re-parses to the same content, and any input gets a parseable NAK.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	paths := []Path{MustParsePath("MSH-9.2"), MustParsePath("MSH-10"), MustParsePath("PID-3[2].4.2"), MustParsePath("OBX[2]-5"), MustParsePath("MSH-2")}
	f.Fuzz(func(t *testing.T, raw []byte) {
		nak := NewNAK(raw, AE, AckOptions{ControlID: "N1", App: "A\x0b|", Text: "x\x1c^"})
		if _, err := Parse(nak); err != nil {
			t.Fatalf("NAK does not parse: %v\n%q", err, nak)
		}
		if !bytes.ContainsAny(raw, "\x0b\x1c") && bytes.ContainsAny(nak, "\x0b\x1c") {
			t.Fatalf("NAK carries MLLP framing bytes: %q", nak)
		}
		m, err := Parse(raw)
		if err != nil {
			checkTyped(t, err)
			return
		}
		if !bytes.Equal(m.Encode(), raw) {
			t.Fatal("Encode of an unmodified message differs from its input")
		}
		for _, p := range paths {
			if v := m.GetRaw(p); len(v) > 0 && !isSubslice(raw, v) {
				t.Fatalf("GetRaw(%s) is not a view into the input", p)
			}
			_ = m.Get(p)
		}
		_ = m.Header()
		_ = m.ValidateHeader()
		ack := NewACK(m, AR, AckOptions{ControlID: "A1", Error: &AckError{Code: 207, Location: "MSH^1^10"}})
		a, err := Parse(ack)
		if err != nil {
			t.Fatalf("ACK does not parse: %v\n%q", err, ack)
		}
		if got, want := string(a.FieldRaw(MustParsePath("MSA-2"))), m.Header().ControlID; got != want {
			t.Fatalf("MSA-2 = %q, want %q", got, want)
		}
		canon := m.EncodeCR()
		c, err := Parse(canon)
		if err != nil {
			t.Fatalf("EncodeCR output does not parse: %v", err)
		}
		if c.ContentHash() != m.ContentHash() || c.SegmentCount() != m.SegmentCount() {
			t.Fatalf("EncodeCR changed the content")
		}
		if !bytes.Equal(c.EncodeCR(), canon) {
			t.Fatalf("EncodeCR is not a fixed point")
		}
	})
}

// FuzzRoundTrip: an unmodified round trip is byte-identical, and a Set of any
// text reads back the same text after Encode and Parse, leaving the other
// segments' bytes alone.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, "DOE^JOHN|\\&~#\r\n")
	}
	p := MustParsePath("ZZZ-2[2].3.2")
	f.Fuzz(func(t *testing.T, raw []byte, value string) {
		m, err := Parse(raw)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Encode(), raw) {
			t.Fatal("unmodified round trip is not byte-identical")
		}
		before := m.SegmentCount()
		if err := m.Set(p, value); err != nil {
			noSub := errors.Is(err, ErrBadPath) && m.Delimiters().Subcomponent == 0
			if !noSub && !errors.Is(err, ErrCannotEscape) && !errors.Is(err, ErrUnrepresentable) && !errors.Is(err, ErrNoSegment) {
				t.Fatalf("Set: unexpected error %v", err)
			}
			return
		}
		out := m.Encode()
		if !bytes.Equal(m.Raw(), raw) {
			t.Fatal("Set modified the raw bytes")
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("edited message does not parse: %v", err)
		}
		if again.Delimiters() != m.Delimiters() {
			t.Fatal("delimiters changed")
		}
		if got := again.Get(p); got != m.Get(p) {
			t.Fatalf("Get after round trip = %q, before %q", got, m.Get(p))
		}
		if m.Charset() == CharsetUTF8 && m.Get(p) != value && (value == "" || isValidText(value)) {
			t.Fatalf("Get = %q after Set(%q)", m.Get(p), value)
		}
		if again.SegmentCount() < before {
			t.Fatalf("segments lost: %d -> %d", before, again.SegmentCount())
		}
		// Delete undoes the value; deleting the whole segment removes it.
		if err := m.Delete(p); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := m.Get(p); got != "" {
			t.Fatalf("Get after Delete = %q", got)
		}
		if err := m.Delete(MustParsePath("ZZZ")); err != nil {
			t.Fatalf("Delete segment: %v", err)
		}
		final, err := Parse(m.Encode())
		if err != nil {
			t.Fatalf("message after Delete does not parse: %v", err)
		}
		if final.SegmentCountOf("ZZZ") != 0 || final.ContentHash() != m.ContentHash() {
			t.Fatalf("Delete left ZZZ segments or the encoding differs from the model")
		}
	})
}

// isValidText reports whether s is valid UTF-8 without NUL, which the
// parser would take for junk at a segment start.
func isValidText(s string) bool {
	return bytes.Equal([]byte(s), bytes.ToValidUTF8([]byte(s), nil))
}

// FuzzParsePath: accepted paths print back to a path that parses to the
// same value; rejected ones wrap ErrBadPath.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"PID-5", "PID-5.1", "PID-5.1.2", "PID-3[2].1", "OBX[3]-5", "MSH-9.2", "ZPI", "OBX[2]", "PID-05", "P1D-1[0]", "pid-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("error does not wrap ErrBadPath: %v", err)
			}
			return
		}
		q, err := ParsePath(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePath(%q).String() = %q does not round-trip: %v", s, p.String(), err)
		}
		if p.Field() == 0 && (p.Repetition() != 0 || p.Component() != 0) {
			t.Fatalf("segment path with sub-indexes: %+v", p)
		}
	})
}

// FuzzSplitBatch: typed errors only; every message is a view of the frame,
// in order, without overlap, and encodes to its own bytes.
func FuzzSplitBatch(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := SplitBatch(raw, Options{})
		if err != nil {
			checkTyped(t, err)
			return
		}
		if len(b.Messages) == 0 {
			t.Fatal("no messages and no error")
		}
		if (b.Kind == SingleMessage) != (len(b.Messages) == 1 && b.Kind != BatchBHS && b.Kind != BatchFHS) {
			t.Fatalf("Kind %v with %d messages", b.Kind, len(b.Messages))
		}
		end := 0
		for _, m := range b.Messages {
			r := m.Raw()
			if len(r) == 0 || !isSubslice(raw, r) {
				t.Fatal("message is not a view of the frame")
			}
			start := offsetIn(raw, r)
			if start < end {
				t.Fatal("messages overlap or are out of order")
			}
			end = start + len(r)
			if !bytes.Equal(m.Encode(), r) {
				t.Fatal("message does not encode to its bytes")
			}
		}
		var acks [][]byte
		for _, m := range b.Messages {
			acks = append(acks, NewACK(m, AA, AckOptions{ControlID: "A"}))
		}
		reply := NewBatchACK(b, acks, AckOptions{ControlID: "B"})
		rb, err := SplitBatch(reply, Options{})
		if err != nil {
			t.Fatalf("reply batch does not split: %v\n%q", err, reply)
		}
		if want := len(b.Messages); b.Kind == BatchBHS || b.Kind == BatchFHS {
			if len(rb.Messages) != want || rb.Kind != b.Kind {
				t.Fatalf("reply has %d messages (%v), want %d (%v)", len(rb.Messages), rb.Kind, want, b.Kind)
			}
		}
	})
}

func offsetIn(whole, part []byte) int {
	for i := range whole {
		if &whole[i] == &part[0] {
			return i
		}
	}
	return -1
}

// FuzzEscape: Unescape inverts Escape for any text and delimiter set.
func FuzzEscape(f *testing.F) {
	f.Add("A|B^C&D~E\\F#\r\n", []byte(`|^~\&#`))
	f.Add("plain", []byte(`#$*!@`))
	f.Fuzz(func(t *testing.T, s string, delims []byte) {
		m, err := Parse(append(append([]byte("MSH"), delims...), '|'))
		if err != nil {
			return
		}
		d := m.Delimiters()
		if d.Escape == 0 {
			return
		}
		if got := string(Unescape([]byte(Escape(s, d)), d)); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q", s, got)
		}
	})
}
