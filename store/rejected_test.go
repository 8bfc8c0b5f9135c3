package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRejected(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now})
	big := bytes.Repeat([]byte("x"), MaxRejectedRaw+100)
	tests := []struct {
		name string
		in   Rejected
		want Rejected
	}{
		{"small", Rejected{Listener: "pas", Peer: "10.0.0.1:3000", Reason: "no MSH", Raw: []byte("garbage")},
			Rejected{Time: clock.Now(), Listener: "pas", Peer: "10.0.0.1:3000", Reason: "no MSH", Size: 7, Hash: sha256.Sum256([]byte("garbage")), Raw: []byte("garbage")}},
		{"oversized cut to 64 KiB", Rejected{Time: clock.Now().Add(time.Second), Reason: "frame too large", Raw: big},
			Rejected{Time: clock.Now().Add(time.Second), Reason: "frame too large", Size: int64(len(big)), Hash: sha256.Sum256(big), Raw: big[:MaxRejectedRaw]}},
		{"caller-cut input keeps its size and hash", Rejected{Reason: "too large", Size: 1 << 30, Hash: [32]byte{1}, Raw: []byte("head")},
			Rejected{Time: clock.Now(), Reason: "too large", Size: 1 << 30, Hash: [32]byte{1}, Raw: []byte("head")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.AddRejected(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.GetRejected(id)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ID = id
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GetRejected (-want +got):\n%s", diff)
			}
		})
	}
	list, err := s.ListRejected(0, 0)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListRejected = %d, %v", len(list), err)
	}
	if list[0].Raw != nil || list[1].Size != int64(len(big)) {
		t.Errorf("list summaries: %+v", list[:2])
	}
	if page, _ := s.ListRejected(list[0].ID, 1); len(page) != 1 || page[0].ID != list[1].ID {
		t.Errorf("page after first: %+v", page)
	}
	if _, err := s.GetRejected(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRejected(99) = %v", err)
	}
}

func TestRejectedBoundedBySize(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{RejectedMaxBytes: 10 << 10})
	raw := bytes.Repeat([]byte("r"), 1000)
	var ids []uint64
	for i := range 30 {
		id, err := s.AddRejected(ctx, Rejected{Reason: fmt.Sprint(i), Raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	list, _ := s.ListRejected(0, 100)
	if len(list) == 0 || len(list) > 10 {
		t.Fatalf("%d records kept under a 10 KiB bound of ~1 KiB records", len(list))
	}
	if list[len(list)-1].ID != ids[len(ids)-1] {
		t.Errorf("newest record dropped")
	}
	st, _ := s.Stats()
	if st.RejectedDropped != int64(30-len(list)) {
		t.Errorf("RejectedDropped = %d, want %d", st.RejectedDropped, 30-len(list))
	}
	if st.RejectedBytes > 10<<10 {
		t.Errorf("RejectedBytes = %d over the bound", st.RejectedBytes)
	}
}
