package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Paging bounds for the listing methods.
const (
	DefaultPageSize = 100
	MaxPageSize     = 10000
	chunkSize       = 1000 // entries moved or deleted per transaction by bulk operations
)

func pageLimit(n int) int {
	if n <= 0 {
		return DefaultPageSize
	}
	return min(n, MaxPageSize)
}

// A QueueEntry is one message waiting for one destination.
type QueueEntry struct {
	Destination string
	ID          uint64 // position in its queue; increases in accept order
	Seq         uint64
	Route       string // the route that chose this destination
	Enqueued    time.Time
}

// Outcome says what a delivery attempt did to its queue entry.
type Outcome int

const (
	// Attempted records a failure; the entry stays at the head of its queue.
	Attempted Outcome = iota
	// Delivered records success; the entry leaves the queue.
	Delivered
	// DeadLettered moves the entry to its destination's dead letters.
	DeadLettered
)

func (o Outcome) String() string {
	switch o {
	case Attempted:
		return "attempted"
	case Delivered:
		return "delivered"
	case DeadLettered:
		return "dead_lettered"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// An Attempt is one delivery try and what the downstream answered.
type Attempt struct {
	At           time.Time
	Outcome      Outcome
	AckCode      string // MSA-1
	AckControlID string // MSA-2
	ErrorCode    string // ERR-3
	HTTPStatus   int
	Err          string // transport or classification error; no message content
	Reason       string // why it was dead-lettered
}

// isTry reports whether a reached the downstream or tried to: a dead-lettering
// with no answer and no error (route removed, admin skip) is no attempt.
func (a *Attempt) isTry() bool {
	return a.Outcome != DeadLettered || a.AckCode != "" || a.HTTPStatus != 0 || a.Err != ""
}

// Delivery states.
const (
	StatePending   = "pending"   // queued, not delivered yet
	StateDelivered = "delivered" // the downstream accepted it
	StateDead      = "dead"      // in the destination's dead letters
	StateRequeued  = "requeued"  // queued again by an admin resend
)

// A Delivery is the state of one message for one destination.
type Delivery struct {
	Destination, Route string
	State              string // StatePending, StateDelivered, StateDead, StateRequeued
	Attempts           int
	FirstAttempt       time.Time
	LastAttempt        time.Time
	DeliveredAt        time.Time
	AckCode            string // last MSA-1
	AckControlID       string // last MSA-2
	ErrorCode          string // last ERR-3
	HTTPStatus         int
	LastError          string
	DeadReason         string
	QueueID            uint64 // the latest queue entry for this message and destination
	DeadLetterID       uint64 // the dead letter, while State is StateDead
}

// A DeadLetter is a message given up on for one destination.
type DeadLetter struct {
	Destination string
	ID          uint64 // position in the destination's dead letters
	Seq         uint64
	Route       string
	Enqueued    time.Time // when it was queued
	Time        time.Time // when it was dead-lettered
	Reason      string
}

func deliveryKey(seq uint64, dest string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(dest)), seq)
	return append(k, dest...)
}

// Pending returns up to limit entries of dest's queue after afterID, in accept
// order. A destination never seen has an empty queue.
func (s *Store) Pending(dest string, afterID uint64, limit int) ([]QueueEntry, error) {
	limit = pageLimit(limit)
	var out []QueueEntry
	var last QueueEntry
	err := s.view(func(tx *bolt.Tx) error {
		qc := newQueueCursor(tx.Bucket(bIdx), queuePrefix(dest), afterID+1)
		for len(out) < limit {
			id, v, ok := qc.next()
			if !ok {
				break
			}
			e, err := decodeQueueEntry(dest, u64key(id), v)
			if err != nil {
				return fmt.Errorf("store: queue %q entry %d: %w", dest, id, err)
			}
			out = append(out, e)
		}
		if len(out) == limit {
			return nil
		}
		return stagedEntries(tx, dest, s.hints.from(dest, afterID), func(e QueueEntry) bool {
			if e.ID > afterID {
				out = append(out, e)
				last = e
			}
			return len(out) < limit
		})
	})
	if last.ID != 0 {
		s.hints.set(dest, last.ID, last.Seq)
	}
	return out, err
}

