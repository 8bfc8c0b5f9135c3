package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/mllpd/mllpd/mllp"
)

func TestMain(m *testing.M) {
	if os.Getenv("HL7SEND_RUN_MAIN") == "1" { // the test binary playing hl7send (TestSignals)
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// testServer is a real MLLP listener on 127.0.0.1:0 that records every frame and
// answers through reply.
type testServer struct {
	addr  string
	reply func(frame []byte) ([]byte, error)

	mu     sync.Mutex
	frames []string
	peers  map[string]bool
	got    chan struct{} // one value per frame received (buffered generously)
}

func startServer(t *testing.T, reply func(frame []byte) ([]byte, error)) *testServer {
	t.Helper()
	return startServerTLS(t, reply, nil)
}

func startServerTLS(t *testing.T, reply func(frame []byte) ([]byte, error), cfg *tls.Config) *testServer {
	t.Helper()
	ts := &testServer{reply: reply, peers: map[string]bool{}, got: make(chan struct{}, 1024)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req *mllp.Request) ([]byte, error) {
		ts.mu.Lock()
		ts.frames = append(ts.frames, string(req.Frame))
		ts.peers[req.RemoteAddr.String()] = true
		ts.mu.Unlock()
		select {
		case ts.got <- struct{}{}:
		default:
		}
		return ts.reply(req.Frame)
	}), TLSConfig: cfg}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
			srv.Close()
		}
		if err := <-served; !errors.Is(err, mllp.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ts
}

func (ts *testServer) received() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.frames)
}

// ackWith answers each message with code, echoing its MSH-10 in MSA-2; negative codes get
// an ERR segment (v2.5 form).
func ackWith(code string) func([]byte) ([]byte, error) {
	return func(frame []byte) ([]byte, error) {
		return []byte(ackFor(frame, code)), nil
	}
}

func ackFor(frame []byte, code string) string {
	ack := "MSH|^~\\&|RCV|RCV|SND|SND|20260301120000||ACK^A01^ACK|ACK1|P|2.5.1\rMSA|" + code + "|" + readHeader(frame).ControlID + "\r"
	if code != "AA" && code != "CA" {
		ack += "ERR||MSH^1^10|101^Required field missing^HL70357|E|||test diagnostic\r"
	}
	return ack
}

// noReply never answers: the sender must time out.
func noReply([]byte) ([]byte, error) { return nil, nil }

type cmdResult struct {
	code           int
	stdout, stderr string
}

func hl7send(t *testing.T, stdin string, args ...string) cmdResult {
	t.Helper()
	return hl7sendCtx(t, context.Background(), stdin, args...)
}

func hl7sendCtx(t *testing.T, ctx context.Context, stdin string, args ...string) cmdResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return cmdResult{code, stdout.String(), stderr.String()}
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

