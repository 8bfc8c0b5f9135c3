package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention says how long things are kept. A zero duration keeps that kind forever.
type Retention struct {
	Delivered        time.Duration // messages with nothing left to deliver, by receive time
	DeadLetters      time.Duration // dead letters, by the time they were dead-lettered
	Rejected         time.Duration // rejected input, by time
	RejectedMaxBytes int64         // rejected log size bound (oldest dropped first); 0 = none
}

// PruneStats counts what one Prune deleted.
type PruneStats struct {
	Messages       int // messages (with their indexes and delivery records)
	DeadLetters    int
	Rejected       int // by age
	RejectedBySize int // by RejectedMaxBytes (also counted in RejectedDropped)
}

// pruneScan bounds the records one prune transaction looks at, so a long run
// of still-pending old messages does not make one long transaction.
const pruneScan = 5 * chunkSize

// Prune deletes what retention r lets go. A message is deleted only when it is
// older than r.Delivered and every destination has it delivered, or
// dead-lettered with that dead letter already purged: never an undelivered one.
// Dead letters go first, so a message whose last dead letter expires goes in
// the same run. The work is split into short transactions that share group
// commits with appends; bbolt reuses the freed pages.
func (s *Store) Prune(ctx context.Context, r Retention) (PruneStats, error) {
	var st PruneStats
	now := s.now()
	if r.DeadLetters > 0 {
		n, err := s.PurgeDeadLetters(ctx, "", now.Add(-r.DeadLetters))
		st.DeadLetters = n
		if err != nil {
			return st, err
		}
	}
	if r.Delivered > 0 {
		n, err := s.pruneMessages(ctx, now.Add(-r.Delivered))
		st.Messages = n
		if err != nil {
			return st, err
		}
	}
	if r.Rejected > 0 {
		n, err := s.pruneRejectedAge(ctx, now.Add(-r.Rejected))
		st.Rejected = n
		if err != nil {
			return st, err
		}
	}
	if r.RejectedMaxBytes > 0 {
		for {
			var n int
			var more bool
			err := s.run(ctx, func(c *txCtx) (err error) {
				n, more, err = c.trimRejected(r.RejectedMaxBytes, chunkSize)
				return err
			})
			st.RejectedBySize += n
			if err != nil {
				return st, err
			}
			if !more {
				break
			}
		}
	}
	return st, nil
}

// run submits fn as one op and waits for its commit.
func (s *Store) run(ctx context.Context, fn func(c *txCtx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.submit(ctx, &op{apply: fn})
}

func (s *Store) pruneMessages(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	from := uint64(1)
	for {
		var n int
		var next uint64
		var done bool
		err := s.run(ctx, func(c *txCtx) error {
			var err error
			n, next, done, err = c.pruneChunk(from, cutoff)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		from = next
		if done {
			break
		}
	}
	return total, s.run(ctx, func(c *txCtx) error { return c.pruneTimeIndex() })
}

// pruneChunk deletes the prunable messages among at most pruneScan records from
// seq from on, and says where to go on.
func (c *txCtx) pruneChunk(from uint64, cutoff time.Time) (n int, next uint64, done bool, err error) {
	mb := c.tx.Bucket(bMsg)
	type victim struct {
		seq uint64
		m   msgRecord
	}
	var victims []victim
	cur := mb.Cursor()
	scanned := 0
	k, v := cur.Seek(u64key(from))
	for ; k != nil; k, v = cur.Next() {
		if scanned == pruneScan || len(victims) == chunkSize {
			break
		}
		scanned++
		seq := keyU64(k)
		if !receivedOf(v).Before(cutoff) {
			k = nil // received in order: everything after is younger
			break
		}
		m, derr := decodeMessage(v, false)
		if derr != nil {
			continue // kept for an admin to look at; never deleted blindly
		}
		if c.settled(seq, &m) {
			victims = append(victims, victim{seq, m})
		}
	}
	if k == nil {
		done = true
	} else {
		next = keyU64(k)
	}
	for _, vi := range victims {
		if err := c.deleteMessage(vi.seq, &vi.m); err != nil {
			return 0, 0, false, err
		}
	}
	return len(victims), next, done, nil
}

// settled reports whether nothing remains to be done with message seq for any
// destination.
func (c *txCtx) settled(seq uint64, m *msgRecord) bool {
	for _, d := range deliveries(c.tx, seq, m) {
		switch d.State {
		case StateDelivered:
		case StateDead:
			if b := c.tx.Bucket(bDead).Bucket([]byte(d.Destination)); b != nil && b.Get(u64key(d.DeadLetterID)) != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (c *txCtx) deleteMessage(seq uint64, m *msgRecord) error {
	if err := c.tx.Bucket(bMsg).Delete(u64key(seq)); err != nil {
		return err
	}
	db := c.tx.Bucket(bDelivery)
	prefix := u64key(seq)
	var keys [][]byte
	cur := db.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := db.Delete(k); err != nil {
			return err
		}
	}
	if m.ControlID != "" {
		k := binary.BigEndian.AppendUint64(indexPrefix(&m.Message), seq)
		if err := c.tx.Bucket(bIdx).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneTimeIndex drops time-index entries that only point before the oldest
// remaining message, keeping the one that covers it (and always the newest,
// which records the last second indexed).
func (c *txCtx) pruneTimeIndex() error {
	first, _ := c.tx.Bucket(bMsg).Cursor().First()
	tb := c.tx.Bucket(bTime)
	var keys [][]byte
	cur := tb.Cursor()
	k, _ := cur.First()
	for k != nil && len(keys) < pruneScan {
		nk, nv := cur.Next()
		if nk == nil || (first != nil && keyU64(nv) > keyU64(first)) {
			break
		}
		keys = append(keys, append([]byte(nil), k...))
		k = nk
	}
	for _, k := range keys {
		if err := tb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) pruneRejectedAge(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.run(ctx, func(c *txCtx) error {
			n, more = 0, false
			b := c.tx.Bucket(bRejected)
			var keys [][]byte
			var freed int64
			cur := b.Cursor()
			for k, v := cur.First(); k != nil; k, v = cur.Next() {
				if len(keys) == chunkSize {
					more = true
					break
				}
				r, err := decodeRejected(k, v, false)
				if err == nil && !r.Time.Before(cutoff) {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
				freed += int64(len(v))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			if n == 0 {
				return nil
			}
			return c.addMetaCounter(kRejectedBytes, -freed)
		})
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// Stats are the store's persisted counters.
type Stats struct {
	RejectedBytes   int64 // encoded size of the rejected log
	RejectedDropped int64 // rejected records dropped by the size bound, ever
	LastSeq         uint64
	Commits         uint64 // write transactions committed since Open (each one fsync pair)
	CommittedOps    uint64 // writes (Append calls, Records, ...) in them since Open
}

// Stats returns the persisted counters.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.view(func(tx *bolt.Tx) error {
		c := txCtx{tx: tx}
		st.RejectedBytes = c.metaCounter(kRejectedBytes)
		st.RejectedDropped = c.metaCounter(kRejectedDropped)
		st.LastSeq = tx.Bucket(bMsg).Sequence()
		st.Commits = s.commits.Load()
		st.CommittedOps = s.committedOps.Load()
		return nil
	})
	return st, err
}
