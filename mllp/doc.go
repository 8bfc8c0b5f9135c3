// Package mllp implements the Minimal Lower Layer Protocol (MLLP, release 1)
// that carries HL7 v2 messages over TCP: a frame is VT (0x0B), the payload,
// then FS (0x1C) CR (0x0D). See docs/hl7-mllp-reference.md §1 and §11.1.
//
// The package provides:
//   - Reader and Writer: framing over any byte stream;
//   - Server: accepts connections (TCP or TLS) and passes each frame to a
//     Handler, with limits on size, time and connection counts;
//   - Client: sends one message at a time and waits for its reply;
//   - CertReloader: TLS certificates that can be swapped without a restart.
//
// Invariants:
//   - A payload returned by Reader.ReadFrame never holds VT or FS and is
//     never longer than the Reader's limit. An oversized frame costs at most
//     PrefixBytes of memory: it is skipped to its FS, and its prefix is kept.
//   - Input is tolerated as real senders write it (junk between frames, FS
//     without CR, frames split or merged across reads, a restarted frame);
//     output is exact: each frame is VT payload FS CR, written in one Write.
//   - A Server calls its Handler serially per connection and writes replies
//     in frame order; one connection never blocks another.
//   - Every Server read and write has a deadline; every refusal or fault is
//     one Event and one log line naming the peer, never message content
//     (lines for refused connections are limited to 10 a second).
//   - A Client reuses a kept-alive connection only if the peer has neither
//     closed it nor sent anything while it was idle.
//   - A Client never reuses a connection that has a reply outstanding: after
//     any error the connection is closed, so a late ACK cannot be taken for
//     the next message's.
//
// Caveats: slices returned by Reader.ReadFrame (and the Prefix/Fragment of its
// errors) alias an internal buffer and are valid only until the next call;
// Request.Frame is valid only until the Handler returns.
package mllp