func TestSendInputForms(t *testing.T) {
	fhs := "FHS|^~\\&|X\rBHS|^~\\&|X\r" + msgA + msgB + "BTS|2\rFTS|1\r"
	tests := []struct {
		name  string
		files map[string]string
		args  []string // file names relative to the temp dir; "." is the dir
		stdin string
		want  []string
	}{
		{"CR file", map[string]string{"a.hl7": msgA}, []string{"a.hl7"}, "", []string{msgA}},
		{"LF file, no final terminator", map[string]string{"a.hl7": strings.TrimSuffix(lf(msgA), "\n")}, []string{"a.hl7"}, "", []string{msgA}},
		{"CRLF file", map[string]string{"a.hl7": crlf(msgA)}, []string{"a.hl7"}, "", []string{msgA}},
		{"two messages split at MSH", map[string]string{"a.hl7": lf(msgA + msgB)}, []string{"a.hl7"}, "", []string{msgA, msgB}},
		{"two messages split at a blank line", map[string]string{"a.hl7": crlf(msgA) + "\r\n" + crlf(msgB)}, []string{"a.hl7"}, "", []string{msgA, msgB}},
		{"MLLP-framed dump", map[string]string{"d.mllp": frame(msgA) + "\n" + frame(lf(msgB))}, []string{"d.mllp"}, "", []string{msgA, msgB}},
		{"FHS batch sent message by message", map[string]string{"b.hl7": fhs}, []string{"b.hl7"}, "", []string{msgA, msgB}},
		{"stdin", nil, []string{"-"}, lf(msgB + msgA), []string{msgB, msgA}},
		{"directory, recursive, in name order", map[string]string{"z/1.hl7": msgB, "a.hl7": msgA, "m/n/x.txt": lf(msgA), "README.md": "no"}, []string{"."}, "", []string{msgA, msgA, msgB}},
		{"glob", map[string]string{"x1.hl7": msgA, "x2.hl7": msgB, "y.hl7": msgA}, []string{"x*.hl7"}, "", []string{msgA, msgB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, ackWith("AA"))
			dir := writeFiles(t, tt.files)
			args := []string{"--addr", ts.addr}
			for _, a := range tt.args {
				if a != "-" {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			r := hl7send(t, tt.stdin, args...)
			if r.code != exitOK {
				t.Fatalf("want exit 0, got:\n%v", r)
			}
			if diff := cmp.Diff(tt.want, ts.received()); diff != "" {
				t.Errorf("frames received (-want +got):\n%s", diff)
			}
			if want := fmt.Sprintf("ACKs      AA %d\n", len(tt.want)); !strings.Contains(r.stdout, want) {
				t.Errorf("summary lacks %q:\n%v", want, r)
			}
		})
	}
}

func TestRawSendsBytesUntouched(t *testing.T) {
	batch := lf("BHS|^~\\&|X\r" + msgA + msgB + "BTS|2") // LF, no final terminator
	// The listener answers a batch with an ack batch: AA for the first message, AE for the
	// second. An ack batch counts as one ACK with its first MSA's code.
	ts := startServer(t, func(frame []byte) ([]byte, error) {
		return []byte("BHS|^~\\&|R|R\r" + ackFor([]byte(msgA), "AA") + ackFor([]byte(msgB), "AE") + "BTS|2\r"), nil
	})
	dir := writeFiles(t, map[string]string{"batch.hl7": batch, "two.hl7": msgA + "\r\n" + msgB})
	r := hl7send(t, "", "--addr", ts.addr, "--raw", filepath.Join(dir, "batch.hl7"), filepath.Join(dir, "two.hl7"))
	if r.code != exitOK {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	if diff := cmp.Diff([]string{batch, msgA + "\r\n" + msgB}, ts.received()); diff != "" {
		t.Errorf("frames received (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stdout, "ACKs      AA 2\n") {
		t.Errorf("want two AA (ack batch = its first MSA):\n%v", r)
	}
}

func TestExitStatus(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hl7": msgA, "b.hl7": msgB})
	a, b := filepath.Join(dir, "a.hl7"), filepath.Join(dir, "b.hl7")
	closedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	tests := []struct {
		name     string
		reply    func([]byte) ([]byte, error) // nil: use addr
		addr     string
		args     []string
		want     int
		wantText []string
	}{
		{"all AA", ackWith("AA"), "", []string{a, b}, exitOK, []string{"ACKs      AA 2\n", "OK: every ACK is AA or CA (exit 0)"}},
		{"CA counts as success", ackWith("CA"), "", []string{a}, exitOK, []string{"ACKs      CA 1\n"}},
		{"AE differs", ackWith("AE"), "", []string{a, b}, exitUnexpected, []string{
			"ACKs      AE 2\n", "FAIL: 2 ACKs are not AA or CA (exit 1)",
			`ERR 101 Required field missing; ERR-7 "test diagnostic"`}},
		{"AE expected", ackWith("AE"), "", []string{"--expect", "ae", a}, exitOK, []string{"OK: every ACK is AE (exit 0)"}},
		{"AA when AE expected", ackWith("AA"), "", []string{"--expect", "AE,AR", a}, exitUnexpected, []string{"not AE or AR"}},
		{"MSA-2 of another message", func([]byte) ([]byte, error) { return []byte(ackFor([]byte(msgB), "AA")), nil }, "", []string{a}, exitUnexpected,
			[]string{`MSA-2 "B2" does not acknowledge the MSH-10 sent ("A1")`}},
		{"reply without MSA", func([]byte) ([]byte, error) { return []byte("MSH|^~\\&|R|R\r"), nil }, "", []string{a}, exitUnexpected, []string{"unreadable ACK"}},
		{"no reply: timeout", noReply, "", []string{"--timeout", "150ms", a}, exitNoAck, []string{"no ACK within 150ms", "no ACK 1", "FAIL: 1 message got no ACK (exit 2)"}},
		{"connection closed without reply", func([]byte) ([]byte, error) { return nil, mllp.ErrCloseConn }, "", []string{a, b}, exitNoAck, []string{"no ACK 2"}},
		{"connection refused", nil, closedAddr, []string{"--timeout", "2s", a}, exitNoAck, []string{"refused"}},
		{"one NAK, one timeout: no ACK wins", func(f []byte) ([]byte, error) {
			if readHeader(f).ControlID == "A1" {
				return []byte(ackFor(f, "AR")), nil
			}
			return nil, nil
		}, "", []string{"--timeout", "150ms", a, b}, exitNoAck, []string{"1 message got no ACK, 1 ACK is not AA or CA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr
			if tt.reply != nil {
				addr = startServer(t, tt.reply).addr
			}
			r := hl7send(t, "", append([]string{"--addr", addr}, tt.args...)...)
			if r.code != tt.want {
				t.Errorf("exit %d, want %d:\n%v", r.code, tt.want, r)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%v", s, r)
				}
			}
		})
	}
}

func TestUsageAndInputErrors(t *testing.T) {
	ts := startServer(t, ackWith("AA"))
	dir := writeFiles(t, map[string]string{"a.hl7": msgA, "unreadable.hl7": msgA})
	unreadable := filepath.Join(dir, "unreadable.hl7")
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "a.hl7")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing file", []string{filepath.Join(dir, "nope.hl7")}, "no such file"},
		{"no input", nil, "no input"},
		{"unknown flag", []string{"--bogus", a}, "unknown flag"},
		{"bad duration", []string{"--timeout", "soon", a}, "invalid argument"},
		{"bad expect", []string{"--expect", "OK", a}, `--expect "OK"`},
		{"zero concurrency", []string{"--concurrency", "0", a}, "--concurrency"},
		{"zero repeat", []string{"--repeat", "0", a}, "--repeat"},
		{"--out without --listen", []string{"--out", dir, a}, "only used with --listen"},
		{"--repeat with --listen", []string{"--listen", "127.0.0.1:0", "--repeat", "2"}, "not used with --listen"},
		{"--listen with files", []string{"--listen", "127.0.0.1:0", a}, "takes no input files"},
		{"--cert without --key", []string{"--cert", a, a}, "--cert and --key go together"},
		{"CA file without certificates", []string{"--ca", a, a}, "no PEM certificate"},
	}
	// A file that cannot be read even by root (tests run as root in CI):
	// a path through a regular file fails with ENOTDIR.
	tests = append(tests, struct {
		name    string
		args    []string
		wantErr string
	}{"unreadable file", []string{a, filepath.Join(a, "inside.hl7")}, "not a directory"})
	if os.Geteuid() != 0 { // root reads a mode 0 file anyway
		tests = append(tests, struct {
			name    string
			args    []string
			wantErr string
		}{"file without read permission", []string{a, unreadable}, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "--listen") {
				args = append([]string{"--addr", ts.addr}, args...)
			}
			r := hl7send(t, "", args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("want exit 3 and %q on stderr, got:\n%v", tt.wantErr, r)
			}
		})
	}
	if got := ts.received(); len(got) != 0 {
		t.Errorf("%d frames sent despite usage errors", len(got))
	}
	if r := hl7send(t, "", "--help"); r.code != exitOK || !strings.Contains(r.stdout, "Exit status") {
		t.Errorf("--help: want exit 0 and the usage text, got:\n%v", r)
	}
}

