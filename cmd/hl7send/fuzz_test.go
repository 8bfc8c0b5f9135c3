package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFixtures adds every fixture file, and LF and framed variants of a few.
func seedFixtures(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "fixtures", "*", "*.hl7"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixture seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(lf(msgA) + "\n\n" + crlf(msgB)))
	f.Add([]byte(frame(msgA) + "\r\n" + frame(lf(msgB))))
	f.Add([]byte("\x0b\x0b\x1c\x1c\r"))
	f.Add([]byte("FHS|\rBHS\rMSH\r\rBTS|\nFTS"))
}

// FuzzSplitMessages checks what the sender promises about every message it sends:
// CR-terminated segments only, no empty segment, MSH only as the first segment, and each
// message is a fixed point: splitting it again gives itself.
func FuzzSplitMessages(f *testing.F) {
	seedFixtures(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs := splitMessages(data)
		for i, m := range msgs {
			if len(m) == 0 || m[len(m)-1] != '\r' {
				t.Fatalf("message %d does not end with CR: %q", i, m)
			}
			if bytes.IndexByte(m, '\n') >= 0 {
				t.Fatalf("message %d holds an LF: %q", i, m)
			}
			segs := strings.Split(string(m[:len(m)-1]), "\r")
			for j, s := range segs {
				if strings.TrimSpace(strings.Trim(s, "\x00")) == "" {
					t.Fatalf("message %d segment %d is blank: %q", i, j, m)
				}
				if j > 0 && isSegment([]byte(s), "MSH") {
					t.Fatalf("message %d has an MSH at segment %d: %q", i, j, m)
				}
			}
		}
		if bytes.IndexByte(data, startBlock) >= 0 {
			return // a frame's bytes are not text: re-splitting them is not the same input
		}
		for i, m := range msgs {
			again := splitMessages(m)
			if len(again) != 1 || !bytes.Equal(again[0], m) {
				t.Fatalf("message %d split again gives %q, want itself %q", i, again, m)
			}
		}
	})
}

// FuzzControlIDSuffix checks that --new-control-ids changes MSH-10 and nothing else.
func FuzzControlIDSuffix(f *testing.F) {
	seedFixtures(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		const suffix = "-t3st-1"
		if bytes.Contains(msg, []byte(suffix)) {
			return
		}
		before := readHeader(msg)
		out := withControlIDSuffix(msg, suffix)
		after := readHeader(out)
		if before.ControlID != "" && after.ControlID != before.ControlID+suffix {
			t.Fatalf("MSH-10 %q became %q, want the suffix added", before.ControlID, after.ControlID)
		}
		if before.ControlID == "" && after.ControlID != "" {
			t.Fatalf("empty MSH-10 became %q", after.ControlID)
		}
		if after.Type != before.Type {
			t.Fatalf("MSH-9 changed: %q -> %q", before.Type, after.Type)
		}
		if got := bytes.ReplaceAll(out, []byte(suffix), nil); !bytes.Equal(got, msg) {
			t.Fatalf("removing the suffix does not give the input back:\n got %q\nwant %q", got, msg)
		}
	})
}
