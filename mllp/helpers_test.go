package mllp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// waitTimeout bounds every wait in these tests; reaching it is a failure.
const waitTimeout = 10 * time.Second

// startServer serves srv on a fresh 127.0.0.1 port and shuts it down (and
// checks Serve's result) when the test ends.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, srv, ln)
}

func serveOn(t testing.TB, srv *Server, ln net.Listener) string {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger = zaptest.NewLogger(t)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
			srv.Close()
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// ackFor builds a minimal ACK whose MSA-2 is msg's MSH-10.
func ackFor(msg []byte, code string) []byte {
	ctl, _ := controlID(msg)
	return []byte("MSH|^~\\&|MLLPD|HUB|LAB|RXH|20240131123046||ACK^R01^ACK|A" + string(ctl) + "|P|2.5.1\rMSA|" + code + "|" + string(ctl) + "\r")
}

// ackHandler answers AA to every frame and AE to an oversized one.
var ackHandler = HandlerFunc(func(_ context.Context, req *Request) ([]byte, error) {
	if req.Oversize > 0 {
		return ackFor(req.Frame, "AE"), nil
	}
	return ackFor(req.Frame, "AA"), nil
})

// msg returns a small HL7 message with the given control ID.
func msg(ctl string) []byte {
	return []byte("MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045||ADT^A01^ADT_A01|" + ctl + "|P|2.5.1\rPID|1||123\r")
}

// recorder collects a Server's events; tests wait on it instead of sleeping.
type recorder struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) record(e Event) {
	e.Fragment = append([]byte(nil), e.Fragment...) // valid during the call only
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) count(k EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// wait blocks until at least n events of kind k were recorded and returns
// the first of them.
func (r *recorder) wait(t testing.TB, k EventKind, n int) Event {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		var first *Event
		seen := 0
		for i := range r.events {
			if r.events[i].Kind == k {
				if first == nil {
					first = &r.events[i]
				}
				seen++
			}
		}
		ch := r.changed
		if seen >= n {
			e := *first
			r.mu.Unlock()
			return e
		}
		r.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %d %v events (have %d)", n, k, seen)
		}
	}
}

// dial opens a raw TCP connection to addr from 127.0.0.1 (or local, if set).
func dial(t testing.TB, addr string, local string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	return c.(*net.TCPConn)
}

// replies reads frames from c until EOF and returns their MSA-2 values
// prefixed with MSA-1 ("AA:CTL1").
func replies(t testing.TB, c net.Conn) []string {
	t.Helper()
	r := NewReader(c, 0)
	var got []string
	for {
		p, err := r.ReadFrame()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && err.Error() != "EOF" && !isReset(err) {
				t.Errorf("reading replies: %v", err)
			}
			return got
		}
		got = append(got, summary(p))
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// summary turns an ACK into "CODE:MSA-2".
func summary(ack []byte) string {
	ctl, ok := ackControlID(ack)
	if !ok {
		return "no MSA"
	}
	line := ack[max(bytes.Index(ack, []byte("MSA|")), 0):]
	return string(field(firstLine(line), '|', 1)) + ":" + string(ctl)
}
