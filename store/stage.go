package store

import (
	"encoding/binary"
	"errors"
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
// messages materializes it. It bounds Store.stage's memory (about 260 bytes a
// message: its dedupe key and ready-made idx entries), the records a reader
// merges, and the pause of the batch that materializes. Measured on the
// daemon (five interleaved rounds each): at 256 senders 2,048 gave 3.8% more
// msg/s than 1,024 (5 of 5 rounds) and as much as 4,096; at 64 senders the
// p99 ACK latency was 15.2 ms with 2,048, 15.5 with 1,024, 17.0 with 4,096.
const maxStaged = 2048

// The tail has two marks. kIndexed is the last seq whose control-ID entries
// are written; kQueued the last seq whose queue entries are written (at least
// kIndexed; absent means equal to it). A delivery mark of a staged queue entry
// needs only the queue entries: they go at the tails of their queues, a page
// or two that the mark's own write dirties anyway, while the control-ID
// entries are scattered over the index and wait for maxStaged. Measured on the
// daemon with one forwarding route, materializing both at every mark cost a
// quarter of the accept rate.
var (
	kIndexed = []byte("indexed")
	kQueued  = []byte("queued")
)

// stageState mirrors the committed staged tail for writers. Only the leader
// of the group commit touches it.
type stageState struct {
	n      int                    // messages after kIndexed
	qn     int                    // messages after kQueued
	dedupe map[string]dedupeEntry // index prefix -> newest staged entry with a dedupe window
	last   map[string]uint64      // destination -> last queue ID given to an entry after kQueued
	ctrl   entryLog               // control-ID entries after kIndexed, in seq order, ready to write
	queue  entryLog               // queue entries after kQueued, likewise
}

// stagedEntry is one idx entry of a staged message, built when it was
// appended: a control-ID entry (key set) or a queue entry (dest and id set).
// Its slices may alias an entryLog or the file: valid while those are.
type stagedEntry struct {
	key   []byte
	dest  []byte
	id    uint64
	value []byte
}

// An entryLog holds staged entries packed in one byte slice, in the order
// added. The mirror lives as long as its tail (up to maxStaged messages): as
// bytes without pointers it gives the garbage collector nothing to scan, in
// about half the memory of a slice of stagedEntry with a key and a value
// slice each (a heap profile with 952 messages staged: 240 KB against 447).
// Each entry is its key, dest and value, each uvarint-length-prefixed, then
// its id (8 bytes); addCtrl and addQueue encode them in place, each reads.
type entryLog struct {
	b []byte
}

// addCtrl adds a control-ID entry: key prefix seq, value the content hash
// and the dedupe expiry (encodeDedupeValue), no dest, id 0.
func (l *entryLog) addCtrl(prefix []byte, seq uint64, hash []byte, expiry uint64) {
	l.b = binary.AppendUvarint(l.b, uint64(len(prefix)+8))
	l.b = binary.BigEndian.AppendUint64(append(l.b, prefix...), seq)
	l.b = append(l.b, 0) // no dest
	l.b = binary.AppendUvarint(l.b, dedupeValueLen)
	l.b = appendDedupeValue(l.b, hash, expiry)
	l.b = binary.BigEndian.AppendUint64(l.b, 0)
}

// addQueue adds a queue entry of dest with ID id for seq: no key, value
// encodeQueueEntry(seq, enq, route).
func (l *entryLog) addQueue(dest string, id, seq uint64, enq int64, route string) {
	l.b = append(l.b, 0) // no key
	l.b = binary.AppendUvarint(l.b, uint64(len(dest)))
	l.b = append(l.b, dest...)
	vlen := 8 + uvarintLen(uint64(enq)) + uvarintLen(uint64(len(route))) + len(route)
	l.b = binary.AppendUvarint(l.b, uint64(vlen))
	l.b = appendQueueEntry(l.b, seq, enq, route)
	l.b = binary.BigEndian.AppendUint64(l.b, id)
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// each calls fn with each entry in order, stopping at the first error. The
// entry and its slices are valid only during the call.
func (l *entryLog) each(fn func(e *stagedEntry) error) error {
	var e stagedEntry
	for b := l.b; len(b) > 0; {
		var ok bool
		if e.key, b, ok = cutPrefixed(b); !ok {
			return errCorruptStage
		}
		if e.dest, b, ok = cutPrefixed(b); !ok {
			return errCorruptStage
		}
		if e.value, b, ok = cutPrefixed(b); !ok || len(b) < 8 {
			return errCorruptStage
		}
		e.id, b = binary.BigEndian.Uint64(b), b[8:]
		if len(e.key) == 0 {
			e.key = nil
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

// reset empties l, keeping its room for the next tail.
func (l *entryLog) reset() { l.b = l.b[:0] }

// errCorruptStage is a bug: an entryLog holds only what add wrote.
var errCorruptStage = errors.New("store: staged entries do not decode")

// cutPrefixed splits a uvarint-length-prefixed field off b.
func cutPrefixed(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n) : k+int(n)], b[k+int(n):], true
}

type dedupeEntry struct {
	seq    uint64
	hash   [32]byte
	expiry int64 // unix nanoseconds
}

// resetCtrl and resetQueues empty their part of st, keeping the room for the
// next tail.
func (st *stageState) resetCtrl() {
	st.n = 0
	clear(st.dedupe)
	st.ctrl.reset()
}

func (st *stageState) resetQueues() {
	st.qn = 0
	clear(st.last)
	st.queue.reset()
}

// commit folds a committed transaction's staging into st.
func (st *stageState) commit(c *txCtx) {
	if c.cleared {
		st.resetCtrl()
	}
	if c.qCleared {
		st.resetQueues()
	}
	if c.stN == 0 && c.stQN == 0 {
		return
	}
	st.n += c.stN
	st.qn += c.stQN
	st.ctrl.b = append(st.ctrl.b, c.stCtrl.b...)
	st.queue.b = append(st.queue.b, c.stQueue.b...)
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

// staged is how many messages wait for their control-ID entries as of this
// transaction: all of the staged tail.
func (c *txCtx) staged() int {
	if c.cleared {
		return c.stN
	}
	return c.s.stage.n + c.stN
}

// queueStaged is how many messages wait for their queue entries.
func (c *txCtx) queueStaged() int {
	if c.qCleared {
		return c.stQN
	}
	return c.s.stage.qn + c.stQN
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
	if !ok && !c.qCleared {
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
	c.stQN++
	recv := p.recv.UnixNano()
	exp := expiry(recv, m.DedupeWindow)
	if p.key != "" {
		if c.stDedupe == nil {
			c.stDedupe = make(map[string]dedupeEntry, max(8, c.ops))
		}
		c.stDedupe[p.key] = dedupeEntry{seq: seq, hash: m.ContentHash, expiry: int64(exp)}
	}
	if p.prefix != nil {
		if c.stCtrl.b == nil {
			c.stCtrl.b = make([]byte, 0, max(8, c.ops)*(len(p.prefix)+8+dedupeValueLen+12))
		}
		c.stCtrl.addCtrl(p.prefix, seq, m.ContentHash[:], exp)
	}
	for j, t := range m.Targets {
		if c.stQueue.b == nil {
			c.stQueue.b = make([]byte, 0, max(8, c.ops)*len(m.Targets)*(len(t.Destination)+len(t.Route)+32))
		}
		c.stQueue.addQueue(t.Destination, p.ids[j], seq, recv, t.Route)
	}
}

// marks loads the tail's two marks once per transaction.
func (c *txCtx) marks() (indexed, queued uint64) {
	if !c.marksOK {
		c.indexed, c.queued = tailMarks(c.tx)
		c.marksOK = true
	}
	return c.indexed, c.queued
}

// tailMarks returns the last seq whose control-ID entries are written and the
// last whose queue entries are.
func tailMarks(tx *bolt.Tx) (indexed, queued uint64) {
	meta := tx.Bucket(bMeta)
	indexed = tx.Bucket(bMsg).Sequence() // version 1: everything written
	if v := meta.Get(kIndexed); len(v) == 8 {
		indexed = binary.BigEndian.Uint64(v)
	}
	queued = indexed
	if v := meta.Get(kQueued); len(v) == 8 {
		queued = max(indexed, binary.BigEndian.Uint64(v))
	}
	return indexed, queued
}

// materialize writes the idx entries of every staged message: its queue
// entries, with the queues' states, and its control-ID index entry. After it,
// this transaction has nothing staged.
func (c *txCtx) materialize() error {
	if err := c.materializeQueues(); err != nil {
		return err
	}
	from, _ := c.marks()
	last := c.tx.Bucket(bMsg).Sequence()
	n := c.staged()
	var mirror [2]entryLog
	mirrored := last >= from && uint64(n) == last-from
	if mirrored {
		if !c.cleared {
			mirror[0] = c.s.stage.ctrl
		}
		mirror[1] = c.stCtrl
	}
	c.cleared, c.stN, c.stDedupe, c.stCtrl = true, 0, nil, entryLog{}
	if last <= from {
		return nil
	}
	if err := c.writeTail(from, last, n, mirrored, mirror, tagCtrl); err != nil {
		return err
	}
	c.indexed = last
	return c.tx.Bucket(bMeta).Put(kIndexed, u64key(last))
}

// materializeQueues writes the queue entries of every staged message, with
// the queues' states, and leaves the control-ID entries staged.
func (c *txCtx) materializeQueues() error {
	_, from := c.marks()
	last := c.tx.Bucket(bMsg).Sequence()
	n := c.queueStaged()
	var mirror [2]entryLog
	mirrored := last >= from && uint64(n) == last-from
	if mirrored {
		if !c.qCleared {
			mirror[0] = c.s.stage.queue
		}
		mirror[1] = c.stQueue
	}
	c.qCleared, c.stQN, c.stLast, c.stQueue = true, 0, nil, entryLog{}
	if last <= from {
		return nil
	}
	if err := c.writeTail(from, last, n, mirrored, mirror, tagQueue); err != nil {
		return err
	}
	c.queued = last
	return c.tx.Bucket(bMeta).Put(kQueued, u64key(last))
}

// writeTail writes one kind (tagCtrl or tagQueue) of idx entries of the
// records after from: from the mirror's ready-made entries, or decoded from
// the file when the mirror does not hold the tail (at Open: a tail left by
// the last process).
func (c *txCtx) writeTail(from, last uint64, n int, mirrored bool, mirror [2]entryLog, kind byte) error {
	w := entryWriter{c: c, ib: c.tx.Bucket(bIdx)}
	if !mirrored {
		if n > 0 {
			// Open starts with an empty mirror; a partial one is a bug.
			c.s.log.Error("store: staged tail mirrored in part; indexing it from the file",
				zap.Uint64("from", from), zap.Uint64("last", last), zap.Int("mirrored", n), zap.String("kind", string(kind)))
		}
		return c.materializeFromFile(from, kind)
	}
	for _, l := range mirror {
		if err := l.each(w.put); err != nil {
			return err
		}
	}
	return w.close()
}

// entryWriter writes staged entries into idx, keeping the touched queues'
// states. Queue entries are gathered into runs (queuekeys.go), which close
// writes out.
type entryWriter struct {
	c    *txCtx
	ib   *bolt.Bucket
	runs []*openRun // one per queue written, few
	key  []byte     // a run's key; bbolt's Put copies keys (only values must stay valid)
}

// openRun is a run of one queue's entries not yet written.
type openRun struct {
	q    *queueRef
	last uint64
	n    int
	v    []byte // runMark, the first ID, the entries
}

func (w *entryWriter) put(e *stagedEntry) error {
	if e.key != nil {
		return w.ib.Put(e.key, e.value)
	}
	r, err := w.run(e.dest)
	if err != nil {
		return err
	}
	if r.n > 0 && (e.id != r.last+1 || r.n == maxRun) {
		if err := w.write(r); err != nil {
			return err
		}
	}
	if r.n == 0 {
		r.v = make([]byte, 9, 9+maxRun*len(e.value))
		r.v[0] = runMark
		binary.BigEndian.PutUint64(r.v[1:], e.id)
	}
	r.v = append(r.v, e.value...)
	r.last = e.id
	r.n++
	r.q.count++
	r.q.last = max(r.q.last, e.id)
	r.q.dirty = true
	return nil
}

// run returns dest's open run.
func (w *entryWriter) run(dest []byte) (*openRun, error) {
	for _, r := range w.runs {
		if r.q.dest == string(dest) {
			return r, nil
		}
	}
	q, err := w.c.queue(string(dest), true)
	if err != nil {
		return nil, err
	}
	r := &openRun{q: q}
	w.runs = append(w.runs, r)
	return r, nil
}

// write puts r into idx under its last ID (a lone entry as itself) and
// empties it; the value is r's own until the commit.
func (w *entryWriter) write(r *openRun) error {
	v := r.v
	if r.n == 1 {
		v = v[9:]
	}
	w.key = binary.BigEndian.AppendUint64(append(w.key[:0], r.q.prefix...), r.last)
	r.n, r.v = 0, nil
	return r.q.b.Put(w.key, v)
}

// close writes every open run.
func (w *entryWriter) close() error {
	for _, r := range w.runs {
		if r.n > 0 {
			if err := w.write(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// materializeFromFile writes one kind (tagCtrl or tagQueue) of idx entries of
// the records after from, as decoded from the message log: what Open does
// with a tail left by another process, and what materialize falls back to.
func (c *txCtx) materializeFromFile(from uint64, kind byte) error {
	w := entryWriter{c: c, ib: c.tx.Bucket(bIdx)}
	cur := c.tx.Bucket(bMsg).Cursor()
	var r stagedRecord
	for k, v := cur.Seek(u64key(from + 1)); k != nil; k, v = cur.Next() {
		seq := keyU64(k)
		if err := decodeStaged(v, &r); err != nil {
			// Nothing can be delivered or deduped from a record that does not
			// decode; the others must not wait for it.
			if kind == tagQueue {
				c.s.log.Error("store: staged message does not decode; left out of the index",
					zap.Uint64("seq", seq), zap.Error(err))
			}
			continue
		}
		if kind == tagCtrl && len(r.ctrl) > 0 {
			key := binary.BigEndian.AppendUint64(indexKeyPrefix(r.ctrl, r.app, r.fac), seq)
			e := stagedEntry{key: key, value: encodeDedupeValue(r.hash, expiry(r.received, time.Duration(r.window)))}
			if err := w.put(&e); err != nil {
				return err
			}
		}
		if kind != tagQueue {
			continue
		}
		for _, t := range r.targets {
			e := stagedEntry{dest: t.dest, id: t.id, value: encodeQueueEntry(seq, r.received, t.route)}
			if err := w.put(&e); err != nil {
				return err
			}
		}
	}
	return w.close()
}

// materializeAll writes the idx entries of whatever the file holds staged, in
// a transaction of its own: at Open and after a reopen, so that Store.stage
// can start empty.
func (s *Store) materializeAll(db *bolt.DB) error {
	err := db.Update(func(tx *bolt.Tx) error {
		if indexed, _ := tailMarks(tx); indexed == tx.Bucket(bMsg).Sequence() {
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
	s.stage.resetCtrl()
	s.stage.resetQueues()
	return nil
}

// stagedTail calls fn for each staged message with seq ≥ from, in seq order,
// until fn returns false: those after the mark of kind (tagCtrl: the
// messages whose control-ID entries wait; tagQueue: whose queue entries
// wait). r aliases the file: valid only during the call.
func stagedTail(tx *bolt.Tx, kind byte, from uint64, fn func(seq uint64, r *stagedRecord) bool) error {
	indexed, queued := tailMarks(tx)
	if kind == tagQueue {
		indexed = queued
	}
	from = max(from, indexed+1)
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
	return stagedTail(tx, tagQueue, fromSeq, func(seq uint64, r *stagedRecord) bool {
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