func TestConcurrencyAndRepeat(t *testing.T) {
	ts := startServer(t, ackWith("AA"))
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB + strings.ReplaceAll(msgA, "|A1|", "|C3|")})
	r := hl7send(t, "", "--addr", ts.addr, "--concurrency", "4", "--repeat", "5", dir)
	if r.code != exitOK {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	got := ts.received()
	count := map[string]int{}
	for _, f := range got {
		count[readHeader([]byte(f)).ControlID]++
	}
	if diff := cmp.Diff(map[string]int{"A1": 5, "B2": 5, "C3": 5}, count); diff != "" {
		t.Errorf("frames per MSH-10 (-want +got):\n%s", diff)
	}
	ts.mu.Lock()
	peers := len(ts.peers)
	ts.mu.Unlock()
	if peers < 1 || peers > 4 {
		t.Errorf("%d connections used, want 1 to 4", peers)
	}
	for _, s := range []string{"sent      15 of 15 messages", "4 connections", "ACKs      AA 15\n", "(pass 5)"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%v", s, r)
		}
	}
}

func TestNewControlIDs(t *testing.T) {
	ts := startServer(t, ackWith("AA")) // echoes the rewritten MSH-10: the MSA-2 check must pass
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB})
	r := hl7send(t, "", "--addr", ts.addr, "--repeat", "3", "--new-control-ids", dir)
	if r.code != exitOK {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	got := ts.received()
	if len(got) != 6 {
		t.Fatalf("%d frames, want 6", len(got))
	}
	seen := map[string]bool{}
	for i, f := range got {
		orig := []string{msgA, msgB}[i%2]
		origID := readHeader([]byte(orig)).ControlID
		id := readHeader([]byte(f)).ControlID
		if seen[id] || !strings.HasPrefix(id, origID+"-") {
			t.Errorf("frame %d: MSH-10 %q is not a fresh suffix of %q", i, id, origID)
		}
		seen[id] = true
		if back := strings.Replace(f, "|"+id+"|", "|"+origID+"|", 1); back != orig {
			t.Errorf("frame %d: more than MSH-10 changed:\n got %q\nwant %q", i, f, orig)
		}
		if !strings.Contains(r.stdout, id) {
			t.Errorf("report does not show the MSH-10 sent, %q", id)
		}
	}
}

