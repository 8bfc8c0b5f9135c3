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
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
)

func TestDurabilitySettings(t *testing.T) {
	s := openTest(t, Options{})
	if s.db.NoSync {
		t.Error("bbolt NoSync is on: Append would report success before fsync")
	}
	// NoFreelistSync is a documented choice (doc.go): the freelist is rebuilt
	// at Open after an unclean stop; it holds no data.
	if !s.db.NoFreelistSync {
		t.Error("NoFreelistSync is off; doc.go documents it on")
	}
	if s.db.NoGrowSync {
		t.Error("NoGrowSync is on: file growth would not be fsynced")
	}
}

// A growing file stays in its first mapping (initialMmapSize): a remap
// would wait for every read transaction and stall the next ones.
func TestGrowingFileNotRemapped(t *testing.T) {
	s := openTest(t, Options{})
	base := s.db.Info().Data
	for i := range 40 {
		m := msg("A", "B", fmt.Sprintf("c%d", i), "p")
		m.Raw = bytes.Repeat([]byte{'x'}, 512<<10)
		mustAppend(t, s, m)
	}
	if fi, err := os.Stat(s.path); err != nil || fi.Size() < 20<<20 {
		t.Fatalf("file did not grow past 20 MiB: %v, %v", fi, err)
	}
	if got := s.db.Info().Data; got != base {
		t.Errorf("file remapped while growing: mapping moved from %#x to %#x", base, got)
	}
}

// TestPageSize: a new file gets pageSize pages; a file made with other pages
// (4 KiB, before pageSize) keeps them and works as before.
func TestPageSize(t *testing.T) {
	s := openTest(t, Options{})
	if got := s.db.Info().PageSize; got != pageSize {
		t.Errorf("new file: page size %d, want %d", got, pageSize)
	}

	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Store{path: path}).initSchema(db); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old := openTest(t, Options{Path: path})
	if got := old.db.Info().PageSize; got != 4096 {
		t.Errorf("existing file: page size %d, want its own 4096", got)
	}
	res := mustAppend(t, old, msg("A", "B", "c1", "p", Target{"epic", "r"}))
	if rec, err := old.Get(res[0].Seq); err != nil || rec.ControlID != "c1" {
		t.Errorf("Get in a 4 KiB file: %+v, %v", rec, err)
	}
}

func TestOpenLockedByAnotherHandle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mllpd.db")
	s := openTest(t, Options{Path: path})
	_ = s
	start := time.Now()
	s2, err := Open(Options{Path: path, LockTimeout: 50 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open succeeded while the file is held")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v, want about the lock timeout", d)
	}
}

func TestOpenBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  error
	}{
		{"garbage", func(t *testing.T, path string) {
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(i * 7)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
		{"truncated", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
		{"future schema", func(t *testing.T, path string) {
			s, err := Open(Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bMeta).Put(kSchema, []byte{0, 0, 0, 99})
			}); err != nil {
				t.Fatal(err)
			}
		}, ErrSchema},
		{"foreign bbolt file", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("other"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}, ErrSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mllpd.db")
			tt.setup(t, path)
			s, err := Open(Options{Path: path, LockTimeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendGet(t *testing.T) {
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	tests := []struct {
		name string
		msg  Message
	}{
		{"routed to two", msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"}, Target{"lis", "all"})},
		{"unrouted", msg("LAB", "HOSP", "c2", "p2")},
		{"no control id", func() Message { m := msg("LAB", "HOSP", "", "p3", Target{"epic", "adt"}); return m }()},
		{"empty raw", Message{Received: clock.Now(), Targets: []Target{{"epic", "r"}}}},
		{"binary raw", func() Message {
			m := msg("A", "B", "c4", "p4", Target{"epic", "r"})
			m.Raw = []byte{0, 0x0b, 0x1c, 0x0d, 0xff, 0xfe}
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustAppend(t, s, tt.msg)
			if res[0].Duplicate || res[0].ReusedControlID || res[0].Seq == 0 {
				t.Fatalf("result %+v", res[0])
			}
			got, err := s.Get(res[0].Seq)
			if err != nil {
				t.Fatal(err)
			}
			want := Record{Seq: res[0].Seq, Message: tt.msg, Size: len(tt.msg.Raw), Unrouted: len(tt.msg.Targets) == 0}
			if want.Received.IsZero() {
				want.Received = clock.Now()
			}
			for i, tg := range tt.msg.Targets {
				want.Deliveries = append(want.Deliveries, Delivery{Destination: tg.Destination, Route: tg.Route, State: StatePending, QueueID: got.Deliveries[i].QueueID})
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
				t.Errorf("Get (-want +got):\n%s", diff)
			}
			msgOnly, err := s.GetMessage(res[0].Seq)
			want.Deliveries = nil
			if diff := cmp.Diff(want, msgOnly, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); err != nil || diff != "" {
				t.Errorf("GetMessage: %v (-want +got):\n%s", err, diff)
			}
		})
	}
	if _, err := s.Get(9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetMessage(9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetMessage(unknown) = %v, want ErrNotFound", err)
	}
}

func TestAppendSurvivesReopen(t *testing.T) {
	s := openTest(t, Options{})
	m := msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"})
	res := mustAppend(t, s, m)
	s = reopenTest(t, s, Options{})
	got, err := s.Get(res[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Raw) != string(m.Raw) {
		t.Errorf("raw after reopen = %q, want %q", got.Raw, m.Raw)
	}
	res2 := mustAppend(t, s, msg("LAB", "HOSP", "c2", "p2"))
	if res2[0].Seq <= res[0].Seq {
		t.Errorf("seq after reopen %d, want > %d", res2[0].Seq, res[0].Seq)
	}
	// The dedupe index survives too.
	res3 := mustAppend(t, s, m)
	if !res3[0].Duplicate || res3[0].Seq != res[0].Seq {
		t.Errorf("resend after reopen: %+v, want duplicate of %d", res3[0], res[0].Seq)
	}
}

func TestDedupe(t *testing.T) {
	base := msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"})
	other := msg("LAB", "HOSP", "c1", "different content", Target{"epic", "adt"})
	later := func(m Message, d time.Duration) Message { m.Received = m.Received.Add(d); return m }
	noWindow := func(m Message) Message { m.DedupeWindow = 0; return m }
	otherFac := msg("LAB", "HOSP2", "c1", "p1", Target{"epic", "adt"})
	tests := []struct {
		name   string
		first  []Message
		second []Message
		want   []AppendResult // for second; Seq 1.. relative: 0 = new seq expected
	}{
		{"resend is duplicate", []Message{base}, []Message{later(base, time.Minute)},
			[]AppendResult{{Seq: 1, Duplicate: true}}},
		{"same control id other content is reuse", []Message{base}, []Message{later(other, time.Minute)},
			[]AppendResult{{Seq: 2, ReusedControlID: true, PreviousSeq: 1}}},
		{"outside window is new", []Message{base}, []Message{later(base, 2*time.Hour)},
			[]AppendResult{{Seq: 2}}},
		{"window 0 is not deduped", []Message{base}, []Message{noWindow(base)},
			[]AppendResult{{Seq: 2}}},
		{"other facility is new", []Message{base}, []Message{otherFac},
			[]AppendResult{{Seq: 2}}},
		{"two copies in one call", nil, []Message{base, base},
			[]AppendResult{{Seq: 1}, {Seq: 1, Duplicate: true}}},
		{"reuse then resend of the new content", []Message{base}, []Message{other, other},
			[]AppendResult{{Seq: 2, ReusedControlID: true, PreviousSeq: 1}, {Seq: 2, Duplicate: true}}},
	}
	// The first messages are looked up while staged (stage.go), and again
	// after their index entries are written.
	for _, mode := range []string{"staged", "indexed"} {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				s := openTest(t, Options{})
				if len(tt.first) > 0 {
					mustAppend(t, s, tt.first...)
				}
				if mode == "indexed" {
					materializeNow(t, s)
				}
				got := mustAppend(t, s, tt.second...)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("second Append (-want +got):\n%s", diff)
				}
				n, _, err := s.PendingCount("epic")
				if err != nil {
					t.Fatal(err)
				}
				stored := len(tt.first)
				for _, r := range got {
					if !r.Duplicate {
						stored++
					}
				}
				if n != stored {
					t.Errorf("epic queue holds %d, want %d (duplicates are not queued)", n, stored)
				}
			})
		}
	}
}

// TestDedupeConcurrent sends the same message from many goroutines at once:
// exactly one is stored, whatever batches they land in.
func TestDedupeConcurrent(t *testing.T) {
	s := openTest(t, Options{})
	const n = 32
	m := msg("LAB", "HOSP", "same", "p1", Target{"epic", "adt"})
	results := make([]AppendResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := s.Append(context.Background(), []Message{m})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res[0]
		})
	}
	wg.Wait()
	stored := 0
	for _, r := range results {
		if !r.Duplicate {
			stored++
		}
		if r.Seq != 1 {
			t.Errorf("result %+v, want seq 1", r)
		}
	}
	if stored != 1 {
		t.Errorf("%d copies stored, want 1", stored)
	}
	if n, _, _ := s.PendingCount("epic"); n != 1 {
		t.Errorf("queue holds %d, want 1", n)
	}
}

func TestGroupCommitSharesTransactions(t *testing.T) {
	s := openTest(t, Options{})
	const writers, each = 16, 20
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := msg("LAB", "HOSP", "", "p", Target{"epic", "adt"})
				m.Raw = append(m.Raw, byte(w), byte(i))
				res, err := s.Append(context.Background(), []Message{m})
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- res[0].Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Errorf("seq %d returned twice", q)
		}
		seen[q] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d seqs, want %d", len(seen), writers*each)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// With 16 concurrent writers nearly every commit carries several appends;
	// one commit per append would mean no grouping at all.
	if st.Commits >= writers*each {
		t.Errorf("%d commits for %d appends: no group commit", st.Commits, writers*each)
	}
	t.Logf("%d appends in %d commits", writers*each, st.Commits)
	// Queue order is seq order.
	entries, err := s.Pending("epic", 0, MaxPageSize)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Seq <= entries[i-1].Seq || entries[i].ID <= entries[i-1].ID {
			t.Fatalf("queue out of order at %d: %+v then %+v", i, entries[i-1], entries[i])
		}
	}
}

