package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The idx bucket holds the control-ID index and every destination's queue,
// so that an append's index entry and queue entries share one B+tree (one
// root-to-leaf path less to rewrite per commit than separate buckets):
//
//	'c' ctrlPart senderPart seq        -> content hash, dedupe expiry
//	'q' len(dest) dest id              -> queue entry (seq, enqueue time, route)
//	'q' len(dest) dest lastID          -> run: runMark, firstID, the entries firstID..lastID
//	'q' len(dest) dest ff ff ff ff ... -> queue state: pending count, last ID
//
// A queue's state key sorts right after its tail entry, so appending to a
// queue and updating its count dirty the same leaf.
//
// A run holds up to maxRun entries with consecutive IDs under the last one's
// key: staged entries are written as runs when they materialize, one B+tree
// insert for many entries (bbolt's Put seeks from the root and allocates
// every time; measured at 256 writers, materializing took a fifth of the
// leader's time, half of it for queue entries). Taking an entry out of a run
// writes the run without it, in two if the entry was in the middle. An
// entry's value starts with its seq, whose first byte is 0 for any seq
// below 2^56, so runMark tells a run from a single entry.
const (
	tagCtrl  = 'c'
	tagQueue = 'q'

	runMark = 0xff
	maxRun  = 64
)

var stateSuffix = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func queuePrefix(dest string) []byte {
	p := make([]byte, 0, 2+len(dest)+8)
	p = append(p, tagQueue)
	p = binary.AppendUvarint(p, uint64(len(dest)))
	return append(p, dest...)
}

func withID(prefix []byte, id uint64) []byte {
	k := make([]byte, 0, len(prefix)+8)
	return binary.BigEndian.AppendUint64(append(k, prefix...), id)
}

func stateKey(prefix []byte) []byte {
	return append(append(make([]byte, 0, len(prefix)+8), prefix...), stateSuffix...)
}

// queueState reads a queue's count and last ID; ok is false for a queue never written.
func queueState(b *bolt.Bucket, prefix []byte) (count, last uint64, ok bool) {
	v := b.Get(stateKey(prefix))
	if len(v) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
}

// queueRef is one destination's queue inside a write transaction. Its state is
// written back once, at the end of the batch (txCtx.flush).
type queueRef struct {
	b      *bolt.Bucket
	dest   string
	prefix []byte
	count  uint64
	last   uint64
	dirty  bool
}

// find returns the key's ID and the value of the slot (an entry or a run)
// holding entry id; ok is false if there is none.
func (q *queueRef) find(id uint64) (last uint64, v []byte, ok bool) {
	k, v := q.b.Cursor().Seek(withID(q.prefix, id))
	last, ok = entryKeyID(q.prefix, k)
	if !ok {
		return 0, nil, false
	}
	if isRun(v) {
		return last, v, runFirst(v) <= id
	}
	return last, v, last == id
}

func (q *queueRef) get(id uint64) []byte {
	_, v, ok := q.find(id)
	if !ok {
		return nil
	}
	if isRun(v) {
		_, e, _ := splitRun(v, id)
		return e
	}
	return v
}

func (q *queueRef) add(seq uint64, enq int64, route string) (uint64, error) {
	q.last++
	if err := q.b.Put(withID(q.prefix, q.last), encodeQueueEntry(seq, enq, route)); err != nil {
		return 0, err
	}
	q.count++
	q.dirty = true
	return q.last, nil
}

// del takes entry id out of the queue; an absent entry is no error.
func (q *queueRef) del(id uint64) error {
	last, v, ok := q.find(id)
	if !ok {
		return nil
	}
	if isRun(v) {
		first := runFirst(v)
		before, e, after := splitRun(v, id)
		if e == nil {
			return fmt.Errorf("queue entry %d: %w", id, errCorruptRun)
		}
		// New values (bbolt keeps them until the commit), both made before
		// the first write: before and after point into v.
		var head, tail []byte
		if id > first {
			head = encodeSlot(first, before)
		}
		if id < last {
			tail = encodeSlot(id+1, after)
		}
		if tail != nil {
			if err := q.b.Put(withID(q.prefix, last), tail); err != nil {
				return err
			}
		} else if err := q.b.Delete(withID(q.prefix, last)); err != nil {
			return err
		}
		if head != nil {
			if err := q.b.Put(withID(q.prefix, id-1), head); err != nil {
				return err
			}
		}
	} else if err := q.b.Delete(withID(q.prefix, id)); err != nil {
		return err
	}
	if q.count > 0 {
		q.count--
	}
	q.dirty = true
	return nil
}

func (q *queueRef) flush() error {
	if !q.dirty {
		return nil
	}
	v := make([]byte, 0, 16)
	v = binary.BigEndian.AppendUint64(v, q.count)
	v = binary.BigEndian.AppendUint64(v, q.last)
	q.dirty = false
	return q.b.Put(stateKey(q.prefix), v)
}

