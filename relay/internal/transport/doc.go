// Package transport sends one outbound HL7 v2 message to a downstream
// endpoint and reports what the endpoint answered: an MLLP peer's ACK, an
// HTTP status, or a durable file.
//
// A transport reports facts, never policy: [Result] holds the downstream's
// answer (MSA-1, MSA-2, the error code, the HTTP status and Retry-After) and
// the error holds what went wrong on the way (timeouts wrap
// os.ErrDeadlineExceeded or context.DeadlineExceeded, a reply to another
// message wraps mllp.ErrAckMismatch, an unreadable reply is a *ReplyError).
// The delivery worker classifies them (design.md's table).
//
// Invariants:
//   - One Send at a time per transport; the delivery worker of a destination
//     is its only user.
//   - MLLP: a connection with a reply outstanding is never reused (mllp.Client
//     closes it on any error), and every reply's MSA-2 is checked against the
//     sent MSH-10.
//   - File: a message file appears under its final name only complete and
//     fsynced (temp name, fsync, rename, directory fsync); a replay after a
//     crash rewrites the same name.
//   - Errors hold addresses, control IDs and codes, never message content.
package transport
