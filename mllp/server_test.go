package mllp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestServerReferenceCases sends the reference's §11.1 inputs over real
// connections and checks the replies and events.
func TestServerReferenceCases(t *testing.T) {
	a, b := string(msg("A1")), string(msg("B1"))
	big := strings.Repeat("x", 3<<10)
	tests := []struct {
		name   string
		writes []string // each one Write; the client half-closes after the last
		want   []string // replies "CODE:MSA-2"
		events map[EventKind]int
	}{
		{"1 normal frame", []string{frame(m1)}, []string{"AA:CTL0001"}, nil},
		{"2 missing CR after FS then close", []string{vt + m1 + fs}, []string{"AA:CTL0001"}, nil},
		{"3 missing CR, next frame follows", []string{vt + a + fs + vt + b + fs + cr}, []string{"AA:A1", "AA:B1"}, nil},
		{"4 junk before start", []string{"\r\n\x00 " + frame(m1)}, []string{"AA:CTL0001"}, map[EventKind]int{JunkSkipped: 1}},
		{"5 junk between frames", []string{frame(a) + "\n" + frame(b)}, []string{"AA:A1", "AA:B1"}, map[EventKind]int{JunkSkipped: 1}},
		{"6 two frames in one read", []string{frame(a) + frame(b)}, []string{"AA:A1", "AA:B1"}, nil},
		{"7 one frame in three reads", []string{vt + "MSH|^~\\&|LA", m1[len("MSH|^~\\&|LA"):] + fs, cr}, []string{"AA:CTL0001"}, nil},
		{"8 second VT inside a frame", []string{vt + "MSH|^~\\&|LAB|RX" + frame(m1)}, []string{"AA:CTL0001"}, map[EventKind]int{FrameRestarted: 1}},
		{"9 oversized frame that ends", []string{frame(a[:len(a)-1] + big), frame(b)}, []string{"AE:A1", "AA:B1"}, map[EventKind]int{FrameTooLarge: 1}},
		{"11 empty frame", []string{frame(""), frame(a)}, []string{"AA:A1"}, map[EventKind]int{EmptyFrame: 1}},
		{"12 peer speaks MLLP R2", []string{frame("\x06"), frame("\x15"), frame(a)}, []string{"AA:A1"}, map[EventKind]int{R2Block: 2}},
		{"13 keep-alive connection, many messages", []string{frame(a), frame(b), frame(m1)}, []string{"AA:A1", "AA:B1", "AA:CTL0001"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			srv := &Server{Handler: ackHandler, MaxFrameBytes: 1 << 10, OnEvent: rec.record}
			addr := startServer(t, srv)
			c := dial(t, addr, "")
			for _, w := range tt.writes {
				if _, err := c.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			// Half-close: one-message-per-connection senders still get
			// their replies (case 13).
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, replies(t, c)); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
			rec.wait(t, ConnClosed, 1)
			for k, n := range tt.events {
				if got := rec.count(k); got != n {
					t.Errorf("%v events = %d, want %d", k, got, n)
				}
			}
		})
	}
}

func TestServerOversizeRequest(t *testing.T) {
	got := make(chan Request, 1)
	srv := &Server{
		MaxFrameBytes: 1 << 20,
		Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
			if req.Oversize == 0 {
				return ackHandler(ctx, req)
			}
			r := *req
			r.Frame = bytes.Clone(req.Frame)
			select {
			case got <- r:
			default:
			}
			return ackHandler(ctx, req)
		}),
	}
	addr := startServer(t, srv)
	c := dial(t, addr, "")
	body := append(msg("BIG1"), bytes.Repeat([]byte("OBX|1|ED|PDF||"), (3<<20)/14)...)
	go func() {
		// Written concurrently: the server reads while we write.
		_, _ = c.Write(append(append([]byte(vt), body...), fs+cr...))
	}()
	r := NewReader(c, 0)
	p, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if s := summary(p); s != "AE:BIG1" {
		t.Errorf("reply = %s, want AE:BIG1", s)
	}
	req := <-got
	if req.Oversize != int64(len(body)) {
		t.Errorf("Oversize = %d, want %d", req.Oversize, len(body))
	}
	if !bytes.Equal(req.Frame, body[:PrefixBytes]) {
		t.Errorf("Frame is not the first PrefixBytes of the frame (len %d)", len(req.Frame))
	}
	// The connection goes on.
	if _, err := c.Write([]byte(frame(string(msg("NEXT"))))); err != nil {
		t.Fatal(err)
	}
	if p, err := r.ReadFrame(); err != nil || summary(p) != "AA:NEXT" {
		t.Errorf("reply after oversize = %q, %v; want AA:NEXT", p, err)
	}
}

