package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// An op is one caller's write, applied inside a shared transaction.
//
// apply must do every check that can fail for the caller's own reasons (not
// found, already queued) before its first write, and report such a failure by
// setting o.err and returning nil: the batch goes on. A non-nil return means a
// write failed and the transaction is unusable; the batch is then retried
// without this op.
type op struct {
	apply func(c *txCtx) error
	err   error
	// staged: apply works with staged messages (stage.go) as they are; any
	// other op runs after the batch has materialized them.
	staged bool
	broke  bool        // apply failed a write; left out of the retried transaction
	wake   chan bool   // sync ops: true = you lead the next batch; false = your batch is done
	done   func(error) // async ops: called with the outcome by the committing goroutine
	// lazy (async ops only): starts no commit of its own; it joins the next
	// batch another write starts, or one started after lazyDelay.
	lazy bool
	// callerLeads (async ops only): with no commit in progress, the caller's
	// goroutine commits the batch itself, as a synchronous op's would,
	// instead of starting a goroutine to do it. A lone writer then pays no
	// goroutine handoff and no thread wakeup: measured on the daemon with one
	// connection, 20% less CPU per message.
	callerLeads bool
	// Appends have no apply: they carry their messages (msgs, made ready in
	// prep) and results (res), which spares a closure per message. prep's
	// record buffers go back to recordPool once the batch is over (bbolt
	// copied them into its pages at commit).
	msgs []Message
	prep []prepared
	res  []AppendResult
}

// txCtx is the state of one batch transaction.
type txCtx struct {
	tx      *bolt.Tx
	s       *Store
	now     int64                // unix nanoseconds at the start of the batch
	lastSec int64                // last second in the time index; -1 = not loaded
	queues  map[string]*queueRef // queues touched by the batch

	// Staging (stage.go) of this transaction, folded into Store.stage once it commits.
	indexed  uint64 // last seq with control-ID entries written
	queued   uint64 // last seq with queue entries written
	marksOK  bool   // indexed and queued are loaded
	cleared  bool   // control-ID entries materialized: Store.stage's no longer apply
	qCleared bool   // queue entries materialized, likewise
	stN      int    // messages staged by this transaction since cleared
	stQN     int    // since qCleared
	stDedupe map[string]dedupeEntry
	stLast   map[string]uint64
	stCtrl   entryLog
	stQueue  entryLog

	ops    int          // operations in the batch, to size what they fill
	msgB   *bolt.Bucket // the message log, for appends
	idxCur *bolt.Cursor // the dedupe lookups' cursor on idx
	keyBuf []byte       // their seek key
	seqKey []byte       // an appended message's key
}

// groupCommit is the leader/follower batching of writers. The first caller to
// arrive when nobody commits becomes leader and commits at once; callers who
// arrive meanwhile queue up, and when the leader's commit is done the first of
// them leads the next batch, holding everyone who queued until then. No
// goroutine or timer of its own: one writer alone pays exactly one commit.
type groupCommit struct {
	mu       sync.Mutex
	idle     sync.Cond // signalled when leading becomes false
	pending  []*op
	spare    []*op
	leading  bool
	closed   bool
	max      int
	hasSpace chan struct{} // closed when the leader takes a full batch; nil if nobody waits
	lazy     *time.Timer   // armed while only lazy ops wait and nobody leads
	armed    bool          // lazy is armed: later lazy ops do not push it back
	lazyWait time.Duration // lazyDelay; tests change it
	lead     func()        // leads the pending ops (Store.lead(nil)); for the lazy timer and close
}

// lazyDelay is how long a lazy op (a delivery mark) waits for another write
// to share its commit. While senders send, marks ride on their appends'
// fsyncs instead of making an append wait behind a commit of its own. When
// nothing else is written (a worker draining its backlog after an outage)
// it sets how many marks share one commit: measured on the daemon draining
// 64 senders' backlog over loopback (four interleaved rounds), 2 ms gave
// 8,837 msg/s, 10 ms 10,030 and 25 ms 10,666, with the same daemon CPU. A
// crash loses at most this long of marks: those messages are delivered
// again (at least once).
const lazyDelay = 25 * time.Millisecond

