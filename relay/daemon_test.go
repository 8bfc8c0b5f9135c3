package relay

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/store"
)

// m1 is reference §11's message M1.
const m1 = "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\r" +
	"PID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q||19700101|M\r" +
	"OBX|1|TX|NOTE^Note||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\||||||F\r"

// testDaemon is a daemon started in-process on loopback ports chosen by the
// kernel, with its data in t.TempDir().
type testDaemon struct {
	*Daemon
	dir string
}

// startDaemon starts a daemon whose config is the given YAML body (listeners,
// destinations, routes...) plus a data_dir and an admin listener. "{{listen}}"
// in body is replaced by 127.0.0.1:0, "{{dir}}" by the test's temp directory.
func startDaemon(t *testing.T, body string, opts ...func(*Options)) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	body = strings.ReplaceAll(body, "{{listen}}", `"127.0.0.1:0"`)
	body = strings.ReplaceAll(body, "{{dir}}", dir)
	yaml := fmt.Sprintf("data_dir: %s\nadmin: {listen: \"127.0.0.1:0\"}\n%s", filepath.Join(dir, "data"), body)
	if !strings.Contains(body, "storage:") {
		yaml += "storage: {min_free_bytes: 0}\n" // the test machine's free space must not matter
	}
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	o := Options{Logger: zaptest.NewLogger(t)}
	for _, f := range opts {
		f(&o)
	}
	d, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		d.store.Close()
		t.Fatal(err)
	}
	td := &testDaemon{Daemon: d, dir: dir}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return td
}

const oneListener = "listeners:\n  - name: pas\n    listen: {{listen}}\n"

func (td *testDaemon) addr(t *testing.T, listener string) string {
	t.Helper()
	a := td.ListenerAddr(listener)
	if a == nil {
		t.Fatalf("no listener %q", listener)
	}
	return a.String()
}

// conn is a raw MLLP connection for tests: it sends exact bytes and reads
// replies without any ACK check, so NAKs with an empty MSA-2 can be read.
type conn struct {
	t  *testing.T
	c  net.Conn
	r  *mllp.Reader
	wr *mllp.Writer
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, r: mllp.NewReader(c, 8<<20), wr: mllp.NewWriter(c)}
}

func (c *conn) send(payload string) {
	c.t.Helper()
	if err := c.wr.WriteFrame([]byte(payload)); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads the next reply frame, failing the test after 10 s.
func (c *conn) reply() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return string(f)
}

func (c *conn) roundTrip(payload string) string {
	c.t.Helper()
	c.send(payload)
	return c.reply()
}

// segField returns field n of the first segment named seg in an ER7 reply
// (MSH counted as HL7 counts it), "" when absent.
func segField(reply, seg string, n int) string {
	for _, s := range strings.FieldsFunc(reply, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if !strings.HasPrefix(s, seg+string(s[3])) && s != seg {
			continue
		}
		if len(s) < 4 {
			return ""
		}
		sep := string(s[3])
		parts := strings.Split(s, sep)
		if seg == "MSH" || seg == "BHS" || seg == "FHS" {
			if n == 1 {
				return sep
			}
			n--
		}
		if n < len(parts) {
			return parts[n]
		}
		return ""
	}
	return ""
}

