package mllp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for the Server's zero-valued timeouts.
const (
	DefaultReadTimeout  = 30 * time.Second
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultWriteTimeout = 10 * time.Second
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("mllp: server closed")

// ErrCloseConn, returned by a Handler, makes the Server close the connection
// without a reply. Use it when the outcome of a commit is unknown: the sender
// must not get an ACK, and its resend will find out.
var ErrCloseConn = errors.New("mllp: close connection without reply")

// A Request is one frame received by a Server, with its connection's
// metadata.
type Request struct {
	// Frame is the payload without VT, FS and CR. For an oversized frame it
	// is the first PrefixBytes of it. Valid only until ServeMLLP returns.
	Frame []byte
	// Oversize > 0 means the frame exceeded the Server's MaxFrameBytes; it
	// is the frame's total size and Frame holds only its prefix.
	Oversize int64

	Listener   string               // Server.Name
	RemoteAddr net.Addr             // the peer
	Peer       string               // RemoteAddr.String(), made once per connection
	TLS        *tls.ConnectionState // nil without TLS
	PeerName   string               // subject CN of the verified client certificate; "" otherwise
	Received   time.Time            // when the frame's end arrived

	nc net.Conn // for Abort
}

// Abort closes the request's connection at once; the peer sees it close
// without a reply. Unlike the other fields it may be used from any goroutine
// while ServeMLLP runs: for a handler that is still busy when its answer is
// due (a commit past its deadline). ServeMLLP should then return an error
// (ErrCloseConn). Abort on a Request the Server did not make does nothing.
func (r *Request) Abort() {
	if r.nc != nil {
		_ = r.nc.Close()
	}
}

// A Handler answers one frame.
//
// The Server calls ServeMLLP serially for each connection, in frame order,
// and writes the reply before it reads the next frame, so replies keep the
// order of the frames. req and req.Frame are valid only until ServeMLLP
// returns (bytes.Clone what you keep).
//
//   - reply != nil, err == nil: reply is framed and written;
//   - reply == nil, err == nil: nothing is written, the connection stays open;
//   - err != nil: the connection is closed without a reply (ErrCloseConn is
//     the conventional error for "commit outcome unknown").
//
// A panic in ServeMLLP is recovered and logged, and closes only its
// connection. ctx is cancelled by Server.Close (not by Shutdown). The
// connection is not read while ServeMLLP runs, so a peer that hangs up is
// noticed only afterwards: bound the Handler's own waits.
type Handler interface {
	ServeMLLP(ctx context.Context, req *Request) (reply []byte, err error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(context.Context, *Request) ([]byte, error)

// ServeMLLP calls f(ctx, req).
func (f HandlerFunc) ServeMLLP(ctx context.Context, req *Request) ([]byte, error) { return f(ctx, req) }

// A Server accepts MLLP connections and passes each frame to its Handler.
//
// Every connection has a bounded cost: frames are limited in size and in the
// time they may take to arrive, idle connections are closed, replies have a
// write deadline, and connections are limited in total and per peer address.
// Accepted TCP connections keep the listener's TCP keep-alive settings (on by
// default in Go), so half-open connections of vanished peers are found.
// Each refusal or fault is reported to OnEvent and logged once with the peer
// address, never with message content. Log lines for refused connections and
// failed TLS handshakes are limited to 10 a second (the count held back is
// logged with the next one); their Events are not limited.
//
// The fields must not be changed after Serve is first called. A Server must
// not be copied after first use.
type Server struct {
	Name          string         // listener name, copied into Request and Event
	Handler       Handler        // required
	MaxFrameBytes int            // 0 = DefaultMaxFrameBytes
	MaxConns      int            // 0 = unlimited; further connections are closed at accept
	MaxConnsPerIP int            // 0 = unlimited; per peer IP address
	ReadTimeout   time.Duration  // a frame must complete within this once its VT arrived (slowloris), restarts included; 0 = DefaultReadTimeout; also bounds the TLS handshake
	IdleTimeout   time.Duration  // longest wait for the next frame's VT; 0 = DefaultIdleTimeout
	WriteTimeout  time.Duration  // a reply must be written within this; 0 = DefaultWriteTimeout
	Allow         []netip.Prefix // peers allowed to connect; empty = everyone
	TLSConfig     *tls.Config    // nil = plain TCP; GetCertificate or GetConfigForClient swap certificates live (see CertReloader)
	OnEvent       func(Event)    // optional; called synchronously from connection goroutines, must be quick and safe for concurrent use
	Logger        *zap.Logger    // nil = zap.NewNop()

	inShutdown atomic.Bool

	mu         sync.Mutex
	initDone   bool
	baseCtx    context.Context
	cancelBase context.CancelFunc
	done       chan struct{} // closed by Shutdown/Close: stops accept back-off
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	slots      int                // admitted connections not yet released (MaxConns)
	perIP      map[netip.Addr]int // the same per peer address (MaxConnsPerIP)
	connsGone  chan struct{}      // closed when conns empties during shutdown

	refusals logLimiter // log lines for refused connections and failed handshakes
}

func (s *Server) initLocked() {
	if s.initDone {
		return
	}
	s.initDone = true
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	s.listeners = make(map[*net.Listener]struct{})
	s.conns = make(map[*conn]struct{})
	s.perIP = make(map[netip.Addr]int)
}

func (s *Server) logger() *zap.Logger {
	if s.Logger == nil {
		return zap.NewNop()
	}
	return s.Logger
}

func (s *Server) maxFrame() int {
	if s.MaxFrameBytes > 0 {
		return s.MaxFrameBytes
	}
	return DefaultMaxFrameBytes
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *Server) emit(e Event) {
	if s.OnEvent != nil {
		e.Listener = s.Name
		s.OnEvent(e)
	}
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	if s.inShutdown.Load() {
		return ErrServerClosed
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mllp: listen %s: %w", addr, err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l and serves each in its own goroutine. With
// TLSConfig set, each connection is wrapped with tls.Server. Serve closes l
// when it returns, and always returns a non-nil error: ErrServerClosed after
// Shutdown or Close. Temporary accept errors are retried with back-off.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		_ = l.Close()
		return errors.New("mllp: Server.Handler is nil")
	}
	s.mu.Lock()
	s.initLocked()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	lp := &l
	s.listeners[lp] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, lp)
		s.mu.Unlock()
		_ = l.Close()
	}()

	log := s.logger().With(zap.String("listener", s.Name))
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("mllp: accept: %w", err)
			}
			// Out of file descriptors and the like: back off rather
			// than spin or stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", zap.Duration("backoff", backoff), zap.Error(err))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		if c := s.admit(nc, log); c != nil {
			go c.serve()
		}
	}
}

