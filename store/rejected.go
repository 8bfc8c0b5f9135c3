package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxRejectedRaw is how much of a rejected input is kept.
const MaxRejectedRaw = 64 << 10

// A Rejected is input that was not accepted, kept for an admin to inspect.
type Rejected struct {
	ID       uint64
	Time     time.Time
	Listener string
	Peer     string
	Reason   string
	Size     int64    // the whole input's size
	Hash     [32]byte // sha256 of the whole input
	Raw      []byte   // at most MaxRejectedRaw bytes of it
}

// AddRejected stores r (group-committed with appends) and returns its ID. Raw
// longer than MaxRejectedRaw is cut; a zero Size or Hash is computed from Raw
// before the cut, so callers that cut the input themselves must set both. A
// zero Time is now. Below Options.MinFreeBytes it fails with ErrLowDiskSpace.
func (s *Store) AddRejected(ctx context.Context, r Rejected) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if r.Size == 0 {
		r.Size = int64(len(r.Raw))
	}
	if r.Hash == ([32]byte{}) {
		r.Hash = sha256.Sum256(r.Raw)
	}
	if len(r.Raw) > MaxRejectedRaw {
		r.Raw = r.Raw[:MaxRejectedRaw]
	}
	if s.space.low() {
		return 0, ErrLowDiskSpace
	}
	var id uint64
	o := &op{staged: true}
	o.apply = func(c *txCtx) error {
		b := c.tx.Bucket(bRejected)
		b.FillPercent = appendFill
		var err error
		if id, err = b.NextSequence(); err != nil {
			return err
		}
		rr := r
		if rr.Time.IsZero() {
			rr.Time = time.Unix(0, c.now)
		}
		v := encodeRejected(&rr)
		if err := b.Put(u64key(id), v); err != nil {
			return err
		}
		if err := c.addMetaCounter(kRejectedBytes, int64(len(v))); err != nil {
			return err
		}
		if max := s.opts.RejectedMaxBytes; max > 0 {
			_, _, err := c.trimRejected(max, chunkSize)
			return err
		}
		return nil
	}
	if err := s.submit(ctx, o); err != nil {
		return 0, err
	}
	s.space.wrote(len(r.Raw))
	return id, nil
}

// trimRejected drops the oldest rejected records (at most n) while the log is
// above max bytes, counting the drops. It never drops the newest record.
func (c *txCtx) trimRejected(max int64, n int) (dropped int, more bool, err error) {
	b := c.tx.Bucket(bRejected)
	total := c.metaCounter(kRejectedBytes)
	var keys [][]byte
	var freed int64
	cur := b.Cursor()
	last, _ := cur.Last()
	for k, v := cur.First(); k != nil && total-freed > max && !bytes.Equal(k, last); k, v = cur.Next() {
		if len(keys) == n {
			more = true
			break
		}
		keys = append(keys, append([]byte(nil), k...))
		freed += int64(len(v))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, false, err
		}
	}
	if len(keys) == 0 {
		return 0, false, nil
	}
	if err := c.addMetaCounter(kRejectedBytes, -freed); err != nil {
		return 0, false, err
	}
	return len(keys), more, c.addMetaCounter(kRejectedDropped, int64(len(keys)))
}

func (c *txCtx) metaCounter(k []byte) int64 {
	v := c.tx.Bucket(bMeta).Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (c *txCtx) addMetaCounter(k []byte, d int64) error {
	n := c.metaCounter(k) + d
	if n < 0 {
		n = 0
	}
	return c.tx.Bucket(bMeta).Put(k, u64key(uint64(n)))
}

// ListRejected returns up to limit rejected records after afterID, oldest
// first, without their Raw bytes (GetRejected has them).
func (s *Store) ListRejected(afterID uint64, limit int) ([]Rejected, error) {
	limit = pageLimit(limit)
	var out []Rejected
	err := s.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bRejected).Cursor()
		for k, v := cur.Seek(u64key(afterID + 1)); k != nil && len(out) < limit; k, v = cur.Next() {
			r, err := decodeRejected(k, v, false)
			if err != nil {
				return fmt.Errorf("store: rejected %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// GetRejected returns rejected record id with its Raw bytes, or ErrNotFound.
func (s *Store) GetRejected(id uint64) (Rejected, error) {
	var r Rejected
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bRejected).Get(u64key(id))
		if v == nil {
			return fmt.Errorf("store: rejected %d: %w", id, ErrNotFound)
		}
		var err error
		r, err = decodeRejected(u64key(id), v, true)
		return err
	})
	return r, err
}
