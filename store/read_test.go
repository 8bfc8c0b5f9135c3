package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func seqsOfRecords(rs []Record) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}

// queryFixture appends 20 messages, one a minute from t0: even ones ADT^A01
// from HOSP routed to epic, odd ones ORU^R01 from LAB unrouted; patient P<i%3>;
// control ID C<i>, except that 5 and 15 share control ID "dup" (other senders).
func queryFixture(t *testing.T) (*Store, time.Time) {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, Options{})
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for i := range 20 {
		ctrl := fmt.Sprint("C", i)
		fac := "HOSP"
		if i == 5 || i == 15 {
			ctrl = "dup"
			fac = fmt.Sprint("F", i)
		}
		m := msg("APP", fac, ctrl, fmt.Sprint("P", i%3))
		m.Received = t0.Add(time.Duration(i) * time.Minute)
		if i%2 == 0 {
			m.Targets = []Target{{"epic", "adt"}}
		} else {
			m.Type, m.Event = "ORU", "R01"
			if ctrl != "dup" {
				m.SendingFacility = "LAB"
			}
		}
		mustAppend(t, s, m)
	}
	// Deliver seq 1 and 3 (i=0, 2) to epic.
	for _, id := range []uint64{1, 2} {
		if err := s.Record(ctx, "epic", id, Attempt{Outcome: Delivered, AckCode: "AA"}); err != nil {
			t.Fatal(err)
		}
	}
	return s, t0
}

func TestQuery(t *testing.T) {
	s, t0 := queryFixture(t)
	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"all, first page", Filter{Limit: 3}, []uint64{1, 2, 3}},
		{"paging", Filter{AfterSeq: 18}, []uint64{19, 20}},
		{"control id", Filter{ControlID: "C4"}, []uint64{5}},
		{"shared control id", Filter{ControlID: "dup"}, []uint64{6, 16}},
		{"shared control id after", Filter{ControlID: "dup", AfterSeq: 6}, []uint64{16}},
		{"control id unknown", Filter{ControlID: "nope"}, nil},
		{"control id prefix is not a match", Filter{ControlID: "C1"}, []uint64{2}},
		{"type", Filter{Type: "ORU", Limit: 3}, []uint64{2, 4, 6}},
		{"type and event", Filter{Type: "ADT^A01", Limit: 2}, []uint64{1, 3}},
		{"type and wrong event", Filter{Type: "ADT^A08"}, nil},
		{"patient", Filter{PatientID: "P1"}, []uint64{2, 5, 8, 11, 14, 17, 20}},
		{"facility", Filter{SendingFacility: "F15"}, []uint64{16}},
		{"since", Filter{Since: t0.Add(17 * time.Minute)}, []uint64{18, 19, 20}},
		{"until is exclusive", Filter{Until: t0.Add(2 * time.Minute)}, []uint64{1, 2}},
		{"range", Filter{Since: t0.Add(5 * time.Minute), Until: t0.Add(8 * time.Minute)}, []uint64{6, 7, 8}},
		{"delivered", Filter{State: StateDelivered}, []uint64{1, 3}},
		{"pending", Filter{State: StatePending, Limit: 2}, []uint64{5, 7}},
		{"unrouted", Filter{Unrouted: true, Limit: 2}, []uint64{2, 4}},
		{"combined", Filter{Type: "ADT", PatientID: "P0", State: StatePending}, []uint64{7, 13, 19}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Query(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, seqsOfRecords(got)); diff != "" {
				t.Errorf("Query(%+v) (-want +got):\n%s", tt.f, diff)
			}
			for _, r := range got {
				if r.Raw != nil || r.Size == 0 {
					t.Errorf("summary seq %d: Raw %d bytes, Size %d; want no Raw, Size set", r.Seq, len(r.Raw), r.Size)
				}
			}
		})
	}
}

func TestSearchPagesThroughSparseFilters(t *testing.T) {
	s, _ := queryFixture(t)
	var got []uint64
	f := Filter{PatientID: "P2", Limit: 2}
	for range 20 {
		p, err := s.Search(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, seqsOfRecords(p.Records)...)
		if p.Next == 0 {
			break
		}
		f.AfterSeq = p.Next
	}
	if diff := cmp.Diff([]uint64{3, 6, 9, 12, 15, 18}, got); diff != "" {
		t.Errorf("paged P2 (-want +got):\n%s", diff)
	}
}
