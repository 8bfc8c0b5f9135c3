//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mllp

import "net"

// peerHungUp cannot look at the socket without blocking on this platform; a
// connection the peer closed is found by the Send that uses it.
func peerHungUp(net.Conn) bool { return false }