func (g *groupCommit) init(max int, lead func()) {
	g.idle.L = &g.mu
	g.max = max
	g.lead = lead
	g.lazyWait = lazyDelay
}

// close refuses new ops and waits until the batch in flight and every op queued
// before it (lazy ones too) are committed. It returns false if already closed.
func (g *groupCommit) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.closed = true
	if g.hasSpace != nil {
		close(g.hasSpace)
		g.hasSpace = nil
	}
	if g.lazy != nil {
		g.lazy.Stop()
	}
	for {
		for g.leading {
			g.idle.Wait()
		}
		if len(g.pending) == 0 {
			return true
		}
		g.leading = true // lazy ops left waiting for a batch
		g.mu.Unlock()
		g.lead()
		g.mu.Lock()
	}
}

// leadLazy is the lazy timer's: it commits the lazy ops nobody took along.
func (g *groupCommit) leadLazy() {
	g.mu.Lock()
	g.armed = false
	if g.leading || len(g.pending) == 0 {
		g.mu.Unlock()
		return
	}
	g.leading = true
	g.mu.Unlock()
	g.lead()
}

// armLazy starts the lazy timer unless it runs already (the oldest lazy op
// waits at most lazyWait); g.mu is held and nobody leads.
func (g *groupCommit) armLazy() {
	if g.armed {
		return
	}
	g.armed = true
	if g.lazy == nil {
		g.lazy = time.AfterFunc(g.lazyWait, g.leadLazy)
		return
	}
	g.lazy.Reset(g.lazyWait)
}

// onlyLazy reports whether every pending op is lazy; g.mu is held.
func (g *groupCommit) onlyLazy() bool {
	for _, o := range g.pending {
		if !o.lazy {
			return false
		}
	}
	return true
}

// submit runs o in the next batch and returns once its outcome is known. ctx
// bounds only the wait for room in a batch; once queued, the caller waits for
// the commit whatever ctx says, so it never mistakes a stored write for a lost
// one.
func (s *Store) submit(ctx context.Context, o *op) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	g := &s.gc
	g.mu.Lock()
	for !g.closed && len(g.pending) >= g.max {
		if g.hasSpace == nil {
			g.hasSpace = make(chan struct{})
		}
		ch := g.hasSpace
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
	}
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		g.mu.Unlock()
		return err
	}
	g.pending = append(g.pending, o)
	if o.done != nil {
		// Asynchronous: nobody waits. Start a leader if there is none; the
		// leader in flight otherwise takes this op into its next batch. A
		// lazy op waits for the next batch somebody else starts, at most
		// lazyDelay.
		start := !g.leading && !o.lazy
		if !g.leading && o.lazy {
			g.armLazy()
		}
		if start {
			g.leading = true
		}
		g.mu.Unlock()
		if start && o.callerLeads {
			s.lead(o) // hands the next batch on (to a goroutine) if others queued meanwhile
			o.done(o.err)
		} else if start {
			go s.lead(nil)
		}
		return nil
	}
	if g.leading {
		if o.wake == nil {
			o.wake = make(chan bool, 1)
		}
		g.mu.Unlock()
		if !<-o.wake {
			return o.err
		}
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	s.lead(o)
	return o.err
}

