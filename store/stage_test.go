package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
)

// materializeNow commits an op that is not staged, which makes its batch write
// the idx entries of every staged message.
func materializeNow(t testing.TB, s *Store) {
	t.Helper()
	if err := s.run(context.Background(), func(*txCtx) error { return nil }); err != nil {
		t.Fatalf("materialize: %v", err)
	}
}

// fileState reads what the file holds: the tail's marks, the last seq, and
// how many control-ID and queue entries idx has.
type fileState struct {
	Indexed, Queued uint64
	Last            uint64
	CtrlN, QueueN   int
	QueueCount      uint64 // epic's persisted pending count
	EpicInDestTable bool
}

// entriesIn counts the queue entries in v, one entry or a run.
func entriesIn(t testing.TB, v []byte) int {
	t.Helper()
	if !isRun(v) {
		return 1
	}
	n := 0
	for b := v[9:]; len(b) > 0; n++ {
		l := entryLen(b)
		if l == 0 {
			t.Fatalf("run %x does not decode", v)
		}
		b = b[l:]
	}
	return n
}

func readFileState(t testing.TB, s *Store) fileState {
	t.Helper()
	var st fileState
	err := s.view(func(tx *bolt.Tx) error {
		st.Indexed, st.Queued = tailMarks(tx)
		st.Last = tx.Bucket(bMsg).Sequence()
		ib := tx.Bucket(bIdx)
		_ = ib.ForEach(func(k, v []byte) error {
			switch {
			case k[0] == tagCtrl:
				st.CtrlN++
			case k[0] == tagQueue && string(k[len(k)-8:]) != string(stateSuffix):
				st.QueueN += entriesIn(t, v)
			}
			return nil
		})
		st.QueueCount, _, _ = queueState(ib, queuePrefix("epic"))
		st.EpicInDestTable = tx.Bucket(bDest).Get([]byte("epic")) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// readerView is everything the read API says about the epic queue and c1..cN.
type readerView struct {
	Pending      []QueueEntry
	Count        int
	Oldest       time.Time
	Destinations []DestinationState
	ByControlID  []uint64
}

func readView(t testing.TB, s *Store) readerView {
	t.Helper()
	var v readerView
	var err error
	if v.Pending, err = s.Pending("epic", 0, MaxPageSize); err != nil {
		t.Fatal(err)
	}
	if v.Count, v.Oldest, err = s.PendingCount("epic"); err != nil {
		t.Fatal(err)
	}
	if v.Destinations, err = s.Destinations(); err != nil {
		t.Fatal(err)
	}
	for _, ctrl := range []string{"c1", "c2", "c3"} {
		p, err := s.Search(Filter{ControlID: ctrl})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			v.ByControlID = append(v.ByControlID, r.Seq)
		}
	}
	return v
}

// TestStagedAppendWritesOnlyTheLog: an append writes the record, not idx;
// readers see the same queue, counts and control IDs before and after the
// staged entries are materialized.
func TestStagedAppendWritesOnlyTheLog(t *testing.T) {
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	m1 := msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"})
	m2 := msg("LAB", "HOSP", "c2", "p2", Target{"lis", "all"}, Target{"epic", "adt"})
	m3 := msg("LAB", "HOSP", "c3", "p3")
	m2.Received = m1.Received.Add(time.Second)
	mustAppend(t, s, m1)
	mustAppend(t, s, m2, m3)

	if got, want := readFileState(t, s), (fileState{Indexed: 0, Last: 3}); got != want {
		t.Errorf("file after appends = %+v, want %+v (nothing in idx yet)", got, want)
	}
	staged := readView(t, s)
	want := readerView{
		Pending: []QueueEntry{
			{Destination: "epic", ID: 1, Seq: 1, Route: "adt", Enqueued: m1.Received},
			{Destination: "epic", ID: 2, Seq: 2, Route: "adt", Enqueued: m2.Received},
		},
		Count:  2,
		Oldest: m1.Received,
		Destinations: []DestinationState{
			{Name: "epic", Pending: 2, Oldest: m1.Received},
			{Name: "lis", Pending: 1, Oldest: m2.Received},
		},
		ByControlID: []uint64{1, 2, 3},
	}
	if diff := cmp.Diff(want, staged, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("readers while staged (-want +got):\n%s", diff)
	}

	materializeNow(t, s)
	if got, want := readFileState(t, s), (fileState{Indexed: 3, Queued: 3, Last: 3, CtrlN: 3, QueueN: 3, QueueCount: 2, EpicInDestTable: true}); got != want {
		t.Errorf("file after materializing = %+v, want %+v", got, want)
	}
	if diff := cmp.Diff(staged, readView(t, s), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("readers after materializing differ from staged (-staged +indexed):\n%s", diff)
	}
	// Queue IDs go on from the staged ones.
	mustAppend(t, s, msg("LAB", "HOSP", "c4", "p4", Target{"epic", "adt"}))
	p, err := s.Pending("epic", 2, 10)
	if err != nil || len(p) != 1 || p[0].ID != 3 || p[0].Seq != 4 {
		t.Errorf("Pending after 2 = %+v, %v; want ID 3 seq 4", p, err)
	}
}

// TestStagedTailIsBounded: however many appends come without another write,
// at most maxStaged messages stay staged.
func TestStagedTailIsBounded(t *testing.T) {
	s := openTest(t, Options{})
	const n = maxStaged + 300
	for i := 0; i < n; i += 100 {
		var batch []Message
		for j := i; j < min(i+100, n); j++ {
			batch = append(batch, msg("LAB", "HOSP", fmt.Sprintf("c%d", j), "p", Target{"epic", "adt"}))
		}
		mustAppend(t, s, batch...)
		if st := readFileState(t, s); st.Last-st.Indexed > maxStaged {
			t.Fatalf("after %d messages: %d staged, want at most %d", st.Last, st.Last-st.Indexed, maxStaged)
		}
	}
	if c, _, _ := s.PendingCount("epic"); c != n {
		t.Errorf("PendingCount = %d, want %d", c, n)
	}
	all, err := s.Pending("epic", 0, MaxPageSize)
	if err != nil || len(all) != n {
		t.Fatalf("Pending = %d entries, %v; want %d", len(all), err, n)
	}
	for i, e := range all {
		if e.ID != uint64(i+1) || e.Seq != uint64(i+1) {
			t.Fatalf("entry %d = ID %d seq %d, want %d %d (order kept across materializing)", i, e.ID, e.Seq, i+1, i+1)
		}
	}
}

// TestStagedTailAfterStop: a file left with a staged tail (a crash, or any
// Close) reads the same read-only, and a read-write Open indexes the tail
// before the first write, so dedupe and queue IDs go on right.
func TestStagedTailAfterStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mllpd.db")
	s := openTest(t, Options{Path: path})
	m1 := msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"})
	mustAppend(t, s, m1, msg("LAB", "HOSP", "c2", "p2", Target{"epic", "adt"}))
	before := readView(t, s)
	closeChecked(t, s)

	ro := openTest(t, Options{Path: path, ReadOnly: true})
	if st := readFileState(t, ro); st.Indexed != 0 || st.Last != 2 {
		t.Fatalf("file after Close = %+v, want a staged tail of 2", st)
	}
	if diff := cmp.Diff(before, readView(t, ro), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("read-only view of the staged tail (-before +read-only):\n%s", diff)
	}
	closeChecked(t, ro)

	s = openTest(t, Options{Path: path})
	if st := readFileState(t, s); st.Indexed != 2 || st.CtrlN != 2 || st.QueueN != 2 || st.QueueCount != 2 {
		t.Errorf("file after read-write Open = %+v, want the tail indexed", st)
	}
	res := mustAppend(t, s, m1, msg("LAB", "HOSP", "c3", "p3", Target{"epic", "adt"}))
	if !res[0].Duplicate || res[0].Seq != 1 {
		t.Errorf("resend after restart = %+v, want duplicate of 1", res[0])
	}
	p, err := s.Pending("epic", 2, 10)
	if err != nil || len(p) != 1 || p[0].ID != 3 || p[0].Seq != 3 {
		t.Errorf("Pending after 2 = %+v, %v; want ID 3 seq 3", p, err)
	}
}

// TestRecordStagedEntry: an entry read from the staged tail can be marked
// delivered or dead-lettered, alone or in a batch with appends.
func TestRecordStagedEntry(t *testing.T) {
	s := openTest(t, Options{})
	mustAppend(t, s, msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"}), msg("LAB", "HOSP", "c2", "p2", Target{"epic", "adt"}))
	p, err := s.Pending("epic", 0, 10)
	if err != nil || len(p) != 2 {
		t.Fatalf("Pending = %+v, %v", p, err)
	}
	ctx := context.Background()
	done := make(chan error, 2)
	s.RecordAsync(ctx, "epic", p[0].ID, Attempt{Outcome: Delivered, AckCode: "AA"}, func(err error) { done <- err })
	s.AppendAsync(ctx, []Message{msg("LAB", "HOSP", "c3", "p3", Target{"epic", "adt"})}, func(_ []AppendResult, err error) { done <- err })
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Record(ctx, "epic", p[1].ID, Attempt{Outcome: DeadLettered, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	rest, err := s.Pending("epic", 0, 10)
	if err != nil || len(rest) != 1 || rest[0].Seq != 3 || rest[0].ID != 3 {
		t.Errorf("Pending after marks = %+v, %v; want only seq 3 (ID 3)", rest, err)
	}
	if n, _, _ := s.PendingCount("epic"); n != 1 {
		t.Errorf("PendingCount = %d, want 1", n)
	}
	if err := s.Record(ctx, "epic", 99, Attempt{Outcome: Delivered}); err == nil {
		t.Error("Record of an unknown entry succeeded")
	}
	rec, err := s.Get(1)
	if err != nil || len(rec.Deliveries) != 1 || rec.Deliveries[0].State != StateDelivered {
		t.Errorf("message 1 deliveries = %+v, %v; want delivered", rec.Deliveries, err)
	}
}

// TestMarkWritesOnlyQueueEntries: a delivery mark of a staged entry writes
// the staged queue entries and leaves the control-ID entries staged; readers,
// dedupe and queue IDs are right with the two marks apart, and a file left so
// is indexed in full by the next Open.
func TestMarkWritesOnlyQueueEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mllpd.db")
	s := openTest(t, Options{Path: path})
	m1 := msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"})
	m2 := msg("LAB", "HOSP", "c2", "p2", Target{"lis", "all"}, Target{"epic", "adt"})
	mustAppend(t, s, m1, m2)
	ctx := context.Background()
	if err := s.Record(ctx, "epic", 1, Attempt{Outcome: Delivered, AckCode: "AA"}); err != nil {
		t.Fatal(err)
	}
	if got, want := readFileState(t, s), (fileState{Indexed: 0, Queued: 2, Last: 2, QueueN: 2, QueueCount: 1, EpicInDestTable: true}); got != want {
		t.Errorf("file after the mark = %+v, want %+v (queue entries written, control IDs staged)", got, want)
	}

	mustAppend(t, s, msg("LAB", "HOSP", "c3", "p3", Target{"epic", "adt"}))
	if res := mustAppend(t, s, m1); !res[0].Duplicate || res[0].Seq != 1 {
		t.Errorf("resend of seq 1 = %+v, want a duplicate of 1", res[0])
	}
	view := readView(t, s)
	var ids, seqs []uint64
	for _, e := range view.Pending {
		ids, seqs = append(ids, e.ID), append(seqs, e.Seq)
	}
	if !slices.Equal(ids, []uint64{2, 3}) || !slices.Equal(seqs, []uint64{2, 3}) || view.Count != 2 {
		t.Errorf("epic pending = IDs %v seqs %v count %d; want IDs [2 3], seqs [2 3], count 2", ids, seqs, view.Count)
	}
	if !slices.Equal(view.ByControlID, []uint64{1, 2, 3}) {
		t.Errorf("by control ID = %v, want [1 2 3]", view.ByControlID)
	}
	closeChecked(t, s)

	s = openTest(t, Options{Path: path})
	if got, want := readFileState(t, s), (fileState{Indexed: 3, Queued: 3, Last: 3, CtrlN: 3, QueueN: 3, QueueCount: 2, EpicInDestTable: true}); got != want {
		t.Errorf("file after Open = %+v, want %+v (each part written once)", got, want)
	}
	if diff := cmp.Diff(view, readView(t, s), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("readers after Open differ (-before +after):\n%s", diff)
	}
	if res := mustAppend(t, s, m2); !res[0].Duplicate || res[0].Seq != 2 {
		t.Errorf("resend of seq 2 after Open = %+v, want a duplicate of 2", res[0])
	}
	mustAppend(t, s, msg("LAB", "HOSP", "c4", "p4", Target{"epic", "adt"}))
	if p, err := s.Pending("epic", 3, 10); err != nil || len(p) != 1 || p[0].ID != 4 || p[0].Seq != 4 {
		t.Errorf("Pending after 3 = %+v, %v; want ID 4 seq 4", p, err)
	}
}

// TestSchemaUpgradeFromV2: a version 2 file (one mark, kIndexed, for the
// whole staged tail) is upgraded with its tail indexed.
func TestSchemaUpgradeFromV2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mllpd.db")
	s := openTest(t, Options{Path: path})
	mustAppend(t, s, msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"}))
	materializeNow(t, s)
	mustAppend(t, s, msg("LAB", "HOSP", "c2", "p2", Target{"epic", "adt"}))
	closeChecked(t, s)
	downgrade(t, path, 2, kQueued) // version 2 has one mark

	s = openTest(t, Options{Path: path})
	if st := readFileState(t, s); st.Indexed != 2 || st.Queued != 2 || st.CtrlN != 2 || st.QueueN != 2 || st.QueueCount != 2 {
		t.Errorf("after upgrade: file %+v; want both entries of both messages written once", st)
	}
	if v := schemaVersion(t, s); v != SchemaVersion {
		t.Errorf("version after upgrade = %d, want %d", v, SchemaVersion)
	}
}

// downgrade rewrites the closed store file at path as the given schema
// version, deleting the meta key that version does not have.
func downgrade(t *testing.T, path string, version uint32, missing []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if err := meta.Delete(missing); err != nil {
			return err
		}
		return meta.Put(kSchema, binary.BigEndian.AppendUint32(nil, version))
	}); err != nil {
		t.Fatal(err)
	}
}

// A version 3 file holds queue entries one by one, which version 4 reads as
// they are: the upgrade only sets the version, and later runs sit beside
// the single entries.
func TestSchemaUpgradeFromV3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mllpd.db")
	s := openTest(t, Options{Path: path})
	for i := range 3 { // written one at a time: single entries, as version 3 wrote them
		mustAppend(t, s, msg("LAB", "HOSP", fmt.Sprint(i), "p", Target{"epic", "adt"}))
		materializeNow(t, s)
	}
	closeChecked(t, s)
	downgrade(t, path, 3, []byte("none"))

	s = openTest(t, Options{Path: path})
	if v := schemaVersion(t, s); v != SchemaVersion {
		t.Errorf("version after upgrade = %d, want %d", v, SchemaVersion)
	}
	var more []Message
	for i := range 10 {
		more = append(more, msg("LAB", "HOSP", fmt.Sprint(10+i), "p", Target{"epic", "adt"}))
	}
	mustAppend(t, s, more...)
	materializeNow(t, s)
	if err := s.Record(ctx, "epic", 2, Attempt{Outcome: Delivered}); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, "epic", 8, Attempt{Outcome: Delivered}); err != nil {
		t.Fatal(err)
	}
	q, err := s.Pending("epic", 0, MaxPageSize)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, e := range q {
		ids = append(ids, e.ID)
	}
	if want := []uint64{1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13}; !slices.Equal(ids, want) {
		t.Errorf("queue after upgrade and marks = %v, want %v", ids, want)
	}
}