// PendingCount returns how many entries wait in dest's queue and when the
// oldest was queued (zero if none). It reads a persisted counter and the
// staged tail (at most maxStaged messages), not the queue.
func (s *Store) PendingCount(dest string) (n int, oldest time.Time, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		n, oldest = pendingCount(tx, dest)
		return nil
	})
	return n, oldest, err
}

func pendingCount(tx *bolt.Tx, dest string) (n int, oldest time.Time) {
	b := tx.Bucket(bIdx)
	count, _, _ := queueState(b, queuePrefix(dest))
	n = int(count)
	if e, ok := headEntry(b, dest); ok {
		oldest = e.Enqueued
	}
	_ = stagedEntries(tx, dest, 0, func(e QueueEntry) bool {
		if n == 0 || oldest.IsZero() {
			oldest = e.Enqueued
		}
		n++
		return true
	})
	return n, oldest
}

// Record stores the outcome of a delivery attempt for queue entry id of dest.
// It is group-committed with appends and other records (many per fsync). An
// entry no longer in the queue (already delivered or dead-lettered) gives
// ErrNotFound.
func (s *Store) Record(ctx context.Context, dest string, id uint64, a Attempt) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.submit(ctx, s.recordOp(dest, id, a))
}

// RecordAsync is Record without waiting for the commit: the attempt joins the
// next group commit and RecordAsync returns at once (ctx bounds only a wait
// for room when MaxBatch ops are already queued). done, if not nil, is called
// exactly once with the outcome, from the committing goroutine (or at once if
// the op was refused): it must not block or call the Store.
//
// This lets a delivery worker go on to its next entry while the delivered mark
// is committed with other writes; after a crash at most the marks not yet
// committed are lost and those messages are delivered again (at least once).
// The attempt starts no commit of its own: it waits up to 25 ms for another
// write's batch, so that a lone sender's next append carries its message's
// delivered mark instead of queueing behind a commit of the mark alone.
// The worker must page with Pending's afterID rather than re-reading the head.
func (s *Store) RecordAsync(ctx context.Context, dest string, id uint64, a Attempt, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	if s.closed.Load() {
		done(ErrClosed)
		return
	}
	o := s.recordOp(dest, id, a)
	o.done = done
	o.lazy = true
	if err := s.submit(ctx, o); err != nil {
		done(err)
	}
}

func (s *Store) recordOp(dest string, id uint64, a Attempt) *op {
	o := &op{staged: true}
	o.apply = func(c *txCtx) error {
		q, v, err := c.queueEntry(dest, id)
		if err == nil && v == nil && c.queueStaged() > 0 {
			// Perhaps a staged entry (read by Pending from the staged tail):
			// write the staged queue entries, then look again.
			if err := c.materializeQueues(); err != nil {
				return err
			}
			q, v, err = c.queueEntry(dest, id)
		}
		if err != nil {
			return err
		}
		if v == nil {
			o.err = fmt.Errorf("store: record %q entry %d: %w", dest, id, ErrNotFound)
			return nil
		}
		e, err := decodeQueueEntry(dest, u64key(id), v)
		if err != nil {
			o.err = fmt.Errorf("store: record %q entry %d: %w", dest, id, err)
			return nil
		}
		return c.record(q, e, &a)
	}
	return o
}

// queueEntry returns dest's queue and the value of its entry id (nil if absent).
func (c *txCtx) queueEntry(dest string, id uint64) (*queueRef, []byte, error) {
	q, err := c.queue(dest, false)
	if err != nil || q == nil {
		return nil, nil, err
	}
	return q, q.get(id), nil
}