func TestAAOnlyAfterStored(t *testing.T) {
	td := startDaemon(t, oneListener)
	c := dial(t, td.addr(t, "pas"))
	r := c.roundTrip(m1)
	if got := segField(r, "MSA", 1); got != "AA" {
		t.Fatalf("MSA-1 = %q, want AA; reply %q", got, r)
	}
	if got := segField(r, "MSA", 2); got != "CTL0001" {
		t.Errorf("MSA-2 = %q, want CTL0001", got)
	}
	if got := segField(r, "MSH", 9); got != "ACK^R01^ACK" {
		t.Errorf("ACK MSH-9 = %q", got)
	}
	// The ACK has arrived: the message must already be readable from the store.
	recs, err := td.Store().Query(store.Filter{ControlID: "CTL0001", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("stored %d records for CTL0001, want 1", len(recs))
	}
	rec, err := td.Store().Get(recs[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Raw) != m1 {
		t.Errorf("stored bytes differ from the received ones")
	}
	if rec.Listener != "pas" || rec.Type != "ORU" || rec.Event != "R01" || rec.PatientID != "12345" {
		t.Errorf("record summary = %+v", rec.Message)
	}
}

// hdr builds a small message with the given MSH-9, MSH-10, MSH-11 and MSH-12.
func hdr(typ, id, proc, version string) string {
	return "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||" + typ + "|" + id + "|" + proc + "|" + version + "\rPID|1||55\r"
}

func TestNAKCases(t *testing.T) {
	td := startDaemon(t, `listeners:
  - name: strict
    listen: {{listen}}
    max_message_bytes: 4096
    batches: false
    reject_unrouted: true
    accept: {versions: ["2.*"], processing_ids: ["P"], message_types: ["ADT^A0*", "ORU^R01"]}
destinations:
  - {name: sink, type: file, dir: "{{dir}}/out"}
routes:
  - name: adt
    match: {message_type: ["ADT^A01"]}
    to: [{destination: sink}]
`)
	big := hdr("ADT^A01", "BIG1", "P", "2.5.1") + "NTE|1||" + strings.Repeat("x", 5000) + "\r"
	big27 := hdr("ADT^A01", "BIG2", "P", "2.7") + "NTE|1||" + strings.Repeat("x", 5000) + "\r"
	tests := []struct {
		name, in         string
		code, msa2, err3 string // err3: ERR-3.1 (v2.5+) or the code inside ERR-1 (before v2.5)
		ackVersion       string
		rejected         string // reason in the rejected log, "" for none
	}{
		{"accepted", hdr("ADT^A01", "OK1", "P", "2.5.1"), "AA", "OK1", "", "2.5.1", ""},
		{"no MSH", "PID|1||123\r", "AE", "", "100", "2.5.1", "no_msh"},
		{"duplicate delimiters v2.4", "MSH|^^\\&|LAB|RXH|||20240131||ADT^A01|C4|P|2.4\r", "AE", "C4", "102", "2.4", "bad_delimiters"},
		{"missing MSH-10", hdr("ADT^A01", "", "P", "2.5.1"), "AE", "", "101", "2.5.1", "missing_msh10"},
		{"missing MSH-9", hdr("", "N9", "P", "2.5.1"), "AE", "N9", "101", "2.5.1", "missing_msh9"},
		{"malformed MSH-10", hdr("ADT^A01", strings.Repeat("9", 200), "P", "2.5.1"), "AE", strings.Repeat("9", 200), "102", "2.5.1", "bad_msh10"},
		{"version not accepted", hdr("ADT^A01", "V3", "P", "3.0"), "AR", "V3", "203", "2.5.1", "version_not_accepted"},
		{"processing ID not accepted", hdr("ADT^A01", "PT", "T", "2.5.1"), "AR", "PT", "202", "2.5.1", "processing_id_not_accepted"},
		{"type not accepted", hdr("ZZZ^Z01", "TZ", "P", "2.5.1"), "AR", "TZ", "200", "2.5.1", "type_not_accepted"},
		{"event not accepted", hdr("ADT^A99", "EV", "P", "2.5.1"), "AR", "EV", "201", "2.5.1", "event_not_accepted"},
		{"unrouted with reject_unrouted", hdr("ORU^R01", "UR", "P", "2.5.1"), "AR", "UR", "200", "2.5.1", "unrouted"},
		{"batch with batches off", "BHS|^~\\&|LAB|RXH|MLLPD|HUB|20240131||||B77\r" + hdr("ADT^A01", "B1", "P", "2.5.1") + "BTS|1\r", "AR", "B1", "200", "2.5.1", "batches_off"},
		{"oversize v2.5.1", big, "AE", "BIG1", "207", "2.5.1", "frame_too_large"},
		{"oversize v2.7", big27, "AE", "BIG2", "104", "2.7", "frame_too_large"},
	}
	c := dial(t, td.addr(t, "strict"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rejectedReasons(t, td.Store())
			r := c.roundTrip(tt.in)
			if got := segField(r, "MSA", 1); got != tt.code {
				t.Fatalf("MSA-1 = %q, want %q; reply %q", got, tt.code, r)
			}
			if got := segField(r, "MSA", 2); got != tt.msa2 {
				t.Errorf("MSA-2 = %q, want %q", got, tt.msa2)
			}
			if got := segField(r, "MSH", 12); got != tt.ackVersion {
				t.Errorf("ACK MSH-12 = %q, want %q", got, tt.ackVersion)
			}
			if tt.err3 == "" {
				if strings.Contains(r, "\rERR") {
					t.Errorf("positive ACK carries ERR: %q", r)
				}
			} else {
				if segField(r, "MSA", 3) == "" {
					t.Errorf("negative ACK without MSA-3 text: %q", r)
				}
				if v := segField(r, "MSH", 12); v < "2.5" {
					if e1 := segField(r, "ERR", 1); !strings.Contains(e1, "^"+tt.err3+"&") {
						t.Errorf("ERR-1 = %q, want code %s", e1, tt.err3)
					}
				} else if e3 := segField(r, "ERR", 3); !strings.HasPrefix(e3, tt.err3+"^") {
					t.Errorf("ERR-3 = %q, want code %s; reply %q", e3, tt.err3, r)
				}
			}
			after := rejectedReasons(t, td.Store())
			if tt.rejected == "" && len(after) != len(before) {
				t.Errorf("rejected log grew for an accepted message")
			}
			if tt.rejected != "" && (len(after) != len(before)+1 || after[len(after)-1] != tt.rejected) {
				t.Errorf("rejected log = %v, want a new %q entry", after, tt.rejected)
			}
		})
	}
	// Nothing but the accepted message was stored.
	recs, err := td.Store().Query(store.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ControlID != "OK1" {
		t.Errorf("stored %d messages, want only OK1", len(recs))
	}
}

func rejectedReasons(t *testing.T, st *store.Store) []string {
	t.Helper()
	rs, err := st.ListRejected(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Reason)
	}
	return out
}

func TestEnhancedMode(t *testing.T) {
	td := startDaemon(t, "listeners:\n  - name: enh\n    listen: {{listen}}\n    ack_mode: enhanced\n")
	c := dial(t, td.addr(t, "enh"))
	with := func(id, msh15, msh16 string) string {
		return "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01|" + id + "|P|2.5.1|||" + msh15 + "|" + msh16 + "\rPID|1||55\r"
	}
	// Original mode for a message with both fields blank.
	if got := segField(c.roundTrip(with("E0", "", "")), "MSA", 1); got != "AA" {
		t.Errorf("blank MSH-15/16: MSA-1 = %q, want AA", got)
	}
	if got := segField(c.roundTrip(with("E1", "AL", "NE")), "MSA", 1); got != "CA" {
		t.Errorf("AL/NE: MSA-1 = %q, want CA", got)
	}
	if got := segField(c.roundTrip(with("E2", "", "AL")), "MSA", 1); got != "CA" {
		t.Errorf("blank MSH-15 with MSH-16 AL: MSA-1 = %q, want CA", got)
	}
	if got := segField(c.roundTrip(with("E3", "SU", "")), "MSA", 1); got != "CA" {
		t.Errorf("SU: MSA-1 = %q, want CA", got)
	}
	// NE and ER on success: no reply at all. The next AL message's reply must
	// be its own, which shows nothing was written for these.
	c.send(with("E4", "NE", "AL"))
	c.send(with("E5", "ER", "AL"))
	r := c.roundTrip(with("E6", "AL", ""))
	if segField(r, "MSA", 1) != "CA" || segField(r, "MSA", 2) != "E6" {
		t.Errorf("after NE and ER messages, reply = %q, want CA for E6", r)
	}
	// ER on an error: CE with ERR.
	r = c.roundTrip("MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01||P|2.5.1|||ER|AL\rPID|1||55\r")
	if segField(r, "MSA", 1) != "CE" || !strings.HasPrefix(segField(r, "ERR", 3), "101^") {
		t.Errorf("ER with missing MSH-10: reply %q, want CE/101", r)
	}
	for _, id := range []string{"E0", "E1", "E2", "E3", "E4", "E5", "E6"} {
		recs, err := td.Store().Query(store.Filter{ControlID: id, Limit: 10})
		if err != nil || len(recs) != 1 {
			t.Errorf("%s stored %d times (err %v), want once", id, len(recs), err)
		}
	}
}

func TestDuplicates(t *testing.T) {
	td := startDaemon(t, oneListener)
	addr := td.addr(t, "pas")
	c := dial(t, addr)
	first := c.roundTrip(m1)
	// A resend with a new MSH-7 and LF terminators is the same message.
	resend := strings.ReplaceAll(strings.Replace(m1, "20240131123045+0100", "20240131123115+0100", 1), "\r", "\n")
	second := c.roundTrip(resend)
	for _, r := range []string{first, second} {
		if segField(r, "MSA", 1) != "AA" || segField(r, "MSA", 2) != "CTL0001" {
			t.Fatalf("reply %q, want AA for CTL0001", r)
		}
	}
	if segField(first, "MSH", 10) == segField(second, "MSH", 10) {
		t.Errorf("both ACKs have MSH-10 %q; each ACK needs its own", segField(first, "MSH", 10))
	}
	// Same key, different content: stored again (a reused control ID).
	reused := strings.Replace(m1, "DOE^JOHN", "ROE^JANE", 1)
	if r := c.roundTrip(reused); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("reused control ID: reply %q, want AA", r)
	}
	// Two identical copies at once on two connections: stored once.
	m2 := strings.Replace(m1, "CTL0001", "CTL0002", 1)
	var wg sync.WaitGroup
	for range 2 {
		cc := dial(t, addr)
		wg.Go(func() {
			if r := cc.roundTrip(m2); segField(r, "MSA", 1) != "AA" {
				t.Errorf("concurrent copy: reply %q", r)
			}
		})
	}
	wg.Wait()
	for id, want := range map[string]int{"CTL0001": 2, "CTL0002": 1} {
		recs, err := td.Store().Query(store.Filter{ControlID: id, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("%s stored %d times, want %d", id, len(recs), want)
		}
	}
}

func TestFreeSpaceGuard(t *testing.T) {
	var mu sync.Mutex
	free := uint64(10 << 30)
	td := startDaemon(t, oneListener+"storage: {min_free_bytes: 1073741824}\n", func(o *Options) {
		o.FreeSpace = func() (uint64, error) { mu.Lock(); defer mu.Unlock(); return free, nil }
	})
	c := dial(t, td.addr(t, "pas"))
	if r := c.roundTrip(m1); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("plenty of space: %q", r)
	}
	mu.Lock()
	free = 100 << 20
	mu.Unlock()
	waitFor(t, "readyz to fail", func() bool { return td.Ready() != nil })
	r := c.roundTrip(strings.Replace(m1, "CTL0001", "LOW1", 1))
	if segField(r, "MSA", 1) != "AR" || !strings.HasPrefix(segField(r, "ERR", 3), "206^") {
		t.Fatalf("low space: reply %q, want AR/206", r)
	}
	if code := httpGet(t, "http://"+td.AdminAddr().String()+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", code)
	}
	mu.Lock()
	free = 10 << 30
	mu.Unlock()
	waitFor(t, "readyz to recover", func() bool { return td.Ready() == nil })
	if r := c.roundTrip(strings.Replace(m1, "CTL0001", "LOW1", 1)); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("space back: reply %q, want AA", r)
	}
	if code := httpGet(t, "http://"+td.AdminAddr().String()+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", code)
	}
}