func schemaVersion(t *testing.T, s *Store) uint32 {
	t.Helper()
	var v uint32
	if err := s.view(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint32(tx.Bucket(bMeta).Get(kSchema))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSchemaUpgradeFromV1: a version 1 file (everything indexed, no indexed
// mark) opens read-only as is and is upgraded by a read-write Open.
func TestSchemaUpgradeFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mllpd.db")
	s := openTest(t, Options{Path: path})
	mustAppend(t, s, msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"}))
	materializeNow(t, s)
	closeChecked(t, s)
	downgrade(t, path, 1, kIndexed) // version 1 has no mark: everything indexed

	ro := openTest(t, Options{Path: path, ReadOnly: true})
	if p, err := ro.Pending("epic", 0, 10); err != nil || len(p) != 1 {
		t.Errorf("read-only Pending of a v1 file = %+v, %v", p, err)
	}
	closeChecked(t, ro)
	s = openTest(t, Options{Path: path})
	if st, version := readFileState(t, s), schemaVersion(t, s); version != SchemaVersion || st.Indexed != 1 || st.QueueN != 1 {
		t.Errorf("after upgrade: version %d, file %+v; want version %d, indexed 1", version, st, SchemaVersion)
	}
	if res := mustAppend(t, s, msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"})); !res[0].Duplicate {
		t.Errorf("resend after upgrade = %+v, want duplicate", res[0])
	}
}

// dumpIdx returns every key and value of the idx bucket.
func dumpIdx(t testing.TB, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bIdx).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMaterializeMirrorMatchesFile: the idx entries written from the
// in-memory mirror (the running store) are byte for byte those written from
// the records in the file (Open after a stop), for every shape of message:
// with and without a control ID or a dedupe window, with several targets,
// duplicates, a reused control ID, over several commits and across a
// materialization in the middle of a transaction.
func TestMaterializeMirrorMatchesFile(t *testing.T) {
	dir := t.TempDir()
	appendAll := func(s *Store) {
		noWindow := msg("LAB", "HOSP", "nw", "x", Target{"epic", "adt"})
		noWindow.DedupeWindow = 0
		noCtrl := msg("LAB", "HOSP", "", "y", Target{"lis", "all"})
		mustAppend(t, s, msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"}))
		// A delivery mark writes the queue entries staged so far, not the
		// control-ID entries: the tail's two marks part.
		if err := s.Record(context.Background(), "epic", 1, Attempt{Outcome: Delivered}); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s,
			msg("LAB", "HOSP", "c2", "p2", Target{"lis", "all"}, Target{"epic", "adt"}),
			msg("LAB", "HOSP", "c1", "p1", Target{"epic", "adt"}),      // a duplicate: nothing staged
			msg("LAB", "HOSP", "c1", "changed", Target{"epic", "adt"}), // reused control ID
			noWindow, noCtrl,
			msg("RAD", "HOSP", "c2", "p3"), // no targets
			// More targets than prepared's inline room; a route whose
			// length takes two varint bytes.
			msg("LAB", "HOSP", "c3", "p4", Target{"epic", strings.Repeat("r", 200)}, Target{"lis", "all"}, Target{"ris", "x"}),
		)
		for i := range 40 {
			m := msg("LAB", "CLINIC", fmt.Sprintf("k%d", i), "p", Target{"epic", fmt.Sprintf("r%d", i%3)})
			m.Received = m.Received.Add(time.Duration(i) * time.Second)
			mustAppend(t, s, m)
		}
	}

	mirrored := openTest(t, Options{Path: filepath.Join(dir, "a.db")})
	appendAll(mirrored)
	if st := readFileState(t, mirrored); st.Indexed != 0 || st.Queued != 1 {
		t.Fatalf("file before materializing = %+v, want indexed 0, queued 1: the test would not use the mirror's two parts", st)
	}
	materializeNow(t, mirrored) // from the mirror

	path := filepath.Join(dir, "b.db")
	fromFile := openTest(t, Options{Path: path})
	appendAll(fromFile)
	closeChecked(t, fromFile)
	fromFile = openTest(t, Options{Path: path}) // Open indexes from the file

	// A mirror out of step with the file (a bug) is not trusted: the tail is
	// indexed from the file.
	outOfStep := openTest(t, Options{Path: filepath.Join(dir, "c.db")})
	appendAll(outOfStep)
	outOfStep.stage.n++
	materializeNow(t, outOfStep)
	queuesOutOfStep := openTest(t, Options{Path: filepath.Join(dir, "d.db")})
	appendAll(queuesOutOfStep)
	queuesOutOfStep.stage.qn--
	materializeNow(t, queuesOutOfStep)

	want := dumpIdx(t, fromFile)
	if len(want) == 0 {
		t.Fatal("nothing indexed")
	}
	if diff := cmp.Diff(want, dumpIdx(t, mirrored)); diff != "" {
		t.Errorf("idx from the mirror differs from idx from the file (-file +mirror):\n%s", diff)
	}
	if diff := cmp.Diff(want, dumpIdx(t, outOfStep)); diff != "" {
		t.Errorf("idx with the mirror out of step differs (-file +out of step):\n%s", diff)
	}
	if diff := cmp.Diff(want, dumpIdx(t, queuesOutOfStep)); diff != "" {
		t.Errorf("idx with the queue mirror out of step differs (-file +out of step):\n%s", diff)
	}
}

// The leader stages entries with addCtrl and addQueue, which encode key
// and value in place: each must read back what encodeDedupeValue and
// encodeQueueEntry would have built.
func TestEntryLogRoundTrip(t *testing.T) {
	hash := sha256.Sum256([]byte("content"))
	for _, tc := range []struct {
		prefix   string
		seq, exp uint64
		dest     string
		id       uint64
		enq      int64
		route    string
	}{
		{"c\x02c1\x08LAB\x00HOSP", 1, 0, "epic", 1, 0, ""},
		{"c\x01x\x01y", 1 << 40, 1 << 62, "épic", 300, 1_700_000_000_000_000_000, "adt"},
		{strings.Repeat("k", 300), 7, 9, strings.Repeat("d", 255), 1 << 63, 127, strings.Repeat("r", 128)},
	} {
		var l entryLog
		l.addCtrl([]byte(tc.prefix), tc.seq, hash[:], tc.exp)
		l.addQueue(tc.dest, tc.id, tc.seq, tc.enq, tc.route)
		want := []stagedEntry{
			{key: binary.BigEndian.AppendUint64([]byte(tc.prefix), tc.seq), dest: []byte{}, value: encodeDedupeValue(hash[:], tc.exp)},
			{dest: []byte(tc.dest), id: tc.id, value: encodeQueueEntry(tc.seq, tc.enq, tc.route)},
		}
		var got []stagedEntry
		if err := l.each(func(e *stagedEntry) error {
			got = append(got, stagedEntry{key: bytes.Clone(e.key), dest: bytes.Clone(e.dest), id: e.id, value: bytes.Clone(e.value)})
			return nil
		}); err != nil {
			t.Fatalf("prefix %.10q: %v", tc.prefix, err)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(stagedEntry{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("prefix %.10q, route %.10q: read back (-want +got):\n%s", tc.prefix, tc.route, diff)
		}
	}
}
