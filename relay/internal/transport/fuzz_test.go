package transport

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mllpd/mllpd/hl7"
)

var fuzzSeeds = []string{
	"MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5.1\rMSA|AR|C1|down\rERR|||207^Application internal error^HL70357|E\r",
	"MSH|^~\\&|A|B|C|D|20240101||ACK^A01|1|P|2.4\rMSA|AE|C1\rERR|PID^1^3^101&Required field missing&HL70357\r",
	"MSH#$*!@#A#B#C#D#20240101##ACK#1#P#2.5.1\rMSA#AR#C2\rERR###206$locked$HL70357#E\r",
	"MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ORU^R01^ORU_R01|C1|P|2.5.1\rPID|1||123^^^RXH&1.2.3&ISO^MR~456||\"\"|\rOBX|1|TX|NOTE||A\\F\\B\\S\\C||||||F\r",
	"MSH|^~&|A|B\nMSA|aa|x\n",
	"hello",
}

// FuzzParseACK: any reply gives either a *ReplyError or a Result whose
// MSA-1 is a non-empty, upper-case token.
func FuzzParseACK(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		r, err := ParseACK(reply)
		if err != nil {
			var re *ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *ReplyError: %v", err, err)
			}
			return
		}
		if r.AckCode == "" || r.AckCode != strings.ToUpper(r.AckCode) || strings.TrimSpace(r.AckCode) != r.AckCode {
			t.Fatalf("AckCode %q", r.AckCode)
		}
		if r.HTTPStatus != 0 || r.RetryAfter != 0 {
			t.Fatalf("MLLP result with HTTP fields: %+v", r)
		}
	})
}

// FuzzRenderJSON: every message that parses renders to valid JSON with one
// segment per parsed segment, in order, with the same names.
func FuzzRenderJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := hl7.Parse(raw)
		if err != nil {
			return
		}
		out, err := RenderJSON(m.EncodeCR())
		if err != nil {
			// The outbound bytes of a parsed message must parse again.
			t.Fatalf("RenderJSON of an encoded message: %v", err)
		}
		var doc struct {
			Segments []struct {
				ID     string
				Fields [][][][]*string
			}
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, out)
		}
		again, _ := hl7.Parse(m.EncodeCR())
		if len(doc.Segments) != again.SegmentCount() {
			t.Fatalf("%d segments rendered, message has %d", len(doc.Segments), again.SegmentCount())
		}
		for i, s := range doc.Segments {
			// JSON strings are UTF-8: a junk name's invalid bytes become U+FFFD.
			if s.ID != string([]rune(again.SegmentName(i))) {
				t.Fatalf("segment %d rendered as %q, parsed as %q", i, s.ID, again.SegmentName(i))
			}
		}
	})
}