func TestRate(t *testing.T) {
	ts := startServer(t, ackWith("AA"))
	dir := writeFiles(t, map[string]string{"a.hl7": msgA})
	start := time.Now()
	r := hl7send(t, "", "--addr", ts.addr, "--rate", "40", "--repeat", "5", "--concurrency", "2", dir)
	elapsed := time.Since(start)
	if r.code != exitOK {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	// Five sends at 40/s are four intervals of 25 ms apart: at least 100 ms.
	if elapsed < 100*time.Millisecond {
		t.Errorf("5 messages at --rate 40 took %v, want >= 100ms", elapsed)
	}
	if n := len(ts.received()); n != 5 {
		t.Errorf("%d frames, want 5", n)
	}
}

func TestJSONOutput(t *testing.T) {
	ts := startServer(t, func(f []byte) ([]byte, error) {
		if readHeader(f).ControlID == "B2" {
			return []byte(ackFor(f, "AE")), nil
		}
		return []byte(ackFor(f, "AA")), nil
	})
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB})
	r := hl7send(t, "", "--addr", ts.addr, "--json", dir)
	if r.code != exitUnexpected {
		t.Fatalf("want exit 1, got:\n%v", r)
	}
	var objs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var o map[string]any
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		objs = append(objs, o)
	}
	if len(objs) != 3 {
		t.Fatalf("%d JSON objects, want 3 (2 messages, 1 summary):\n%v", len(objs), r)
	}
	// Drop the varying fields, then compare the rest.
	lat, _ := objs[2]["latency_ms"].(map[string]any)
	for _, o := range objs {
		if o["type"] == "message" {
			if v, ok := o["latency_ms"].(float64); !ok || v <= 0 {
				t.Errorf("message latency_ms = %v, want > 0", o["latency_ms"])
			}
		}
		delete(o, "latency_ms")
		delete(o, "elapsed_s")
		delete(o, "messages_per_s")
	}
	file := filepath.Join(dir, "a.hl7")
	want := []map[string]any{
		{"type": "message", "file": file, "index": 1.0, "pass": 1.0, "control_id": "A1", "message_type": "ADT^A01^ADT_A01",
			"result": "ok", "ack": "AA", "ack_control_id": "A1"},
		{"type": "message", "file": file, "index": 2.0, "pass": 1.0, "control_id": "B2", "message_type": "ADT^A08^ADT_A01",
			"result": "unexpected", "ack": "AE", "ack_control_id": "B2", "err_code": "101", "err_text": "Required field missing",
			"diagnostic": "test diagnostic"},
		{"type": "summary", "messages": 2.0, "sent": 2.0, "not_sent": 0.0, "ok": 1.0, "unexpected": 1.0, "no_ack": 0.0,
			"acks": map[string]any{"AA": 1.0, "AE": 1.0}, "expect": []any{"AA", "CA"}, "connections": 1.0, "exit_code": 1.0},
	}
	if diff := cmp.Diff(want, objs); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	for _, k := range []string{"p50", "p90", "p99", "max"} {
		if v, ok := lat[k].(float64); !ok || v <= 0 {
			t.Errorf("summary latency_ms.%s = %v, want > 0", k, lat[k])
		}
	}
}

