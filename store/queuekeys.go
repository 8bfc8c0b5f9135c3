package store

import (
	"bytes"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// The idx bucket holds the control-ID index and every destination's queue,
// so that an append's index entry and queue entries share one B+tree (one
// root-to-leaf path less to rewrite per commit than separate buckets):
//
//	'c' ctrlPart senderPart seq        -> content hash, dedupe expiry
//	'q' len(dest) dest id              -> queue entry (seq, enqueue time, route)
//	'q' len(dest) dest ff ff ff ff ... -> queue state: pending count, last ID
//
// A queue's state key sorts right after its tail entry, so appending to a
// queue and updating its count dirty the same leaf.
const (
	tagCtrl  = 'c'
	tagQueue = 'q'
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

func (q *queueRef) get(id uint64) []byte { return q.b.Get(withID(q.prefix, id)) }

func (q *queueRef) add(seq uint64, enq int64, route string) (uint64, error) {
	q.last++
	if err := q.b.Put(withID(q.prefix, q.last), encodeQueueEntry(seq, enq, route)); err != nil {
		return 0, err
	}
	q.count++
	q.dirty = true
	return q.last, nil
}

func (q *queueRef) del(id uint64) error {
	if err := q.b.Delete(withID(q.prefix, id)); err != nil {
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
	k, v   []byte
}

func newQueueCursor(b *bolt.Bucket, prefix []byte, from uint64) *queueCursor {
	qc := &queueCursor{cur: b.Cursor(), prefix: prefix}
	qc.k, qc.v = qc.cur.Seek(withID(prefix, max(from, 1)))
	return qc
}

// next returns the current entry and advances; ok is false past the tail.
func (qc *queueCursor) next() (id uint64, k, v []byte, ok bool) {
	k, v = qc.k, qc.v
	if k == nil || len(k) != len(qc.prefix)+8 || !bytes.HasPrefix(k, qc.prefix) || bytes.Equal(k[len(qc.prefix):], stateSuffix) {
		return 0, nil, nil, false
	}
	qc.k, qc.v = qc.cur.Next()
	return binary.BigEndian.Uint64(k[len(qc.prefix):]), k, v, true
}

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
	id, _, v, ok := qc.next()
	if !ok {
		return QueueEntry{}, false
	}
	e, err := decodeQueueEntry(dest, u64key(id), v)
	return e, err == nil
}