func TestAppendValidation(t *testing.T) {
	s := openTest(t, Options{})
	long := string(make([]byte, maxNameLen+1))
	for _, m := range []Message{
		msg("A", "B", "c", "p", Target{"", "r"}),
		msg("A", "B", "c", "p", Target{long, "r"}),
		msg("A", "B", "c", "p", Target{"d", long}),
	} {
		if _, err := s.Append(context.Background(), []Message{m}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%q) = %v, want ErrInvalid", m.Targets, err)
		}
	}
	if res, err := s.Append(context.Background(), nil); err != nil || res != nil {
		t.Errorf("Append(nil) = %v, %v", res, err)
	}
}

func TestAppendCanceledContext(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, []Message{msg("A", "B", "c", "p")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append = %v, want context.Canceled", err)
	}
	if st, _ := s.Stats(); st.LastSeq != 0 {
		t.Errorf("a message was stored for a canceled append")
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t, Options{})
	closeChecked(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["Append"] = s.Append(ctx, []Message{msg("A", "B", "c", "p")})
	_, checks["Get"] = s.Get(1)
	checks["Record"] = s.Record(ctx, "d", 1, Attempt{})
	_, checks["AddRejected"] = s.AddRejected(ctx, Rejected{})
	_, checks["Pending"] = s.Pending("d", 0, 1)
	_, checks["Query"] = s.Query(Filter{})
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestLowSpace(t *testing.T) {
	var mu sync.Mutex
	free := uint64(10 << 20)
	src := func() (uint64, error) { mu.Lock(); defer mu.Unlock(); return free, nil }
	set := func(n uint64) { mu.Lock(); free = n; mu.Unlock() }
	s := openTest(t, Options{MinFreeBytes: 5 << 20, FreeSpace: src, FreeSpaceInterval: time.Nanosecond})
	ctx := context.Background()
	if s.LowSpace() {
		t.Fatal("LowSpace with 10 MiB free, 5 MiB minimum")
	}
	mustAppend(t, s, msg("A", "B", "c1", "p"))
	set(4 << 20)
	if !s.LowSpace() {
		t.Fatal("not LowSpace with 4 MiB free")
	}
	if got := s.FreeBytes(); got != 4<<20 {
		t.Errorf("FreeBytes = %d, want %d", got, 4<<20)
	}
	if _, err := s.Append(ctx, []Message{msg("A", "B", "c2", "p")}); !errors.Is(err, ErrLowDiskSpace) {
		t.Fatalf("Append = %v, want ErrLowDiskSpace", err)
	}
	if _, err := s.AddRejected(ctx, Rejected{Raw: []byte("x")}); !errors.Is(err, ErrLowDiskSpace) {
		t.Fatalf("AddRejected = %v, want ErrLowDiskSpace", err)
	}
	set(6 << 20)
	if _, err := s.Append(ctx, []Message{msg("A", "B", "c3", "p")}); err != nil {
		t.Fatalf("Append after space came back: %v", err)
	}
}

// TestLowSpaceCached: the free-space source is not called per message.
func TestLowSpaceCached(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	src := func() (uint64, error) { mu.Lock(); calls++; mu.Unlock(); return 1 << 40, nil }
	s := openTest(t, Options{MinFreeBytes: 1, FreeSpace: src, FreeSpaceInterval: time.Hour})
	for i := range 50 {
		mustAppend(t, s, msg("A", "B", string(rune('a'+i)), "p"))
	}
	mu.Lock()
	defer mu.Unlock()
	if calls > 2 {
		t.Errorf("free space read %d times for 50 appends, want it cached", calls)
	}
}

func TestStatfsFree(t *testing.T) {
	n, err := statfsFree(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("statfsFree = %d, %v", n, err)
	}
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mllpd.db")
	if _, err := Open(Options{Path: path, ReadOnly: true}); err == nil {
		t.Fatal("read-only Open of a missing file succeeded")
	}
	s := openTest(t, Options{Path: path})
	res := mustAppend(t, s, msg("A", "B", "c1", "p", Target{"epic", "r"}))
	closeChecked(t, s)

	ro := openTest(t, Options{Path: path, ReadOnly: true})
	if rec, err := ro.Get(res[0].Seq); err != nil || rec.ControlID != "c1" {
		t.Errorf("Get read-only = %+v, %v", rec, err)
	}
	if _, err := ro.Append(context.Background(), []Message{msg("A", "B", "c2", "p")}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Append read-only = %v, want ErrReadOnly", err)
	}
	if err := ro.Record(context.Background(), "epic", 1, Attempt{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Record read-only = %v, want ErrReadOnly", err)
	}
	// A second reader may share the file; a writer may not.
	ro2 := openTest(t, Options{Path: path, ReadOnly: true})
	_ = ro2
	if w, err := Open(Options{Path: path, LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if err == nil {
			w.Close()
		}
		t.Errorf("writer Open beside readers = %v, want ErrLocked", err)
	}
}

// TestAppendAsync: done is called once per call with Append's outcome, from
// the committing goroutine; concurrent calls share commits; a duplicate in a
// later batch is caught; refusals call done before AppendAsync returns.
// TestAppendAsyncLeadsInCaller: with no commit in progress the caller's
// goroutine commits its own batch, so done has run, with the outcome, when
// AppendAsync returns.
func TestAppendAsyncLeadsInCaller(t *testing.T) {
	s := openTest(t, Options{})
	for i := range 3 {
		var got []AppendResult
		s.AppendAsync(context.Background(), []Message{msg("LAB", "HOSP", fmt.Sprintf("L%d", i), "p")}, func(res []AppendResult, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			got = res
		})
		if len(got) != 1 || got[0].Seq != uint64(i+1) {
			t.Fatalf("append %d: done had %+v when AppendAsync returned, want seq %d", i, got, i+1)
		}
	}
}

// TestAppendAsyncCopiesRaw: the caller may reuse the Raw buffer once
// AppendAsync returned (ingest appends straight from the MLLP reader's frame);
// what is stored is what the buffer held at the call.
func TestAppendAsyncCopiesRaw(t *testing.T) {
	s := openTest(t, Options{})
	const n = 32
	buf := make([]byte, 0, 256)
	done := make(chan AppendResult, n)
	want := map[string]string{}
	for i := range n {
		m := msg("LAB", "HOSP", fmt.Sprintf("C%d", i), fmt.Sprintf("p%d", i))
		buf = append(buf[:0], m.Raw...)
		m.Raw = buf
		want[m.ControlID] = string(buf)
		s.AppendAsync(context.Background(), []Message{m}, func(res []AppendResult, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
				res = []AppendResult{{}}
			}
			done <- res[0]
		})
		for j := range buf {
			buf[j] = 'X' // reused at once, as the reader reuses its frame
		}
	}
	for range n {
		res := <-done
		r, err := s.Get(res.Seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", res.Seq, err)
		}
		if string(r.Raw) != want[r.ControlID] {
			t.Errorf("seq %d (%s) holds %q, want %q", res.Seq, r.ControlID, r.Raw, want[r.ControlID])
		}
	}
}

// Record buffers go back to a pool when their batch is over and are reused
// by later appends: concurrent appends of many sizes, sync and async, must
// each read back exactly as sent.
func TestRecordBuffersReused(t *testing.T) {
	s := openTest(t, Options{})
	const writers, each = 8, 60
	type stored struct {
		seq uint64
		raw string
	}
	out := make(chan stored, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := msg("LAB", "HOSP", fmt.Sprintf("W%dM%d", w, i), "p", Target{"epic", "adt"})
				m.Raw = bytes.Repeat([]byte{byte('a' + (w+i)%26)}, 10+(w*131+i*977)%5000)
				copy(m.Raw, m.ControlID)
				raw := string(m.Raw)
				if i%2 == 0 {
					res, err := s.Append(context.Background(), []Message{m})
					if err != nil {
						t.Error(err)
						return
					}
					out <- stored{res[0].Seq, raw}
					continue
				}
				done := make(chan []AppendResult, 1)
				s.AppendAsync(context.Background(), []Message{m}, func(res []AppendResult, err error) {
					if err != nil {
						t.Error(err)
					}
					done <- res
				})
				if res := <-done; len(res) == 1 {
					out <- stored{res[0].Seq, raw}
				}
			}
		})
	}
	wg.Wait()
	close(out)
	n := 0
	for st := range out {
		n++
		r, err := s.Get(st.seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", st.seq, err)
		}
		if string(r.Raw) != st.raw {
			t.Fatalf("seq %d holds %d bytes starting %q, want %d bytes starting %q", st.seq, len(r.Raw), r.Raw[:min(12, len(r.Raw))], len(st.raw), st.raw[:min(12, len(st.raw))])
		}
	}
	if n != writers*each {
		t.Fatalf("%d appends stored, want %d", n, writers*each)
	}
}

