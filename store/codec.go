package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The on-disk encoding is a compact binary one: a version byte, then fields in
// a fixed order as uvarints (integers, lengths) and raw bytes. Decoders check
// every length against what is left and fail with errCorruptRecord, never
// panic. Adding a field means a new version byte that older decoders refuse.

var errCorruptRecord = errors.New("store: corrupt record")

const recordV1 = 1

// Message records only: recordV1 holds queue IDs as uvarints; recordV2 as 8
// bytes, so that an append encodes its record before the transaction and
// only sets the IDs inside it (at queueIDOffsets). Both are read.
const recordV2 = 2

type encoder struct{ b []byte }

func (e *encoder) byte1(v byte)     { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) u64(v uint64)     { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) str(v string)     { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }

// time encodes t as unix nanoseconds + 1 so that the zero Time is 0.
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(t.UnixNano()) + 1)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorruptRecord
	}
	d.b = nil
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// raw returns the next length-prefixed bytes, aliasing the input.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.raw()) }

// take returns the next n bytes, aliasing the input.
func (d *decoder) take(n int) []byte {
	if len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	v := d.uvarint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v-1))
}

func (d *decoder) fixed(dst []byte) {
	if len(d.b) < len(dst) {
		d.fail()
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

func keyU64(k []byte) uint64 {
	if len(k) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// msgRecord is a message as stored under its sequence number. Raw is last so a
// header-only decode can stop before it.
type msgRecord struct {
	Message
	queueIDs []uint64 // queue entry per target, same order as Targets
	size     int      // len(Raw), known even when Raw is not decoded
}

// encodedSize is an upper bound of encodeMessage's output for m.
func encodedSize(m *Message) int {
	n := 1 + 10 + 9*10 + 32 + 10 + 10 + 10 + len(m.Raw)
	n += len(m.Listener) + len(m.Peer) + len(m.Charset) + len(m.ControlID) + len(m.Type) +
		len(m.Event) + len(m.SendingApp) + len(m.SendingFacility) + len(m.PatientID)
	for _, t := range m.Targets {
		n += 30 + len(t.Destination) + len(t.Route)
	}
	return n
}

// encodeMessage appends m's record (recordV2) to dst. queueIDs may be nil
// (all 0) for the append to fill in later (queueIDOffsets).
func encodeMessage(dst []byte, m *Message, queueIDs []uint64) []byte {
	e := encoder{b: dst}
	e.byte1(recordV2)
	e.time(m.Received)
	e.str(m.Listener)
	e.str(m.Peer)
	e.str(m.Charset)
	e.str(m.ControlID)
	e.str(m.Type)
	e.str(m.Event)
	e.str(m.SendingApp)
	e.str(m.SendingFacility)
	e.str(m.PatientID)
	e.b = append(e.b, m.ContentHash[:]...)
	e.uvarint(uint64(m.DedupeWindow))
	e.uvarint(uint64(len(m.Targets)))
	for i, t := range m.Targets {
		e.str(t.Destination)
		e.str(t.Route)
		var id uint64
		if queueIDs != nil {
			id = queueIDs[i]
		}
		e.u64(id)
	}
	e.bytes(m.Raw)
	return e.b
}

// queueIDOffsets appends to dst where in a record encodeMessage made its n
// targets' queue IDs are, so that they can be set without reading the record
// again.
func queueIDOffsets(dst []int, rec []byte, n int) ([]int, error) {
	d := decoder{b: rec}
	if d.byte1() != recordV2 {
		return nil, fmt.Errorf("%w: message version", errCorruptRecord)
	}
	d.uvarint() // received
	for range 9 {
		d.raw() // listener .. patient ID
	}
	d.take(32)
	d.uvarint() // dedupe window
	if got := d.uvarint(); got != uint64(n) || d.err != nil {
		return nil, fmt.Errorf("%w: %d targets, %d queue IDs", errCorruptRecord, got, n)
	}
	offs := dst
	for range n {
		d.raw()
		d.raw()
		if len(d.b) < 8 {
			return nil, errCorruptRecord
		}
		offs = append(offs, len(rec)-len(d.b))
		d.b = d.b[8:]
	}
	return offs, d.err
}

// queueID reads a target's queue ID in a record of version v.
func (d *decoder) queueID(v byte) uint64 {
	if v == recordV1 {
		return d.uvarint()
	}
	return d.u64()
}

// decodeMessage decodes v. With withRaw false, Raw stays nil. Strings are
// copies; Raw is a copy too, so the result outlives the transaction.
func decodeMessage(v []byte, withRaw bool) (msgRecord, error) {
	var r msgRecord
	d := decoder{b: v}
	ver := d.byte1()
	if ver != recordV1 && ver != recordV2 {
		return r, fmt.Errorf("%w: message version", errCorruptRecord)
	}
	r.Received = d.time()
	r.Listener = d.str()
	r.Peer = d.str()
	r.Charset = d.str()
	r.ControlID = d.str()
	r.Type = d.str()
	r.Event = d.str()
	r.SendingApp = d.str()
	r.SendingFacility = d.str()
	r.PatientID = d.str()
	d.fixed(r.ContentHash[:])
	r.DedupeWindow = time.Duration(d.uvarint())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		n = 0
	}
	if n > 0 {
		r.Targets = make([]Target, n)
		r.queueIDs = make([]uint64, n)
	}
	for i := range n {
		r.Targets[i].Destination = d.str()
		r.Targets[i].Route = d.str()
		r.queueIDs[i] = d.queueID(ver)
	}
	raw := d.raw()
	if d.err != nil {
		return msgRecord{}, d.err
	}
	r.size = len(raw)
	if withRaw {
		r.Raw = append([]byte{}, raw...)
	}
	return r, nil
}

// stagedRecord is what the index and the queues need of a message record
// (stage.go), decoded without copying: the slices alias the record.
type stagedRecord struct {
	received       int64 // unix nanoseconds
	ctrl, app, fac []byte
	hash           []byte // the content hash, 32 bytes
	window         uint64 // dedupe window in nanoseconds
	targets        []stagedTarget
}

type stagedTarget struct {
	dest, route []byte
	id          uint64
}

// decodeStaged decodes v's index fields into r, reusing r's target slice.
func decodeStaged(v []byte, r *stagedRecord) error {
	d := decoder{b: v}
	ver := d.byte1()
	if ver != recordV1 && ver != recordV2 {
		return fmt.Errorf("%w: message version", errCorruptRecord)
	}
	if t := d.uvarint(); t > 0 {
		r.received = int64(t - 1)
	} else {
		r.received = 0
	}
	d.raw() // listener
	d.raw() // peer
	d.raw() // charset
	r.ctrl = d.raw()
	d.raw() // type
	d.raw() // event
	r.app = d.raw()
	r.fac = d.raw()
	d.raw() // patient ID
	r.hash = d.take(32)
	r.window = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		n = 0
	}
	r.targets = r.targets[:0]
	for range n {
		t := stagedTarget{dest: d.raw(), route: d.raw()}
		t.id = d.queueID(ver)
		r.targets = append(r.targets, t)
	}
	d.raw() // the raw bytes: checked for length, as decodeMessage does
	return d.err
}

// queueEntry value: seq, enqueued, route.
func encodeQueueEntry[T string | []byte](seq uint64, enq int64, route T) []byte {
	return appendQueueEntry(make([]byte, 0, 8+10+1+len(route)), seq, enq, route)
}

// appendQueueEntry appends encodeQueueEntry's output to dst.
func appendQueueEntry[T string | []byte](dst []byte, seq uint64, enq int64, route T) []byte {
	e := encoder{b: dst}
	e.u64(seq)
	e.uvarint(uint64(enq))
	e.uvarint(uint64(len(route)))
	e.b = append(e.b, route...)
	return e.b
}

func decodeQueueEntry(dest string, k, v []byte) (QueueEntry, error) {
	d := decoder{b: v}
	q := QueueEntry{Destination: dest, ID: keyU64(k)}
	q.Seq = d.u64()
	q.Enqueued = time.Unix(0, int64(d.uvarint()))
	q.Route = d.str()
	if d.err != nil || len(k) != 8 {
		return QueueEntry{}, errCorruptRecord
	}
	return q, nil
}

// destState is the per-destination record: the blocked state.
type destState struct {
	blocked   bool
	blockedAt time.Time
	reason    string
}

func (st destState) encode() []byte {
	e := encoder{b: make([]byte, 0, 16+len(st.reason))}
	e.byte1(recordV1)
	if st.blocked {
		e.byte1(1)
	} else {
		e.byte1(0)
	}
	e.time(st.blockedAt)
	e.str(st.reason)
	return e.b
}

func decodeDestState(v []byte) destState {
	var st destState
	if v == nil {
		return st
	}
	d := decoder{b: v}
	if d.byte1() != recordV1 {
		return destState{}
	}
	st.blocked = d.byte1() == 1
	st.blockedAt = d.time()
	st.reason = d.str()
	if d.err != nil {
		return destState{}
	}
	return st
}

func encodeDelivery(dl *Delivery) []byte {
	e := encoder{b: make([]byte, 0, 96)}
	e.byte1(recordV1)
	e.str(dl.Route)
	e.str(dl.State)
	e.uvarint(uint64(dl.Attempts))
	e.time(dl.FirstAttempt)
	e.time(dl.LastAttempt)
	e.time(dl.DeliveredAt)
	e.str(dl.AckCode)
	e.str(dl.AckControlID)
	e.str(dl.ErrorCode)
	e.uvarint(uint64(dl.HTTPStatus))
	e.str(dl.LastError)
	e.str(dl.DeadReason)
	e.uvarint(dl.QueueID)
	e.uvarint(dl.DeadLetterID)
	return e.b
}

func decodeDelivery(dest string, v []byte) (Delivery, error) {
	d := decoder{b: v}
	if d.byte1() != recordV1 {
		return Delivery{}, errCorruptRecord
	}
	dl := Delivery{Destination: dest}
	dl.Route = d.str()
	dl.State = d.str()
	dl.Attempts = int(d.uvarint())
	dl.FirstAttempt = d.time()
	dl.LastAttempt = d.time()
	dl.DeliveredAt = d.time()
	dl.AckCode = d.str()
	dl.AckControlID = d.str()
	dl.ErrorCode = d.str()
	dl.HTTPStatus = int(d.uvarint())
	dl.LastError = d.str()
	dl.DeadReason = d.str()
	dl.QueueID = d.uvarint()
	dl.DeadLetterID = d.uvarint()
	if d.err != nil {
		return Delivery{}, d.err
	}
	return dl, nil
}

func encodeDeadLetter(seq uint64, dead, enq time.Time, route, reason string) []byte {
	e := encoder{b: make([]byte, 0, 40+len(route)+len(reason))}
	e.u64(seq)
	e.time(dead)
	e.time(enq)
	e.str(route)
	e.str(reason)
	return e.b
}

func decodeDeadLetter(dest string, k, v []byte) (DeadLetter, error) {
	d := decoder{b: v}
	dl := DeadLetter{Destination: dest, ID: keyU64(k)}
	dl.Seq = d.u64()
	dl.Time = d.time()
	dl.Enqueued = d.time()
	dl.Route = d.str()
	dl.Reason = d.str()
	if d.err != nil || len(k) != 8 {
		return DeadLetter{}, errCorruptRecord
	}
	return dl, nil
}

func encodeRejected(r *Rejected) []byte {
	e := encoder{b: make([]byte, 0, 64+len(r.Raw)+len(r.Listener)+len(r.Peer)+len(r.Reason))}
	e.byte1(recordV1)
	e.time(r.Time)
	e.str(r.Listener)
	e.str(r.Peer)
	e.str(r.Reason)
	e.uvarint(uint64(r.Size))
	e.b = append(e.b, r.Hash[:]...)
	e.bytes(r.Raw)
	return e.b
}

func decodeRejected(k, v []byte, withRaw bool) (Rejected, error) {
	d := decoder{b: v}
	if d.byte1() != recordV1 {
		return Rejected{}, errCorruptRecord
	}
	r := Rejected{ID: keyU64(k)}
	r.Time = d.time()
	r.Listener = d.str()
	r.Peer = d.str()
	r.Reason = d.str()
	r.Size = int64(d.uvarint())
	d.fixed(r.Hash[:])
	raw := d.raw()
	if d.err != nil {
		return Rejected{}, d.err
	}
	if withRaw {
		r.Raw = append([]byte{}, raw...)
	}
	return r, nil
}
