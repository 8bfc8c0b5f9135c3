package mllp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// sendOne sends one frame on a fresh connection from local and returns the
// replies received until the server closes.
func sendOne(t *testing.T, addr, local, ctl string) []string {
	t.Helper()
	c := dial(t, addr, local)
	c.Write([]byte(frame(string(msg(ctl)))))
	c.CloseWrite()
	return replies(t, c)
}

// TestServerPerIPLimit: peers on 127.0.0.2 exhaust their own quota; the
// well-behaved peer on 127.0.0.1 is still served.
func TestServerPerIPLimit(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, MaxConnsPerIP: 2, OnEvent: rec.record})
	dial(t, addr, "127.0.0.2")
	dial(t, addr, "127.0.0.2")
	rec.wait(t, ConnOpened, 2)
	refused := dial(t, addr, "127.0.0.2")
	if got, err := io.ReadAll(refused); len(got) != 0 || err != nil && !isReset(err) {
		t.Errorf("third connection from 127.0.0.2 read %q, %v; want closed", got, err)
	}
	e := rec.wait(t, PerIPLimit, 1)
	if ap := e.RemoteAddr.(*net.TCPAddr).AddrPort().Addr(); ap != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("PerIPLimit event for %v, want 127.0.0.2", ap)
	}
	if diff := cmp.Diff([]string{"AA:GOOD"}, sendOne(t, addr, "127.0.0.1", "GOOD")); diff != "" {
		t.Errorf("well-behaved peer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"AA:OTHER"}, sendOne(t, addr, "127.0.0.3", "OTHER")); diff != "" {
		t.Errorf("peer on another address (-want +got):\n%s", diff)
	}
}

// TestRefusalCountedBeforeClose: a refused peer that sees its connection
// closed finds the refusal already reported, however slow the report (a
// metrics scrape right after the close counts it).
func TestRefusalCountedBeforeClose(t *testing.T) {
	rec := newRecorder()
	slowReport := func(e Event) {
		if e.Kind == PerIPLimit {
			time.Sleep(100 * time.Millisecond)
		}
		rec.record(e)
	}
	addr := startServer(t, &Server{Handler: ackHandler, MaxConnsPerIP: 1, OnEvent: slowReport})
	dial(t, addr, "127.0.0.2")
	rec.wait(t, ConnOpened, 1)
	refused := dial(t, addr, "127.0.0.2")
	if got, err := io.ReadAll(refused); len(got) != 0 || err != nil && !isReset(err) {
		t.Fatalf("second connection from 127.0.0.2 read %q, %v; want closed", got, err)
	}
	if n := rec.count(PerIPLimit); n != 1 {
		t.Errorf("PerIPLimit events when the refused peer saw the close = %d, want 1", n)
	}
}

func TestServerAllowList(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{
		Handler: ackHandler, OnEvent: rec.record,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.1.0/24")},
	})
	if got := sendOne(t, addr, "127.0.0.9", "DENIED"); len(got) != 0 {
		t.Errorf("peer outside the allow list got %v", got)
	}
	rec.wait(t, PeerDenied, 1)
	for _, local := range []string{"127.0.0.1", "127.0.1.5"} {
		if diff := cmp.Diff([]string{"AA:OK"}, sendOne(t, addr, local, "OK")); diff != "" {
			t.Errorf("allowed peer %s (-want +got):\n%s", local, diff)
		}
	}
	if n := rec.count(PeerDenied); n != 1 {
		t.Errorf("PeerDenied events = %d, want 1", n)
	}
}

// TestServerManyConnections holds 1,000 connections open at once, each with
// one message answered, then closes them.
func TestServerManyConnections(t *testing.T) {
	const n = 1000
	rec := newRecorder()
	srv := &Server{Handler: ackHandler, OnEvent: rec.record}
	addr := startServer(t, srv)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make(chan net.Conn, n)
	sem := make(chan struct{}, 100) // bound concurrent dials, not open connections
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, waitTimeout)
			if err != nil {
				errs <- err
				return
			}
			conns <- c
			_ = c.SetDeadline(time.Now().Add(waitTimeout))
			ctl := fmt.Sprintf("N%04d", i)
			if _, err := c.Write([]byte(frame(string(msg(ctl))))); err != nil {
				errs <- err
				return
			}
			p, err := NewReader(c, 0).ReadFrame()
			if err != nil {
				errs <- fmt.Errorf("%s: %w", ctl, err)
				return
			}
			if got := summary(p); got != "AA:"+ctl {
				errs <- fmt.Errorf("reply %s, want AA:%s", got, ctl)
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(conns)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.ActiveConns(); got != n {
		t.Errorf("ActiveConns = %d with %d connections open", got, n)
	}
	for c := range conns {
		c.Close()
	}
	rec.wait(t, ConnClosed, n)
}

