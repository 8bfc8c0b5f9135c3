package config

// config validates HL7 paths and charset names with its own small checks, so that it
// imports nothing of this module; these tests keep those checks in step with the hl7
// package, which is what the runtime uses.

import (
	"testing"

	"github.com/mllpd/mllpd/hl7"
)

var agreementPaths = []string{
	"PID", "ZPI", "OBX[3]", "PID-5", "PID-5.1", "PID-5.1.2", "PID-3[2].1", "OBX[3]-5", "MSH-9.2", "MSH-1",
	"PID-000003", "PID-9999", "PID-10000", "OBX[999999]-1", "OBX[1000000]-1", "PID-0000003", "PID-0",
	"PID-3[0]", "PID-3[1", "PID-3.1.2.3", "pid-3", "PI", "", "PID.3", "PID-", "PID-3.", "Z01-1", "1AB-1",
	"PID-3[1][2]", "OBX[]-5", "PID-3 ", "PID-3.1.",
}

func TestPathsAgreeWithHL7(t *testing.T) {
	for _, s := range agreementPaths {
		_, err := checkHL7Path(s)
		_, hl7Err := hl7.ParsePath(s)
		if (err == nil) != (hl7Err == nil) {
			t.Errorf("%q: config says %v, hl7.ParsePath says %v", s, err, hl7Err)
		}
	}
}

// FuzzPathsAgreeWithHL7: checkHL7Path and hl7.ParsePath accept the same strings, and a
// path that names a field in one does in the other.
func FuzzPathsAgreeWithHL7(f *testing.F) {
	for _, s := range agreementPaths {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		field, err := checkHL7Path(s)
		p, hl7Err := hl7.ParsePath(s)
		if (err == nil) != (hl7Err == nil) {
			t.Fatalf("%q: config says %v, hl7.ParsePath says %v", s, err, hl7Err)
		}
		if err == nil && field != hasField(p.String()) {
			t.Fatalf("%q: config field=%v, hl7 path %q", s, field, p.String())
		}
	})
}

// hasField reports whether a path in hl7's String form names a field ("SEG[occ]-n...").
func hasField(s string) bool {
	for i := 3; i < len(s); i++ {
		if s[i] == '-' {
			return true
		}
	}
	return false
}

func TestCharsetsAgreeWithHL7(t *testing.T) {
	names := []string{
		"windows-1252", "Windows-1252", "CP1252", "cp 1252", "WIN1252", "ISO-8859-1", "8859/1", "iso_8859-1",
		"LATIN1", "latin-1", "L1", "ISO IR100", "ISO-8859-2", "8859/15", "ISO-8859-16", "ISO-8859-11",
		"ISO-8859-12", "ISO IR87", "ISO-2022-JP", "Shift_JIS", "SJIS", "ISO IR14", "GB18030", "GB 18030-2000",
		"KS X 1001", "EUC-KR", "BIG-5", "Big5", "KOI8-R", "macintosh", "windows-1251", "UTF-16", "UTF-32",
		"CNS 11643-1992", "klingon", "8859/1;", "UTF-8", "UNICODE UTF-8", "UNICODE", "ASCII", "US-ASCII", "ISO IR6",
	}
	notFallback := map[string]bool{"UTF-8": true, "US-ASCII": true}
	for _, n := range names {
		cs, known := hl7.LookupCharset(n)
		want := known && !notFallback[cs]
		if got := checkCharset(n) == ""; got != want {
			t.Errorf("%q: config accepts=%v; hl7.LookupCharset = %q, %v", n, got, cs, known)
		}
	}
}