func TestServerReadTimeout(t *testing.T) {
	rec := newRecorder()
	srv := &Server{Handler: ackHandler, ReadTimeout: 100 * time.Millisecond, MaxFrameBytes: 64, OnEvent: rec.record}
	addr := startServer(t, srv)

	// Slowloris: a frame that starts and never ends (reference case 10,
	// past the limit) is cut at the read timeout, without a reply.
	c := dial(t, addr, "")
	if _, err := c.Write([]byte(vt + strings.Repeat("x", 1000))); err != nil {
		t.Fatal(err)
	}
	if got := replies(t, c); len(got) != 0 {
		t.Errorf("replies = %v, want none", got)
	}
	rec.wait(t, ReadTimeout, 1)
	if n := rec.count(IdleTimeout); n != 0 {
		t.Errorf("IdleTimeout events = %d, want 0", n)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	rec := newRecorder()
	srv := &Server{Handler: ackHandler, IdleTimeout: 100 * time.Millisecond, OnEvent: rec.record}
	addr := startServer(t, srv)
	c := dial(t, addr, "")
	if _, err := c.Write([]byte(frame(string(msg("I1"))))); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"AA:I1"}, replies(t, c)); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	rec.wait(t, IdleTimeout, 1)
	if n := rec.count(ReadTimeout); n != 0 {
		t.Errorf("ReadTimeout events = %d, want 0", n)
	}
}

func TestServerTruncatedFrame(t *testing.T) {
	rec := newRecorder()
	var calls atomic.Int32
	srv := &Server{OnEvent: rec.record, Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		calls.Add(1)
		return ackHandler(ctx, req)
	})}
	addr := startServer(t, srv)
	c := dial(t, addr, "")
	if _, err := c.Write([]byte(vt + "MSH|^~\\&|half")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if got := replies(t, c); len(got) != 0 {
		t.Errorf("replies = %v, want none", got)
	}
	rec.wait(t, FrameTruncated, 1)
	if calls.Load() != 0 {
		t.Errorf("handler called %d times for a truncated frame", calls.Load())
	}
}

func TestServerHandlerOutcomes(t *testing.T) {
	rec := newRecorder()
	srv := &Server{OnEvent: rec.record, Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		ctl, _ := controlID(req.Frame)
		switch string(ctl) {
		case "PANIC":
			panic("handler bug")
		case "CLOSE":
			return nil, ErrCloseConn
		case "SILENT":
			return nil, nil
		}
		return ackFor(req.Frame, "AA"), nil
	})}
	addr := startServer(t, srv)
	tests := []struct {
		name string
		ctls []string
		want []string
		kind EventKind
	}{
		{"nil reply keeps the connection", []string{"SILENT", "OK1"}, []string{"AA:OK1"}, ConnClosed},
		{"ErrCloseConn closes without reply", []string{"OK1", "CLOSE", "OK2"}, []string{"AA:OK1"}, HandlerClose},
		{"panic closes only its connection", []string{"OK1", "PANIC", "OK2"}, []string{"AA:OK1"}, HandlerPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr, "")
			for _, ctl := range tt.ctls {
				c.Write([]byte(frame(string(msg(ctl)))))
			}
			c.CloseWrite()
			if diff := cmp.Diff(tt.want, replies(t, c)); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
			rec.wait(t, tt.kind, 1)
		})
	}
	// The server still serves others.
	c := dial(t, addr, "")
	c.Write([]byte(frame(string(msg("AFTER")))))
	c.CloseWrite()
	if diff := cmp.Diff([]string{"AA:AFTER"}, replies(t, c)); diff != "" {
		t.Errorf("replies after faults (-want +got):\n%s", diff)
	}
}