// TestServerPeerStopsReading: a peer that sends but never reads its replies
// is cut at the write timeout; others are served meanwhile.
func TestServerPeerStopsReading(t *testing.T) {
	big := bytes.Repeat([]byte("OBX|1|ED|PDF||JVBERi0xLjQK\r"), (1<<20)/27)
	rec := newRecorder()
	addr := startServer(t, &Server{
		WriteTimeout: 200 * time.Millisecond, OnEvent: rec.record,
		Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
			if ctl, _ := controlID(req.Frame); string(ctl) == "HOG" {
				return big, nil // 1 MiB per reply fills the socket buffers quickly
			}
			return ackFor(req.Frame, "AA"), nil
		}),
	})
	hog := dial(t, addr, "127.0.0.2")
	frames := bytes.Repeat([]byte(frame(string(msg("HOG")))), 64) // 64 MiB of replies: more than any socket buffer
	go func() {
		_, _ = hog.Write(frames) // fails once the server gives up; the test does not depend on it
	}()
	e := rec.wait(t, WriteFailed, 1)
	if e.Bytes != int64(len(big)) {
		t.Errorf("WriteFailed Bytes = %d, want %d", e.Bytes, len(big))
	}
	if diff := cmp.Diff([]string{"AA:POLITE"}, sendOne(t, addr, "127.0.0.1", "POLITE")); diff != "" {
		t.Errorf("other peer (-want +got):\n%s", diff)
	}
}

func TestEventKindString(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range EventKinds() {
		s := k.String()
		if s == "" || seen[s] {
			t.Errorf("EventKind %d has empty or duplicate name %q", int(k), s)
		}
		seen[s] = true
	}
	if got := EventKind(999).String(); got != "event_kind_999" {
		t.Errorf("unknown kind = %q", got)
	}
	if got := FrameTooLarge.String(); got != "frame_too_large" {
		t.Errorf("FrameTooLarge = %q", got)
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow([]string{"10.1.0.0/16", "10.2.3.4", "::1", "::ffff:192.168.0.0/120", "10.9.9.9/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.3.4/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.168.0.0/24"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("ParseAllow (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "10.0.0.0/33", "host.example", "10.0.0"} {
		if _, err := ParseAllow([]string{bad}); err == nil {
			t.Errorf("ParseAllow(%q) succeeded", bad)
		}
	}
}

// TestServerSlowloris: a frame trickled a byte at a time is cut at
// ReadTimeout counted from its VT; reads do not extend the deadline.
func TestServerSlowloris(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, ReadTimeout: 150 * time.Millisecond, OnEvent: rec.record})
	c := dial(t, addr, "")
	tick := time.NewTicker(10 * time.Millisecond) // pacing of the attack, not synchronisation
	defer tick.Stop()
	payload := []byte(vt + string(msg("SLOW"))) // ~80 bytes: 800 ms of trickle
	sent := 0
	for sent < len(payload) && rec.count(ReadTimeout) == 0 {
		<-tick.C
		if _, err := c.Write(payload[sent : sent+1]); err != nil {
			break // the server closed
		}
		sent++
	}
	rec.wait(t, ReadTimeout, 1)
	if sent == len(payload) {
		t.Errorf("the whole %d-byte trickle was accepted before the read timeout: reads extend the deadline", sent)
	}
}

// TestServerRestartsDoNotExtendReadTimeout: VT after VT (each a "restart")
// does not keep a connection open past ReadTimeout.
func TestServerRestartsDoNotExtendReadTimeout(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, ReadTimeout: 150 * time.Millisecond, OnEvent: rec.record})
	c := dial(t, addr, "")
	tick := time.NewTicker(20 * time.Millisecond) // pacing of the attack, not synchronisation
	defer tick.Stop()
	const restarts = 100 // 2 s of restarts
	sent := 0
	for sent < restarts && rec.count(ReadTimeout) == 0 {
		<-tick.C
		if _, err := c.Write([]byte(vt + "MSH|")); err != nil {
			break
		}
		sent++
	}
	rec.wait(t, ReadTimeout, 1)
	if sent == restarts {
		t.Errorf("%d restarts over 2 s were accepted: restarts extend the read timeout", sent)
	}
	if rec.count(FrameRestarted) == 0 {
		t.Error("no FrameRestarted events")
	}
}

// TestServerRefusalLogsAreLimited: a connection flood is counted in full
// (Events) but logged at a bounded rate.
func TestServerRefusalLogsAreLimited(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, MaxConns: 1, OnEvent: rec.record, Logger: zap.New(core)})
	dial(t, addr, "")
	rec.wait(t, ConnOpened, 1)
	const flood = 50
	for range flood {
		c := dial(t, addr, "")
		io.ReadAll(c) // refused: closed by the server
		c.Close()
	}
	rec.wait(t, ConnLimit, flood)
	n := logs.FilterMessage("connection refused: max_connections reached").Len()
	// 10 a second; the flood may straddle a few second boundaries.
	if n == 0 || n > 4*refusalLogsPerSecond {
		t.Errorf("%d log lines for %d refusals, want 1..%d", n, flood, 4*refusalLogsPerSecond)
	}
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	for i := range refusalLogsPerSecond {
		if ok, _ := l.allow(t0.Add(time.Duration(i) * time.Millisecond)); !ok {
			t.Fatalf("line %d refused within the budget", i)
		}
	}
	for i := range 5 {
		if ok, _ := l.allow(t0.Add(500 * time.Millisecond)); ok {
			t.Fatalf("line %d over the budget allowed", refusalLogsPerSecond+i)
		}
	}
	ok, suppressed := l.allow(t0.Add(time.Second))
	if !ok || suppressed != 5 {
		t.Errorf("next window: allow = %v, suppressed = %d; want true, 5", ok, suppressed)
	}
}
