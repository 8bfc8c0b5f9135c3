package hl7

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/**/*.golden")

// ackNow and ackID make ACKs deterministic.
var ackNow = time.Date(2024, 1, 31, 12, 30, 46, 0, time.FixedZone("", 3600))

const ackID = "ACK0001"

func ackOpts() AckOptions {
	return AckOptions{Now: ackNow, ControlID: ackID, App: "MLLPD", Facility: "HUB", DefaultVersion: "2.5.1"}
}

// golden compares got with testdata/<name>.golden, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(crlf(string(want)), crlf(string(got))); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// crlf makes segment ends visible in diffs.
func crlf(s string) string { return strings.ReplaceAll(s, "\r", "\\r\n") }

// ref expands the reference's <now> and <id> placeholders and its line ends.
func ref(s string) string {
	s = strings.ReplaceAll(s, "<now>", "20240131123046+0100")
	s = strings.ReplaceAll(s, "<id>", ackID)
	return strings.ReplaceAll(s, "\n", "\r")
}

// TestACK covers reference §5.3/§5.4/§5.7 and cases 21, 41-53: ACKs and NAKs
// of parsed messages for v2.3, v2.4, v2.5.1 and v2.8 inputs.
func TestACK(t *testing.T) {
	tests := []struct {
		name string
		file string
		code AckCode
		opts func(*AckOptions, *Message)
		want string // from the reference where it gives the bytes; "" = golden only
	}{
		{name: "42-v251-aa", file: "m1.hl7", code: AA,
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AA|CTL0001\n"},
		{name: "43-v23-aa", file: "43-v23.hl7", code: AA,
			want: "MSH|^~\\&|MLLPD|HUB|PAS|RXH|<now>||ACK^A01|<id>|P|2.3\nMSA|AA|A1\n"},
		{name: "44-v23-ar-storage", file: "43-v23.hl7", code: AR,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Storage failure", &AckError{Code: ErrCodeInternal, Diagnostic: "fsync failed"}
			},
			want: "MSH|^~\\&|MLLPD|HUB|PAS|RXH|<now>||ACK^A01|<id>|P|2.3\nMSA|AR|A1|Storage failure\nERR|^^^207&Application internal error&HL70357\n"},
		{name: "45-v251-ar-storage", file: "m1.hl7", code: AR,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Storage failure", &AckError{Code: ErrCodeInternal, Diagnostic: "fsync failed"}
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AR|CTL0001|Storage failure\nERR|||207^Application internal error^HL70357|E|||fsync failed\n"},
		{name: "46-v251-missing-msh10", file: "46-no-msh10.hl7", code: AE,
			opts: func(o *AckOptions, m *Message) {
				e, text := nakFor(m.ValidateHeader(), "")
				o.Error, o.Text = &e, text
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AE||Missing MSH-10\nERR||MSH^1^10|101^Required field missing^HL70357|E\n"},
		{name: "47-unsupported-version", file: "47-v30.hl7", code: AR,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Unsupported version", &AckError{Code: ErrCodeUnsupportedVersion, Location: "MSH^1^12"}
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AR|V3|Unsupported version\nERR||MSH^1^12|203^Unsupported version id^HL70357|E\n"},
		{name: "48-unsupported-processing-id", file: "m1.hl7", code: AR,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Unsupported processing ID", &AckError{Code: ErrCodeUnsupportedProcessingID, Location: "MSH^1^11"}
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AR|CTL0001|Unsupported processing ID\nERR||MSH^1^11|202^Unsupported processing id^HL70357|E\n"},
		{name: "49-unsupported-type", file: "m1.hl7", code: AR,
			opts: func(o *AckOptions, _ *Message) {
				o.Error = &AckError{Code: ErrCodeUnsupportedMessageType, Location: "MSH^1^9^1^1"}
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AR|CTL0001|Unsupported message type\nERR||MSH^1^9^1^1|200^Unsupported message type^HL70357|E\n"},
		{name: "50-enhanced-ca", file: "50-enhanced.hl7", code: CA,
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|CA|CTL0001\n"},
		{name: "52-enhanced-ce", file: "50-enhanced.hl7", code: CE,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Storage failure", &AckError{Code: ErrCodeInternal}
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|CE|CTL0001|Storage failure\nERR|||207^Application internal error^HL70357|E\n"},
		{name: "53-enhanced-cr-version", file: "47-v30.hl7", code: CR,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Unsupported version", &AckError{Code: ErrCodeUnsupportedVersion, Location: "MSH^1^12"}
			},
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|CR|V3|Unsupported version\nERR||MSH^1^12|203^Unsupported version id^HL70357|E\n"},
		{name: "21-custom-delims-aa", file: "21-custom-delims.hl7", code: AA,
			want: "MSH#$*!@#MLLPD#HUB#LAB#RXH#<now>##ACK$A01$ACK#<id>#P#2.5.1\nMSA#AA#C2\n"},
		{name: "21-custom-delims-ae", file: "21-custom-delims.hl7", code: AE,
			opts: func(o *AckOptions, _ *Message) {
				o.Text, o.Error = "Bad #field$", &AckError{Code: ErrCodeDataType, Location: "PID^1^3", Diagnostic: "x|y^z"}
			},
			want: "MSH#$*!@#MLLPD#HUB#LAB#RXH#<now>##ACK$A01$ACK#<id>#P#2.5.1\nMSA#AE#C2#Bad !F!field!S!\nERR##PID$1$3#102$Data type error$HL70357#E###x|y^z\n"},
		{name: "41-msa2-verbatim", file: "41-msh10-escape.hl7", code: AA,
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.5.1\nMSA|AA|ID\\F\\7\n"},
		{name: "v28-aa", file: "v28.hl7", code: AA,
			want: "MSH|^~\\&#|MLLPD|HUB|LAB|RXH|<now>||ACK^A04^ACK|<id>|T|2.8||||||UNICODE UTF-8\nMSA|AA|V28\n"},
		{name: "v28-ae-too-long", file: "v28.hl7", code: AE,
			opts: func(o *AckOptions, m *Message) {
				o.Text, o.Error = "Message too large", &AckError{Code: ValueTooLongCode(m.Header().Version)}
			},
			want: "MSH|^~\\&#|MLLPD|HUB|LAB|RXH|<now>||ACK^A04^ACK|<id>|T|2.8||||||UNICODE UTF-8\nMSA|AE|V28|Message too large\nERR|||104^Value too long^HL70357|E\n"},
		{name: "v23-ae-too-long", file: "43-v23.hl7", code: AE,
			opts: func(o *AckOptions, m *Message) {
				o.Text, o.Error = "Message too large", &AckError{Code: ValueTooLongCode(m.Header().Version)}
			},
			want: "MSH|^~\\&|MLLPD|HUB|PAS|RXH|<now>||ACK^A01|<id>|P|2.3\nMSA|AE|A1|Message too large\nERR|^^^207&Application internal error&HL70357\n"},
		{name: "v24-ae-location", file: "25-short-msh2.hl7", code: AE,
			opts: func(o *AckOptions, _ *Message) {
				o.Error = &AckError{Code: ErrCodeRequiredFieldMissing, Location: "MSH^1^10"}
			},
			// 3-character MSH-2 without escape: the ACK keeps it; MSA-3 text has no delimiters.
			want: "MSH|^~&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.4\nMSA|AE|C5|Required field missing\nERR|MSH^1^10^101&Required field missing&HL70357\n"},
		{name: "negative-without-error", file: "m1.hl7", code: AE,
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AE|CTL0001|Application internal error\nERR|||207^Application internal error^HL70357|E\n"},
		{name: "missing-msh11-12", file: "no-msh11-12.hl7", code: AA,
			want: "MSH|^~\\&|MLLPD|HUB|SCHED|RXH|<now>||ACK^S12^ACK|<id>|P|2.5.1\nMSA|AA|S1\n"},
		{name: "no-receiving-app", file: "no-apps.hl7", code: AA,
			want: "MSH|^~\\&|MLLPD|HUB|||<now>||ACK^A01^ACK|<id>|P|2.5.1\nMSA|AA|E1\n"},
		{name: "62-charset-copied", file: "62-iso2022.hl7", code: AA,
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.5.1||||||ASCII~ISO IR87\nMSA|AA|L5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParseCase(t, tt.file)
			o := ackOpts()
			if tt.opts != nil {
				tt.opts(&o, m)
			}
			got := NewACK(m, tt.code, o)
			if tt.want != "" {
				if diff := cmp.Diff(crlf(ref(tt.want)), crlf(string(got))); diff != "" {
					t.Errorf("ACK (-want +got):\n%s", diff)
				}
			}
			golden(t, "ack/"+tt.name, got)
			a, err := Parse(got)
			if err != nil {
				t.Fatalf("ACK does not parse: %v", err)
			}
			if err := a.ValidateHeader(); err != nil {
				t.Errorf("ACK header: %v", err)
			}
			if a.Delimiters() != m.Delimiters() {
				t.Errorf("ACK delimiters differ from the inbound ones")
			}
		})
	}
}

// TestNAK covers reference §6 and cases 26 and 27: NAKs from raw bytes.
func TestNAK(t *testing.T) {
	tests := []struct {
		name, file string
		raw        string
		want       string
	}{
		{name: "26-duplicate-delimiters", file: "26-duplicate-delims.hl7",
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.4\nMSA|AE|C4|Invalid encoding characters\nERR|MSH^1^2^102&Data type error&HL70357\n"},
		{name: "27-no-msh", file: "27-no-msh.hl7",
			want: "MSH|^~\\&|MLLPD|HUB|||<now>||ACK|<id>|P|2.5.1\nMSA|AE||No MSH segment\nERR|||100^Segment sequence error^HL70357|E\n"},
		{name: "empty", raw: "",
			want: "MSH|^~\\&|MLLPD|HUB|||<now>||ACK|<id>|P|2.5.1\nMSA|AE||No MSH segment\nERR|||100^Segment sequence error^HL70357|E\n"},
		{name: "missing-msh10", file: "46-no-msh10.hl7",
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^R01^ACK|<id>|P|2.5.1\nMSA|AE||Missing MSH-10\nERR||MSH^1^10|101^Required field missing^HL70357|E\n"},
		{name: "bad-delims-custom-separator", raw: "MSH#^^#A|B#RXH#MLLPD#HUB#2024##ADT^A01#ID|1#P#2.5.1\r",
			// Delimiters unusable: defaults, and copied values re-escaped.
			want: "MSH|^~\\&|MLLPD|HUB|A\\F\\B|RXH|<now>||ACK^A01^ACK|<id>|P|2.5.1\nMSA|AE|ID\\F\\1|Invalid encoding characters\nERR||MSH^1^2|102^Data type error^HL70357|E\n"},
		{name: "broken-batch-with-msh", raw: "BHS|^~\\&|LAB|RXH|MLLPD|HUB|20240131||||B1\rBHS|^~\\&\rMSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01|M9|P|2.4\r",
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK^A01^ACK|<id>|P|2.4\nMSA|AE|M9|Broken batch envelope\nERR|^^^100&Segment sequence error&HL70357\n"},
		{name: "broken-batch-without-msh", raw: "BHS|^~\\&|LAB|RXH|MLLPD|HUB|20240131||||B1\rEVN|A01\r",
			want: "MSH|^~\\&|MLLPD|HUB|LAB|RXH|<now>||ACK|<id>|P|2.5.1\nMSA|AE||Broken batch envelope\nERR|||100^Segment sequence error^HL70357|E\n"},
		{name: "msh-only-separator", raw: "MSH",
			want: "MSH|^~\\&|MLLPD|HUB|||<now>||ACK|<id>|P|2.5.1\nMSA|AE||Invalid encoding characters\nERR||MSH^1^2|102^Data type error^HL70357|E\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.raw)
			if tt.file != "" {
				raw = readCase(t, tt.file)
			}
			// What ingest does: classify the failure, then build the NAK.
			b, err := SplitBatch(raw, Options{})
			if err == nil {
				err = b.Messages[0].ValidateHeader()
			}
			if err == nil {
				t.Fatal("input unexpectedly valid")
			}
			e, text := nakFor(err, "")
			o := ackOpts()
			o.Error, o.Text = &e, text
			got := NewNAK(raw, AE, o)
			if diff := cmp.Diff(crlf(ref(tt.want)), crlf(string(got))); diff != "" {
				t.Errorf("NAK (-want +got):\n%s", diff)
			}
			golden(t, "nak/"+tt.name, got)
			if _, err := Parse(got); err != nil {
				t.Errorf("NAK does not parse: %v", err)
			}
		})
	}
}

// nakFor is the part of reference §5.7's table that concerns errors of this
// package (the listener's copy of the table lives in relay): the ERR content
// and MSA-3 text of the NAK.
func nakFor(err error, version string) (AckError, string) {
	var he *HeaderError
	switch {
	case errors.Is(err, ErrNoMSH):
		return AckError{Code: ErrCodeSegmentSequence}, "No MSH segment"
	case errors.Is(err, ErrBadDelimiters):
		return AckError{Code: ErrCodeDataType, Location: "MSH^1^2"}, "Invalid encoding characters"
	case errors.As(err, &he):
		return AckError{Code: he.Code, Location: fmt.Sprintf("MSH^1^%d", he.Field)}, fmt.Sprintf("Missing MSH-%d", he.Field)
	case errors.Is(err, ErrBatchStructure):
		return AckError{Code: ErrCodeSegmentSequence}, "Broken batch envelope"
	case errors.Is(err, ErrTooLarge):
		return AckError{Code: ValueTooLongCode(version)}, "Message too large"
	}
	return AckError{Code: ErrCodeInternal}, "Application internal error"
}

func TestValueTooLongCode(t *testing.T) {
	for v, want := range map[string]ErrorCode{"2.7": 104, "2.7.1": 104, "2.8": 104, "2.9": 104, "2.6": 207, "2.5.1": 207, "2.3": 207, "": 207, "junk": 207} {
		if got := ValueTooLongCode(v); got != want {
			t.Errorf("ValueTooLongCode(%q) = %d, want %d", v, got, want)
		}
	}
}

func TestAckVersion(t *testing.T) {
	for _, tt := range []struct{ in, def, want string }{
		{"2.3", "2.5.1", "2.3"}, {"2.8.2", "2.5.1", "2.8.2"}, {"3.0", "2.5.1", "2.5.1"}, {"V2.4", "2.4", "2.4"},
		{"2.3.0", "2.5.1", "2.5.1"}, {"", "", "2.5.1"}, {"9.9", "2.3", "2.3"},
	} {
		if got := AckVersion(tt.in, tt.def); got != tt.want {
			t.Errorf("AckVersion(%q, %q) = %q, want %q", tt.in, tt.def, got, tt.want)
		}
	}
}

// TestAckType is reference §4.3: the ACK's MSH-9 by version.
func TestAckType(t *testing.T) {
	for _, tt := range []struct{ version, trigger, want string }{
		{"2.1", "A01", "ACK"}, {"2.2", "A01", "ACK^A01"}, {"2.3", "A01", "ACK^A01"}, {"2.3.1", "A01", "ACK^A01"},
		{"2.4", "A01", "ACK^A01^ACK"}, {"2.5.1", "R01", "ACK^R01^ACK"}, {"2.8", "A04", "ACK^A04^ACK"}, {"2.5.1", "", "ACK"},
	} {
		if got := string(appendAckType(nil, []byte(tt.trigger), tt.version, DefaultDelimiters)); got != tt.want {
			t.Errorf("version %s trigger %q: %q, want %q", tt.version, tt.trigger, got, tt.want)
		}
	}
}

func TestAckDefaultControlIDAndNow(t *testing.T) {
	m := mustParseCase(t, "m1.hl7")
	a, err := Parse(NewACK(m, AA, AckOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	h := a.Header()
	if h.ControlID == "" || len(h.Timestamp) != len("20060102150405-0700") {
		t.Errorf("defaults not filled: control ID %q, timestamp %q", h.ControlID, h.Timestamp)
	}
	if a.ValidateHeader() != nil {
		t.Errorf("ACK with defaults fails ValidateHeader: %v", a.ValidateHeader())
	}
}