func TestAdminTokenRequired(t *testing.T) {
	td := startDaemon(t, oneListener)
	base := "http://" + td.AdminAddr().String()
	for _, p := range []string{"/healthz", "/metrics"} {
		if code := httpGet(t, base+p, ""); code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200 without a token", p, code)
		}
	}
	token, err := ReadAdminToken(td.Config().AdminTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(td.Config().AdminTokenFile())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
	for _, p := range []string{"/api/v1/messages", "/api/v1/rejected", "/api/v1/destinations"} {
		if code := httpGet(t, base+p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without token = %d, want 401", p, code)
		}
		if code := httpGet(t, base+p, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token = %d, want 401", p, code)
		}
		if code := httpGet(t, base+p, token); code != http.StatusOK {
			t.Errorf("GET %s with the token = %d, want 200", p, code)
		}
	}
}

func httpGet(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds, failing the test after 10 s. It is for
// state that changes asynchronously (a cached free-space reading).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNoBodiesInLogs: message content reaches the log only with log.bodies.
func TestNoBodiesInLogs(t *testing.T) {
	for _, bodies := range []bool{false, true} {
		t.Run(fmt.Sprintf("bodies=%v", bodies), func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			td := startDaemon(t, oneListener+fmt.Sprintf("log: {level: debug, bodies: %v}\n", bodies),
				func(o *Options) { o.Logger = zap.New(core) })
			c := dial(t, td.addr(t, "pas"))
			c.roundTrip(m1)
			c.roundTrip("PID|1||12345\r") // rejected: no MSH
			found := false
			for _, e := range logs.All() {
				for _, f := range e.Context {
					s := f.String
					if f.Type == zapcore.ByteStringType {
						s = string(f.Interface.([]byte))
					}
					if strings.Contains(s, "DOE^JOHN") || strings.Contains(s, "PID|1||12345") {
						found = true
					}
				}
			}
			if found != bodies {
				t.Errorf("message content in the log: %v, want %v", found, bodies)
			}
		})
	}
}

