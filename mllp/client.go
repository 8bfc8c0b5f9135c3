package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Defaults for the Client's zero-valued timeouts.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultAckTimeout  = 30 * time.Second
)

// ErrAckMismatch is matched (errors.Is) by every *AckMismatchError.
var ErrAckMismatch = errors.New("mllp: reply does not acknowledge the message sent")

// ErrClientClosed is returned by Send after Close.
var ErrClientClosed = errors.New("mllp: client closed")

// An AckMismatchError reports a reply whose MSA-2 is not the sent MSH-10 (or
// that has no MSA at all): probably the late ACK of an earlier message.
// It holds control IDs only, never message content.
type AckMismatchError struct {
	Sent  string // MSH-10 of the message sent
	Got   string // MSA-2 of the reply; "" if the reply has no MSA
	NoMSA bool   // the reply has no MSA segment at all (not an ACK)
}

func (e *AckMismatchError) Error() string {
	if e.NoMSA {
		return fmt.Sprintf("mllp: reply to MSH-10 %q has no MSA segment", e.Sent)
	}
	return fmt.Sprintf("mllp: reply MSA-2 %q does not match sent MSH-10 %q", e.Got, e.Sent)
}

// Is reports whether target is ErrAckMismatch.
func (e *AckMismatchError) Is(target error) bool { return target == ErrAckMismatch }

// A SendError reports a failed Client.Send: which step failed and whether the
// message may have reached the peer.
type SendError struct {
	Op   string // "dial", "write", "read" or "check"
	Addr string
	Sent bool  // the whole frame was written: the peer may have stored it
	Err  error // wraps os.ErrDeadlineExceeded for timeouts, ctx.Err() on cancellation, *AckMismatchError
}

func (e *SendError) Error() string { return "mllp: " + e.Op + " " + e.Addr + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// A Client sends messages to one MLLP peer over one connection, one message
// in flight at a time, and waits for each reply.
//
// The connection is dialled on first use and kept open between messages. On
// any error (timeout, read or write failure, mismatched reply) it is closed,
// so a late reply can never be taken for the next message's; the next Send
// dials again. A Client is safe for concurrent use; Sends are serialised.
//
// The fields must not be changed after the first Send.
type Client struct {
	Addr          string        // host:port
	TLSConfig     *tls.Config   // nil = plain TCP
	DialTimeout   time.Duration // 0 = DefaultDialTimeout
	AckTimeout    time.Duration // write plus wait for the reply; 0 = DefaultAckTimeout; a ctx deadline that is earlier wins
	MaxFrameBytes int           // largest reply accepted; 0 = DefaultMaxFrameBytes
	// Check validates a reply against the message sent. nil means the
	// default: when the sent message has an MSH-10, the reply's MSA-2 must
	// equal it (else *AckMismatchError). A non-nil error closes the
	// connection and is returned, wrapped in a *SendError.
	Check func(sent, reply []byte) error

	mu    sync.Mutex // held for a whole Send: one message in flight
	nc    net.Conn   // guarded by mu, and by connMu for writes
	r     *Reader
	w     *Writer
	probe *idleProbe

	connMu sync.Mutex // lets Close interrupt a Send in progress
	closed bool       // guarded by connMu
}

// Send writes msg as one frame and returns the reply frame's payload (a copy
// the caller owns). Empty frames and MLLP release 2 commit blocks from the
// peer are skipped while waiting. ctx bounds every step: dial, write and
// read. Errors are *SendError values.
func (c *Client) Send(ctx context.Context, msg []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		return nil, ErrClientClosed
	}
	if c.nc != nil && (c.r.br.Buffered() > 0 || c.probe.hungUp()) {
		// Closed by the peer while idle, or unsolicited bytes that could
		// be mistaken for this message's reply: start afresh.
		c.dropConn()
	}
	if c.nc == nil {
		if err := c.dial(ctx); err != nil {
			return nil, &SendError{Op: "dial", Addr: c.Addr, Err: ctxErr(ctx, err)}
		}
	}
	reply, op, sent, err := c.roundTrip(ctx, msg)
	if errors.Is(err, ErrInvalidPayload) {
		return nil, &SendError{Op: op, Addr: c.Addr, Err: err} // nothing was written: the connection is fine
	}
	if err != nil {
		c.dropConn()
		if c.isClosed() {
			err = ErrClientClosed
		}
		return nil, &SendError{Op: op, Addr: c.Addr, Sent: sent, Err: ctxErr(ctx, err)}
	}
	return reply, nil
}

func (c *Client) isClosed() bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.closed
}

func (c *Client) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: orDefault(c.DialTimeout, DefaultDialTimeout)}
	var nc net.Conn
	var err error
	if c.TLSConfig != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: c.TLSConfig}).DialContext(ctx, "tcp", c.Addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return err
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.closed {
		_ = nc.Close()
		return ErrClientClosed
	}
	c.nc = nc
	c.r = NewReader(nc, c.MaxFrameBytes)
	c.w = NewWriter(nc)
	c.probe = newIdleProbe(nc)
	return nil
}

func (c *Client) roundTrip(ctx context.Context, msg []byte) (reply []byte, op string, sent bool, err error) {
	deadline := time.Now().Add(orDefault(c.AckTimeout, DefaultAckTimeout))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetDeadline(deadline)
	// Network I/O does not watch contexts: turn cancellation into an
	// expired deadline so that a blocked write or read returns now.
	if ctx.Done() != nil { // context.Background has nothing to watch
		nc := c.nc
		expired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			_ = nc.SetDeadline(aLongTimeAgo)
			close(expired)
		})
		defer func() {
			if !stop() {
				// The func has started: let it finish, or it could
				// expire the next Send's deadline.
				<-expired
			}
		}()
	}

	if err := c.w.WriteFrame(msg); err != nil {
		return nil, "write", false, err
	}
	for {
		p, err := c.r.ReadFrame()
		if err != nil {
			return nil, "read", true, err
		}
		if len(p) == 0 || len(p) == 1 && (p[0] == 0x06 || p[0] == 0x15) {
			continue // keep-alive or an R2 commit block: not the reply
		}
		if err := c.check(msg, p); err != nil {
			return nil, "check", true, err
		}
		return bytes.Clone(p), "", true, nil
	}
}

func (c *Client) check(sent, reply []byte) error {
	if c.Check != nil {
		return c.Check(sent, reply)
	}
	want, ok := controlID(sent)
	if !ok || len(want) == 0 {
		return nil // nothing to match against (batch, raw test input)
	}
	got, ok := ackControlID(reply)
	if !bytes.Equal(got, want) {
		return &AckMismatchError{Sent: string(want), Got: string(got), NoMSA: !ok}
	}
	return nil
}

// ctxErr prefers the context's error when the context ended: the I/O error is
// then only a consequence of the expired deadline. Both stay matchable.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

func (c *Client) dropConn() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc, c.r, c.w, c.probe = nil, nil, nil, nil
	}
}

// Close closes the connection, interrupting a Send in progress (which then
// fails with ErrClientClosed); later Sends fail with ErrClientClosed too.
func (c *Client) Close() error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.closed = true
	if c.nc == nil {
		return nil
	}
	return c.nc.Close() // the Send in progress, if any, clears the fields
}
