package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
)

func seqsOf(entries []QueueEntry) []uint64 {
	var out []uint64
	for _, e := range entries {
		out = append(out, e.Seq)
	}
	return out
}

func TestPendingOrderAndPaging(t *testing.T) {
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	for i := range 10 {
		targets := []Target{{"epic", "adt"}}
		if i%2 == 0 {
			targets = append(targets, Target{"lis", "lab"})
		}
		mustAppend(t, s, msg("A", "B", fmt.Sprint("c", i), "p", targets...))
		clock.Add(time.Second)
	}
	all, err := s.Pending("epic", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seqsOf(all)); diff != "" {
		t.Errorf("epic queue (-want +got):\n%s", diff)
	}
	lis, _ := s.Pending("lis", 0, 0)
	if diff := cmp.Diff([]uint64{1, 3, 5, 7, 9}, seqsOf(lis)); diff != "" {
		t.Errorf("lis queue (-want +got):\n%s", diff)
	}
	if lis[1].Route != "lab" || lis[1].Destination != "lis" {
		t.Errorf("entry %+v: want route lab, destination lis", lis[1])
	}
	page, _ := s.Pending("epic", all[3].ID, 3)
	if diff := cmp.Diff([]uint64{5, 6, 7}, seqsOf(page)); diff != "" {
		t.Errorf("page after 4th (-want +got):\n%s", diff)
	}
	none, err := s.Pending("never-seen", 0, 10)
	if err != nil || len(none) != 0 {
		t.Errorf("unknown destination: %v, %v", none, err)
	}
	n, oldest, err := s.PendingCount("lis")
	if err != nil || n != 5 || !oldest.Equal(newClock().Now()) {
		t.Errorf("PendingCount(lis) = %d, %v, %v; want 5, %v", n, oldest, err, newClock().Now())
	}
}

func TestRecordOutcomes(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		attempts    []Attempt
		wantPending int
		wantDead    int
		want        Delivery
	}{
		{
			name:        "one failure stays queued",
			attempts:    []Attempt{{At: t0, Outcome: Attempted, Err: "connection refused"}},
			wantPending: 1,
			want:        Delivery{State: StatePending, Attempts: 1, FirstAttempt: t0, LastAttempt: t0, LastError: "connection refused"},
		},
		{
			name: "failures then delivered",
			attempts: []Attempt{
				{At: t0, Outcome: Attempted, Err: "timeout"},
				{At: t0.Add(time.Second), Outcome: Attempted, AckCode: "AE", AckControlID: "c1", ErrorCode: "207"},
				{At: t0.Add(2 * time.Second), Outcome: Delivered, AckCode: "AA", AckControlID: "c1"},
			},
			want: Delivery{State: StateDelivered, Attempts: 3, FirstAttempt: t0, LastAttempt: t0.Add(2 * time.Second),
				DeliveredAt: t0.Add(2 * time.Second), AckCode: "AA", AckControlID: "c1", LastError: ""},
		},
		{
			name:     "permanent failure to dead letters",
			attempts: []Attempt{{At: t0, Outcome: DeadLettered, HTTPStatus: 400, Err: "bad request", Reason: "permanent: HTTP 400"}},
			wantDead: 1,
			want: Delivery{State: StateDead, Attempts: 1, FirstAttempt: t0, LastAttempt: t0, HTTPStatus: 400,
				LastError: "bad request", DeadReason: "permanent: HTTP 400", DeadLetterID: 1},
		},
		{
			name:     "route removed is no attempt",
			attempts: []Attempt{{At: t0, Outcome: DeadLettered, Reason: "route removed"}},
			wantDead: 1,
			want:     Delivery{State: StateDead, DeadReason: "route removed", DeadLetterID: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{})
			res := mustAppend(t, s, msg("A", "B", "c1", "p", Target{"epic", "adt"}))
			e, _ := s.Pending("epic", 0, 1)
			for _, a := range tt.attempts {
				if err := s.Record(ctx, "epic", e[0].ID, a); err != nil {
					t.Fatalf("Record(%v): %v", a.Outcome, err)
				}
			}
			rec, err := s.Get(res[0].Seq)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Destination, want.Route, want.QueueID = "epic", "adt", e[0].ID
			if diff := cmp.Diff([]Delivery{want}, rec.Deliveries, cmpopts.EquateApproxTime(0)); diff != "" {
				t.Errorf("deliveries (-want +got):\n%s", diff)
			}
			n, _, _ := s.PendingCount("epic")
			if n != tt.wantPending {
				t.Errorf("PendingCount = %d, want %d", n, tt.wantPending)
			}
			if q, _ := s.Pending("epic", 0, 10); len(q) != tt.wantPending {
				t.Errorf("Pending has %d entries, want %d", len(q), tt.wantPending)
			}
			dead, _ := s.DeadLetters("epic", 0, 10)
			if len(dead) != tt.wantDead {
				t.Errorf("%d dead letters, want %d", len(dead), tt.wantDead)
			}
			if tt.wantDead == 1 && (dead[0].Seq != res[0].Seq || dead[0].Reason != tt.want.DeadReason || dead[0].Route != "adt") {
				t.Errorf("dead letter %+v", dead[0])
			}
		})
	}
}

