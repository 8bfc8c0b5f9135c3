// Package relay is mllpd at run time: the ingest handler behind every MLLP
// listener (parse, validate, route, append durably, then ACK), the delivery
// workers that forward mapped copies per destination, the admin API, reload
// and shutdown.
//
// Invariants:
//   - A positive ACK (AA/CA) is built only after store.Append returned nil,
//     which means the message, its dedupe entry and its queue entries are
//     fsynced in one transaction.
//   - A failed commit is answered AR/207 (enhanced CE); the free-space guard
//     AR/206; a commit still pending after commit_timeout gets no reply and
//     the connection is closed, so the sender's resend meets the dedupe.
//   - Which NAK code answers which failure is decided in one table
//     (policy.go), following hl7-mllp-reference.md §5.7.
//   - Logs and metric labels carry metadata only (control IDs, types, peers,
//     sizes, sequence numbers), never message content.
package relay