// lead commits every queued op (self among them, if not nil), reports their
// outcomes and hands leadership to the first waiting caller that queued
// meanwhile; if only asynchronous ops queued, a new goroutine leads them.
//
// A goroutine leading for asynchronous ops only (self nil) goes on leading
// while only asynchronous ops queue, rather than starting a goroutine per
// batch; a synchronous caller never leads more than its own batch.
func (s *Store) lead(self *op) {
	g := &s.gc
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = g.spare[:0]
		g.spare = nil
		if g.hasSpace != nil {
			close(g.hasSpace)
			g.hasSpace = nil
		}
		g.mu.Unlock()

		s.commitBatch(batch)

		for i, o := range batch {
			switch {
			case o == self:
			case o.done != nil:
				o.done(o.err)
			default:
				o.wake <- false
			}
			batch[i] = nil
		}
		g.mu.Lock()
		g.spare = batch[:0]
		if len(g.pending) == 0 || (!g.closed && g.onlyLazy()) {
			if len(g.pending) > 0 {
				g.armLazy()
			}
			g.leading = false
			g.idle.Broadcast()
			g.mu.Unlock()
			return
		}
		for _, next := range g.pending {
			if next.done == nil {
				g.mu.Unlock()
				next.wake <- true
				return
			}
		}
		g.mu.Unlock()
		if self != nil {
			go s.lead(nil)
			return
		}
	}
}

// commitBatch applies the ops in one transaction and commits it (one fsync
// pair). Every op's err is set to its outcome.
func (s *Store) commitBatch(batch []*op) {
	fail := func(err error) {
		ce := &CommitError{Err: err}
		for _, o := range batch {
			if o.err == nil {
				o.err = ce
			}
		}
	}
	if s.broken {
		if err := s.reopen(); err != nil {
			fail(err)
			return
		}
		s.broken = false
	}
	for {
		retry, err := s.tryBatch(batch)
		if err != nil {
			s.broken = true
			s.log.Error("store: commit failed; the file is reopened before the next write",
				zap.Int("ops", len(batch)), zap.Error(err))
			fail(err)
			return
		}
		if !retry {
			return
		}
	}
}

// tryBatch runs one transaction over the ops still without an error. It
// returns retry=true after an op broke the transaction (that op keeps its
// error; the others run again), and a non-nil error when the transaction as a
// whole failed to begin or commit.
func (s *Store) tryBatch(batch []*op) (retry bool, err error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return false, ErrClosed
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	c := txCtx{tx: tx, s: s, now: s.now().UnixNano(), lastSec: -1, ops: len(batch)}
	// idx is mostly written in key order too: queue entries at their
	// queues' tails, control IDs that count up per sender. Packed full, a
	// batch that materializes writes fewer pages: measured at 256 writers,
	// 0.128 pages a message instead of 0.137.
	tx.Bucket(bIdx).FillPercent = appendFill
	for _, o := range batch {
		if o.broke {
			continue
		}
		o.err = nil // outcomes of an earlier, rolled-back try do not count
		if !o.staged && c.staged() > 0 {
			if err := c.materialize(); err != nil {
				_ = tx.Rollback()
				return false, fmt.Errorf("index staged messages: %w", err)
			}
		}
		if err := safeApply(o, &c); err != nil {
			_ = tx.Rollback()
			o.err = fmt.Errorf("store: write: %w", err)
			o.broke = true
			return true, nil
		}
	}
	if c.staged() > maxStaged {
		if err := c.materialize(); err != nil {
			_ = tx.Rollback()
			return false, fmt.Errorf("index staged messages: %w", err)
		}
	}
	if err := c.flush(); err != nil {
		_ = tx.Rollback()
		return false, err
	}
	if err := s.fault.commitFault(); err != nil {
		_ = tx.Rollback()
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	s.stage.commit(&c)
	s.commits.Add(1)
	s.committedOps.Add(uint64(len(batch)))
	return false, nil
}

// safeApply runs o.apply (or o's append), turning a panic (a bug, never
// input) into an error for that op alone, so the leader and the rest of its
// batch carry on.
func safeApply(o *op, c *txCtx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in store operation: %v", p)
		}
	}()
	if o.apply == nil {
		return c.appendMessages(o.msgs, o.prep, o.res)
	}
	return o.apply(c)
}

// flush writes the state (count, last ID) of every queue the batch changed:
// once per queue and transaction, not once per message.
func (c *txCtx) flush() error {
	for _, q := range c.queues {
		if err := q.flush(); err != nil {
			return err
		}
	}
	return nil
}

// appendFill is the FillPercent of buckets written in key order (message log,
// idx, time index, rejected log, dead letters).
const appendFill = 0.95