// TestShutdownAnswersInFlight: a frame that has started when Shutdown begins
// is still stored and answered; then the store is closed cleanly.
func TestShutdownAnswersInFlight(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte("data_dir: "+filepath.Join(dir, "data")+"\nadmin: {listen: \"127.0.0.1:0\"}\nstorage: {min_free_bytes: 0}\n"+
		strings.ReplaceAll(oneListener, "{{listen}}", `"127.0.0.1:0"`)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	idle := dial(t, d.ListenerAddr("pas").String()) // between frames: closed by Shutdown
	busy := dial(t, d.ListenerAddr("pas").String())
	half := len(m1) / 2
	if _, err := busy.c.Write([]byte("\x0b" + m1[:half])); err != nil {
		t.Fatal(err)
	}
	// The server must have read the frame's start before Shutdown begins, or
	// the connection counts as idle; mllp offers no event for a frame start.
	time.Sleep(200 * time.Millisecond)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- d.Shutdown(ctx)
	}()
	waitFor(t, "the daemon to stop being ready", func() bool { return d.Ready() != nil })
	if _, err := busy.c.Write([]byte(m1[half:] + "\x1c\r")); err != nil {
		t.Fatal(err)
	}
	if r := busy.reply(); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("in-flight frame: reply %q, want AA", r)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.r.ReadFrame(); err == nil {
		t.Errorf("idle connection got a frame after shutdown")
	}
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "data", "mllpd.db")})
	if err != nil {
		t.Fatalf("reopening the store after shutdown: %v", err)
	}
	defer st.Close()
	if recs, err := st.Query(store.Filter{ControlID: "CTL0001", Limit: 1}); err != nil || len(recs) != 1 {
		t.Errorf("the in-flight message is not in the store after shutdown (%v)", err)
	}
}

