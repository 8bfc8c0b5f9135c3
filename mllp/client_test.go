package mllp

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientRoundTrip(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, OnEvent: rec.record})
	c := &Client{Addr: addr}
	t.Cleanup(func() { c.Close() })
	for _, ctl := range []string{"C1", "C2", "C3"} {
		reply, err := c.Send(context.Background(), msg(ctl))
		if err != nil {
			t.Fatalf("Send(%s): %v", ctl, err)
		}
		if got := summary(reply); got != "AA:"+ctl {
			t.Errorf("reply = %s, want AA:%s", got, ctl)
		}
	}
	if n := rec.count(ConnOpened); n != 1 {
		t.Errorf("connections opened = %d, want 1 (keep-alive)", n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.Send(context.Background(), msg("C4")); !errors.Is(err, ErrClientClosed) {
		t.Errorf("Send after Close = %v, want ErrClientClosed", err)
	}
}

// TestClientLateAck: the first reply comes after the client gave up; the
// client must not take it for the second message's reply.
func TestClientLateAck(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		if calls.Add(1) == 1 {
			<-release // answer the first message late
		}
		return ackFor(req.Frame, "AA"), nil
	})}
	rec := newRecorder()
	srv.OnEvent = rec.record
	addr := startServer(t, srv)
	c := &Client{Addr: addr, AckTimeout: 100 * time.Millisecond}
	t.Cleanup(func() { c.Close() })

	_, err := c.Send(context.Background(), msg("LATE1"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first Send = %v, want a deadline error", err)
	}
	var se *SendError
	if !errors.As(err, &se) || se.Op != "read" || !se.Sent {
		t.Errorf("first Send error = %#v, want *SendError{Op: read, Sent: true}", err)
	}
	close(release) // the late ACK goes to the old, closed connection
	reply, err := c.Send(context.Background(), msg("NEXT2"))
	if err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if got := summary(reply); got != "AA:NEXT2" {
		t.Errorf("second reply = %s, want AA:NEXT2 (not the late ACK)", got)
	}
	if n := rec.count(ConnOpened); n != 2 {
		t.Errorf("connections = %d, want 2 (the first one closed after the timeout)", n)
	}
}

// TestClientMismatchedAck: a peer that answers with the wrong MSA-2 gets a
// typed error, and the connection is not reused.
func TestClientMismatchedAck(t *testing.T) {
	rec := newRecorder()
	var calls atomic.Int32
	addr := startServer(t, &Server{OnEvent: rec.record, Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		if calls.Add(1) == 1 {
			return ackFor(msg("OTHER"), "AA"), nil
		}
		return ackFor(req.Frame, "AA"), nil
	})})
	c := &Client{Addr: addr}
	t.Cleanup(func() { c.Close() })
	_, err := c.Send(context.Background(), msg("M1"))
	var me *AckMismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrAckMismatch) {
		t.Fatalf("Send = %v, want *AckMismatchError", err)
	}
	if me.Sent != "M1" || me.Got != "OTHER" {
		t.Errorf("mismatch = %+v, want Sent M1 Got OTHER", me)
	}
	if _, err := c.Send(context.Background(), msg("M2")); err != nil {
		t.Fatalf("Send after mismatch: %v", err)
	}
	if n := rec.count(ConnOpened); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestClientCustomCheck(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler})
	errNo := errors.New("not accepted")
	c := &Client{Addr: addr, Check: func(sent, reply []byte) error {
		if summary(reply) != "AA:"+string(mustControlID(t, sent)) {
			return errNo
		}
		return nil
	}}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Send(context.Background(), msg("X1")); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func mustControlID(t *testing.T, m []byte) []byte {
	t.Helper()
	ctl, ok := controlID(m)
	if !ok {
		t.Fatalf("no MSH in %q", m)
	}
	return ctl
}

// TestClientContextCancel: cancelling ctx unblocks a Send waiting for its
// reply at once, with ctx's error.
func TestClientContextCancel(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	addr := startServer(t, &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		close(entered)
		<-release // answers only after the client gave up
		return ackFor(req.Frame, "AA"), nil
	})})
	t.Cleanup(func() { close(release) }) // runs before startServer's Shutdown
	c := &Client{Addr: addr}             // default AckTimeout: 30s; only ctx can end this quickly
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	start := time.Now()
	_, err := c.Send(ctx, msg("C1"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v after cancel", d)
	}
}

func TestClientDialErrors(t *testing.T) {
	// A port nobody listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{Addr: addr}
	_, err = c.Send(context.Background(), msg("D1"))
	var se *SendError
	if !errors.As(err, &se) || se.Op != "dial" || se.Sent {
		t.Errorf("Send = %v, want *SendError{Op: dial}", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Send(ctx, msg("D2")); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestClientInvalidPayloadKeepsConnection(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, OnEvent: rec.record})
	c := &Client{Addr: addr}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Send(context.Background(), msg("V1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(context.Background(), []byte("MSH|^~\\&|\x0b|")); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("Send with VT = %v, want ErrInvalidPayload", err)
	}
	if _, err := c.Send(context.Background(), msg("V2")); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(ConnOpened); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

// TestClientCloseInterruptsSend: Close does not wait for a Send that waits
// for its reply.
func TestClientCloseInterruptsSend(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	addr := startServer(t, &Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		close(entered)
		<-release
		return nil, nil
	})})
	t.Cleanup(func() { close(release) })
	c := &Client{Addr: addr}
	go func() {
		<-entered
		c.Close()
	}()
	if _, err := c.Send(context.Background(), msg("X")); !errors.Is(err, ErrClientClosed) {
		t.Errorf("Send = %v, want ErrClientClosed", err)
	}
}

// TestClientReconnectsAfterPeerIdleClose: a receiver that closes idle
// connections does not make the next Send fail.
func TestClientReconnectsAfterPeerIdleClose(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, &Server{Handler: ackHandler, IdleTimeout: 50 * time.Millisecond, OnEvent: rec.record})
	c := &Client{Addr: addr}
	t.Cleanup(func() { c.Close() })
	for i, ctl := range []string{"R1", "R2", "R3"} {
		if i > 0 {
			rec.wait(t, ConnClosed, i) // the server closed the idle connection
		}
		reply, err := c.Send(context.Background(), msg(ctl))
		if err != nil {
			t.Fatalf("Send(%s) after the peer closed the idle connection: %v", ctl, err)
		}
		if got := summary(reply); got != "AA:"+ctl {
			t.Errorf("reply = %s, want AA:%s", got, ctl)
		}
	}
}

// TestClientDropsUnsolicitedBytes: bytes that arrive while no message is in
// flight are never taken for the next message's reply.
func TestClientDropsUnsolicitedBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan int, 2)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() { // a receiver that answers its first message twice
		defer close(done)
		for i := 1; ; i++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- i
			r := NewReader(nc, 0)
			for {
				p, err := r.ReadFrame()
				if err != nil {
					break
				}
				ack := ackFor(p, "AA")
				out := []byte(frame(string(ack)))
				if i == 1 {
					out = append(out, out...) // both in one write: deterministic
				}
				if _, err := nc.Write(out); err != nil {
					break
				}
			}
			nc.Close()
		}
	}()
	c := &Client{Addr: ln.Addr().String()}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Send(context.Background(), msg("U1")); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Send(context.Background(), msg("U2"))
	if err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if got := summary(reply); got != "AA:U2" {
		t.Errorf("reply = %s, want AA:U2", got)
	}
	if len(accepted) != 2 {
		t.Errorf("connections = %d, want 2 (the one with unsolicited bytes dropped)", len(accepted))
	}
}
