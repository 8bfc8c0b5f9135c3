package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A Record is a stored message with its delivery state per destination.
type Record struct {
	Seq uint64
	Message
	Size       int  // len(Raw), also when a summary leaves Raw out
	Unrouted   bool // no route matched: no queue entry was written
	Deliveries []Delivery
}

// Get returns message seq with its raw bytes and deliveries, or ErrNotFound.
func (s *Store) Get(seq uint64) (Record, error) { return s.get(seq, true) }

// GetMessage is Get without Deliveries (nil): the message alone, for a
// delivery worker that sends it.
func (s *Store) GetMessage(seq uint64) (Record, error) { return s.get(seq, false) }

func (s *Store) get(seq uint64, withDeliveries bool) (Record, error) {
	var rec Record
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bMsg).Get(u64key(seq))
		if v == nil {
			return fmt.Errorf("store: message %d: %w", seq, ErrNotFound)
		}
		m, err := decodeMessage(v, true)
		if err != nil {
			return fmt.Errorf("store: message %d: %w", seq, err)
		}
		rec = Record{Seq: seq, Message: m.Message, Size: m.size, Unrouted: len(m.Targets) == 0}
		if withDeliveries {
			rec.Deliveries = deliveries(tx, seq, &m)
		}
		return nil
	})
	return rec, err
}

// deliveries derives one Delivery per destination: the stored record where an
// attempt, dead-lettering or requeue wrote one, else "pending" from the target
// list (a message nobody has tried yet costs no delivery record).
func deliveries(tx *bolt.Tx, seq uint64, m *msgRecord) []Delivery {
	stored := map[string]Delivery{}
	var extra []string
	prefix := u64key(seq)
	cur := tx.Bucket(bDelivery).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		dest := string(k[8:])
		dl, err := decodeDelivery(dest, v)
		if err != nil {
			dl = Delivery{Destination: dest, State: "unknown", LastError: "corrupt delivery record"}
		}
		stored[dest] = dl
		extra = append(extra, dest)
	}
	out := make([]Delivery, 0, len(m.Targets)+len(extra))
	seen := map[string]bool{}
	for i, t := range m.Targets {
		if seen[t.Destination] {
			continue
		}
		seen[t.Destination] = true
		if dl, ok := stored[t.Destination]; ok {
			out = append(out, dl)
			continue
		}
		out = append(out, Delivery{Destination: t.Destination, Route: t.Route, State: StatePending, QueueID: m.queueIDs[i]})
	}
	for _, dest := range extra {
		if !seen[dest] {
			out = append(out, stored[dest])
		}
	}
	return out
}

// A Filter selects messages for Query. Zero fields do not filter.
type Filter struct {
	Since, Until    time.Time // on Received; Until is exclusive
	Type            string    // "ADT" or "ADT^A01"
	ControlID       string    // exact MSH-10
	PatientID       string    // exact
	SendingApp      string    // exact MSH-3
	SendingFacility string    // exact MSH-4
	State           string    // a message with at least one delivery in this state
	Unrouted        bool      // only messages no route matched
	AfterSeq        uint64    // paging: start after this sequence number
	Limit           int       // 0 = DefaultPageSize; at most MaxPageSize
}

// MaxScan bounds the records one Query looks at; a page can end early
// (Page.Next says where to go on) when the filter matches few of them.
const MaxScan = 20000

// A Page is one Query result: Records in sequence order, and Next, the AfterSeq
// for the following page (0 = nothing more).
type Page struct {
	Records []Record
	Next    uint64
}

// Query returns the messages that match f, in sequence order, as summaries
// (Raw left out; Size set). See Search for paging over sparse filters.
func (s *Store) Query(f Filter) ([]Record, error) {
	p, err := s.Search(f)
	return p.Records, err
}

