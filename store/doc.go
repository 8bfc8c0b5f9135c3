// Package store is mllpd's durable state in one bbolt file: the message log,
// the dedupe index, one queue per destination with delivery records and dead
// letters, the rejected log, retention, a free-space guard, hot backup and
// admin queries. Only this package touches bbolt.
//
// # Invariants
//
//   - A nil error from Append means the messages are fsynced (bbolt NoSync is
//     off). A *CommitError means nothing of that batch may be assumed stored;
//     the file is closed and reopened before the next write, because after a
//     failed fsync Linux may have dropped the dirty pages and a later fsync
//     would succeed over missing data.
//   - Every write (Append, Record, Requeue, AddRejected, SetBlocked, prune
//     chunks) goes through one leader/follower group commit: the first caller
//     to arrive while nobody commits commits at once; callers arriving meanwhile
//     form the next batch, led by the first of them. Many writers share one
//     transaction and one fsync pair; a lone writer waits for no timer. bbolt's
//     db.Batch is not used (its timer delays every lone sender). The one
//     exception waits on purpose and delays nobody: a delivery mark
//     (RecordAsync) starts no commit of its own but joins the next batch,
//     or one it starts after 25 ms; Close commits any left.
//   - A message, its dedupe entry, its control-ID and time index entries and one
//     queue entry per target are committed in the same transaction. Dedupe is
//     decided inside it, so two copies in one batch are caught. The dedupe,
//     control-ID and queue entries are committed in the message's record and
//     staged: written to the idx tree later, many messages at a time
//     (stage.go); every reader merges the staged tail from its own read
//     transaction, so what it sees is the same either way.
//   - Sequence numbers and queue IDs come from bbolt bucket sequences: they
//     increase, are never reused, and may skip a value after a failed commit.
//   - Nothing in memory grows with queue depth or log size: queue positions and
//     pending counts are kept in the file; in memory are only the batch being
//     committed, the staged tail's dedupe keys, queue tails and ready-made
//     idx entries (at most maxStaged messages) and a cached free-space figure.
//   - Values read from bbolt are copied before a transaction ends; the records
//     returned by this package never alias the file.
//   - A message leaves the log only through Prune, and only when every
//     destination has it delivered or its dead letter purged.
//
// # Layout (schema version 4)
//
// Buckets: meta (schema version, rejected-log counters, "indexed": the last
// seq whose control-ID entries are written, and "queued": the last seq whose
// queue entries are written, at least "indexed"; the records after them are
// staged); msg (seq -> message:
// header summary, targets with their queue IDs, raw bytes, in a compact binary
// encoding); idx, one B+tree for the control-ID index (which serves both
// dedupe and queries: control ID, sending app and facility, seq -> content
// hash, dedupe expiry) and every destination's queue (queue ID -> seq, route,
// enqueue time, or a run of such entries with consecutive IDs under the last
// one; after the tail, the queue's pending count and last ID), keyed as
// described in queuekeys.go; time (unix second -> first seq received in
// it); dest (every destination ever queued or blocked -> blocked mark);
// delivery (seq, dest -> attempts and downstream answers; absent while a
// message was never tried); dead (per destination a nested bucket of dead
// letters); rejected (ID -> rejected input).
//
// An append writes the message record and the time index once a second: one
// B+tree path, as little as the fsync can be asked to carry. The record holds
// its index entry and queue entries (targets with their queue IDs); a batch
// writes them into idx, with each touched queue's state once, when it holds a
// write that needs them (a requeue, retention, ...) or when more than
// maxStaged messages are staged; a delivery mark of a staged entry writes only
// the queue entries (at the queues' tails, cheap) and leaves the scattered
// control-ID entries staged. It writes them from entries built when the
// messages were appended (Store.stage), a queue's in runs of up to 64; a
// read-write Open writes whatever the file holds staged from the records
// themselves. Version 1 files (no "indexed" key: everything indexed),
// version 2 files (no "queued" key: queue entries written as far as
// control-ID entries) and version 3 files (no runs) are upgraded by a
// read-write Open.
// Buckets written mostly in key order (msg, idx, time, dead letters,
// rejected) are packed full (FillPercent 0.95) rather than split half-full.
// The file is mapped with 1 GiB of address space from the start, so that a
// growing file is not remapped (a remap waits for every reader) until it
// outgrows that.
// Dedupe is checked against the newest entry of the same sender and control
// ID that had a dedupe window (stepping over at most 8 newer entries appended
// without one).
//
// # Durability settings
//
// NoSync is off. NoFreelistSync is on with the hashmap freelist, as etcd runs
// bbolt: the freelist is derived data, so it is not written at every commit;
// after an unclean stop bbolt rebuilds it by scanning the file at Open (time
// proportional to the file's size, never data lost).
//
// # Fault injection (tests only)
//
// Builds with the faultinject tag add SetCommitFault(s, f), which runs f before
// every commit (an error fails the commit, blocking stalls it), and honour the
// environment variable MLLPD_FAULT_FILE=path: while that file contains "fail"
// every commit fails with a *CommitError; while it contains "stall" commits
// block until its content changes. Release builds contain neither; their fault
// hook is an empty function the compiler removes.
//
//	go test -race -tags faultinject ./store/
package store
