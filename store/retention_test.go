package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	old := clock.Now().Add(-48 * time.Hour)
	at := func(m Message, t time.Time) Message { m.Received = t; return m }
	mustAppend(t, s,
		at(msg("A", "B", "delivered", "p", Target{"a", "r"}), old),                     // 1
		at(msg("A", "B", "pending", "p", Target{"a", "r"}), old),                       // 2
		at(msg("A", "B", "dead", "p", Target{"a", "r"}, Target{"b", "r"}), old),        // 3
		at(msg("A", "B", "unrouted", "p"), old),                                        // 4
		at(msg("A", "B", "young", "p", Target{"a", "r"}), clock.Now().Add(-time.Hour)), // 5
	)
	deliver := func(dest string, id uint64, o Outcome) {
		t.Helper()
		if err := s.Record(ctx, dest, id, Attempt{At: old, Outcome: o, Reason: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	deliver("a", 1, Delivered)    // seq 1
	deliver("a", 3, Delivered)    // seq 3 to a
	deliver("b", 1, DeadLettered) // seq 3 to b
	deliver("a", 4, Delivered)    // seq 5 (young)

	st, err := s.Prune(ctx, Retention{Delivered: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(PruneStats{Messages: 2}, st); diff != "" {
		t.Errorf("first Prune (-want +got):\n%s", diff)
	}
	present := func() []uint64 {
		var out []uint64
		for seq := uint64(1); seq <= 5; seq++ {
			if _, err := s.Get(seq); err == nil {
				out = append(out, seq)
			} else if !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
		return out
	}
	if diff := cmp.Diff([]uint64{2, 3, 5}, present()); diff != "" {
		t.Errorf("after prune (-want +got):\n%s", diff)
	}
	// The dead letter of seq 3 expires: the message goes in the same run.
	st, err = s.Prune(ctx, Retention{Delivered: 24 * time.Hour, DeadLetters: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(PruneStats{Messages: 1, DeadLetters: 1}, st); diff != "" {
		t.Errorf("second Prune (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{2, 5}, present()); diff != "" {
		t.Errorf("after dead-letter expiry (-want +got):\n%s", diff)
	}
	// Indexes went with the messages.
	if got, _ := s.Query(Filter{ControlID: "delivered"}); len(got) != 0 {
		t.Errorf("control-ID index still finds pruned message: %v", seqsOfRecords(got))
	}
	if got, _ := s.Query(Filter{Since: old.Add(-time.Minute)}); !cmp.Equal(seqsOfRecords(got), []uint64{2, 5}) {
		t.Errorf("time query after prune: %v", seqsOfRecords(got))
	}
	res := mustAppend(t, s, at(msg("A", "B", "delivered", "p"), clock.Now()))
	if res[0].Duplicate || res[0].ReusedControlID {
		t.Errorf("dedupe entry of a pruned message still answers: %+v", res[0])
	}
}

func TestPruneRejected(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	raw := bytes.Repeat([]byte("z"), 1000)
	for i := range 10 {
		if _, err := s.AddRejected(ctx, Rejected{Time: clock.Now().Add(time.Duration(i-10) * time.Hour), Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Prune(ctx, Retention{Rejected: 5*time.Hour + time.Minute, RejectedMaxBytes: 3500})
	if err != nil {
		t.Fatal(err)
	}
	// Hours -10..-6 go by age (5), then the size bound keeps 3 of the 5 left.
	if diff := cmp.Diff(PruneStats{Rejected: 5, RejectedBySize: 2}, st); diff != "" {
		t.Errorf("Prune (-want +got):\n%s", diff)
	}
	list, _ := s.ListRejected(0, 100)
	if len(list) != 3 || list[0].ID != 8 {
		t.Errorf("kept %d records starting at %+v, want 3 from ID 8", len(list), list)
	}
	stats, _ := s.Stats()
	if stats.RejectedDropped != 2 {
		t.Errorf("RejectedDropped = %d, want 2", stats.RejectedDropped)
	}
}

// TestPruneReusesPages: append, deliver and prune in cycles; the file stops
// growing because bbolt reuses the freed pages.
func TestPruneReusesPages(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	body := string(bytes.Repeat([]byte("b"), 1000))
	var sizes []int64
	for cycle := range 5 {
		var msgs []Message
		for i := range 500 {
			m := msg("A", "B", fmt.Sprint(cycle, "-", i), body, Target{"a", "r"})
			m.Received = clock.Now()
			msgs = append(msgs, m)
		}
		mustAppend(t, s, msgs...)
		q, _ := s.Pending("a", 0, MaxPageSize)
		var wg sync.WaitGroup
		for _, e := range q {
			wg.Add(1)
			s.RecordAsync(ctx, "a", e.ID, Attempt{Outcome: Delivered}, func(err error) {
				if err != nil {
					t.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
		clock.Add(48 * time.Hour)
		st, err := s.Prune(ctx, Retention{Delivered: 24 * time.Hour})
		if err != nil || st.Messages != 500 {
			t.Fatalf("cycle %d: Prune = %+v, %v", cycle, st, err)
		}
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	if sizes[4] > sizes[1] {
		t.Errorf("file grew across prune cycles: %v", sizes)
	}
}

func TestBackupAndCompact(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	var want []Message
	for i := range 200 {
		want = append(want, msg("A", "B", fmt.Sprint(i), "p", Target{"a", "r"}))
	}
	mustAppend(t, s, want...)
	// Back up while appends go on: the copy is one consistent state.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			if _, err := s.Append(ctx, []Message{msg("A", "B", fmt.Sprint("during", i), "p", Target{"a", "r"})}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	<-done

	b := openTest(t, Options{Path: backup})
	for i, m := range want {
		rec, err := b.Get(uint64(i + 1))
		if err != nil || !bytes.Equal(rec.Raw, m.Raw) {
			t.Fatalf("backup seq %d: %v", i+1, err)
		}
	}
	// Consistent: the pending counter matches the queue in the copy.
	cnt, _, _ := b.PendingCount("a")
	q, _ := b.Pending("a", 0, MaxPageSize)
	if cnt != len(q) || cnt < 200 {
		t.Errorf("backup: counter %d, queue %d", cnt, len(q))
	}
	closeChecked(t, b)

	compacted := filepath.Join(dir, "compact.db")
	if err := Compact(backup, compacted); err != nil {
		t.Fatal(err)
	}
	if err := Compact(backup, compacted); err == nil {
		t.Error("Compact over an existing file succeeded")
	}
	c := openTest(t, Options{Path: compacted})
	rec, err := c.Get(200)
	if err != nil || !bytes.Equal(rec.Raw, want[199].Raw) {
		t.Errorf("compacted copy seq 200: %v", err)
	}
	// Sequences go on after the compacted copy's last one.
	res := mustAppend(t, c, msg("A", "B", "new", "p"))
	if res[0].Seq <= uint64(cnt) {
		t.Errorf("seq after compact = %d, want > %d", res[0].Seq, cnt)
	}
}
