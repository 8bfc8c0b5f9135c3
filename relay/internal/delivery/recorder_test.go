package delivery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/mllpd/mllpd/store"
)

// recordLog is a QueueStore that commits every record at once and logs the
// order in which records reached it.
type recordLog struct {
	QueueStore // nil: only RecordAsync is called
	mu         sync.Mutex
	got        []string
	arrived    chan struct{} // one send per record
}

func (s *recordLog) RecordAsync(_ context.Context, _ string, id uint64, a store.Attempt, done func(error)) {
	s.mu.Lock()
	s.got = append(s.got, fmt.Sprintf("%d:%v", id, a.Outcome))
	s.mu.Unlock()
	s.arrived <- struct{}{}
	done(nil)
}

func (s *recordLog) records() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func entry(id uint64) store.QueueEntry { return store.QueueEntry{ID: id, Seq: id} }

// TestRecorderHolds: delivered marks are held back until holdMax, another
// record, a flush or close, and reach the store in submission order.
func TestRecorderHolds(t *testing.T) {
	st := &recordLog{arrived: make(chan struct{}, 1000)}
	r := newRecorder(st, "d", zap.NewNop(), nil)
	r.delay = time.Hour // only the other triggers submit held marks
	var want []string
	id := uint64(0)
	mark := func(o store.Outcome) {
		id++
		r.submit(entry(id), store.Attempt{Outcome: o}, "k", nil)
		want = append(want, fmt.Sprintf("%d:%v", id, o))
	}

	mark(store.Delivered)
	mark(store.Delivered)
	if got := st.records(); len(got) != 0 {
		t.Fatalf("delivered marks submitted at once: %v", got)
	}
	mark(store.Attempted) // submits the held marks first
	if diff := cmp.Diff(want, st.records()); diff != "" {
		t.Fatalf("after an attempt record (-want +got):\n%s", diff)
	}

	for range holdMax - 1 {
		mark(store.Delivered)
	}
	if got := len(st.records()); got != len(want)-(holdMax-1) {
		t.Fatalf("%d of %d records submitted before holdMax", got, len(want))
	}
	mark(store.Delivered) // the holdMax-th
	if diff := cmp.Diff(want, st.records()); diff != "" {
		t.Fatalf("at holdMax (-want +got):\n%s", diff)
	}

	mark(store.Delivered)
	r.flush()
	if diff := cmp.Diff(want, st.records()); diff != "" {
		t.Fatalf("after flush (-want +got):\n%s", diff)
	}

	mark(store.Delivered)
	id++
	if err := r.wait(entry(id), store.Attempt{Outcome: store.DeadLettered}, "k"); err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("%d:%v", id, store.DeadLettered))
	mark(store.Delivered)
	r.close() // submits the last held mark and waits for it
	if diff := cmp.Diff(want, st.records()); diff != "" {
		t.Errorf("after wait and close (-want +got):\n%s", diff)
	}
}

// TestRecorderHoldDelay: a held mark goes to the store after the delay
// even if the worker submits nothing more (a long send in progress).
func TestRecorderHoldDelay(t *testing.T) {
	st := &recordLog{arrived: make(chan struct{}, 10)}
	r := newRecorder(st, "d", zap.NewNop(), nil)
	defer r.close()
	r.delay = time.Millisecond
	r.submit(entry(1), store.Attempt{Outcome: store.Delivered}, "k", nil)
	select {
	case <-st.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("held mark never submitted")
	}
	// The worker may be waiting for the settle signal to refresh gauges.
	select {
	case <-r.settled:
	case <-time.After(20 * time.Second):
		t.Fatal("no settled signal after the last record committed")
	}
}
