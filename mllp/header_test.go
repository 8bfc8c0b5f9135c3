package mllp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestControlID(t *testing.T) {
	tests := []struct {
		name, msg string
		want      string
		ok        bool
	}{
		{"M1", m1, "CTL0001", true},
		{"LF terminators", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|LF1|P|2.5\nPID|1\n", "LF1", true},
		{"BOM and leading CR LF", "\xEF\xBB\xBF\r\nMSH|^~\\&|A|B|C|D|20240101||ADT^A01|BOM1|P|2.5\r", "BOM1", true},
		{"other field separator", "MSH#^~\\&#A#B#C#D#20240101##ADT^A01#SEP1#P#2.5\r", "SEP1", true},
		{"MSH-10 missing", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01\r", "", true},
		{"MSH-10 empty", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01||P|2.5\r", "", true},
		{"not HL7", "hello", "", false},
		{"batch", "BHS|^~\\&|A\rMSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\r", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := controlID([]byte(tt.msg))
			if diff := cmp.Diff([2]any{tt.want, tt.ok}, [2]any{string(got), ok}); diff != "" {
				t.Errorf("controlID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAckControlID(t *testing.T) {
	tests := []struct {
		name, ack string
		want      string
		ok        bool
	}{
		{"ACK", "MSH|^~\\&|B|B|A|A|1||ACK|9|P|2.5.1\rMSA|AA|CTL0001\r", "CTL0001", true},
		{"ERR before MSA is skipped", "MSH|^~\\&|B|B|A|A|1||ACK|9|P|2.5.1\rERR|x\rMSA|AE|C2|text\r", "C2", true},
		{"LF segments", "MSH|^~\\&|B|B|A|A|1||ACK|9|P|2.5.1\nMSA|AA|LF2\n", "LF2", true},
		{"other separator", "MSH#^~\\&#B#B#A#A#1##ACK#9#P#2.5.1\rMSA#AA#S3\r", "S3", true},
		{"MSA without MSA-2", "MSH|^~\\&|B|B|A|A|1||ACK|9|P|2.5.1\rMSA|AA\r", "", true},
		{"MSAX is not MSA", "MSH|^~\\&|B\rMSAX|AA|NO\r", "", false},
		{"no MSA", "MSH|^~\\&|B|B|A|A|1||ADT^A01|9|P|2.5.1\rPID|1\r", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ackControlID([]byte(tt.ack))
			if diff := cmp.Diff([2]any{tt.want, tt.ok}, [2]any{string(got), ok}); diff != "" {
				t.Errorf("ackControlID (-want +got):\n%s", diff)
			}
		})
	}
}