// admit applies the allowlist and connection limits to a new connection and
// registers it. It returns nil if the connection was refused (and closed).
func (s *Server) admit(nc net.Conn, log *zap.Logger) *conn {
	var ip netip.Addr
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	refuse := func(kind EventKind, msg string) *conn {
		// Counted before the close, so that a peer seeing the close finds
		// the refusal in the metrics.
		s.emit(Event{Kind: kind, RemoteAddr: nc.RemoteAddr()})
		_ = nc.Close()
		s.refusals.warn(log, msg, zap.Stringer("peer", nc.RemoteAddr()))
		return nil
	}
	if len(s.Allow) > 0 && !allowed(s.Allow, ip) {
		return refuse(PeerDenied, "connection refused: peer not in allow list")
	}
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		_ = nc.Close()
		return nil
	}
	if s.MaxConns > 0 && s.slots >= s.MaxConns {
		s.mu.Unlock()
		return refuse(ConnLimit, "connection refused: max_connections reached")
	}
	if s.MaxConnsPerIP > 0 && ip.IsValid() && s.perIP[ip] >= s.MaxConnsPerIP {
		s.mu.Unlock()
		return refuse(PerIPLimit, "connection refused: max_connections_per_ip reached")
	}
	ctx, cancel := context.WithCancel(s.baseCtx)
	c := &conn{srv: s, nc: nc, ip: ip, ctx: ctx, cancel: cancel}
	s.conns[c] = struct{}{}
	s.slots++
	if ip.IsValid() {
		s.perIP[ip]++
	}
	s.mu.Unlock()
	c.log = log.With(zap.Stringer("peer", nc.RemoteAddr()))
	s.emit(Event{Kind: ConnOpened, RemoteAddr: nc.RemoteAddr()})
	c.log.Debug("connection opened")
	return c
}

func allowed(allow []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// release frees c's places in the connection limits.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	s.slots--
	if c.ip.IsValid() {
		if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
			delete(s.perIP, c.ip)
		}
	}
	s.mu.Unlock()
}

// forget removes c from the connections Shutdown waits for.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.connsGone != nil {
		close(s.connsGone)
		s.connsGone = nil
	}
	s.mu.Unlock()
}