// record applies a to queue entry e (still in q).
func (c *txCtx) record(q *queueRef, e QueueEntry, a *Attempt) error {
	db := c.tx.Bucket(bDelivery)
	dk := deliveryKey(e.Seq, e.Destination)
	dl := Delivery{Destination: e.Destination, Route: e.Route, State: StatePending, QueueID: e.ID}
	if v := db.Get(dk); v != nil {
		if old, err := decodeDelivery(e.Destination, v); err == nil {
			dl = old
		}
	}
	at := a.At
	if at.IsZero() {
		at = time.Unix(0, c.now)
	}
	if a.isTry() {
		dl.Attempts++
		if dl.FirstAttempt.IsZero() {
			dl.FirstAttempt = at
		}
		dl.LastAttempt = at
		dl.AckCode, dl.AckControlID, dl.ErrorCode, dl.HTTPStatus = a.AckCode, a.AckControlID, a.ErrorCode, a.HTTPStatus
		if a.Err != "" || a.Outcome != Delivered {
			dl.LastError = a.Err
		}
	}
	switch a.Outcome {
	case Delivered:
		dl.State = StateDelivered
		dl.DeliveredAt = at
		if err := q.del(e.ID); err != nil {
			return err
		}
	case DeadLettered:
		id, err := c.deadLetter(e, at, a.Reason)
		if err != nil {
			return err
		}
		dl.State = StateDead
		dl.DeadReason = a.Reason
		dl.DeadLetterID = id
		if err := q.del(e.ID); err != nil {
			return err
		}
	}
	return db.Put(dk, encodeDelivery(&dl))
}

// deadLetter adds e to its destination's dead letters.
func (c *txCtx) deadLetter(e QueueEntry, at time.Time, reason string) (uint64, error) {
	b, err := c.tx.Bucket(bDead).CreateBucketIfNotExists([]byte(e.Destination))
	if err != nil {
		return 0, err
	}
	b.FillPercent = appendFill
	id, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	return id, b.Put(u64key(id), encodeDeadLetter(e.Seq, at, e.Enqueued, e.Route, reason))
}

// Requeue queues message seq again for dest at the tail of its queue (an admin
// resend), under route (empty = the route that queued it before). A dead
// letter of seq for dest is removed. It fails with ErrNotFound for an unknown
// seq and ErrAlreadyQueued if seq still waits in that queue.
func (s *Store) Requeue(ctx context.Context, dest string, seq uint64, route string) (QueueEntry, error) {
	if s.closed.Load() {
		return QueueEntry{}, ErrClosed
	}
	var out QueueEntry
	o, err := s.requeueOp(dest, seq, route, &out)
	if err != nil {
		return QueueEntry{}, err
	}
	if err := s.submit(ctx, o); err != nil {
		return QueueEntry{}, err
	}
	return out, nil
}

// RequeueAsync is Requeue without waiting for the commit: done is called
// with the new entry (or the error) once the transaction holding it has
// committed. Calls are applied in call order, so a backfill of many messages
// keeps its order and shares commits instead of paying one fsync each.
func (s *Store) RequeueAsync(ctx context.Context, dest string, seq uint64, route string, done func(QueueEntry, error)) {
	if s.closed.Load() {
		done(QueueEntry{}, ErrClosed)
		return
	}
	out := new(QueueEntry)
	o, err := s.requeueOp(dest, seq, route, out)
	if err != nil {
		done(QueueEntry{}, err)
		return
	}
	o.done = func(err error) {
		if err != nil {
			done(QueueEntry{}, err)
			return
		}
		done(*out, nil)
	}
	if err := s.submit(ctx, o); err != nil {
		done(QueueEntry{}, err)
	}
}