func TestQuietPrintsOnlyTheSummary(t *testing.T) {
	ts := startServer(t, ackWith("AA"))
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB})
	r := hl7send(t, "", "--addr", ts.addr, "--quiet", dir)
	if r.code != exitOK {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "sent ") || strings.Contains(r.stdout, "a.hl7") {
		t.Errorf("want the 4 summary lines only, got:\n%v", r)
	}
	r = hl7send(t, "", "--addr", ts.addr, "--quiet", "--json", dir)
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"type":"summary"`) {
		t.Errorf("--quiet --json: want one summary object, got:\n%v", r)
	}
}

func TestInterruptStopsTheRun(t *testing.T) {
	ts := startServer(t, noReply)
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ts.got // the first message is on the wire and will never be answered
		cancel()
	}()
	start := time.Now()
	r := hl7sendCtx(t, ctx, "", "--addr", ts.addr, "--timeout", "1m", dir)
	if r.code != exitNoAck || !strings.Contains(r.stdout, "interrupted: 1 not sent") {
		t.Errorf("want exit 2 and an interrupted summary, got:\n%v", r)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the run did not stop at the interrupt")
	}
}

// addrWriter is a stderr that hands over the address --listen announces.
type addrWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
}

func (w *addrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if _, rest, ok := strings.Cut(string(p), "listening on "); ok {
		addr, _, _ := strings.Cut(rest, " ")
		w.addr <- addr
	}
	return len(p), nil
}

func (w *addrWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// syncBuffer is a stdout shared by the handler goroutines of --listen and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startListen runs hl7send --listen in the background and returns its address and a
// stop function that returns its exit status.
func startListen(t *testing.T, stdout io.Writer, args ...string) (addr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &addrWriter{addr: make(chan string, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	select {
	case addr = <-stderr.addr:
	case code := <-done:
		cancel()
		t.Fatalf("hl7send --listen exited %d before listening:\n%s", code, stderr)
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func TestListenWritesFilesAndACKs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "received")
	addr, stop := startListen(t, io.Discard, "--out", out)
	dir := writeFiles(t, map[string]string{"a.hl7": lf(msgA + msgB), "b/batch.hl7": "BHS|^~\\&|X\r" + msgA + "BTS|1\r"})

	r := hl7send(t, "", "--addr", addr, dir)
	if r.code != exitOK {
		t.Fatalf("send to --listen: want exit 0, got:\n%v", r)
	}
	// --raw batch: the receiver answers with an ack batch, counted as its first ACK.
	r = hl7send(t, "", "--addr", addr, "--raw", filepath.Join(dir, "b", "batch.hl7"))
	if r.code != exitOK {
		t.Fatalf("raw batch to --listen: want exit 0, got:\n%v", r)
	}
	if code := stop(); code != exitOK {
		t.Errorf("--listen exited %d after the interrupt, want 0", code)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names, contents []string
	for _, e := range entries {
		names = append(names, e.Name())
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		contents = append(contents, string(b))
	}
	wantNames := []string{"000001-A1.hl7", "000002-B2.hl7", "000003-A1.hl7", "000004-A1.hl7"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	wantContents := []string{msgA, msgB, msgA, "BHS|^~\\&|X\r" + msgA + "BTS|1\r"}
	if diff := cmp.Diff(wantContents, contents); diff != "" {
		t.Errorf("file contents (-want +got):\n%s", diff)
	}

	// A second run into the same directory continues the numbering, never overwrites.
	addr, stop = startListen(t, io.Discard, "--out", out)
	if r := hl7send(t, "", "--addr", addr, filepath.Join(dir, "a.hl7")); r.code != exitOK {
		t.Fatalf("second run: %v", r)
	}
	stop()
	if _, err := os.Stat(filepath.Join(out, "000006-B2.hl7")); err != nil {
		t.Errorf("second run did not continue the numbering: %v", err)
	}
}

func TestListenStdoutAndAckCode(t *testing.T) {
	var stdout syncBuffer
	addr, stop := startListen(t, &stdout, "--ack", "AR")
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB})
	r := hl7send(t, "", "--addr", addr, "--json", dir)
	if r.code != exitUnexpected || strings.Count(r.stdout, `"ack":"AR"`) != 2 || strings.Count(r.stdout, `"err_code":"207"`) != 2 {
		t.Errorf("--ack AR: want two AR with ERR-3 207 and exit 1, got:\n%v", r)
	}
	stop()
	// stdout holds what hl7send reads back: segments on lines, a blank line between.
	if want := lf(msgA) + "\n" + lf(msgB) + "\n"; stdout.String() != want {
		t.Errorf("--listen stdout = %q, want %q", stdout.String(), want)
	}
}

func TestListenNoReply(t *testing.T) {
	addr, _ := startListen(t, io.Discard, "--ack", "none")
	dir := writeFiles(t, map[string]string{"a.hl7": msgA})
	if r := hl7send(t, "", "--addr", addr, "--timeout", "150ms", dir); r.code != exitNoAck {
		t.Errorf("--ack none: want exit 2, got:\n%v", r)
	}
}

// The invalid fixtures, sent to hl7send --listen, get the replies fixtures/README.md
// promises (reference §5.7).
func TestListenAnswersInvalidFixtures(t *testing.T) {
	addr, _ := startListen(t, io.Discard, "--out", t.TempDir())
	r := hl7send(t, "", "--addr", addr, "--json", "--expect", "AE", filepath.Join("..", "..", "fixtures", "invalid"))
	if r.code != exitOK {
		t.Fatalf("want every invalid fixture answered AE, got:\n%v", r)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var o struct {
			Type         string `json:"type"`
			File         string `json:"file"`
			ErrCode      string `json:"err_code"`
			AckControlID string `json:"ack_control_id"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatal(err)
		}
		if o.Type == "message" {
			got[filepath.Base(o.File)] = o.ErrCode + " " + o.AckControlID
		}
	}
	want := map[string]string{
		"batch-bhs-without-msh.hl7":                    "100 ",
		"broken-delimiters-alphanumeric-separator.hl7": "102 ",
		"broken-delimiters-duplicate.hl7":              "102 BAD000806",
		"broken-delimiters-empty-msh2.hl7":             "102 BAD000807",
		"garbage-text.hl7":                             "100 ",
		"missing-control-id.hl7":                       "101 ",
		"msh9-missing.hl7":                             "101 BAD000803",
		"msh9-no-trigger-event.hl7":                    "101 BAD000804",
		"no-msh-starts-with-pid.hl7":                   "100 ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ERR code and MSA-2 per invalid fixture (-want +got):\n%s", diff)
	}
}