// TestServerShutdownInFlight: Shutdown closes idle connections at once,
// lets the frame being handled get its reply, and returns after that.
func TestServerShutdownInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		if ctl, _ := controlID(req.Frame); string(ctl) == "SLOW" {
			close(entered)
			<-release
		}
		return ackFor(req.Frame, "AA"), nil
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dial(t, addr, "")
	idle.Write([]byte(frame(string(msg("I1")))))
	if p, err := NewReader(idle, 0).ReadFrame(); err != nil || summary(p) != "AA:I1" {
		t.Fatalf("idle conn first reply = %q, %v", p, err)
	}
	busy := dial(t, addr, "")
	busy.Write([]byte(frame(string(msg("SLOW")))))
	<-entered

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(context.Background()) }()

	// The idle connection is closed by Shutdown while SLOW is in flight.
	if got := replies(t, idle); len(got) != 0 {
		t.Errorf("idle connection got %v after Shutdown, want EOF", got)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v with a message in flight", err)
	default:
	}
	close(release)
	if diff := cmp.Diff([]string{"AA:SLOW"}, replies(t, busy)); diff != "" {
		t.Errorf("in-flight reply (-want +got):\n%s", diff)
	}
	if err := <-shutdownDone; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if n := srv.ActiveConns(); n != 0 {
		t.Errorf("ActiveConns after Shutdown = %d", n)
	}
}

func TestServerShutdownContextExpires(t *testing.T) {
	entered := make(chan struct{})
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		close(entered)
		<-ctx.Done() // cancelled by Close
		return nil, ctx.Err()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := dial(t, ln.Addr().String(), "")
	c.Write([]byte(frame(string(msg("STUCK")))))
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	srv.Close()
	if got := replies(t, c); len(got) != 0 {
		t.Errorf("replies = %v after Close, want none", got)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

func TestServerMaxConns(t *testing.T) {
	rec := newRecorder()
	srv := &Server{Handler: ackHandler, MaxConns: 2, OnEvent: rec.record}
	addr := startServer(t, srv)
	held := []net.Conn{dial(t, addr, ""), dial(t, addr, "")}
	rec.wait(t, ConnOpened, 2)
	extra := dial(t, addr, "")
	if _, err := io.ReadAll(extra); err != nil && !isReset(err) {
		t.Errorf("refused connection: %v", err)
	}
	rec.wait(t, ConnLimit, 1)
	// A slot frees up when a held connection closes.
	held[0].Close()
	rec.wait(t, ConnClosed, 1)
	c := dial(t, addr, "")
	c.Write([]byte(frame(string(msg("OK")))))
	c.CloseWrite()
	if diff := cmp.Diff([]string{"AA:OK"}, replies(t, c)); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
}

// readHookListener wraps accepted connections so that a test learns when the
// server enters its n-th Read on a connection.
type readHookListener struct {
	net.Listener
	reads chan int // receives the 1-based number of each Read as it starts
}

func (l *readHookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readHookConn{Conn: c, reads: l.reads}, nil
}

type readHookConn struct {
	net.Conn
	reads chan int
	n     int
}

func (c *readHookConn) Read(p []byte) (int, error) {
	c.n++
	select {
	case c.reads <- c.n:
	default:
	}
	return c.Conn.Read(p)
}

// TestServerShutdownMidFrame: a frame whose VT has arrived is in flight;
// Shutdown lets it complete and be answered.
func TestServerShutdownMidFrame(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := &readHookListener{Listener: ln, reads: make(chan int, 16)}
	srv := &Server{Handler: ackHandler}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(hl) }()

	c := dial(t, ln.Addr().String(), "")
	whole := frame(string(msg("MID")))
	if _, err := c.Write([]byte(whole[:20])); err != nil {
		t.Fatal(err)
	}
	// Read 1 returned the first half (VT seen); Read 2 waits for the rest.
	for n := range hl.reads {
		if n == 2 {
			break
		}
	}
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := c.Write([]byte(whole[20:])); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"AA:MID"}, replies(t, c)); diff != "" {
		t.Errorf("reply to the frame in flight (-want +got):\n%s", diff)
	}
	if err := <-shutdownDone; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// TestServerFixturesByteExact sends every fixture message (../fixtures,
