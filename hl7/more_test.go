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

func TestSmallAPI(t *testing.T) {
	for _, v := range []string{"2.0", "2.0D", "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9", "2.9.1"} {
		if !KnownVersion(v) || AckVersion(v, "2.4") != v {
			t.Errorf("version %s not known", v)
		}
	}
	for _, v := range []string{"2.10", "3.0", "2.5.1 ", "v2.5"} {
		if KnownVersion(v) {
			t.Errorf("KnownVersion(%q) = true", v)
		}
	}
	for k, want := range map[BatchKind]string{SingleMessage: "single", Headerless: "headerless", BatchBHS: "bhs", BatchFHS: "fhs", 9: "unknown"} {
		if k.String() != want {
			t.Errorf("BatchKind(%d).String() = %q", k, k.String())
		}
	}
	for code, text := range map[ErrorCode]string{0: "Message accepted", 100: "Segment sequence error", 101: "Required field missing",
		102: "Data type error", 103: "Table value not found", 104: "Value too long", 198: "Non-conformant cardinality",
		199: "Other HL7 error", 200: "Unsupported message type", 201: "Unsupported event code", 202: "Unsupported processing id",
		203: "Unsupported version id", 204: "Unknown key identifier", 205: "Duplicate key identifier", 206: "Application record locked",
		207: "Application internal error", 999: "Error"} {
		if code.Text() != text {
			t.Errorf("ErrorCode(%d).Text() = %q, want %q", code, code.Text(), text)
		}
	}
	p := MustParsePath("OBX[3]-5[2].4.1")
	if p.Segment() != "OBX" || p.Occurrence() != 3 || p.Field() != 5 || p.Repetition() != 2 || p.Component() != 4 || p.Subcomponent() != 1 || p.IsSegment() {
		t.Errorf("Path accessors wrong for %s", p)
	}
	if !MustParsePath("ZPI").IsSegment() {
		t.Error("ZPI is a segment path")
	}
	err := (&PathError{Op: "set", Path: "PID-5", Err: ErrReadOnly}).Error()
	if err != "hl7: set PID-5: hl7: field cannot be changed" {
		t.Errorf("PathError text %q", err)
	}
	if !AA.Positive() || !CA.Positive() || AE.Positive() || CR.Positive() {
		t.Error("AckCode.Positive wrong")
	}
	if a, err := Parse(NewACK(nil, AE, ackOpts())); err != nil || a.Header().ReceivingApp != "" || a.Header().SendingApp != "MLLPD" {
		t.Errorf("NewACK(nil): %v", err)
	}
}

// TestCharsetRoundTrip: every supported charset decodes what it encodes.
func TestCharsetRoundTrip(t *testing.T) {
	for msh18, text := range map[string]string{
		"8859/1": "Müller", "8859/2": "Łódź", "8859/3": "Ħal", "8859/4": "Ģirts", "8859/5": "Иван", "8859/6": "علي",
		"8859/7": "Νίκος", "8859/8": "דוד", "8859/9": "Şahin", "8859/15": "€uro", "ISO-8859-10": "Þór", "ISO-8859-13": "Ąž",
		"ISO-8859-14": "Ŵyn", "ISO-8859-16": "Știr", "WINDOWS-1252": "“quoted”", "ISO IR87": "山田", "ISO IR14": "ﾔﾏﾀﾞソ表", // 0x5C trail bytes
		"GB 18030-2000": "王", "KS X 1001": "김", "BIG-5": "陳功", // 0x5C trail byte "UNICODE UTF-8": "Zoë 山田",
	} {
		raw := []byte("MSH|^~\\&|A|B|||2024||ADT^A01|1|P|2.5.1||||||" + msh18 + "\rPID|1\r")
		m, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Set(MustParsePath("PID-5.1"), text); err != nil {
			t.Errorf("%s: Set(%q): %v", msh18, text, err)
			continue
		}
		again, err := Parse(m.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if got := again.Get(MustParsePath("PID-5.1")); got != text {
			t.Errorf("%s (%s): Get = %q, want %q", msh18, again.Charset(), got, text)
		}
	}
}
