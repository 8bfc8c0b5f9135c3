package store

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func FuzzMessageCodec(f *testing.F) {
	f.Add([]byte("MSH|^~\\&|A|B\r"), "ctrl", "pas", "epic", "adt", int64(1764244800000000000), uint8(2))
	f.Add([]byte{}, "", "", "", "", int64(0), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, 300), "\x00", "ü", "d", "", int64(-5), uint8(9))
	f.Fuzz(func(t *testing.T, raw []byte, ctrl, listener, dest, route string, nanos int64, ntargets uint8) {
		m := Message{Raw: raw, Listener: listener, Peer: route, Charset: dest, ControlID: ctrl, Type: ctrl,
			Event: listener, SendingApp: dest, SendingFacility: route, PatientID: ctrl,
			ContentHash: [32]byte{byte(len(raw))}, DedupeWindow: time.Duration(ntargets) * time.Second}
		if nanos > 0 {
			m.Received = time.Unix(0, nanos)
		}
		var ids []uint64
		for i := range int(ntargets % 12) {
			m.Targets = append(m.Targets, Target{Destination: dest + string(rune('a'+i)), Route: route})
			ids = append(ids, uint64(i)*1000+1)
		}
		enc := encodeMessage(nil, &m, ids)
		if len(enc) > encodedSize(&m) {
			t.Fatalf("encoded %d bytes, encodedSize says at most %d", len(enc), encodedSize(&m))
		}
		got, err := decodeMessage(enc, true)
		if err != nil {
			t.Fatalf("decode of encoded message: %v", err)
		}
		if diff := cmp.Diff(m, got.Message, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		if !cmp.Equal(ids, got.queueIDs, cmpopts.EquateEmpty()) || got.size != len(raw) {
			t.Errorf("queue IDs %v size %d, want %v %d", got.queueIDs, got.size, ids, len(raw))
		}
		// The index-only decoder reads the same fields without copying.
		var sr stagedRecord
		if err := decodeStaged(enc, &sr); err != nil {
			t.Fatalf("decodeStaged of encoded message: %v", err)
		}
		wantStaged := stagedRecord{received: got.Received.UnixNano(), ctrl: []byte(ctrl), app: []byte(dest), fac: []byte(route),
			hash: m.ContentHash[:], window: uint64(m.DedupeWindow)}
		if m.Received.IsZero() {
			wantStaged.received = 0
		}
		for i, tg := range m.Targets {
			wantStaged.targets = append(wantStaged.targets, stagedTarget{dest: []byte(tg.Destination), route: []byte(tg.Route), id: ids[i]})
		}
		if diff := cmp.Diff(wantStaged, sr, cmp.AllowUnexported(stagedRecord{}, stagedTarget{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("decodeStaged (-want +got):\n%s", diff)
		}
		// A record encoded before its queue IDs were known reads the same
		// once they are set; a version 1 record (uvarint IDs) reads the same.
		late := encodeMessage(nil, &m, nil)
		if err := setQueueIDs(late, ids); err != nil || !bytes.Equal(late, enc) {
			t.Errorf("setQueueIDs: %v; record differs from one encoded with its IDs", err)
		}
		v1, err := decodeMessage(encodeMessageV1(&m, ids), true)
		if err != nil || !cmp.Equal(v1, got, cmp.AllowUnexported(msgRecord{}), cmpopts.EquateEmpty()) {
			t.Errorf("version 1 record: %v, decodes differently", err)
		}
		if err := decodeStaged(encodeMessageV1(&m, ids), &sr); err != nil || !cmp.Equal(wantStaged, sr, cmp.AllowUnexported(stagedRecord{}, stagedTarget{}), cmpopts.EquateEmpty()) {
			t.Errorf("version 1 record: decodeStaged %v, or differs", err)
		}
		if !receivedOf(enc).Equal(m.Received) {
			t.Errorf("receivedOf = %v, want %v", receivedOf(enc), m.Received)
		}
		// Arbitrary bytes (here: the raw input) decode to an error or to a
		// message that re-encodes to the same bytes; never a panic.
		if d, err := decodeMessage(raw, true); err == nil {
			again := encodeMessage(nil, &d.Message, d.queueIDs)
			d2, err := decodeMessage(again, true)
			if err != nil || !cmp.Equal(d.Message, d2.Message, cmpopts.EquateEmpty()) {
				t.Errorf("decoded garbage does not round-trip: %v", err)
			}
		}
		if _, err := decodeMessage(raw, false); (decodeStaged(raw, &sr) == nil) != (err == nil) {
			t.Errorf("decodeStaged and decodeMessage disagree on arbitrary bytes: %v", err)
		}
		// Every truncation of a valid encoding fails cleanly.
		for _, n := range []int{0, 1, len(enc) / 2, len(enc) - 1} {
			if n >= 0 && n < len(enc) {
				if _, err := decodeMessage(enc[:n], true); err == nil {
					t.Errorf("decode of %d of %d bytes succeeded", n, len(enc))
				}
				if decodeStaged(enc[:n], &sr) == nil {
					t.Errorf("decodeStaged of %d of %d bytes succeeded", n, len(enc))
				}
			}
		}
	})
}

func FuzzRecordCodecs(f *testing.F) {
	f.Add([]byte{1, 2, 3}, "epic", "AA", int64(1764244800000000000), uint64(7))
	f.Fuzz(func(t *testing.T, b []byte, s1, s2 string, nanos int64, n uint64) {
		at := time.Time{}
		if nanos > 0 {
			at = time.Unix(0, nanos)
		}
		dl := Delivery{Destination: s1, Route: s2, State: s2, Attempts: int(n % 1000), FirstAttempt: at, LastAttempt: at,
			DeliveredAt: at, AckCode: s2, AckControlID: s1, ErrorCode: s2, HTTPStatus: int(n % 600), LastError: s1,
			DeadReason: s2, QueueID: n, DeadLetterID: n / 2}
		got, err := decodeDelivery(s1, encodeDelivery(&dl))
		if err != nil || !cmp.Equal(dl, got) {
			t.Errorf("delivery round trip: %v\n%s", err, cmp.Diff(dl, got))
		}
		r := Rejected{ID: n, Time: at, Listener: s1, Peer: s2, Reason: s1, Size: int64(n >> 1), Hash: [32]byte{1}, Raw: b}
		gr, err := decodeRejected(u64key(n), encodeRejected(&r), true)
		if err != nil || !cmp.Equal(r, gr, cmpopts.EquateEmpty()) {
			t.Errorf("rejected round trip: %v\n%s", err, cmp.Diff(r, gr, cmpopts.EquateEmpty()))
		}
		dead := DeadLetter{Destination: s1, ID: n, Seq: n + 1, Route: s2, Enqueued: at, Time: at, Reason: s1}
		gd, err := decodeDeadLetter(s1, u64key(n), encodeDeadLetter(dead.Seq, at, at, s2, s1))
		if err != nil || !cmp.Equal(dead, gd) {
			t.Errorf("dead letter round trip: %v\n%s", err, cmp.Diff(dead, gd))
		}
		st := destState{blocked: n%2 == 1, blockedAt: at, reason: s1}
		if got := decodeDestState(st.encode()); !cmp.Equal(st, got, cmp.AllowUnexported(destState{})) {
			t.Errorf("dest state round trip: %+v, want %+v", got, st)
		}
		// Garbage never panics.
		_, _ = decodeDelivery(s1, b)
		_, _ = decodeRejected(b, b, true)
		_, _ = decodeDeadLetter(s1, b, b)
		_, _ = decodeQueueEntry(s1, b, b)
		_ = decodeDestState(b)
	})
}

// encodeMessageV1 writes a version 1 message record (queue IDs as uvarints),
// as files written before version 2 hold them.
func encodeMessageV1(m *Message, queueIDs []uint64) []byte {
	e := encoder{}
	e.byte1(recordV1)
	e.time(m.Received)
	for _, f := range []string{m.Listener, m.Peer, m.Charset, m.ControlID, m.Type, m.Event, m.SendingApp, m.SendingFacility, m.PatientID} {
		e.str(f)
	}
	e.b = append(e.b, m.ContentHash[:]...)
	e.uvarint(uint64(m.DedupeWindow))
	e.uvarint(uint64(len(m.Targets)))
	for i, t := range m.Targets {
		e.str(t.Destination)
		e.str(t.Route)
		e.uvarint(queueIDs[i])
	}
	e.bytes(m.Raw)
	return e.b
}

// setQueueIDs writes ids into a record encodeMessage made, target by target,
// at the offsets the append path uses.
func setQueueIDs(rec []byte, ids []uint64) error {
	offs, err := queueIDOffsets(nil, rec, len(ids))
	if err != nil {
		return err
	}
	for i, off := range offs {
		binary.BigEndian.PutUint64(rec[off:], ids[i])
	}
	return nil
}