func (s *Store) requeueOp(dest string, seq uint64, route string, out *QueueEntry) (*op, error) {
	if !validName(dest) || len(route) > maxNameLen {
		return nil, fmt.Errorf("store: requeue: %w: destination and route names must be 1..%d bytes without NUL", ErrInvalid, maxNameLen)
	}
	o := &op{}
	o.apply = func(c *txCtx) error {
		v := c.tx.Bucket(bMsg).Get(u64key(seq))
		if v == nil {
			o.err = fmt.Errorf("store: requeue message %d: %w", seq, ErrNotFound)
			return nil
		}
		m, err := decodeMessage(v, false)
		if err != nil {
			o.err = fmt.Errorf("store: requeue message %d: %w", seq, err)
			return nil
		}
		q, err := c.queue(dest, false)
		if err != nil {
			return err
		}
		db := c.tx.Bucket(bDelivery)
		dk := deliveryKey(seq, dest)
		var dl Delivery
		have := false
		if dv := db.Get(dk); dv != nil {
			if dl, err = decodeDelivery(dest, dv); err == nil {
				have = true
			}
		}
		queued := func(id uint64) bool { return q != nil && id != 0 && q.get(id) != nil }
		if have && queued(dl.QueueID) {
			o.err = fmt.Errorf("store: requeue message %d for %q: %w", seq, dest, ErrAlreadyQueued)
			return nil
		}
		for i, t := range m.Targets {
			if t.Destination != dest {
				continue
			}
			if !have && queued(m.queueIDs[i]) {
				o.err = fmt.Errorf("store: requeue message %d for %q: %w", seq, dest, ErrAlreadyQueued)
				return nil
			}
			if route == "" && !have {
				dl.Route = t.Route
			}
		}
		if route != "" {
			dl.Route = route
		}
		id, err := c.enqueue(dest, dl.Route, seq)
		if err != nil {
			return err
		}
		if dl.DeadLetterID != 0 {
			if b := c.tx.Bucket(bDead).Bucket([]byte(dest)); b != nil {
				if err := b.Delete(u64key(dl.DeadLetterID)); err != nil {
					return err
				}
			}
		}
		dl.Destination = dest
		dl.State = StateRequeued
		dl.QueueID = id
		dl.DeadLetterID = 0
		*out = QueueEntry{Destination: dest, ID: id, Seq: seq, Route: dl.Route, Enqueued: time.Unix(0, c.now)}
		return db.Put(dk, encodeDelivery(&dl))
	}
	return o, nil
}

// DeadLetterQueue moves every entry of dest's queue to its dead letters with
// reason (a destination removed by reload: "destination removed"). It works in
// chunks of transactions, so appends are not held up by a long queue, and
// returns how many entries it moved.
func (s *Store) DeadLetterQueue(ctx context.Context, dest, reason string) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if s.closed.Load() {
			return total, ErrClosed
		}
		n := 0
		o := &op{}
		o.apply = func(c *txCtx) error {
			n = 0
			q, err := c.queue(dest, false)
			if err != nil || q == nil {
				return err
			}
			var entries []QueueEntry
			qc := newQueueCursor(q.b, q.prefix, 1)
			for len(entries) < chunkSize {
				id, v, ok := qc.next()
				if !ok {
					break
				}
				e, err := decodeQueueEntry(dest, u64key(id), v)
				if err != nil {
					return fmt.Errorf("queue %q entry %d: %w", dest, id, err)
				}
				entries = append(entries, e)
			}
			a := Attempt{Outcome: DeadLettered, Reason: reason}
			for _, e := range entries {
				if err := c.record(q, e, &a); err != nil {
					return err
				}
			}
			n = len(entries)
			return nil
		}
		if err := s.submit(ctx, o); err != nil {
			return total, err
		}
		total += n
		if n < chunkSize {
			return total, nil
		}
	}
}

// SetBlocked marks dest's queue blocked with reason (shown to admins). The
// mark survives restarts until Unblock.
func (s *Store) SetBlocked(ctx context.Context, dest, reason string) error {
	return s.setBlocked(ctx, dest, true, reason)
}

// Unblock clears dest's blocked mark.
func (s *Store) Unblock(ctx context.Context, dest string) error {
	return s.setBlocked(ctx, dest, false, "")
}

func (s *Store) setBlocked(ctx context.Context, dest string, blocked bool, reason string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !validName(dest) {
		return fmt.Errorf("store: block: %w: destination name must be 1..%d bytes without NUL", ErrInvalid, maxNameLen)
	}
	o := &op{staged: true}
	o.apply = func(c *txCtx) error {
		b := c.tx.Bucket(bDest)
		st := decodeDestState(b.Get([]byte(dest)))
		st.blocked, st.reason, st.blockedAt = blocked, reason, time.Time{}
		if blocked {
			st.blockedAt = time.Unix(0, c.now)
		}
		return b.Put([]byte(dest), st.encode())
	}
	return s.submit(ctx, o)
}

