package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseACK(t *testing.T) {
	tests := []struct {
		name, reply string
		want        Result
		wantErr     bool
	}{
		{"aa", "MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5.1\rMSA|AA|C1\r", Result{AckCode: "AA", AckControlID: "C1"}, false},
		{"ar_err3", "MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5.1\rMSA|AR|C1|down\rERR|||207^Application internal error^HL70357|E\r",
			Result{AckCode: "AR", AckControlID: "C1", ErrorCode: "207"}, false},
		{"ae_err1_v24", "MSH|^~\\&|A|B|C|D|20240101||ACK^A01|1|P|2.4\rMSA|AE|C1\rERR|PID^1^3^101&Required field missing&HL70357\r",
			Result{AckCode: "AE", AckControlID: "C1", ErrorCode: "101"}, false},
		{"ce_msa6", "MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.3\rMSA|CE|C1||||206^locked\r",
			Result{AckCode: "CE", AckControlID: "C1", ErrorCode: "206"}, false},
		{"lowercase_lf", "MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.3\nMSA|aa|C\\F\\1\n", Result{AckCode: "AA", AckControlID: "C\\F\\1"}, false},
		{"custom_delims", "MSH#$*!@#A#B#C#D#20240101##ACK#1#P#2.5.1\rMSA#AR#C2\rERR###206$locked$HL70357#E\r",
			Result{AckCode: "AR", AckControlID: "C2", ErrorCode: "206"}, false},
		{"no_msa", "MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.5.1\r", Result{}, true},
		{"not_hl7", "hello", Result{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseACK([]byte(tt.reply))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseACK error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				var re *ReplyError
				if !errors.As(err, &re) {
					t.Errorf("error %T, want *ReplyError", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseACK (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{" 3 ", 3 * time.Second},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFileName(t *testing.T) {
	tests := []struct {
		seq  uint64
		ctrl string
		want string
	}{
		{1, "C0001", "000000000001-C0001.hl7"},
		{42, "", "000000000042-noid.hl7"},
		{7, "../etc/passwd", "000000000007-_._etc_passwd.hl7"},
		{8, ".hidden", "000000000008-_hidden.hl7"},
		{9, "a b\\c|d", "000000000009-a_b_c_d.hl7"},
		{10, string(make([]byte, 100)), "000000000010-" + string(repeat('_', maxIDInName)) + ".hl7"},
		{1234567890123, "X.1", "1234567890123-X.1.hl7"},
	}
	for _, tt := range tests {
		if got := FileName(Message{Seq: tt.seq, ControlID: tt.ctrl}); got != tt.want {
			t.Errorf("FileName(%d, %q) = %q, want %q", tt.seq, tt.ctrl, got, tt.want)
		}
	}
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestFileSend(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFile(Config{Name: "archive", Dir: filepath.Join(dir, "out")})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5.1\r")
	for range 2 { // a replay rewrites the same file
		if res, err := f.Send(context.Background(), Message{Seq: 5, ControlID: "C1", Body: body}); err != nil || res != (Result{}) {
			t.Fatalf("Send = %+v, %v", res, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "000000000005-C1.hl7" {
		t.Fatalf("directory holds %v, want only the message file (no temp files)", entries)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out", entries[0].Name()))
	if string(got) != string(body) {
		t.Errorf("file = %q", got)
	}

	// A file being written does not match what a pickup looks for.
	tmp, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	if ok, _ := filepath.Match("*.hl7", filepath.Base(tmp.Name())); ok {
		t.Errorf("temp file %s matches *.hl7: a pickup could read it half written", filepath.Base(tmp.Name()))
	}

	// A cancelled context writes nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Send(ctx, Message{Seq: 6, ControlID: "C2", Body: body}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with cancelled ctx = %v", err)
	}
	// An unwritable directory is an *os.PathError (retriable I/O).
	if err := os.Chmod(filepath.Join(dir, "out"), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(dir, "out"), 0o700)
	if os.Geteuid() != 0 {
		_, err := f.Send(context.Background(), Message{Seq: 7, ControlID: "C3", Body: body})
		var pe *os.PathError
		if !errors.As(err, &pe) {
			t.Errorf("Send to a read-only dir = %v, want *os.PathError", err)
		}
	}
}

func TestRenderJSON(t *testing.T) {
	er7 := "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ORU^R01^ORU_R01|C1|P|2.5.1\r" +
		"PID|1||123^^^RXH&1.2.3&ISO^MR~456||\"\"|\r" +
		"OBX|1|TX|NOTE||A\\F\\B\\S\\C||||||F\r"
	out, err := RenderJSON([]byte(er7))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Charset  string
		Segments []struct {
			ID     string
			Fields [][][][]*string
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := func(v string) *string { return &v }
	wantPID := [][][][]*string{
		{{{s("1")}}},
		{},
		{{{s("123")}, {s("")}, {s("")}, {s("RXH"), s("1.2.3"), s("ISO")}, {s("MR")}}, {{s("456")}}},
		{},
		{{{nil}}}, // "" is the HL7 null
	}
	if diff := cmp.Diff(wantPID, doc.Segments[1].Fields); diff != "" {
		t.Errorf("PID (-want +got):\n%s", diff)
	}
	if got := *doc.Segments[2].Fields[4][0][0][0]; got != "A|B^C" {
		t.Errorf("OBX-5 = %q, want the decoded value", got)
	}
	msh := doc.Segments[0].Fields
	if *msh[0][0][0][0] != "|" || *msh[1][0][0][0] != "^~\\&" || *msh[2][0][0][0] != "LAB" || *msh[8][0][1][0] != "R01" {
		t.Errorf("MSH fields = %s", out)
	}
	if doc.Charset == "" {
		t.Errorf("charset missing")
	}
}

// TestHTTPErrorHidesSecrets: a failed request's error names the endpoint
// without the URL's password or query (where API keys live).
func TestHTTPErrorHidesSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	h, err := NewHTTP(Config{Name: "lab", URL: "http://user:pw@" + addr + "/hl7?apikey=SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.Send(context.Background(), Message{Body: []byte("MSH|^~\\&|A\r")})
	if err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	for _, secret := range []string{"SECRET", "pw", "apikey"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), "http://"+addr+"/hl7") {
		t.Errorf("error %q does not name the endpoint", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Errorf("error %T does not wrap the net error", err)
	}
}