func TestMetricsExposed(t *testing.T) {
	td := startDaemon(t, oneListener)
	c := dial(t, td.addr(t, "pas"))
	c.roundTrip(m1)
	c.roundTrip(m1) // duplicate
	c.roundTrip(strings.ReplaceAll(strings.Replace(m1, "CTL0001", "LF1", 1), "\r", "\n"))
	c.roundTrip("PID|1||1\r")
	resp, err := http.Get("http://" + td.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mllpd_ingest_acks_total{code="AA",listener="pas"} 3`,
		`mllpd_ingest_acks_total{code="AE",listener="pas"} 1`,
		`mllpd_ingest_duplicates_total{listener="pas"} 1`,
		`mllpd_ingest_messages_accepted_total{listener="pas"} 2`,
		`mllpd_ingest_rejected_total{listener="pas",reason="no_msh"} 1`,
		`mllpd_ingest_repairs_total{listener="pas",repair="lf"} 1`,
		`mllpd_ingest_ack_latency_seconds_count{listener="pas"} 4`,
		`mllpd_mllp_open_connections{listener="pas"} 1`,
		`mllpd_store_size_bytes `,
		`mllpd_store_free_disk_bytes `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(body), "CTL0001") || strings.Contains(string(body), "127.0.0.1:") {
		t.Errorf("/metrics carries a control ID or a peer address")
	}
}

// TestFrameRestartedKept: a frame cut short by a new start block (reference
// §11.1 case 8) is kept in the rejected log; the frame after it is answered.
func TestFrameRestartedKept(t *testing.T) {
	td := startDaemon(t, oneListener)
	c := dial(t, td.addr(t, "pas"))
	if _, err := c.c.Write([]byte("\x0bMSH|^~\\&|LAB|RX\x0b" + m1 + "\x1c\r")); err != nil {
		t.Fatal(err)
	}
	if r := c.reply(); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("reply %q, want AA for the frame after the restart", r)
	}
	waitFor(t, "the fragment in the rejected log", func() bool {
		rs := rejectedReasons(t, td.Store())
		return len(rs) == 1 && rs[0] == "frame_restarted"
	})
	rs, _ := td.Store().ListRejected(0, 10)
	r, err := td.Store().GetRejected(rs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Raw) != "MSH|^~\\&|LAB|RX" || r.Size != int64(len("MSH|^~\\&|LAB|RX")) {
		t.Errorf("rejected entry = %q size %d", r.Raw, r.Size)
	}
}
