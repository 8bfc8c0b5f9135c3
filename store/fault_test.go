//go:build faultinject

// These tests need the faultinject build tag: go test -race -tags faultinject ./store/
// (make test runs it; plain go test skips this file).

package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestCommitFailureNeverReportsSuccess fails commits under concurrent appends:
// every caller of a failed batch gets a *CommitError, none of those messages is
// in the file afterwards, and the store reopens the file and carries on.
func TestCommitFailureNeverReportsSuccess(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	before := mustAppend(t, s, msg("A", "B", "before", "p", Target{"epic", "r"}))

	boom := errors.New("fsync: input/output error")
	SetCommitFault(s, func() error { return boom })
	const writers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var succeeded []uint64
	for w := range writers {
		wg.Go(func() {
			m := msg("A", "B", string(rune('a'+w)), "p", Target{"epic", "r"})
			res, err := s.Append(ctx, []Message{m})
			if err == nil {
				mu.Lock()
				succeeded = append(succeeded, res[0].Seq)
				mu.Unlock()
				return
			}
			var ce *CommitError
			if !errors.As(err, &ce) || !errors.Is(err, boom) {
				t.Errorf("Append = %v, want *CommitError wrapping the fault", err)
			}
		})
	}
	wg.Wait()
	if len(succeeded) != 0 {
		t.Fatalf("Append reported success for %v while every commit failed", succeeded)
	}
	if err := s.Record(ctx, "epic", 1, Attempt{Outcome: Delivered}); !errors.As(err, new(*CommitError)) {
		t.Errorf("Record = %v, want *CommitError", err)
	}

	SetCommitFault(s, nil)
	after := mustAppend(t, s, msg("A", "B", "after", "p", Target{"epic", "r"}))
	if got := s.reopens.Load(); got == 0 {
		t.Error("the file was not reopened after the failed commit")
	}
	// Nothing of the failed batches is in the file; sequence numbers go on
	// from what was committed.
	if after[0].Seq != before[0].Seq+1 {
		t.Errorf("seq after failures = %d, want %d", after[0].Seq, before[0].Seq+1)
	}
	if n, _, _ := s.PendingCount("epic"); n != 2 {
		t.Errorf("pending = %d, want 2 (before and after)", n)
	}
	q, _ := s.Pending("epic", 0, 100)
	if len(q) != 2 {
		t.Errorf("queue holds %d entries, want 2", len(q))
	}
	if rec, err := s.Get(before[0].Seq); err != nil || rec.ControlID != "before" {
		t.Errorf("message before the failures: %+v, %v", rec, err)
	}
	// The message committed (staged) before the failures is still deduped
	// after the reopen, and its queue entry kept its place.
	if res := mustAppend(t, s, msg("A", "B", "before", "p", Target{"epic", "r"})); !res[0].Duplicate || res[0].Seq != before[0].Seq {
		t.Errorf("resend of the message before the failures = %+v, want duplicate of %d", res[0], before[0].Seq)
	}
	if len(q) == 2 && (q[0].Seq != before[0].Seq || q[1].Seq != after[0].Seq || q[0].ID >= q[1].ID) {
		t.Errorf("queue = %+v, want before then after", q)
	}
	// A resend of a message whose commit failed is stored now, not taken for a duplicate.
	res := mustAppend(t, s, msg("A", "B", "a", "p", Target{"epic", "r"}))
	if res[0].Duplicate {
		t.Error("a message whose commit failed was later reported as a duplicate")
	}
}

// TestCommitStall: a caller whose batch is stalled waits for the outcome even
// after its ctx ends, and callers arriving meanwhile join the next batch.
func TestCommitStall(t *testing.T) {
	s := openTest(t, Options{})
	entered := make(chan struct{}, 1)
	release := make(chan error)
	SetCommitFault(s, func() error {
		select {
		case entered <- struct{}{}:
		default:
		}
		return <-release
	})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, []Message{msg("A", "B", "1", "p")})
		first <- err
	}()
	<-entered
	cancel() // the first caller is queued: its ctx no longer matters
	second := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), []Message{msg("A", "B", "2", "p")})
		second <- err
	}()
	select {
	case err := <-first:
		t.Fatalf("stalled Append returned %v before its commit was decided", err)
	default:
	}
	release <- errors.New("disk gone") // first batch fails
	if err := <-first; !errors.As(err, new(*CommitError)) {
		t.Fatalf("first Append = %v, want *CommitError", err)
	}
	<-entered
	release <- nil // second batch commits
	if err := <-second; err != nil {
		t.Fatalf("second Append = %v", err)
	}
	SetCommitFault(s, nil)
	if _, err := s.Get(1); err != nil {
		t.Errorf("second message: %v", err)
	}
}

// TestFaultFile drives faults from outside the process through MLLPD_FAULT_FILE.
func TestFaultFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fault")
	t.Setenv(FaultEnv, path)
	s := openTest(t, Options{})
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, s, msg("A", "B", "0", "p")) // no file: commits
	write("fail\n")
	if _, err := s.Append(context.Background(), []Message{msg("A", "B", "1", "p")}); !errors.Is(err, ErrInjected) {
		t.Fatalf("Append with fail file = %v, want ErrInjected", err)
	}
	write("stall")
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), []Message{msg("A", "B", "2", "p")})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Append returned %v while the fault file says stall", err)
	case <-time.After(200 * time.Millisecond): // asserting it stays blocked
	}
	write("ok")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Append after stall = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append still blocked after the fault file changed")
	}
}

// TestAppendContextBoundsOnlyTheQueueWait: with the batch full behind a
// stalled commit, a caller whose ctx ends gives up before being queued and
// nothing of its message is stored.
func TestAppendContextBoundsOnlyTheQueueWait(t *testing.T) {
	s := openTest(t, Options{MaxBatch: 1})
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	SetCommitFault(s, func() error {
		entered <- struct{}{}
		<-release
		return nil
	})
	results := make(chan error, 2)
	go func() { _, err := s.Append(context.Background(), []Message{msg("A", "B", "1", "p")}); results <- err }()
	<-entered // batch 1 is committing
	go func() { _, err := s.Append(context.Background(), []Message{msg("A", "B", "2", "p")}); results <- err }()
	// Wait until the second append fills the next batch (MaxBatch 1).
	for {
		s.gc.mu.Lock()
		n := len(s.gc.pending)
		s.gc.mu.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Append(ctx, []Message{msg("A", "B", "3", "p")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Append = %v, want DeadlineExceeded while no batch has room", err)
	}
	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	SetCommitFault(s, nil)
	got, err := s.Query(Filter{ControlID: "3"})
	if err != nil || len(got) != 0 {
		t.Errorf("the refused message was stored: %v, %v", seqsOfRecords(got), err)
	}
	if st, _ := s.Stats(); st.LastSeq != 2 {
		t.Errorf("LastSeq = %d, want 2", st.LastSeq)
	}
}