// Every valid fixture goes through hl7send and the --listen receiver with AA.
func TestValidFixturesRoundTrip(t *testing.T) {
	addr, _ := startListen(t, io.Discard, "--out", t.TempDir())
	var args []string
	for _, d := range []string{"adt", "oru", "orders", "other", "batch", "charset", "story"} {
		args = append(args, filepath.Join("..", "..", "fixtures", d))
	}
	r := hl7send(t, "", append([]string{"--addr", addr, "--concurrency", "3"}, args...)...)
	if r.code != exitOK {
		t.Fatalf("want every valid fixture answered AA, got:\n%v", r)
	}
}

// A late ACK must never be taken for the next message's: after a timeout the connection
// is dropped and the next message goes over a new one.
func TestLateAckIsNotTakenForTheNextMessage(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, func(f []byte) ([]byte, error) {
		if readHeader(f).ControlID == "A1" {
			<-release // answers only after the sender gave up
		}
		return []byte(ackFor(f, "AA")), nil
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Shutdown
	dir := writeFiles(t, map[string]string{"a.hl7": msgA + msgB})
	r := hl7send(t, "", "--addr", ts.addr, "--timeout", "200ms", "--json", dir)
	if r.code != exitNoAck {
		t.Fatalf("want exit 2, got:\n%v", r)
	}
	for _, want := range []string{
		`"control_id":"A1","message_type":"ADT^A01^ADT_A01","result":"no_ack"`,
		`"control_id":"B2","message_type":"ADT^A08^ADT_A01","result":"ok","ack":"AA","ack_control_id":"B2"`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %s:\n%v", want, r)
		}
	}
	ts.mu.Lock()
	peers := len(ts.peers)
	ts.mu.Unlock()
	if peers != 2 {
		t.Errorf("%d connections, want 2 (a new one after the timeout)", peers)
	}
}
