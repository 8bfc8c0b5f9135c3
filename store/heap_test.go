package store

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHeapFlatWithDeepQueue appends messages nobody delivers and checks that
// the Go heap does not grow with the queue: queue positions and counts live
// in the file. MLLPD_STORE_HEAP_N sets the count (default 25,000; the
// 1,000,000 run in the report was done by hand with it).
func TestHeapFlatWithDeepQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("appends tens of thousands of messages")
	}
	total := 25000
	if v := os.Getenv("MLLPD_STORE_HEAP_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		total = n
	}
	ctx := context.Background()
	s := openTest(t, Options{})
	// Small batches, as many connections make them: every commit rewrites
	// the log's tail pages, so most pages come from bbolt's freelist.
	const batch = 16
	msgs := make([]Message, batch)
	raw := make([]byte, 1000)
	for i := range raw {
		raw[i] = 'a' + byte(i%26)
	}
	n := 0
	appendBatch := func() {
		for i := range msgs {
			m := msg("PAS", "HOSP", strconv.Itoa(n+i), strconv.Itoa(n+i), Target{"epic", "adt"}, Target{"lis", "lab"})
			m.Raw = raw
			msgs[i] = m
		}
		if _, err := s.Append(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		n += batch
	}
	for n < total/5 {
		appendBatch()
	}
	base := heapInUse()
	start := time.Now()
	for n < total {
		appendBatch()
	}
	grown := int64(heapInUse()) - int64(base)
	pending, _, err := s.PendingCount("epic")
	if err != nil || pending != n {
		t.Fatalf("PendingCount = %d, %v; want %d", pending, err, n)
	}
	t.Logf("%d undelivered messages (2 queues): heap %d KiB at %d, %+d KiB at %d (%v for the last %d)",
		n, base>>10, total/5, grown>>10, n, time.Since(start).Round(time.Millisecond), n-total/5)
	// bbolt keeps on the heap its freelist and a map entry per page it
	// reused since Open (freelist.allocs): about 2 bytes per message with
	// 16 KiB pages (8 with 4 KiB ones), measured from 200,000 to 1,000,000
	// messages; allow it and the runtime some slack.
	if grown > 4<<20 {
		t.Errorf("heap grew by %d KiB while the queue grew by %d entries", grown>>10, n-total/5)
	}
	// Paging the deep queue does not load it.
	before := heapInUse()
	page, err := s.Pending("epic", uint64(n-10), 100)
	if err != nil || len(page) != 10 {
		t.Fatalf("tail page: %d entries, %v", len(page), err)
	}
	if d := int64(heapInUse()) - int64(before); d > 1<<20 {
		t.Errorf("reading a page of a deep queue grew the heap by %d KiB", d>>10)
	}
}
