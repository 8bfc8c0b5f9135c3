package hl7

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The five "typical fields" an ingest path reads of an ADT^A01.
var benchPaths = []string{"MSH-10", "MSH-9.2", "PID-3[1].1", "PID-5.1", "PV1-3.1"}

func benchMessage(b *testing.B) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "adt_a01.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkParseGetRaw5(b *testing.B) {
	raw := benchMessage(b)
	paths := make([]Path, len(benchPaths))
	for i, s := range benchPaths {
		paths[i] = MustParsePath(s)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		m, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range paths {
			n += len(m.GetRaw(p))
		}
	}
	if n == 0 {
		b.Fatal("no values read")
	}
}

func BenchmarkParseGet5(b *testing.B) {
	raw := benchMessage(b)
	paths := make([]Path, len(benchPaths))
	for i, s := range benchPaths {
		paths[i] = MustParsePath(s)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		m, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range paths {
			n += len(m.Get(p))
		}
	}
	if n == 0 {
		b.Fatal("no values read")
	}
}

// BenchmarkNaiveSplit5 is the baseline: split every segment and every field
// with bytes.Split, then read the same five values by index.
func BenchmarkNaiveSplit5(b *testing.B) {
	raw := benchMessage(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		segs := bytes.Split(raw, []byte{'\r'})
		split := make([][][]byte, 0, len(segs))
		for _, s := range segs {
			split = append(split, bytes.Split(s, []byte{'|'}))
		}
		find := func(name string) [][]byte {
			for _, f := range split {
				if string(f[0]) == name {
					return f
				}
			}
			return nil
		}
		msh, pid, pv1 := find("MSH"), find("PID"), find("PV1")
		n += len(msh[9])                                                           // MSH-10
		n += len(bytes.Split(msh[8], []byte{'^'})[1])                              // MSH-9.2
		n += len(bytes.Split(bytes.Split(pid[3], []byte{'~'})[0], []byte{'^'})[0]) // PID-3[1].1
		n += len(bytes.Split(pid[5], []byte{'^'})[0])                              // PID-5.1
		n += len(bytes.Split(pv1[3], []byte{'^'})[0])                              // PV1-3.1
	}
	if n == 0 {
		b.Fatal("no values read")
	}
}

func BenchmarkParseOnly(b *testing.B) {
	raw := benchMessage(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewACK(b *testing.B) {
	m, err := Parse(benchMessage(b))
	if err != nil {
		b.Fatal(err)
	}
	o := AckOptions{Now: time.Date(2024, 1, 31, 12, 30, 46, 0, time.UTC), ControlID: "ACK000001"}
	b.ReportAllocs()
	for b.Loop() {
		if len(NewACK(m, AA, o)) == 0 {
			b.Fatal("empty ACK")
		}
	}
}

// BenchmarkNewACKNegative is an AR with MSA-3 and ERR (store failure).
func BenchmarkNewACKNegative(b *testing.B) {
	m, err := Parse(benchMessage(b))
	if err != nil {
		b.Fatal(err)
	}
	o := AckOptions{Now: time.Date(2024, 1, 31, 12, 30, 46, 0, time.UTC), ControlID: "ACK000001",
		Text: "Storage failure", Error: &AckError{Code: ErrCodeInternal, Diagnostic: "fsync failed"}}
	b.ReportAllocs()
	for b.Loop() {
		if len(NewACK(m, AR, o)) == 0 {
			b.Fatal("empty ACK")
		}
	}
}

func BenchmarkHeader(b *testing.B) {
	m, err := Parse(benchMessage(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if m.Header().ControlID == "" {
			b.Fatal("no control ID")
		}
	}
}

func BenchmarkContentHash(b *testing.B) {
	m, err := Parse(benchMessage(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.ContentHash()
	}
}

// BenchmarkSplitBatchSingle is what ingest pays per single-message frame.
func BenchmarkSplitBatchSingle(b *testing.B) {
	raw := benchMessage(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		bt, err := SplitBatch(raw, Options{})
		if err != nil || len(bt.Messages) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewNAKRaw builds a NAK from bytes that do not parse (bad MSH-2),
// salvaging the header by position.
func BenchmarkNewNAKRaw(b *testing.B) {
	raw := bytes.Replace(benchMessage(b), []byte(`^~\&`), []byte(`^^\&`), 1)
	if _, err := Parse(raw); err == nil {
		b.Fatal("bench input parses; want a broken MSH-2")
	}
	o := AckOptions{Now: time.Date(2024, 1, 31, 12, 30, 46, 0, time.UTC), ControlID: "ACK000001",
		Text: "Invalid encoding characters", Error: &AckError{Code: ErrCodeDataType, Location: "MSH^1^2"}}
	b.ReportAllocs()
	for b.Loop() {
		if len(NewNAK(raw, AE, o)) == 0 {
			b.Fatal("empty NAK")
		}
	}
}
