package delivery

import (
	"context"
	"sync/atomic"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/store"
)

// A job is one queue entry made ready for its send: the message loaded,
// parsed and mapped. Jobs are prepared ahead of their turn (a prefetcher)
// while the worker waits for the previous entry's ACK; the worker still
// decides everything at send time. Errors are kept, not acted on, so that
// they are handled in queue order.
type job struct {
	e        store.QueueEntry
	rec      store.Record // Get's result (Raw and header fields)
	err      error        // Get's error
	parsed   *hl7.Message // nil when err or parseErr is set
	parseErr error

	// The outbound bytes for mp, the mapping the route had when the job was
	// prepared (mapped=false: the route did not exist then). The worker
	// uses them only if the route still has mp when it sends.
	mp     *hl7map.Mapping
	mapped bool
	body   []byte
	mapErr error
}

// prepare loads, parses and maps e. It reads nothing but the store and the
// Mapper, so it may run on another goroutine than the worker's.
func (w *Worker) prepare(e store.QueueEntry) *job {
	j := &job{e: e}
	if j.rec, j.err = w.cfg.Store.GetMessage(e.Seq); j.err != nil {
		return j
	}
	if j.parsed, j.parseErr = hl7.ParseWithOptions(j.rec.Raw, hl7.Options{CharsetFallback: j.rec.Charset}); j.parseErr != nil {
		j.parsed = nil
		return j
	}
	if mp, ok := w.cfg.Mapper(e.Route); ok {
		j.mp, j.mapped = mp, true
		j.body, j.mapErr = hl7map.Outbound(j.parsed, mp, w.cfg.OutboundKeepAck)
	}
	return j
}

// A prefetcher prepares a batch's entries on its own goroutine, in order,
// at most prefetchDepth jobs and about prefetchBytes of messages ahead of
// the worker. The worker takes them with next, in the same order; stop ends
// it (on a held entry the rest of the batch is dropped and read again).
//
// When it is far enough ahead it sleeps until the worker has taken half of
// the jobs: one wake-up per several messages, not one per message, on a
// machine whose cores are busy receiving.
type prefetcher struct {
	jobs   chan *job     // closed when the goroutine ends
	room   chan struct{} // the worker took jobs: the prefetcher may go on
	ahead  atomic.Int64  // raw bytes of the jobs made and not taken
	cancel context.CancelFunc
	done   chan struct{}
	// onFull, if set (tests), is called each time the prefetcher is as far
	// ahead as it may go, before it waits.
	onFull func()
}

func (w *Worker) startPrefetch(ctx context.Context, entries []store.QueueEntry) *prefetcher {
	return w.startPrefetchHook(ctx, entries, nil)
}

func (w *Worker) startPrefetchHook(ctx context.Context, entries []store.QueueEntry, onFull func()) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{
		jobs:   make(chan *job, prefetchDepth),
		room:   make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
		onFull: onFull,
	}
	go func() {
		defer close(p.done)
		defer close(p.jobs)
		for _, e := range entries {
			for len(p.jobs) == cap(p.jobs) || p.ahead.Load() >= prefetchBytes {
				if p.onFull != nil {
					p.onFull()
				}
				select {
				case <-p.room:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			j := w.prepare(e)
			p.ahead.Add(int64(len(j.rec.Raw)))
			p.jobs <- j // never blocks: only this goroutine sends, and there was room
		}
	}()
	return p
}

// next returns the batch's next job, waiting for it to be prepared; nil
// once the prefetcher has ended (all entries made, stopped or its context
// ended) and every job it made was taken.
func (p *prefetcher) next() *job {
	j, ok := <-p.jobs
	if !ok {
		return nil
	}
	if p.ahead.Add(-int64(len(j.rec.Raw))) < prefetchBytes && len(p.jobs) <= cap(p.jobs)/2 {
		select {
		case p.room <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	return j
}

// stop ends the prefetcher and waits for its goroutine; jobs not taken are
// dropped.
func (p *prefetcher) stop() {
	p.cancel()
	<-p.done
}
