package delivery

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/mllpd/mllpd/store"
)

// recorderDepth bounds the attempt records a worker may have in flight; a
// full queue makes the worker wait (backpressure on a slow disk).
const recorderDepth = 1024

// A recorder writes a worker's attempt records in the order they were made,
// from one goroutine, so that the worker can send the next message while the
// previous one's "delivered" commits: a crash then re-sends at most a suffix
// of the queue, in order (records are never committed out of order).
type recorder struct {
	st      QueueStore
	dest    string
	log     *zap.Logger
	onEvent func(Event)
	ch      chan recordReq
	done    chan struct{}
}

type recordReq struct {
	e       store.QueueEntry
	a       store.Attempt
	kind    string
	result  chan<- error // nil: nobody waits
	barrier bool
}

func newRecorder(st QueueStore, dest string, log *zap.Logger, onEvent func(Event)) *recorder {
	r := &recorder{st: st, dest: dest, log: log, onEvent: onEvent,
		ch: make(chan recordReq, recorderDepth), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *recorder) run() {
	defer close(r.done)
	// Records outlive the worker's ctx: once an attempt happened it is
	// written, also during shutdown (the store closes after the workers).
	ctx := context.Background()
	for req := range r.ch {
		if req.barrier { // everything queued before it is written
			req.result <- nil
			continue
		}
		err := r.st.Record(ctx, r.dest, req.e.ID, req.a)
		if err != nil && req.result == nil {
			lvl := r.log.Error
			if errors.Is(err, store.ErrNotFound) {
				lvl = r.log.Warn // an admin skipped or removed it meanwhile
			}
			lvl("recording delivery attempt", zap.Uint64("seq", req.e.Seq), zap.Uint64("queue_id", req.e.ID),
				zap.Stringer("outcome", req.a.Outcome), zap.Error(err))
		}
		if r.onEvent != nil {
			ev := Event{Dest: r.dest, QueueID: req.e.ID, Seq: req.e.Seq, Class: req.kind, Reason: req.a.Reason, Err: err}
			switch req.a.Outcome {
			case store.Delivered:
				ev.Kind = EventDelivered
			case store.DeadLettered:
				ev.Kind = EventDeadLettered
			default:
				ev.Kind = EventAttempted
			}
			r.onEvent(ev)
		}
		if req.result != nil {
			req.result <- err
		}
	}
}

// submit queues a record and returns at once.
func (r *recorder) submit(e store.QueueEntry, a store.Attempt, kind string, result chan<- error) {
	r.ch <- recordReq{e: e, a: a, kind: kind, result: result}
}

// wait queues a record behind those already queued and waits for its commit.
// It cannot be abandoned: the record is written whatever the caller does.
func (r *recorder) wait(e store.QueueEntry, a store.Attempt, kind string) error {
	res := make(chan error, 1)
	r.submit(e, a, kind, res)
	return <-res
}

// flush waits until every record queued so far is written.
func (r *recorder) flush() {
	res := make(chan error, 1)
	r.ch <- recordReq{barrier: true, result: res}
	<-res
}

// close writes every queued record and stops.
func (r *recorder) close() {
	close(r.ch)
	<-r.done
}
