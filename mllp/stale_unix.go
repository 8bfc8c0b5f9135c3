//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mllp

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerHungUp reports whether the peer of an idle connection has closed it
// or sent something unsolicited, without blocking: a receiver that closes
// idle connections (a common setting) must not turn the next Send into a
// failure and a retry.
func peerHungUp(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn() // a close_notify shows as unsolicited bytes: stale too
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	stale := false
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// n == 0 without error is EOF; n > 0 is data nobody asked for;
		// EAGAIN means the connection is idle and open.
		stale = n > 0 || (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK)
		return true // done; never wait for readiness
	})
	return stale
}