// read as files: mllp imports nothing of this module) back to back on one
// connection, in writes cut at odd sizes, and checks that the Handler sees
// each payload byte for byte, in order.
func TestServerFixturesByteExact(t *testing.T) {
	files, err := filepath.Glob("../fixtures/*/*.hl7")
	if err != nil || len(files) == 0 {
		t.Skipf("no fixtures found (%v)", err)
	}
	var want [][]byte
	var stream []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsAny(b, "\x0b\x1c") {
			t.Fatalf("%s holds a framing byte", f)
		}
		want = append(want, b)
		stream = append(stream, frame(string(b))...)
	}
	var mu sync.Mutex
	var got [][]byte
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, bytes.Clone(req.Frame))
		return []byte("MSA|AA|" + strconv.Itoa(len(got)) + "\r"), nil
	})}
	addr := startServer(t, srv)
	c := dial(t, addr, "")
	go func() {
		for rest, n := stream, 1; len(rest) > 0; n = n*7%1499 + 1 {
			k := min(n, len(rest))
			if _, err := c.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
		c.CloseWrite()
	}()
	if n := len(replies(t, c)); n != len(want) {
		t.Fatalf("%d replies, want %d", n, len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: payload differs (got %d bytes, want %d)", files[i], len(got[i]), len(want[i]))
		}
	}
}

// TestServerRequestPeer: Request.Peer is the connection's remote address as
// a string, the same for every frame of the connection.
func TestServerRequestPeer(t *testing.T) {
	peers := make(chan [2]string, 2)
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		peers <- [2]string{req.Peer, req.RemoteAddr.String()}
		return ackHandler(ctx, req)
	})}
	c := dial(t, startServer(t, srv), "")
	r := NewReader(c, 0)
	for _, id := range []string{"P1", "P2"} {
		if _, err := c.Write([]byte(frame(string(msg(id))))); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		got := <-peers
		if got[0] != c.LocalAddr().String() || got[0] != got[1] {
			t.Errorf("frame %s: Peer = %q, RemoteAddr = %q; want both %q", id, got[0], got[1], c.LocalAddr())
		}
	}
}

// TestServerRequestAbort: a handler still busy when its answer is due closes
// the connection from another goroutine; the peer sees the close at once,
// without a reply, while the handler has not returned yet.
func TestServerRequestAbort(t *testing.T) {
	release := make(chan struct{})
	returned := make(chan struct{})
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		defer close(returned)
		time.AfterFunc(50*time.Millisecond, req.Abort)
		<-release // busy (a commit that stalls)
		return nil, ErrCloseConn
	})}
	c := dial(t, startServer(t, srv), "")
	if _, err := c.Write([]byte(frame(string(msg("AB1"))))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := NewReader(c, 0).ReadFrame()
	if err == nil {
		t.Fatalf("got reply %q, want the connection closed without one", p)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want EOF (closed by the server)", err)
	}
	select {
	case <-returned:
		t.Fatal("the handler returned before the peer saw the close: Abort did not act on its own")
	default:
	}
	close(release)
	<-returned
	(&Request{}).Abort() // a Request not made by the Server: nothing to close
}
