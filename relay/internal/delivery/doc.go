// Package delivery forwards each destination's queue downstream: one Worker
// per destination reads its queue (store.Pending) in accept order, maps each
// message for its route (hl7map.Outbound), sends it through a Transport
// (MLLP, HTTP or file), classifies the answer (design.md's table, with the
// destination's classify overrides) and records the attempt in the store.
//
// Invariants:
//   - Order: an entry is settled (delivered or dead-lettered) before the next
//     one is sent. A retriable failure holds the queue (exponential backoff
//     with jitter, Retry-After honoured); nothing overtakes it.
//   - Nothing goes out unmapped: an entry whose route was removed by a reload
//     is dead-lettered ("route removed"); a mapping that fails is a permanent
//     failure.
//   - Prefetch: while an entry waits for its ACK, the next ones of the batch
//     are loaded, parsed and mapped on a second goroutine (at most 16 jobs
//     and about 1 MiB ahead). What is sent is still decided at its turn: the
//     route is looked up again and a body mapped under another config is
//     mapped anew. A held entry drops what was prepared after it.
//   - Permanent failures (and exhausted attempts) follow on_permanent_failure:
//     dead-letter and continue, or block the queue (store.SetBlocked; it
//     stays blocked across restarts until an admin unblocks or skips).
//     HTTP 401/403 always block: they are config errors.
//   - At least once: attempt records go to the store with RecordAsync, in
//     attempt order, and are group-committed while the worker sends the next
//     messages (never one fsync per message to wait for); the store commits
//     them in that order, so a crash re-sends at most a suffix of the queue,
//     in order. Dead letters and blocks wait for their commit; an idle
//     worker does not wait for the last marks (it refreshes its gauges when
//     they are committed).
//   - Run stops at a message boundary when its ctx ends, writes every
//     pending record and closes the transport before it returns; the store
//     must stay open until then.
//   - Logs and recorded errors hold control IDs, codes and addresses, never
//     message content or ACK text.
package delivery
