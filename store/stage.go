package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// The message log is the write-ahead form of the idx tree. An append writes
// only the message record, which carries everything its index entry and queue
// entries are made of (control ID, sender, content hash, dedupe window,
// targets with their routes and queue IDs), and the time index. The records
// after the meta key "indexed" are "staged": their idx entries are written
// later, many messages at a time, by materialize. That keeps an append's
// commit to one B+tree path, which is what a lone sender's ACK waits for (each
// extra path is pages scattered over the file that the fsync must reach), and
// writes the index's scattered inserts for many messages in one pass.
//
// Nothing is weaker for it: the record and its staged entries commit in the
// same transaction, and whatever reads idx merges the staged tail from the
// same read transaction (stagedTail). Writers find the tail's dedupe keys and
// queue positions in Store.stage, a mirror of the committed tail that Open and
// every reopen start empty by materializing what the file holds.

// maxStaged bounds the staged tail: the batch that takes it past this many
// messages materializes it. It bounds Store.stage's memory (about 300 bytes a
// message: its dedupe key and ready-made idx entries), the records a reader
// merges, and the pause of the batch that materializes. Measured on the
// daemon (five interleaved rounds each): at 256 senders 2,048 gave 3.8% more
// msg/s than 1,024 (5 of 5 rounds) and as much as 4,096; at 64 senders the
// p99 ACK latency was 15.2 ms with 2,048, 15.5 with 1,024, 17.0 with 4,096.
const maxStaged = 2048

// kIndexed is the meta key of the last seq whose idx entries are written.
var kIndexed = []byte("indexed")

// stageState mirrors the committed staged tail for writers. Only the leader
// of the group commit touches it.
type stageState struct {
	n       int                    // staged messages
	dedupe  map[string]dedupeEntry // index prefix -> newest staged entry with a dedupe window
	last    map[string]uint64      // destination -> last queue ID given to a staged entry
	entries []stagedEntry          // the tail's idx entries, in seq order, ready to write
}

// stagedEntry is one idx entry of a staged message, built when it was
// appended: a control-ID entry (key set) or a queue entry (dest and id set).
type stagedEntry struct {
	key   []byte
	dest  string
	id    uint64
	value []byte
}

type dedupeEntry struct {
	seq    uint64
	hash   [32]byte
	expiry int64 // unix nanoseconds
}

// reset empties st, keeping its maps' room for the next tail.
func (st *stageState) reset() {
	st.n = 0
	clear(st.dedupe)
	clear(st.last)
	clear(st.entries) // let the committed values go
	st.entries = st.entries[:0]
}

// commit folds a committed transaction's staging into st.
func (st *stageState) commit(c *txCtx) {
	if c.cleared {
		st.reset()
	}
	if c.stN == 0 {
		return
	}
	st.n += c.stN
	st.entries = append(st.entries, c.stEntries...)
	if st.dedupe == nil {
		st.dedupe = make(map[string]dedupeEntry, len(c.stDedupe))
	}
	for k, e := range c.stDedupe {
		st.dedupe[k] = e
	}
	if st.last == nil {
		st.last = make(map[string]uint64, len(c.stLast))
	}
	for d, id := range c.stLast {
		st.last[d] = id
	}
}

// staged is how many messages wait to be materialized as of this transaction.
func (c *txCtx) staged() int {
	if c.cleared {
		return c.stN
	}
	return c.s.stage.n + c.stN
}

// stagedDedupe returns the newest staged entry under prefix that had a dedupe window.
func (c *txCtx) stagedDedupe(prefix []byte) (dedupeEntry, bool) {
	if e, ok := c.stDedupe[string(prefix)]; ok {
		return e, true
	}
	if !c.cleared {
		e, ok := c.s.stage.dedupe[string(prefix)]
		return e, ok
	}
	return dedupeEntry{}, false
}