// ActiveConns returns the number of admitted connections still open.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// beginShutdownLocked marks the server closed and closes its listeners.
func (s *Server) beginShutdownLocked() {
	s.initLocked()
	if !s.inShutdown.Swap(true) {
		close(s.done)
	}
	for lp := range s.listeners {
		_ = (*lp).Close()
	}
}

// Shutdown stops the server gracefully: it closes the listeners and the
// connections waiting between frames, lets every frame in progress be read,
// handled and answered, then closes those connections too. It returns nil
// once all connections are closed, or ctx.Err() if ctx ends first (call Close
// then to stop the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.beginShutdownLocked()
	for c := range s.conns {
		c.closeIfIdle()
	}
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.connsGone == nil {
		s.connsGone = make(chan struct{})
	}
	gone := s.connsGone
	s.mu.Unlock()
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the server at once: it closes the listeners and every
// connection and cancels the Handlers' contexts. Replies not yet written are
// lost (the senders will resend). It does not wait for Handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.beginShutdownLocked()
	s.cancelBase()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	return nil
}

// A conn is one admitted connection.
type conn struct {
	srv    *Server
	nc     net.Conn // the accepted connection (TLS wraps it in rw)
	ip     netip.Addr
	log    *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	idle    bool // waiting for a frame to start (or in the TLS handshake)
	closing bool // Shutdown asked this connection to end at the next frame boundary
}

// aLongTimeAgo is a deadline in the past: it makes a blocked read return now.
var aLongTimeAgo = time.Unix(1, 0)

// enterIdle marks the connection as between frames and sets the idle
// deadline. It returns false if the server is shutting down: the connection
// must end.
func (c *conn) enterIdle(deadline time.Time, setRW bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.idle = true
	if setRW {
		_ = c.nc.SetDeadline(deadline)
	} else {
		_ = c.nc.SetReadDeadline(deadline)
	}
	return true
}

// frameStarted is the Reader's onStart hook: a VT arrived, so the frame now
// has ReadTimeout to complete. A VT that restarts a frame does not extend
// the deadline: a peer sending VT after VT must not hold a connection
// forever without completing a frame.
func (c *conn) frameStarted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.idle || c.closing {
		return // a restart; or Shutdown already expired the read deadline: keep it so
	}
	c.idle = false
	_ = c.nc.SetReadDeadline(time.Now().Add(orDefault(c.srv.ReadTimeout, DefaultReadTimeout)))
}

// closeIfIdle is called by Shutdown: a connection waiting for a frame ends
// now, a busy one at the end of its current frame.
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.idle {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *conn) event(kind EventKind, n int64, err error) {
	c.srv.emit(Event{Kind: kind, RemoteAddr: c.nc.RemoteAddr(), Bytes: n, Err: err})
}

