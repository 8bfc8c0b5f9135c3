//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mllp

import "net"

// idleProbe cannot look at the socket without blocking on this platform; a
// connection the peer closed is found by the Send that uses it.
type idleProbe struct{}

func newIdleProbe(net.Conn) *idleProbe { return nil }

func (*idleProbe) hungUp() bool { return false }