// queueCursor walks one queue's entries in ID order from id on.
type queueCursor struct {
	cur    *bolt.Cursor
	prefix []byte
	from   uint64
	k, v   []byte // the next slot
	id     uint64 // the next entry of the run being read
	run    []byte // its entries left
}

func newQueueCursor(b *bolt.Bucket, prefix []byte, from uint64) *queueCursor {
	qc := &queueCursor{cur: b.Cursor(), prefix: prefix, from: max(from, 1)}
	qc.k, qc.v = qc.cur.Seek(withID(prefix, qc.from))
	return qc
}

// next returns the current entry's ID and value and advances; ok is false
// past the tail. The rest of a run that does not decode is returned whole,
// as one entry's value, for the caller's decoding to report.
func (qc *queueCursor) next() (id uint64, v []byte, ok bool) {
	for {
		if len(qc.run) > 0 {
			n := entryLen(qc.run)
			if n == 0 {
				n = len(qc.run)
			}
			id, v = qc.id, qc.run[:n]
			qc.id, qc.run = qc.id+1, qc.run[n:]
			if id >= qc.from {
				return id, v, true
			}
			continue
		}
		last, ok := entryKeyID(qc.prefix, qc.k)
		if !ok {
			return 0, nil, false
		}
		v := qc.v
		qc.k, qc.v = qc.cur.Next()
		if !isRun(v) {
			return last, v, true // Seek placed it at from or after
		}
		qc.id, qc.run = runFirst(v), v[9:]
	}
}

// entryKeyID returns the ID of k, a key of prefix's queue holding an entry
// or a run; ok is false for any other key (another queue's, the state key).
func entryKeyID(prefix, k []byte) (id uint64, ok bool) {
	if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) || bytes.Equal(k[len(prefix):], stateSuffix) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(prefix):]), true
}

func isRun(v []byte) bool { return len(v) >= 9 && v[0] == runMark }

func runFirst(run []byte) uint64 { return binary.BigEndian.Uint64(run[1:9]) }

// splitRun splits a run around its entry id: the entries before it, its
// own, and the entries after it. e is nil if the run does not hold id.
func splitRun(run []byte, id uint64) (before, e, after []byte) {
	first := runFirst(run)
	if id < first {
		return nil, nil, nil
	}
	b := run[9:]
	for range id - first {
		n := entryLen(b)
		if n == 0 {
			return nil, nil, nil
		}
		b = b[n:]
	}
	n := entryLen(b)
	if n == 0 {
		return nil, nil, nil
	}
	return run[9 : len(run)-len(b)], b[:n], b[n:]
}

// encodeSlot is a new value for entries (one or more back to back, IDs from
// first on): the entry itself if it is one, else a run.
func encodeSlot(first uint64, entries []byte) []byte {
	if entryLen(entries) == len(entries) {
		return append([]byte(nil), entries...)
	}
	v := make([]byte, 9, 9+len(entries))
	v[0] = runMark
	binary.BigEndian.PutUint64(v[1:], first)
	return append(v, entries...)
}

// entryLen is the length of the queue entry (encodeQueueEntry) at the start
// of b; 0 if none decodes there.
func entryLen(b []byte) int {
	if len(b) < 8 {
		return 0
	}
	_, k := binary.Uvarint(b[8:])
	if k <= 0 {
		return 0
	}
	n := 8 + k
	l, k := binary.Uvarint(b[n:])
	if k <= 0 || uint64(len(b)-n-k) < l {
		return 0
	}
	return n + k + int(l)
}

// errCorruptRun: a run that does not decode, which only a damaged file holds.
var errCorruptRun = errors.New("store: queue run does not decode")

// queue returns dest's queue for this transaction (cached), or nil if it was
// never written and create is false. Creating registers dest in the dest bucket.
func (c *txCtx) queue(dest string, create bool) (*queueRef, error) {
	if q := c.queues[dest]; q != nil {
		return q, nil
	}
	b := c.tx.Bucket(bIdx)
	prefix := queuePrefix(dest)
	count, last, ok := queueState(b, prefix)
	if !ok {
		if !create {
			return nil, nil
		}
		db := c.tx.Bucket(bDest)
		if db.Get([]byte(dest)) == nil {
			if err := db.Put([]byte(dest), destState{}.encode()); err != nil {
				return nil, err
			}
		}
	}
	q := &queueRef{b: b, dest: dest, prefix: prefix, count: count, last: last}
	if c.queues == nil {
		c.queues = make(map[string]*queueRef, 4)
	}
	c.queues[dest] = q
	return q, nil
}

// headEntry returns the oldest entry of dest's queue, if any.
func headEntry(b *bolt.Bucket, dest string) (QueueEntry, bool) {
	qc := newQueueCursor(b, queuePrefix(dest), 1)
	id, v, ok := qc.next()
	if !ok {
		return QueueEntry{}, false
	}
	e, err := decodeQueueEntry(dest, u64key(id), v)
	return e, err == nil
}
