package hl7

import (
	"errors"
	"testing"
	"time"
)

// TestParseTimestamp covers reference §4.2 and case 65.
func TestParseTimestamp(t *testing.T) {
	plus1 := time.FixedZone("", 3600)
	tests := []struct {
		in   string
		want time.Time
		prec Precision
	}{
		{"20240131123045.1234+0100", time.Date(2024, 1, 31, 12, 30, 45, 123400000, plus1), PrecisionFraction},
		{"202401311230", time.Date(2024, 1, 31, 12, 30, 0, 0, time.UTC), PrecisionMinute},
		{"20240131123045", time.Date(2024, 1, 31, 12, 30, 45, 0, time.UTC), PrecisionSecond},
		{"2024013112-0500", time.Date(2024, 1, 31, 12, 0, 0, 0, time.FixedZone("", -5*3600)), PrecisionHour},
		{"20240131", time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), PrecisionDay},
		{"202401", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), PrecisionMonth},
		{"2024", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), PrecisionYear},
		{"20240131123045Z", time.Date(2024, 1, 31, 12, 30, 45, 0, time.UTC), PrecisionSecond},
		{"20240131123045.123456789", time.Date(2024, 1, 31, 12, 30, 45, 123456789, time.UTC), PrecisionFraction},
		{"20240131123045^S", time.Date(2024, 1, 31, 12, 30, 45, 0, time.UTC), PrecisionSecond},
	}
	for _, tt := range tests {
		got, prec, err := ParseTimestamp(tt.in, nil)
		if err != nil || !got.Equal(tt.want) || prec != tt.prec {
			t.Errorf("ParseTimestamp(%q) = %v, %v, %v; want %v, %v", tt.in, got, prec, err, tt.want, tt.prec)
		}
		if _, off := got.Zone(); err == nil {
			if _, woff := tt.want.Zone(); off != woff {
				t.Errorf("ParseTimestamp(%q) zone offset %d, want %d", tt.in, off, woff)
			}
		}
	}
	// No offset: the sender's local time, as supplied.
	berlin := time.FixedZone("CET", 3600)
	if got, _, _ := ParseTimestamp("202401311230", berlin); got.Location() != berlin {
		t.Errorf("local time not applied: %v", got)
	}
	for _, bad := range []string{"2024-01-31 12:30", "", "20240231", "202413", "2024013125", "20240131123045.", "2024013112.5",
		"20240131+01", "20240131+2500", "abc", "20240131123045.1234567890"} {
		if _, _, err := ParseTimestamp(bad, nil); !errors.Is(err, ErrMalformedField) {
			t.Errorf("ParseTimestamp(%q) err = %v, want ErrMalformedField", bad, err)
		}
	}
}

// TestEnhancedMode covers reference §5.2 and cases 50-54.
func TestEnhancedMode(t *testing.T) {
	tests := []struct {
		msh15, msh16       string
		enhanced           bool
		onSuccess, onError bool
	}{
		{"", "", false, true, true},
		{"AL", "NE", true, true, true},   // case 50
		{"NE", "AL", true, false, false}, // case 51
		{"ER", "", true, false, true},    // case 52
		{"SU", "", true, true, false},    // case 52
		{"", "AL", true, true, true},     // case 54: blank MSH-15 is AL
		{"XX", "", true, true, true},     // outside table 0155: as blank
	}
	for _, tt := range tests {
		h := Header{AcceptAckType: tt.msh15, AppAckType: tt.msh16}
		if h.EnhancedMode() != tt.enhanced || h.WantsAcceptAck(true) != tt.onSuccess || h.WantsAcceptAck(false) != tt.onError {
			t.Errorf("MSH-15 %q MSH-16 %q: enhanced %v success %v error %v; want %v %v %v", tt.msh15, tt.msh16,
				h.EnhancedMode(), h.WantsAcceptAck(true), h.WantsAcceptAck(false), tt.enhanced, tt.onSuccess, tt.onError)
		}
	}
}

// TestParseNeverCopiesAndAllocatesOnce is the performance contract of Parse.
func TestParseAllocations(t *testing.T) {
	raw := readCase(t, "m1.hl7")
	if n := testing.AllocsPerRun(100, func() {
		m, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		_ = m.GetRaw(MustParsePath("PID-3[2].1"))
	}); n > 1 {
		t.Errorf("Parse + GetRaw allocates %v times, want 1", n)
	}
}

// TestBatchErrorLocation: a broken message inside a frame is located in the frame.
func TestBatchErrorLocation(t *testing.T) {
	for _, tt := range []struct {
		raw            string
		segIndex, offs int
	}{
		{"BHS|^~\\&\rMSH|^^\r", 2, 13},
		{"MSH|^~\\&|A|B|||2024||ADT^A01|1\rPID|1\rMSH|^^\r", 3, 41},
	} {
		_, err := SplitBatch([]byte(tt.raw), Options{})
		var pe *ParseError
		if !errors.As(err, &pe) || pe.SegIndex != tt.segIndex || pe.Offset != tt.offs || pe.Field != 2 {
			t.Errorf("%q: err = %v, want MSH-2 at segment %d byte %d", tt.raw, err, tt.segIndex, tt.offs)
		}
	}
}

func TestSalvageHeader(t *testing.T) {
	tests := []struct {
		name, raw string
		want      Header
		ok        bool
	}{
		{"parses", "MSH|^~\\&|LAB|RXH|||2024||ADT^A01|C1|P|2.7\rPID|1\r",
			Header{SendingApp: "LAB", SendingFacility: "RXH", Timestamp: "2024", Type: "ADT", Event: "A01", ControlID: "C1", ProcessingID: "P", Version: "2.7"}, true},
		{"duplicate delimiters (case 26)", "MSH|^^\\&|LAB|RXH|||20240131||ADT^A01|C4|P|2.4\r",
			Header{SendingApp: "LAB", SendingFacility: "RXH", Timestamp: "20240131", Type: "ADT", Event: "A01", ControlID: "C4", ProcessingID: "P", Version: "2.4"}, true},
		{"truncated prefix of an oversized frame", "\xef\xbb\xbfMSH|^~\\&|LAB|RXH|||2024||ORU^R01|BIG1|P|2.8\rOBX|1|ED|PDF||^application^pdf^Base64^JVBER",
			Header{SendingApp: "LAB", SendingFacility: "RXH", Timestamp: "2024", Type: "ORU", Event: "R01", ControlID: "BIG1", ProcessingID: "P", Version: "2.8"}, true},
		{"no MSH", "PID|1||123\r", Header{}, false},
		{"MSH without separator", "MSH", Header{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SalvageHeader([]byte(tt.raw))
			if ok != tt.ok || got != tt.want {
				t.Errorf("SalvageHeader = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestIsStandardCharset(t *testing.T) {
	for v, want := range map[string]bool{"UNICODE UTF-8": true, " 8859/1 ": true, "ASCII": true, "UTF-8": false, "utf8": false,
		"ISO-8859-1": false, "unicode utf-8": false, "": false} {
		if got := IsStandardCharset(v); got != want {
			t.Errorf("IsStandardCharset(%q) = %v, want %v", v, got, want)
		}
	}
}