func TestAppendAsync(t *testing.T) {
	s := openTest(t, Options{})
	const n = 64
	type outcome struct {
		i   int
		res []AppendResult
		err error
	}
	outcomes := make(chan outcome, 2*n)
	for i := range n {
		m := msg("LAB", "HOSP", fmt.Sprintf("C%d", i), fmt.Sprintf("p%d", i))
		s.AppendAsync(context.Background(), []Message{m}, func(res []AppendResult, err error) {
			outcomes <- outcome{i, res, err}
		})
	}
	seqs := map[int]uint64{}
	for range n {
		o := <-outcomes
		if o.err != nil || len(o.res) != 1 || o.res[0].Duplicate {
			t.Fatalf("message %d: %+v, %v", o.i, o.res, o.err)
		}
		if _, dup := seqs[o.i]; dup {
			t.Fatalf("done called twice for message %d", o.i)
		}
		seqs[o.i] = o.res[0].Seq
	}
	for i, seq := range seqs {
		r, err := s.Get(seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", seq, err)
		}
		if want := fmt.Sprintf("C%d", i); r.ControlID != want {
			t.Errorf("seq %d holds %q, want %q", seq, r.ControlID, want)
		}
	}
	s.AppendAsync(context.Background(), []Message{msg("LAB", "HOSP", "C7", "p7")}, func(res []AppendResult, err error) {
		outcomes <- outcome{7, res, err}
	})
	if o := <-outcomes; o.err != nil || !o.res[0].Duplicate || o.res[0].Seq != seqs[7] {
		t.Errorf("resend of C7: %+v, %v; want a duplicate of seq %d", o.res, o.err, seqs[7])
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got []error
	s.AppendAsync(ctx, []Message{msg("LAB", "HOSP", "X", "x")}, func(_ []AppendResult, err error) { got = append(got, err) })
	s.AppendAsync(context.Background(), []Message{msg("A", "B", "c", "p", Target{"", "r"})}, func(_ []AppendResult, err error) { got = append(got, err) })
	closeChecked(t, s)
	s.AppendAsync(context.Background(), []Message{msg("LAB", "HOSP", "Y", "y")}, func(_ []AppendResult, err error) { got = append(got, err) })
	want := []error{context.Canceled, ErrInvalid, ErrClosed}
	if len(got) != len(want) {
		t.Fatalf("done called %d times before AppendAsync returned, want %d", len(got), len(want))
	}
	for i := range want {
		if !errors.Is(got[i], want[i]) {
			t.Errorf("refusal %d: %v, want %v", i, got[i], want[i])
		}
	}
}
