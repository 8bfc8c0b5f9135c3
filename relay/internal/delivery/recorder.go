package delivery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mllpd/mllpd/store"
)

// recorderDepth bounds the attempt records a worker may have uncommitted; at
// the bound the worker waits (backpressure on a slow disk).
const recorderDepth = 1024

// A recorder hands a worker's attempt records to the store without waiting
// for their commit (store.RecordAsync), so that the worker sends the next
// message while the previous "delivered" mark joins a group commit with
// other writes. RecordAsync queues in call order and the store commits in
// queue order, and only the worker calls submit: records are committed in
// attempt order, so a crash re-sends at most a suffix of the queue, in order.
//
// Outcomes come back on the committing goroutine. A plain success with no
// event to report is settled there (it only frees its slot: nothing that
// blocks); anything else is handed over to the recorder's own goroutine (the
// store's callback must not block), which logs failures, reports events and
// wakes waiters.
type recorder struct {
	st      QueueStore
	dest    string
	log     *zap.Logger
	onEvent func(Event)
	slots   chan struct{} // one per uncommitted record: done never blocks
	comp    chan completion
	pending sync.WaitGroup // submitted, not yet completed
	open    atomic.Int64   // the same count, to tell when it reaches 0
	// settled receives (coalesced) when every record submitted so far is
	// committed: an idle worker then refreshes its gauges.
	settled chan struct{}
	done    chan struct{}
}

type recordReq struct {
	e      store.QueueEntry
	a      store.Attempt
	kind   string
	result chan<- error // nil: nobody waits
}

type completion struct {
	recordReq
	err   error
	tries int // failed commits so far
}

func newRecorder(st QueueStore, dest string, log *zap.Logger, onEvent func(Event)) *recorder {
	r := &recorder{st: st, dest: dest, log: log, onEvent: onEvent,
		slots: make(chan struct{}, recorderDepth), comp: make(chan completion, recorderDepth),
		settled: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *recorder) run() {
	defer close(r.done)
	for c := range r.comp {
		if r.retry(c) {
			continue // still pending: its slot stays held
		}
		r.complete(c)
		r.release()
	}
}

// release frees a completed record's slot. It never blocks.
func (r *recorder) release() {
	<-r.slots
	if r.open.Add(-1) == 0 {
		select {
		case r.settled <- struct{}{}:
		default:
		}
	}
	r.pending.Done()
}

// retry resubmits a record whose commit failed (a disk error, not a refusal
// by the store): a delivered mark that was lost would leave the entry
// pending, and the next start would send it again after newer messages. The
// store reopens its file after a failed commit; the record is written again
// with backoff until the store takes it or closes.
func (r *recorder) retry(c completion) bool {
	if c.err == nil || c.result != nil {
		return false
	}
	var ce *store.CommitError
	if !errors.As(c.err, &ce) {
		return false
	}
	c.tries++
	backoff := min(retryRecordInitial<<min(c.tries-1, 8), retryRecordMax)
	r.log.Warn("recording delivery attempt failed; retrying", zap.Uint64("seq", c.e.Seq), zap.Uint64("queue_id", c.e.ID),
		zap.Stringer("outcome", c.a.Outcome), zap.Int("tries", c.tries), zap.Duration("backoff", backoff), zap.Error(c.err))
	time.AfterFunc(backoff, func() {
		r.st.RecordAsync(context.Background(), r.dest, c.e.ID, c.a, func(err error) {
			c.err = err
			r.comp <- c // never blocks: the slot is still held
		})
	})
	return true
}

// Backoff of a failed record's retries.
const (
	retryRecordInitial = 50 * time.Millisecond
	retryRecordMax     = 2 * time.Second
)

func (r *recorder) complete(c completion) {
	if c.err != nil && c.result == nil {
		lvl := r.log.Error
		if errors.Is(c.err, store.ErrNotFound) {
			lvl = r.log.Warn // an admin skipped or requeued it meanwhile
		}
		lvl("recording delivery attempt", zap.Uint64("seq", c.e.Seq), zap.Uint64("queue_id", c.e.ID),
			zap.Stringer("outcome", c.a.Outcome), zap.Error(c.err))
	}
	if r.onEvent != nil {
		ev := Event{Dest: r.dest, QueueID: c.e.ID, Seq: c.e.Seq, Class: c.kind, Reason: c.a.Reason, Err: c.err}
		switch c.a.Outcome {
		case store.Delivered:
			ev.Kind = EventDelivered
		case store.DeadLettered:
			ev.Kind = EventDeadLettered
		default:
			ev.Kind = EventAttempted
		}
		r.onEvent(ev)
	}
	if c.result != nil {
		c.result <- c.err
	}
}

// submit hands a record to the store and returns once it is queued there
// (not committed). Only the worker's goroutine calls it.
func (r *recorder) submit(e store.QueueEntry, a store.Attempt, kind string, result chan<- error) {
	r.slots <- struct{}{}
	r.pending.Add(1)
	r.open.Add(1)
	req := recordReq{e: e, a: a, kind: kind, result: result}
	// Background: once an attempt happened its record is written, also
	// during shutdown (the store closes after the workers).
	r.st.RecordAsync(context.Background(), r.dest, e.ID, a, func(err error) {
		if err == nil && result == nil && r.onEvent == nil {
			r.release() // nothing to log, report or wake: no hand-over
			return
		}
		r.comp <- completion{recordReq: req, err: err} // never blocks: a slot is held
	})
}

// wait submits a record and waits for its commit.
func (r *recorder) wait(e store.QueueEntry, a store.Attempt, kind string) error {
	res := make(chan error, 1)
	r.submit(e, a, kind, res)
	return <-res
}

// close waits until every record submitted is committed (or failed) and
// stops the recorder's goroutine.
func (r *recorder) close() {
	r.pending.Wait()
	close(r.comp)
	<-r.done
}