func TestRecordUnknownEntry(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	mustAppend(t, s, msg("A", "B", "c1", "p", Target{"epic", "adt"}))
	if err := s.Record(ctx, "epic", 1, Attempt{Outcome: Delivered}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dest string
		id   uint64
	}{{"epic", 1}, {"epic", 99}, {"nowhere", 1}} {
		if err := s.Record(ctx, c.dest, c.id, Attempt{Outcome: Delivered}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Record(%s, %d) = %v, want ErrNotFound", c.dest, c.id, err)
		}
	}
}

func TestRequeue(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	mustAppend(t, s,
		msg("A", "B", "c1", "p", Target{"epic", "adt"}),
		msg("A", "B", "c2", "p", Target{"epic", "adt"}),
		msg("A", "B", "c3", "p"))

	if _, err := s.Requeue(ctx, "epic", 1, ""); !errors.Is(err, ErrAlreadyQueued) {
		t.Errorf("Requeue of a waiting message = %v, want ErrAlreadyQueued", err)
	}
	if _, err := s.Requeue(ctx, "epic", 99, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Requeue of unknown seq = %v, want ErrNotFound", err)
	}
	// Dead-letter seq 1, then resend it: it goes to the tail, its dead letter goes away.
	if err := s.Record(ctx, "epic", 1, Attempt{Outcome: DeadLettered, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Requeue(ctx, "epic", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 || e.Route != "adt" || e.ID != 3 {
		t.Errorf("Requeue = %+v, want seq 1, route adt, id 3", e)
	}
	q, _ := s.Pending("epic", 0, 10)
	if diff := cmp.Diff([]uint64{2, 1}, seqsOf(q)); diff != "" {
		t.Errorf("queue after requeue (-want +got):\n%s", diff)
	}
	if dead, _ := s.DeadLetters("epic", 0, 10); len(dead) != 0 {
		t.Errorf("dead letters after requeue: %+v", dead)
	}
	if _, err := s.Requeue(ctx, "epic", 1, ""); !errors.Is(err, ErrAlreadyQueued) {
		t.Errorf("second Requeue = %v, want ErrAlreadyQueued", err)
	}
	// Backfill an unrouted message to a new destination under a named route.
	e, err = s.Requeue(ctx, "archive", 3, "backfill")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := s.Get(3)
	if len(rec.Deliveries) != 1 || rec.Deliveries[0].State != StateRequeued || rec.Deliveries[0].Route != "backfill" || rec.Deliveries[0].QueueID != e.ID {
		t.Errorf("deliveries after backfill: %+v", rec.Deliveries)
	}
	if err := s.Record(ctx, "epic", 3, Attempt{Outcome: Delivered, AckCode: "AA"}); err != nil {
		t.Fatal(err)
	}
	rec, _ = s.Get(1)
	if rec.Deliveries[0].State != StateDelivered {
		t.Errorf("requeued then delivered: %+v", rec.Deliveries)
	}
	if n, _, _ := s.PendingCount("epic"); n != 1 {
		t.Errorf("epic pending = %d, want 1", n)
	}
}

func TestDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	var msgs []Message
	for i := range chunkSize + 5 { // more than one chunk
		msgs = append(msgs, msg("A", "B", fmt.Sprint(i), "p", Target{"old", "r"}, Target{"keep", "r"}))
	}
	mustAppend(t, s, msgs...)
	n, err := s.DeadLetterQueue(ctx, "old", "destination removed")
	if err != nil || n != chunkSize+5 {
		t.Fatalf("DeadLetterQueue = %d, %v; want %d", n, err, chunkSize+5)
	}
	if c, _, _ := s.PendingCount("old"); c != 0 {
		t.Errorf("old pending = %d", c)
	}
	if c, _, _ := s.PendingCount("keep"); c != chunkSize+5 {
		t.Errorf("keep pending = %d", c)
	}
	dead, _ := s.DeadLetters("old", 0, MaxPageSize)
	if len(dead) != chunkSize+5 || dead[0].Reason != "destination removed" || dead[0].Seq != 1 {
		t.Errorf("dead letters: %d, first %+v", len(dead), dead[0])
	}
	if n, err := s.DeadLetterQueue(ctx, "never", "x"); n != 0 || err != nil {
		t.Errorf("DeadLetterQueue(unknown) = %d, %v", n, err)
	}
}

func TestBlockedSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	mustAppend(t, s, msg("A", "B", "c1", "p", Target{"epic", "adt"}))
	if err := s.SetBlocked(ctx, "epic", "HTTP 401: check credentials"); err != nil {
		t.Fatal(err)
	}
	s = reopenTest(t, s, Options{})
	reason, blocked := s.Blocked("epic")
	if !blocked || reason != "HTTP 401: check credentials" {
		t.Errorf("Blocked after restart = %q, %v", reason, blocked)
	}
	if n, _, _ := s.PendingCount("epic"); n != 1 {
		t.Errorf("blocking lost the pending count: %d", n)
	}
	if err := s.Unblock(ctx, "epic"); err != nil {
		t.Fatal(err)
	}
	if _, blocked := s.Blocked("epic"); blocked {
		t.Error("still blocked after Unblock")
	}
	if _, blocked := s.Blocked("other"); blocked {
		t.Error("unknown destination blocked")
	}
}

func TestPurgeDeadLetters(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	mustAppend(t, s,
		msg("A", "B", "c1", "p", Target{"a", "r"}),
		msg("A", "B", "c2", "p", Target{"a", "r"}, Target{"b", "r"}))
	at := clock.Now()
	for _, d := range []string{"a", "b"} {
		q, _ := s.Pending(d, 0, 10)
		for _, e := range q {
			if err := s.Record(ctx, d, e.ID, Attempt{At: at, Outcome: DeadLettered, Reason: "x"}); err != nil {
				t.Fatal(err)
			}
			at = at.Add(time.Minute)
		}
	}
	// a: t0, t0+1m; b: t0+2m
	n, err := s.PurgeDeadLetters(ctx, "a", clock.Now().Add(90*time.Second))
	if err != nil || n != 2 {
		t.Errorf("purge a = %d, %v; want 2", n, err)
	}
	n, err = s.PurgeDeadLetters(ctx, "", clock.Now().Add(time.Minute))
	if err != nil || n != 0 {
		t.Errorf("purge all before b's = %d, %v; want 0", n, err)
	}
	n, err = s.PurgeDeadLetters(ctx, "", clock.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Errorf("purge all = %d, %v; want 1", n, err)
	}
}

// TestRecordAsync: a worker marks entries without waiting; the marks share
// commits, every done is called once, and Close waits for the ones in flight.
func TestRecordAsync(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	var msgs []Message
	for i := range 300 {
		msgs = append(msgs, msg("A", "B", fmt.Sprint(i), "p", Target{"epic", "r"}))
	}
	mustAppend(t, s, msgs...)
	before, _ := s.Stats()
	q, _ := s.Pending("epic", 0, MaxPageSize)
	outcomes := make(chan error, len(q)+1)
	for _, e := range q {
		s.RecordAsync(ctx, "epic", e.ID, Attempt{Outcome: Delivered, AckCode: "AA"}, func(err error) { outcomes <- err })
	}
	s.RecordAsync(ctx, "epic", 9999, Attempt{Outcome: Delivered}, func(err error) { outcomes <- err })
	for range q {
		if err := <-outcomes; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-outcomes; !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordAsync of an unknown entry: %v, want ErrNotFound", err)
	}
	after, _ := s.Stats()
	if commits := after.Commits - before.Commits; commits >= uint64(len(q)) {
		t.Errorf("%d commits for %d async records: not grouped", commits, len(q))
	}
	if n, _, _ := s.PendingCount("epic"); n != 0 {
		t.Errorf("pending after marks = %d", n)
	}

	// Close waits for marks still in flight; after it, done gets ErrClosed.
	mustAppend(t, s, msg("A", "B", "last", "p", Target{"epic", "r"}))
	q, _ = s.Pending("epic", 0, 1)
	var inflight error = errors.New("not called")
	s.RecordAsync(ctx, "epic", q[0].ID, Attempt{Outcome: Delivered}, func(err error) { inflight = err })
	path := s.Path()
	closeChecked(t, s)
	if inflight != nil {
		t.Errorf("in-flight mark at Close: %v", inflight)
	}
	var late error
	s.RecordAsync(ctx, "epic", 1, Attempt{}, func(err error) { late = err })
	if !errors.Is(late, ErrClosed) {
		t.Errorf("RecordAsync after Close: %v, want ErrClosed", late)
	}
	s2 := openTest(t, Options{Path: path})
	if n, _, _ := s2.PendingCount("epic"); n != 0 {
		t.Errorf("in-flight mark lost at Close: pending %d", n)
	}
}

func TestDestinations(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	mustAppend(t, s,
		msg("A", "B", "1", "p", Target{"epic", "r"}, Target{"lis", "r"}),
		msg("A", "B", "2", "p", Target{"epic", "r"}))
	if err := s.Record(ctx, "lis", 1, Attempt{Outcome: DeadLettered, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBlocked(ctx, "http", "401"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Destinations()
	if err != nil {
		t.Fatal(err)
	}
	want := []DestinationState{
		{Name: "epic", Pending: 2, Oldest: clock.Now()},
		{Name: "http", Blocked: true, BlockedAt: clock.Now(), Reason: "401"},
		{Name: "lis", DeadLetters: 1},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("Destinations (-want +got):\n%s", diff)
	}
}

// TestRequeueAsync: a backfill of many messages keeps call order, shares
// commits, and reports per-message errors through done.
func TestRequeueAsync(t *testing.T) {
	s := openTest(t, Options{})
	const n = 300
	var msgs []Message
	for i := range n {
		msgs = append(msgs, msg("A", "B", fmt.Sprintf("c%d", i), "p"))
	}
	mustAppend(t, s, msgs...)
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []QueueEntry
	var errs []error
	var wg sync.WaitGroup
	for seq := uint64(1); seq <= n+1; seq++ { // n+1 does not exist
		wg.Add(1)
		s.RequeueAsync(context.Background(), "archive", seq, "backfill", func(e QueueEntry, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			got = append(got, e)
		})
	}
	wg.Wait()
	if len(errs) != 1 || !errors.Is(errs[0], ErrNotFound) {
		t.Errorf("errors = %v, want one ErrNotFound", errs)
	}
	q, err := s.Pending("archive", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != n {
		t.Fatalf("queued %d, want %d", len(q), n)
	}
	for i, e := range q {
		if e.Seq != uint64(i+1) || e.Route != "backfill" {
			t.Fatalf("entry %d = %+v: call order not kept", i, e)
		}
	}
	after, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if commits := after.Commits - before.Commits; commits >= n/2 {
		t.Errorf("%d requeues took %d commits; they should share them", n, commits)
	}
}

// TestRecordAsyncIsLazy: a delivery mark starts no commit of its own. It
// rides on the next write's batch, is committed after the lazy delay when no
// write comes, and is committed by Close.
func TestRecordAsyncIsLazy(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T, wait time.Duration) (*Store, []QueueEntry) {
		s := openTest(t, Options{})
		s.gc.mu.Lock()
		s.gc.lazyWait = wait
		s.gc.mu.Unlock()
		mustAppend(t, s, msg("A", "B", "c1", "p", Target{"epic", "r"}), msg("A", "B", "c2", "p", Target{"epic", "r"}))
		p, err := s.Pending("epic", 0, 10)
		if err != nil || len(p) != 2 {
			t.Fatalf("Pending = %+v, %v", p, err)
		}
		return s, p
	}
	t.Run("joins the next append", func(t *testing.T) {
		s, p := setup(t, time.Hour)
		done := make(chan error, 1)
		before := s.commits.Load()
		s.RecordAsync(ctx, "epic", p[0].ID, Attempt{Outcome: Delivered}, func(err error) { done <- err })
		s.gc.mu.Lock()
		leading, waiting := s.gc.leading, len(s.gc.pending)
		s.gc.mu.Unlock()
		if leading || waiting != 1 {
			t.Errorf("after RecordAsync: leading %v, %d ops waiting; want no commit started, the mark waiting", leading, waiting)
		}
		mustAppend(t, s, msg("A", "B", "c3", "p", Target{"epic", "r"}))
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("the mark was not committed with the append that followed it")
		}
		if n := s.commits.Load() - before; n != 1 {
			t.Errorf("%d commits for a mark and an append, want 1", n)
		}
	})
	t.Run("alone after the delay", func(t *testing.T) {
		s, p := setup(t, time.Millisecond)
		done := make(chan error, 1)
		s.RecordAsync(ctx, "epic", p[0].ID, Attempt{Outcome: Delivered}, func(err error) { done <- err })
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a lone mark was never committed")
		}
		if n, _, _ := s.PendingCount("epic"); n != 1 {
			t.Errorf("PendingCount = %d, want 1", n)
		}
	})
	t.Run("at most the delay after the first", func(t *testing.T) {
		// Marks keep coming, no append: the first is committed one delay
		// after it came, not one delay after the marks stop.
		const wait = 100 * time.Millisecond
		s := openTest(t, Options{})
		s.gc.mu.Lock()
		s.gc.lazyWait = wait
		s.gc.mu.Unlock()
		var batch []Message
		for i := range 20 {
			batch = append(batch, msg("A", "B", fmt.Sprintf("m%d", i), "p", Target{"epic", "r"}))
		}
		mustAppend(t, s, batch...)
		p, err := s.Pending("epic", 0, 20)
		if err != nil || len(p) != 20 {
			t.Fatalf("Pending = %d entries, %v", len(p), err)
		}
		first := make(chan time.Time, 1)
		start := time.Now()
		s.RecordAsync(ctx, "epic", p[0].ID, Attempt{Outcome: Delivered}, func(error) { first <- time.Now() })
		for _, e := range p[1:] {
			time.Sleep(wait / 5)
			s.RecordAsync(ctx, "epic", e.ID, Attempt{Outcome: Delivered}, nil)
		}
		select {
		case at := <-first:
			if d := at.Sub(start); d > 3*wait {
				t.Errorf("first mark committed after %v; want about %v (the timer was pushed back by later marks)", d, wait)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("first mark never committed")
		}
	})
	t.Run("by Close", func(t *testing.T) {
		s, p := setup(t, time.Hour)
		done := make(chan error, 2)
		for _, e := range p {
			s.RecordAsync(ctx, "epic", e.ID, Attempt{Outcome: Delivered}, func(err error) { done <- err })
		}
		path := s.Path()
		closeChecked(t, s)
		for range p {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatal("Close returned before the marks waiting for a batch were committed")
			}
		}
		s = openTest(t, Options{Path: path})
		if n, _, _ := s.PendingCount("epic"); n != 0 {
			t.Errorf("PendingCount after reopen = %d, want 0", n)
		}
	})
}

// TestQueueRunsMatchModel drives two queues through random appends, marks
// (delivered and dead-lettered, at the head and anywhere), requeues,
// materializations and reopens, and after every step compares what the
// store lists with a plain model: entries written as runs (queuekeys.go)
// must read, split and count exactly as entries written one by one.
func TestQueueRunsMatchModel(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	s := openTest(t, Options{})
	dests := []string{"a", "b"}
	model := map[string][]QueueEntry{} // per destination, in ID order
	nextID := map[string]uint64{"a": 1, "b": 1}
	var seqs []uint64
	ctrl := 0

	check := func(step int, what string) {
		t.Helper()
		for _, d := range dests {
			// One page mostly; every so often, small pages from afterIDs
			// that fall inside runs.
			limit := MaxPageSize
			if step%25 == 0 {
				limit = 1 + rng.IntN(100)
			}
			var got []QueueEntry
			for after := uint64(0); ; {
				page, err := s.Pending(d, after, limit)
				if err != nil {
					t.Fatalf("step %d (%s): Pending(%s): %v", step, what, d, err)
				}
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				after = page[len(page)-1].ID
			}
			want := model[d]
			if len(got) != len(want) {
				t.Fatalf("step %d (%s): queue %s holds %d entries, model %d", step, what, d, len(got), len(want))
			}
			for i := range want {
				if got[i].ID != want[i].ID || got[i].Seq != want[i].Seq || got[i].Route != want[i].Route {
					t.Fatalf("step %d (%s): queue %s entry %d = %+v, model %+v", step, what, d, i, got[i], want[i])
				}
			}
			if n, _, err := s.PendingCount(d); err != nil || n != len(want) {
				t.Fatalf("step %d (%s): PendingCount(%s) = %d, %v; model %d", step, what, d, n, err, len(want))
			}
		}
	}

	for step := range 700 {
		var what string
		switch r := rng.IntN(100); {
		case r < 45: // append a few messages, each to a, b or both
			what = "append"
			n := 1 + rng.IntN(8)
			if rng.IntN(10) == 0 {
				n = 60 + rng.IntN(150) // a burst: runs up to maxRun entries, and longer
			}
			var msgs []Message
			for range n {
				ctrl++
				var targets []Target
				for _, d := range dests {
					if rng.IntN(3) > 0 {
						targets = append(targets, Target{d, fmt.Sprintf("r%d", rng.IntN(3))})
					}
				}
				msgs = append(msgs, msg("A", "B", fmt.Sprint(ctrl), "p", targets...))
			}
			res := mustAppend(t, s, msgs...)
			for i, m := range msgs {
				seqs = append(seqs, res[i].Seq)
				for _, tg := range m.Targets {
					model[tg.Destination] = append(model[tg.Destination], QueueEntry{ID: nextID[tg.Destination], Seq: res[i].Seq, Route: tg.Route})
					nextID[tg.Destination]++
				}
			}
		case r < 80: // mark an entry: mostly the head, as a worker does
			d := dests[rng.IntN(len(dests))]
			q := model[d]
			if len(q) == 0 {
				continue
			}
			i := 0
			if rng.IntN(3) == 0 {
				i = rng.IntN(len(q))
			}
			a := Attempt{Outcome: Delivered}
			if rng.IntN(4) == 0 {
				a = Attempt{Outcome: DeadLettered, Reason: "test"}
			}
			what = fmt.Sprintf("mark %s entry %d (%d of %d) %v", d, q[i].ID, i, len(q), a.Outcome)
			if err := s.Record(ctx, d, q[i].ID, a); err != nil {
				t.Fatalf("step %d (%s): %v", step, what, err)
			}
			model[d] = slices.Delete(q, i, i+1)
		case r < 88: // requeue a message not pending for the destination
			if len(seqs) == 0 {
				continue
			}
			d, seq := dests[rng.IntN(len(dests))], seqs[rng.IntN(len(seqs))]
			what = fmt.Sprintf("requeue %d to %s", seq, d)
			e, err := s.Requeue(ctx, d, seq, "again")
			if slices.ContainsFunc(model[d], func(e QueueEntry) bool { return e.Seq == seq }) {
				if !errors.Is(err, ErrAlreadyQueued) {
					t.Fatalf("step %d (%s): %v, want ErrAlreadyQueued", step, what, err)
				}
				continue
			}
			if err != nil || e.ID != nextID[d] {
				t.Fatalf("step %d (%s): entry %+v, %v; model ID %d", step, what, e, err, nextID[d])
			}
			model[d] = append(model[d], QueueEntry{ID: e.ID, Seq: seq, Route: "again"})
			nextID[d]++
		case r < 96:
			what = "materialize"
			materializeNow(t, s)
		default:
			what = "reopen"
			s = reopenTest(t, s, Options{})
		}
		check(step, what)
	}
	materializeNow(t, s)
	check(-1, "final materialize")
	st := readFileState(t, s)
	if st.QueueN != len(model["a"])+len(model["b"]) {
		t.Errorf("idx holds %d queue entries, model %d", st.QueueN, len(model["a"])+len(model["b"]))
	}
	runs, longest := 0, 0
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bIdx).ForEach(func(k, v []byte) error {
			if k[0] == tagQueue && isRun(v) {
				runs++
				longest = max(longest, entriesIn(t, v))
			}
			return nil
		})
	})
	if runs == 0 {
		t.Error("no runs in idx: the test did not exercise them")
	}
	if longest < maxRun {
		t.Errorf("longest run written: %d entries; the test did not reach maxRun (%d)", longest, maxRun)
	}
}
