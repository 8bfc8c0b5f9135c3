//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mllp

import (
	"crypto/tls"
	"net"
	"syscall"
)

// An idleProbe tells, without blocking, whether the peer of an idle
// connection has closed it or sent something unsolicited: a receiver that
// closes idle connections (a common setting) must not turn the next Send
// into a failure and a retry. It is built once per connection so that a
// probe does not allocate.
type idleProbe struct {
	rc    syscall.RawConn
	stale bool
	fn    func(fd uintptr) bool
}

func newIdleProbe(nc net.Conn) *idleProbe {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn() // a close_notify shows as unsolicited bytes: stale too
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &idleProbe{rc: rc}
	p.fn = func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// n == 0 without error is EOF; n > 0 is data nobody asked for;
		// EAGAIN means the connection is idle and open.
		p.stale = n > 0 || (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK)
		return true // done; never wait for readiness
	}
	return p
}

// hungUp reports whether the connection should not be reused.
func (p *idleProbe) hungUp() bool {
	if p == nil {
		return false
	}
	p.stale = false
	if err := p.rc.Read(p.fn); err != nil {
		return true // closed
	}
	return p.stale
}