// Blocked reports whether dest's queue is blocked, and why.
func (s *Store) Blocked(dest string) (reason string, blocked bool) {
	_ = s.view(func(tx *bolt.Tx) error {
		st := decodeDestState(tx.Bucket(bDest).Get([]byte(dest)))
		reason, blocked = st.reason, st.blocked
		return nil
	})
	return reason, blocked
}

// DeadLetters returns up to limit of dest's dead letters after afterID, oldest first.
func (s *Store) DeadLetters(dest string, afterID uint64, limit int) ([]DeadLetter, error) {
	limit = pageLimit(limit)
	var out []DeadLetter
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bDead).Bucket([]byte(dest))
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		for k, v := cur.Seek(u64key(afterID + 1)); k != nil && len(out) < limit; k, v = cur.Next() {
			d, err := decodeDeadLetter(dest, k, v)
			if err != nil {
				return fmt.Errorf("store: dead letter %q %x: %w", dest, k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// PurgeDeadLetters deletes dest's dead letters older than olderThan (dest ""
// = every destination) and returns how many it deleted. The messages
// themselves go with the delivered-message retention once nothing refers to
// them.
func (s *Store) PurgeDeadLetters(ctx context.Context, dest string, olderThan time.Time) (int, error) {
	var dests []string
	if dest != "" {
		dests = []string{dest}
	} else {
		err := s.view(func(tx *bolt.Tx) error {
			return tx.Bucket(bDead).ForEachBucket(func(k []byte) error {
				dests = append(dests, string(k))
				return nil
			})
		})
		if err != nil {
			return 0, err
		}
	}
	total := 0
	for _, d := range dests {
		n, err := s.purgeDead(ctx, d, olderThan)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Store) purgeDead(ctx context.Context, dest string, olderThan time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if s.closed.Load() {
			return total, ErrClosed
		}
		n, more := 0, false
		o := &op{}
		o.apply = func(c *txCtx) error {
			n, more = 0, false
			b := c.tx.Bucket(bDead).Bucket([]byte(dest))
			if b == nil {
				return nil
			}
			var keys [][]byte
			cur := b.Cursor()
			for k, v := cur.First(); k != nil; k, v = cur.Next() {
				if len(keys) == chunkSize {
					more = true
					break
				}
				d, err := decodeDeadLetter(dest, k, v)
				if err == nil && !d.Time.Before(olderThan) {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		}
		if err := s.submit(ctx, o); err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// A DestinationState summarises one destination's queue for admins.
type DestinationState struct {
	Name        string
	Pending     int
	Oldest      time.Time // enqueue time of the head entry; zero if none
	Blocked     bool
	BlockedAt   time.Time
	Reason      string
	DeadLetters int
}

// Destinations lists every destination the store knows (with a queue, a
// blocked mark or dead letters), by name. Counting dead letters reads their
// bucket: meant for admin calls, not for a hot path.
func (s *Store) Destinations() ([]DestinationState, error) {
	byName := map[string]*DestinationState{}
	get := func(name []byte) *DestinationState {
		d := byName[string(name)]
		if d == nil {
			d = &DestinationState{Name: string(name)}
			byName[d.Name] = d
		}
		return d
	}
	err := s.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bDest).ForEach(func(k, v []byte) error {
			st := decodeDestState(v)
			d := get(k)
			d.Blocked, d.BlockedAt, d.Reason = st.blocked, st.blockedAt, st.reason
			return nil
		}); err != nil {
			return err
		}
		// A destination first queued by a staged message is not in bDest yet.
		_ = stagedTail(tx, tagQueue, 0, func(_ uint64, r *stagedRecord) bool {
			for _, t := range r.targets {
				get(t.dest)
			}
			return true
		})
		for _, d := range byName {
			d.Pending, d.Oldest = pendingCount(tx, d.Name)
		}
		db := tx.Bucket(bDead)
		return db.ForEachBucket(func(k []byte) error {
			get(k).DeadLetters = db.Bucket(k).Stats().KeyN
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]DestinationState, 0, len(byName))
	for _, d := range byName {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DestinationState) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