func (c *conn) serve() {
	s := c.srv
	defer func() {
		c.cancel()
		_ = c.nc.Close()
		s.release(c) // frees the slot before ConnClosed is reported
		c.event(ConnClosed, 0, nil)
		c.log.Debug("connection closed")
		s.forget(c) // last: Shutdown returns once every connection is forgotten
	}()

	req := &Request{Listener: s.Name, RemoteAddr: c.nc.RemoteAddr(), nc: c.nc}
	if req.RemoteAddr != nil {
		req.Peer = req.RemoteAddr.String()
	}
	var rw net.Conn = c.nc
	if s.TLSConfig != nil {
		tc := tls.Server(c.nc, s.TLSConfig)
		if !c.enterIdle(time.Now().Add(orDefault(s.ReadTimeout, DefaultReadTimeout)), true) {
			return
		}
		if err := tc.HandshakeContext(c.ctx); err != nil {
			if c.isClosing() {
				return
			}
			c.event(TLSHandshakeFailed, 0, err)
			s.refusals.warn(c.log, "TLS handshake failed", zap.Error(err))
			return
		}
		st := tc.ConnectionState()
		req.TLS = &st
		if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
			req.PeerName = st.PeerCertificates[0].Subject.CommonName
		}
		_ = c.nc.SetWriteDeadline(time.Time{})
		rw = tc
	}

	r := NewReader(bufio.NewReaderSize(rw, readBufferSize), s.maxFrame())
	r.onStart = c.frameStarted
	w := NewWriter(rw)
	idleTimeout := orDefault(s.IdleTimeout, DefaultIdleTimeout)
	writeTimeout := orDefault(s.WriteTimeout, DefaultWriteTimeout)
	var skipped int64

	for {
		if !r.inFrame && !c.enterIdle(time.Now().Add(idleTimeout), false) {
			return
		}
		payload, err := r.ReadFrame()
		if n := r.Skipped(); n > skipped {
			c.event(JunkSkipped, n-skipped, nil)
			c.log.Debug("bytes outside frames skipped", zap.Int64("bytes", n-skipped))
			skipped = n
		}
		req.Oversize = 0
		if err != nil {
			var tooLarge *FrameTooLargeError
			var restarted *FrameRestartedError
			switch {
			case errors.As(err, &tooLarge):
				s.emit(Event{Kind: FrameTooLarge, RemoteAddr: c.nc.RemoteAddr(), Bytes: tooLarge.Size, Err: err})
				c.log.Warn("frame too large", zap.Int64("bytes", tooLarge.Size), zap.Int("limit", tooLarge.Limit))
				payload = tooLarge.Prefix
				req.Oversize = tooLarge.Size
			case errors.As(err, &restarted):
				s.emit(Event{Kind: FrameRestarted, RemoteAddr: c.nc.RemoteAddr(), Bytes: restarted.Size, Fragment: restarted.Fragment, Err: err})
				c.log.Warn("start block inside a frame: partial frame discarded", zap.Int64("bytes", restarted.Size))
				continue
			default:
				c.readFailed(err, r.inFrame)
				return
			}
		} else if len(payload) == 0 {
			c.event(EmptyFrame, 0, nil)
			c.log.Debug("empty frame (keep-alive)")
			continue
		} else if len(payload) == 1 && (payload[0] == 0x06 || payload[0] == 0x15) {
			c.event(R2Block, 1, nil)
			c.log.Info("MLLP release 2 commit block from peer ignored", zap.Bool("nak", payload[0] == 0x15))
			continue
		}
		req.Frame = payload
		req.Received = time.Now()

		reply, err := c.handle(req)
		req.Frame = nil
		if err != nil {
			return // logged and counted in handle
		}
		if reply == nil {
			continue
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := w.WriteFrame(reply); err != nil {
			c.event(WriteFailed, int64(len(reply)), err)
			c.log.Warn("reply not written", zap.Int("bytes", len(reply)), zap.Error(err))
			return
		}
	}
}

// readFailed counts and logs a read error that ends the connection.
func (c *conn) readFailed(err error, inFrame bool) {
	switch {
	case err == io.EOF:
		// The peer closed between frames: the normal end of a
		// one-message-per-connection sender.
	case c.isClosing() && !inFrame:
		// Shutdown expired the idle read.
	case errors.Is(err, os.ErrDeadlineExceeded) && inFrame:
		c.event(ReadTimeout, 0, err)
		c.log.Warn("frame not completed within read timeout; closing")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.event(IdleTimeout, 0, err)
		c.log.Info("idle timeout; closing")
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.event(FrameTruncated, 0, err)
		c.log.Warn("connection closed inside a frame; partial frame discarded")
	case errors.Is(err, net.ErrClosed) && c.ctx.Err() != nil:
		// Server.Close.
	default:
		c.event(ReadFailed, 0, err)
		c.log.Warn("read failed", zap.Error(err))
	}
}

// handle calls the Handler, recovering a panic. A non-nil error means the
// connection must close (already counted and logged).
func (c *conn) handle(req *Request) (reply []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("mllp: handler panic: %s", panicText(v))
			c.event(HandlerPanic, 0, err)
			c.log.Error("handler panicked; closing connection",
				zap.String("panic", panicText(v)), zap.ByteString("stack", debug.Stack()))
		}
	}()
	reply, err = c.srv.Handler.ServeMLLP(c.ctx, req)
	if err != nil {
		c.event(HandlerClose, 0, err)
		c.log.Debug("handler closed the connection without reply", zap.Error(err))
	}
	return reply, err
}

// ParseAllow parses an allow list as written in configuration: each entry is
// a CIDR prefix ("10.1.0.0/16") or a single address ("10.1.2.3", taken as
// /32 or /128). IPv4-mapped IPv6 entries are unmapped, as peer addresses are.
func ParseAllow(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	for i, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("mllp: allow[%d]: %q is neither a CIDR prefix nor an IP address", i, e)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// panicText describes a recovered panic without echoing values that could
// carry message content: runtime errors (index out of range, nil
// dereference) are safe to print; for anything else only the type is given.
func panicText(v any) string {
	if re, ok := v.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("value of type %T", v)
}
