package delivery

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/relay/internal/transport"
	"github.com/mllpd/mllpd/store"
)

// getStore is a QueueStore whose GetMessage serves one message of a given size and
// checks, at every call, that the prefetcher is not further ahead of the
// consumer than allowed.
type getStore struct {
	QueueStore // nil: only GetMessage is called
	raw        []byte
	gets       atomic.Int64
	taken      atomic.Int64 // jobs the consumer took or is about to take
	worst      atomic.Int64 // largest gets-taken seen by a GetMessage
}

func (s *getStore) GetMessage(seq uint64) (store.Record, error) {
	n := s.gets.Add(1)
	for ahead := n - s.taken.Load(); ; {
		w := s.worst.Load()
		if ahead <= w || s.worst.CompareAndSwap(w, ahead) {
			break
		}
	}
	return store.Record{Seq: seq, Message: store.Message{Raw: s.raw, ControlID: "C1", Charset: "UTF-8"}}, nil
}

type nopTransport struct{}

func (nopTransport) Send(context.Context, transport.Message) (transport.Result, error) {
	return transport.Result{}, nil
}
func (nopTransport) Close() error { return nil }

// TestPrefetchBounds: the prefetcher hands over every entry once, in order,
// goes as far ahead as its bounds allow (jobs for small messages, bytes for
// large ones) and never further.
func TestPrefetchBounds(t *testing.T) {
	tests := []struct {
		name     string
		pad      int
		maxAhead int64
	}{
		{"small messages: job bound", 1 << 10, prefetchDepth},
		{"large messages: byte bound", 700 << 10, 2}, // the second goes over prefetchBytes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 60
			raw := []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5.1\rOBX|1|TX|N||" + strings.Repeat("x", tt.pad) + "\r")
			st := &getStore{raw: raw}
			w, err := NewWorker(WorkerConfig{Name: "d", Store: st, Transport: nopTransport{},
				Mapper: func(string) (*hl7map.Mapping, bool) { return nil, true }})
			if err != nil {
				t.Fatal(err)
			}
			entries := make([]store.QueueEntry, n)
			for i := range entries {
				entries[i] = store.QueueEntry{Destination: "d", ID: uint64(100 + i), Seq: uint64(1000 + i), Route: "r"}
			}
			full := make(chan struct{}, n)
			p := w.startPrefetchHook(context.Background(), entries, func() { full <- struct{}{} })
			defer p.stop()
			// Before anything is taken it goes exactly as far as its bound.
			select {
			case <-full:
			case <-time.After(20 * time.Second):
				t.Fatalf("prefetcher never stopped to wait; %d entries prepared", st.gets.Load())
			}
			if got := st.gets.Load(); got != tt.maxAhead {
				t.Fatalf("prefetched %d entries before the first was taken, want %d", got, tt.maxAhead)
			}
			for i, e := range entries {
				st.taken.Store(int64(i + 1))
				j := p.next()
				if j == nil {
					t.Fatalf("next = nil at entry %d of %d", i, n)
				}
				if j.e != e || j.err != nil || j.parseErr != nil || !j.mapped || string(j.body) != string(raw) {
					t.Fatalf("job %d = entry %+v, err %v, parse %v, mapped %v; want entry %+v, body as stored", i, j.e, j.err, j.parseErr, j.mapped, e)
				}
			}
			if j := p.next(); j != nil {
				t.Fatalf("next after the last entry = %+v, want nil", j.e)
			}
			if got := st.worst.Load(); got != tt.maxAhead {
				t.Errorf("prefetched up to %d entries ahead, want %d", got, tt.maxAhead)
			}
			if got := st.gets.Load(); got != n {
				t.Errorf("%d Gets for %d entries", got, n)
			}
		})
	}
}

// TestPrefetchStop: stop ends a prefetcher that waits for room, and one
// whose context ended hands over what it made, then nil.
func TestPrefetchStop(t *testing.T) {
	raw := []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5.1\r")
	st := &getStore{raw: raw}
	w, err := NewWorker(WorkerConfig{Name: "d", Store: st, Transport: nopTransport{},
		Mapper: func(string) (*hl7map.Mapping, bool) { return nil, true }})
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]store.QueueEntry, 100)
	for i := range entries {
		entries[i] = store.QueueEntry{ID: uint64(i + 1), Seq: uint64(i + 1)}
	}
	full := make(chan struct{}, len(entries))
	p := w.startPrefetchHook(context.Background(), entries, func() { full <- struct{}{} })
	<-full
	p.stop() // waits for the goroutine: it must not stay blocked on a full queue

	ctx, cancel := context.WithCancel(context.Background())
	p = w.startPrefetchHook(ctx, entries, func() { full <- struct{}{} })
	defer p.stop()
	<-full
	cancel()
	taken := 0
	for j := p.next(); j != nil; j = p.next() {
		if want := entries[taken]; j.e != want {
			t.Fatalf("job %d is entry %d, want %d", taken, j.e.ID, want.ID)
		}
		taken++
	}
	if taken != prefetchDepth {
		t.Errorf("%d jobs handed over after cancel, want the %d made", taken, prefetchDepth)
	}
}
