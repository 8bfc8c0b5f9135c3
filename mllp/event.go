package mllp

import (
	"net"
	"strconv"
)

// An EventKind names something that happened on a Server's connection that
// an operator counts: refusals, faults and protocol oddities.
type EventKind int

// Event kinds. The set is closed; String gives each a snake_case name for
// metric labels.
const (
	ConnOpened         EventKind = iota // a connection was accepted and admitted
	ConnClosed                          // an admitted connection ended
	JunkSkipped                         // bytes outside frames were skipped (Event.Bytes)
	FrameRestarted                      // a VT inside a frame discarded a partial frame (Event.Fragment)
	FrameTooLarge                       // a frame exceeded MaxFrameBytes (Event.Bytes: its size)
	EmptyFrame                          // VT FS CR: a keep-alive, not passed to the Handler
	R2Block                             // an MLLP release 2 commit ACK/NAK (0x06/0x15) from the peer
	ReadTimeout                         // a started frame did not complete within ReadTimeout
	IdleTimeout                         // no frame started within IdleTimeout
	WriteFailed                         // a reply could not be written (timeout, reset)
	TLSHandshakeFailed                  // the TLS handshake failed (bad or missing client certificate, ...)
	PeerDenied                          // the peer's address is not in Allow
	ConnLimit                           // refused: MaxConns reached
	PerIPLimit                          // refused: MaxConnsPerIP reached for the peer's address
	HandlerPanic                        // the Handler panicked; its connection was closed
	FrameTruncated                      // the peer closed the connection inside a frame
	ReadFailed                          // a read failed for another reason (reset, ...)
	HandlerClose                        // the Handler returned an error: connection closed without reply
	numEventKinds
)

var eventNames = [numEventKinds]string{
	ConnOpened:         "conn_opened",
	ConnClosed:         "conn_closed",
	JunkSkipped:        "junk_skipped",
	FrameRestarted:     "frame_restarted",
	FrameTooLarge:      "frame_too_large",
	EmptyFrame:         "empty_frame",
	R2Block:            "r2_block",
	ReadTimeout:        "read_timeout",
	IdleTimeout:        "idle_timeout",
	WriteFailed:        "write_failed",
	TLSHandshakeFailed: "tls_handshake_failed",
	PeerDenied:         "peer_denied",
	ConnLimit:          "conn_limit",
	PerIPLimit:         "per_ip_limit",
	HandlerPanic:       "handler_panic",
	FrameTruncated:     "frame_truncated",
	ReadFailed:         "read_failed",
	HandlerClose:       "handler_close",
}

// String returns the kind's snake_case name ("frame_too_large").
func (k EventKind) String() string {
	if k >= 0 && k < numEventKinds {
		return eventNames[k]
	}
	return "event_kind_" + strconv.Itoa(int(k))
}

// EventKinds returns every EventKind, for pre-registering metric labels.
func EventKinds() []EventKind {
	ks := make([]EventKind, numEventKinds)
	for i := range ks {
		ks[i] = EventKind(i)
	}
	return ks
}

// An Event is passed to Server.OnEvent. It never holds message content
// except Fragment, which only lives for the duration of the call.
type Event struct {
	Kind       EventKind
	Listener   string   // Server.Name
	RemoteAddr net.Addr // the peer
	Bytes      int64    // JunkSkipped: bytes skipped; FrameTooLarge, FrameRestarted: frame size
	Fragment   []byte   // FrameRestarted: the discarded partial frame (<= PrefixBytes), valid during the call only
	Err        error    // the underlying error, if any
}