// Search is Query with a cursor: ControlID uses its index and Since the time
// index; every other filter is checked on at most MaxScan records per call, so
// a sparse filter may return fewer than Limit records and a non-zero Next.
func (s *Store) Search(f Filter) (Page, error) {
	limit := pageLimit(f.Limit)
	var p Page
	err := s.view(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bMsg)
		take := func(seq uint64, v []byte) (bool, error) {
			m, err := decodeMessage(v, false)
			if err != nil {
				return false, fmt.Errorf("store: message %d: %w", seq, err)
			}
			if !f.matchHeader(&m) {
				return false, nil
			}
			rec := Record{Seq: seq, Message: m.Message, Size: m.size, Unrouted: len(m.Targets) == 0}
			rec.Deliveries = deliveries(tx, seq, &m)
			if f.State != "" && !hasState(rec.Deliveries, f.State) {
				return false, nil
			}
			p.Records = append(p.Records, rec)
			return true, nil
		}
		scanned := 0
		if f.ControlID != "" {
			// The index orders by sender, then seq: collect the seqs (few share
			// a control ID), then read them in seq order.
			prefix := ctrlPart([]byte{tagCtrl}, f.ControlID)
			var seqs []uint64
			cur := tx.Bucket(bIdx).Cursor()
			for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(seqs) < MaxScan; k, _ = cur.Next() {
				if seq := binary.BigEndian.Uint64(k[len(k)-8:]); seq > f.AfterSeq {
					seqs = append(seqs, seq)
				}
			}
			slices.Sort(seqs)
			// Staged messages are not in the index yet; all are newer than it.
			_ = stagedTail(tx, tagCtrl, f.AfterSeq+1, func(seq uint64, r *stagedRecord) bool {
				if string(r.ctrl) == f.ControlID {
					seqs = append(seqs, seq)
				}
				return len(seqs) < MaxScan
			})
			for _, seq := range seqs {
				if len(p.Records) == limit {
					p.Next = seq - 1
					break
				}
				if v := mb.Get(u64key(seq)); v != nil {
					if _, err := take(seq, v); err != nil {
						return err
					}
				}
			}
			return nil
		}
		start := f.AfterSeq + 1
		if !f.Since.IsZero() {
			if s := timeSeek(tx, f.Since); s > start {
				start = s
			}
		}
		cur := mb.Cursor()
		for k, v := cur.Seek(u64key(start)); k != nil; k, v = cur.Next() {
			seq := keyU64(k)
			if len(p.Records) == limit || scanned == MaxScan {
				p.Next = seq - 1
				break
			}
			scanned++
			if !f.Until.IsZero() {
				// Received is close to monotonic in seq (it is stamped on arrival, and
				// commits follow within the commit timeout); allow a minute of skew.
				if recv := receivedOf(v); recv.After(f.Until.Add(time.Minute)) {
					break
				}
			}
			if _, err := take(seq, v); err != nil {
				return err
			}
		}
		return nil
	})
	return p, err
}

func (f *Filter) matchHeader(m *msgRecord) bool {
	if !f.Since.IsZero() && m.Received.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !m.Received.Before(f.Until) {
		return false
	}
	if f.Type != "" {
		typ, ev, hasEv := strings.Cut(f.Type, "^")
		if m.Type != typ || (hasEv && m.Event != ev) {
			return false
		}
	}
	switch {
	case f.ControlID != "" && m.ControlID != f.ControlID,
		f.PatientID != "" && m.PatientID != f.PatientID,
		f.SendingApp != "" && m.SendingApp != f.SendingApp,
		f.SendingFacility != "" && m.SendingFacility != f.SendingFacility,
		f.Unrouted && len(m.Targets) != 0:
		return false
	}
	return true
}

func hasState(ds []Delivery, state string) bool {
	for _, d := range ds {
		if d.State == state {
			return true
		}
	}
	return false
}

// receivedOf decodes only the receive time of an encoded message.
func receivedOf(v []byte) time.Time {
	if len(v) < 2 {
		return time.Time{}
	}
	d := decoder{b: v[1:]}
	return d.time()
}

// timeSeek returns a seq at or before the first message received at or after
// t, from the per-second time index. It starts a minute early: receive times
// are stamped before the commit that orders seqs, so they may be slightly out
// of seq order; the scan filters on Received exactly.
func timeSeek(tx *bolt.Tx, t time.Time) uint64 {
	cur := tx.Bucket(bTime).Cursor()
	sec := t.Add(-time.Minute).Unix()
	if sec < 0 {
		sec = 0
	}
	k, v := cur.Seek(u64key(uint64(sec)))
	if k == nil {
		// Everything indexed is older: start after the newest message.
		if k, v = cur.Last(); k == nil {
			return 0
		}
		return keyU64(v)
	}
	return keyU64(v)
}