// nextQueueID gives a staged entry for dest the next ID of dest's queue.
func (c *txCtx) nextQueueID(dest string) uint64 {
	last, ok := c.stLast[dest]
	if !ok && !c.cleared {
		last, ok = c.s.stage.last[dest]
	}
	if !ok {
		if q := c.queues[dest]; q != nil {
			last = q.last
		} else {
			_, last, _ = queueState(c.tx.Bucket(bIdx), queuePrefix(dest))
		}
	}
	last++
	if c.stLast == nil {
		c.stLast = make(map[string]uint64, 4)
	}
	c.stLast[dest] = last
	return last
}

// stageMessage notes an appended message, prepared as p with its seq
// stamped, for the writers of this transaction and for materialize.
func (c *txCtx) stageMessage(p *prepared, seq uint64, m *Message) {
	c.stN++
	if p.key != "" {
		if c.stDedupe == nil {
			c.stDedupe = make(map[string]dedupeEntry, max(8, c.ops))
		}
		c.stDedupe[p.key] = dedupeEntry{seq: seq, hash: m.ContentHash, expiry: int64(expiry(p.recv.UnixNano(), m.DedupeWindow))}
	}
	if c.stEntries == nil {
		c.stEntries = make([]stagedEntry, 0, 2*max(8, c.ops))
	}
	if p.cKey != nil {
		c.stEntries = append(c.stEntries, stagedEntry{key: p.cKey, value: p.cVal})
	}
	for j, t := range m.Targets {
		c.stEntries = append(c.stEntries, stagedEntry{dest: t.Destination, id: p.ids[j], value: p.qVals[j]})
	}
}

// indexedSeq returns the last seq whose idx entries are written.
func (c *txCtx) indexedSeq() uint64 {
	if !c.indexedOK {
		c.indexed = indexedSeq(c.tx)
		c.indexedOK = true
	}
	return c.indexed
}

func indexedSeq(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bMeta).Get(kIndexed); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return tx.Bucket(bMsg).Sequence()
}

// materialize writes the idx entries of every staged message: its control-ID
// index entry and one queue entry per target, and the queues' states. After
// it, this transaction has nothing staged. The entries come ready-made from
// Store.stage, or from the records in the file when the mirror does not hold
// the tail: at Open (a tail left by the last process), never otherwise.
func (c *txCtx) materialize() error {
	mb := c.tx.Bucket(bMsg)
	from, last := c.indexedSeq(), mb.Sequence()
	var mirror [2][]stagedEntry
	n := c.staged()
	mirrored := last >= from && uint64(n) == last-from
	if mirrored {
		if !c.cleared {
			mirror[0] = c.s.stage.entries
		}
		mirror[1] = c.stEntries
	}
	c.cleared, c.stN, c.stDedupe, c.stLast, c.stEntries = true, 0, nil, nil, nil
	if last <= from {
		return nil
	}
	var err error
	if mirrored {
		w := entryWriter{c: c, ib: c.tx.Bucket(bIdx)}
		for _, es := range mirror {
			for i := range es {
				if err = w.put(&es[i]); err != nil {
					return err
				}
			}
		}
	} else {
		if n > 0 {
			// Open starts with an empty mirror; a partial one is a bug.
			c.s.log.Error("store: staged tail mirrored in part; indexing it from the file",
				zap.Uint64("from", from), zap.Uint64("last", last), zap.Int("mirrored", n))
		}
		err = c.materializeFromFile(from)
	}
	if err != nil {
		return err
	}
	c.indexed = last
	return c.tx.Bucket(bMeta).Put(kIndexed, u64key(last))
}

// entryWriter writes staged entries into idx, keeping the touched queues'
// states.
type entryWriter struct {
	c  *txCtx
	ib *bolt.Bucket
	q  *queueRef
}

func (w *entryWriter) put(e *stagedEntry) error {
	if e.key != nil {
		return w.ib.Put(e.key, e.value)
	}
	if w.q == nil || w.q.dest != e.dest {
		var err error
		if w.q, err = w.c.queue(e.dest, true); err != nil {
			return err
		}
	}
	if err := w.q.b.Put(withID(w.q.prefix, e.id), e.value); err != nil {
		return err
	}
	w.q.count++
	w.q.last = max(w.q.last, e.id)
	w.q.dirty = true
	return nil
}

