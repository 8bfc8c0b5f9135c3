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
//     sizes, sequence numbers), never message content (unless log.bodies).
//   - Delivery is at least once and in accept order per destination: a
//     worker reads only its own queue, maps each entry with its route's
//     current mapping (a removed route dead-letters the entry, never sends
//     it unmapped), and its delivered marks are group-committed.
//   - The admin API needs the bearer token for anything beyond /healthz,
//     /readyz and /metrics; every access is logged, every change a second
//     time with what it touched, and a change runs to its end even when the
//     client goes away.
package relay
