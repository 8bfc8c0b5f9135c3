package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/relay"
)

func TestSegmentFields(t *testing.T) {
	tests := []struct {
		name, in string
		want     []field
	}{
		{
			"CR terminated, repeated OBX",
			"MSH|^~\\&|LAB||||20240131||ORU^R01|C1|P|2.5.1\rPID|1||12345^^^RXH^MR||DOE^JOHN\rOBX|1|TX|||A\\F\\B\rOBX|2|TX\r",
			[]field{
				{"MSH-1", "|"}, {"MSH-2", "^~\\&"}, {"MSH-3", "LAB"}, {"MSH-7", "20240131"}, {"MSH-9", "ORU^R01"},
				{"MSH-10", "C1"}, {"MSH-11", "P"}, {"MSH-12", "2.5.1"},
				{"PID-1", "1"}, {"PID-3", "12345^^^RXH^MR"}, {"PID-5", "DOE^JOHN"},
				{"OBX[1]-1", "1"}, {"OBX[1]-2", "TX"}, {"OBX[1]-5", "A\\F\\B"},
				{"OBX[2]-1", "2"}, {"OBX[2]-2", "TX"},
			},
		},
		{
			"LF and CRLF, other field separator, bare segment",
			"MSH#^~\\&#APP\r\nZZZ\nPID#1",
			[]field{{"MSH-1", "#"}, {"MSH-2", "^~\\&"}, {"MSH-3", "APP"}, {"ZZZ", ""}, {"PID-1", "1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, segmentFields(tt.in), cmp.AllowUnexported(field{})); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDisplayTextDecodesLegacyCharsets(t *testing.T) {
	if got := displayText([]byte("M\xfcller"), "ISO-8859-1"); got != "Müller" {
		t.Errorf("ISO-8859-1: %q", got)
	}
	if got := displayText([]byte("M\xfcller"), "UTF-8"); got != "M\xfcller" {
		t.Errorf("UTF-8 must stay as stored: %q", got)
	}
	if got := displayText([]byte("x"), "no-such-charset"); got != "x" {
		t.Errorf("unknown charset: %q", got)
	}
}

func TestPrintMessageList(t *testing.T) {
	recv := time.Date(2024, 1, 31, 12, 0, 0, 0, time.Local)
	var b bytes.Buffer
	printMessageList(&b, relay.MessageList{Messages: []relay.MessageSummary{
		{Seq: 7, Received: recv, Listener: "pas", Type: "ADT", Event: "A01", ControlID: "C\x1b7", SendingApp: "LAB",
			SendingFacility: "RXH", Size: 120, Deliveries: []relay.DeliveryInfo{
				{Destination: "lab", State: "delivered", Attempts: 1},
				{Destination: "epic", State: "pending", Attempts: 3},
			}},
		{Seq: 8, Received: recv, Listener: "pas", Type: "ORU", ControlID: "C8", Size: 9, Unrouted: true},
	}})
	want := []string{
		"SEQ  RECEIVED             LISTENER  TYPE     CONTROL ID  SENDER   SIZE  DELIVERY",
		"7    2024-01-31 12:00:00  pas       ADT^A01  C\\x1B7      LAB/RXH  120   lab:delivered epic:pending(3)",
		"8    2024-01-31 12:00:00  pas       ORU      C8          /        9     unrouted",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimRight(b.String(), "\n"), "\n")); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func FuzzSegmentFields(f *testing.F) {
	for _, s := range []string{
		"MSH|^~\\&|LAB||||20240131||ORU^R01|C1|P|2.5.1\rPID|1||12345\rOBX|1\rOBX|2\r",
		"MSH#^~\\&#APP\r\nZZZ\nPID#1", "MSH", "", "\r\r", "PID|1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fl := range segmentFields(s) {
			if fl.name == "" {
				t.Fatalf("a field without a name in %q", s)
			}
			if strings.ContainsAny(fl.value, "\r\n") {
				t.Fatalf("field %s = %q spans segments", fl.name, fl.value)
			}
			if !strings.Contains(s, fl.value) {
				t.Fatalf("field %s = %q is not in the message %q", fl.name, fl.value, s)
			}
		}
	})
}