// materializeFromFile writes the idx entries of the records after from, as
// decoded from the message log: what Open does with a tail left by another
// process, and what materialize falls back to.
func (c *txCtx) materializeFromFile(from uint64) error {
	w := entryWriter{c: c, ib: c.tx.Bucket(bIdx)}
	cur := c.tx.Bucket(bMsg).Cursor()
	var r stagedRecord
	for k, v := cur.Seek(u64key(from + 1)); k != nil; k, v = cur.Next() {
		seq := keyU64(k)
		if err := decodeStaged(v, &r); err != nil {
			// Nothing can be delivered or deduped from a record that does not
			// decode; the others must not wait for it.
			c.s.log.Error("store: staged message does not decode; left out of the index",
				zap.Uint64("seq", seq), zap.Error(err))
			continue
		}
		if len(r.ctrl) > 0 {
			key := binary.BigEndian.AppendUint64(indexKeyPrefix(r.ctrl, r.app, r.fac), seq)
			e := stagedEntry{key: key, value: encodeDedupeValue(r.hash, expiry(r.received, time.Duration(r.window)))}
			if err := w.put(&e); err != nil {
				return err
			}
		}
		for _, t := range r.targets {
			e := stagedEntry{dest: string(t.dest), id: t.id, value: encodeQueueEntry(seq, r.received, t.route)}
			if err := w.put(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

// materializeAll writes the idx entries of whatever the file holds staged, in
// a transaction of its own: at Open and after a reopen, so that Store.stage
// can start empty.
func (s *Store) materializeAll(db *bolt.DB) error {
	err := db.Update(func(tx *bolt.Tx) error {
		if indexedSeq(tx) == tx.Bucket(bMsg).Sequence() {
			return nil
		}
		c := txCtx{tx: tx, s: s, now: s.now().UnixNano(), lastSec: -1}
		if err := c.materialize(); err != nil {
			return err
		}
		return c.flush()
	})
	if err != nil {
		return fmt.Errorf("store: index staged messages: %w", err)
	}
	s.stage.reset()
	return nil
}

// stagedTail calls fn for each staged message with seq ≥ from, in seq order,
// until fn returns false. r aliases the file: valid only during the call.
func stagedTail(tx *bolt.Tx, from uint64, fn func(seq uint64, r *stagedRecord) bool) error {
	from = max(from, indexedSeq(tx)+1)
	cur := tx.Bucket(bMsg).Cursor()
	var r stagedRecord
	for k, v := cur.Seek(u64key(from)); k != nil; k, v = cur.Next() {
		if decodeStaged(v, &r) != nil {
			continue // materialize leaves it out too
		}
		if !fn(keyU64(k), &r) {
			return nil
		}
	}
	return nil
}

// stagedEntries calls fn for each staged queue entry of dest, in queue order.
func stagedEntries(tx *bolt.Tx, dest string, fromSeq uint64, fn func(e QueueEntry) bool) error {
	return stagedTail(tx, fromSeq, func(seq uint64, r *stagedRecord) bool {
		for _, t := range r.targets {
			if string(t.dest) == dest {
				e := QueueEntry{Destination: dest, ID: t.id, Seq: seq, Route: string(t.route), Enqueued: time.Unix(0, r.received)}
				if !fn(e) {
					return false
				}
			}
		}
		return true
	})
}

// pendingHints remembers, per destination, the staged entry a Pending call
// ended on, so that the next call (a worker reading on after it) does not
// decode the staged tail from its start again.
type pendingHints struct {
	mu sync.Mutex
	m  map[string][2]uint64 // dest -> queue ID, seq
}

func (h *pendingHints) from(dest string, afterID uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.m[dest]; ok && v[0] == afterID {
		return v[1] + 1
	}
	return 0
}

func (h *pendingHints) set(dest string, id, seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[string][2]uint64)
	}
	h.m[dest] = [2]uint64{id, seq}
}
