package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Limits on caller-supplied names, far above real use, well below bbolt's key limit.
const (
	maxNameLen   = 255     // destination and route names
	maxIndexPart = 256     // longer control IDs and senders are indexed by their hash
	maxRawLen    = 1 << 30 // one message
)

// A Target is one destination a message was routed to, and the route that chose it.
type Target struct{ Destination, Route string }

// A Message is what ingest appends: the raw bytes exactly as received and the
// header summary the caller parsed. The store does not parse HL7.
type Message struct {
	Raw      []byte
	Received time.Time
	Listener string
	Peer     string
	Charset  string // the charset used to decode the message

	ControlID       string // MSH-10
	Type, Event     string // MSH-9.1, MSH-9.2
	SendingApp      string // MSH-3
	SendingFacility string // MSH-4
	PatientID       string // PID-3 first identifier, if any

	// ContentHash identifies the content for dedupe (MSH-7 excluded; the caller
	// computes it, e.g. hl7.Message.ContentHash).
	ContentHash [32]byte
	// DedupeWindow: a message with the same SendingApp, SendingFacility and
	// ControlID appended less than this long before is looked at; 0 = no
	// dedupe for this message (neither checked nor recorded).
	DedupeWindow time.Duration

	// Targets get one queue entry each, in this order; empty = unrouted.
	Targets []Target
}

// AppendResult is the outcome for one appended message.
type AppendResult struct {
	// Seq is the message's sequence number; for a duplicate, the original's.
	Seq uint64
	// Duplicate: same sender and control ID with the same content inside the
	// window; nothing was stored or queued.
	Duplicate bool
	// ReusedControlID: same sender and control ID inside the window but other
	// content; the message was stored under a new Seq, PreviousSeq is the other.
	ReusedControlID bool
	PreviousSeq     uint64
}

// Append stores msgs in one transaction shared with concurrent callers (group
// commit: one fsync for all of them) and returns once the outcome is known.
// Dedupe is decided inside the transaction, so two copies in the same call or
// the same batch are caught. Append does not keep msgs after it returns.
//
// The error says what happened to the messages:
//   - nil: every message is on disk (fsynced), or is a Duplicate of one that is.
//   - *CommitError: the batch's commit or fsync failed; nothing of it may be
//     assumed stored (ingest answers AR/207; a resend meets the dedupe).
//   - ErrLowDiskSpace: refused by the free-space guard, nothing written (AR/206).
//   - ctx.Err(): ctx ended while waiting for room in a batch (Options.MaxBatch);
//     nothing written. Once queued, Append waits for the commit whatever ctx says.
//   - ErrClosed, ErrReadOnly, ErrInvalid (a caller bug): nothing written.
//   - any other error: bbolt refused one of this call's writes; nothing of this
//     call was written (the rest of the batch was committed without it).
func (s *Store) Append(ctx context.Context, msgs []Message) ([]AppendResult, error) {
	if len(msgs) == 0 && !s.closed.Load() {
		return nil, nil
	}
	o, res, size, err := s.appendOp(msgs)
	if err != nil {
		return nil, err
	}
	err = s.submit(ctx, o)
	o.release()
	if err != nil {
		return nil, err
	}
	s.space.wrote(size)
	return res, nil
}

// AppendAsync is Append without waiting in the caller's goroutine: msgs join
// the next group commit and done is called exactly once with what Append
// would have returned, from the committing goroutine once the commit's
// outcome is known (or before AppendAsync returns if msgs were refused, or if
// ctx ended while waiting for room in a batch). done must not block or call
// the Store. msgs must stay unchanged until done is called, except their Raw
// bytes: those are copied into the record before AppendAsync returns, so a
// caller may append straight from a buffer it reuses afterwards.
//
// It lets a caller that must give up waiting after a deadline (ingest's
// commit_timeout) wait on a channel and a timer of its own, without a
// goroutine per message: when a commit is in progress, msgs join the next
// batch, which a goroutine of the Store commits, and AppendAsync returns at
// once. When none is, the caller's goroutine commits the batch itself (one
// writer alone pays no goroutine handoff) and AppendAsync returns after done:
// a caller with a deadline must watch it from another goroutine for that
// case (ingest closes the connection). The durability promise is Append's: a
// nil error in done means fsynced.
func (s *Store) AppendAsync(ctx context.Context, msgs []Message, done func([]AppendResult, error)) {
	if len(msgs) == 0 && !s.closed.Load() {
		done(nil, nil)
		return
	}
	o, res, size, err := s.appendOp(msgs)
	if err != nil {
		done(nil, err)
		return
	}
	o.done = func(err error) {
		o.release()
		if err != nil {
			done(nil, err)
			return
		}
		s.space.wrote(size)
		done(res, nil)
	}
	o.callerLeads = true
	if err := s.submit(ctx, o); err != nil {
		done(nil, err)
	}
}

// appendOp validates msgs and builds the op that appends them into res.
func (s *Store) appendOp(msgs []Message) (o *op, res []AppendResult, size int, err error) {
	if s.closed.Load() {
		return nil, nil, 0, ErrClosed
	}
	for i := range msgs {
		if err := validateMessage(&msgs[i]); err != nil {
			return nil, nil, 0, err
		}
		size += len(msgs[i].Raw)
	}
	if s.space.low() {
		return nil, nil, 0, ErrLowDiskSpace
	}
	// The op, and for the usual single message its prepared record and
	// result, in one allocation: fewer objects per message for the garbage
	// collector, which competes with the leader for the cores.
	var prep []prepared
	if len(msgs) == 1 {
		a := &appendOne{}
		o, prep, res = &a.op, a.prep[:], a.res[:]
	} else {
		o, prep, res = &op{}, make([]prepared, len(msgs)), make([]AppendResult, len(msgs))
	}
	// Everything that needs no transaction is done here, by the caller,
	// rather than by the leader while the others wait for its commit.
	now := s.now()
	for i := range msgs {
		if err := prep[i].prepare(&msgs[i], now); err != nil {
			return nil, nil, 0, err
		}
	}
	*o = op{staged: true, msgs: msgs, prep: prep, res: res}
	return o, res, size, nil
}

// appendOne is an append op with room for one message.
type appendOne struct {
	op   op
	prep [1]prepared
	res  [1]AppendResult
}

// prepared is a message made ready for the transaction: its record encoded
// (queue IDs to be set), its index prefix and its receive time. Its idx
// entries are written by the leader straight into the staged tail
// (txCtx.stageMessage), once the seq is known.
type prepared struct {
	rec    []byte
	pooled *[]byte // rec's recordPool slot, nil if rec is not pooled
	prefix []byte  // nil without a control ID
	key    string  // prefix as the staged dedupe map's key; "" without a dedupe window
	recv   time.Time
	ids    []uint64
	idOffs []int // where in rec the queue IDs go
	// Room for ids and idOffs of up to two targets, the usual count.
	idsBuf  [2]uint64
	offsBuf [2]int
}

func (p *prepared) prepare(m *Message, now time.Time) error {
	p.recv = m.Received
	if p.recv.IsZero() {
		p.recv = now
	}
	mm := *m
	mm.Received = p.recv
	p.rec, p.pooled = recordBuf(encodedSize(&mm))
	p.rec = encodeMessage(p.rec, &mm, nil)
	if m.ControlID != "" {
		p.prefix = indexPrefix(m)
		if m.DedupeWindow > 0 {
			p.key = string(p.prefix)
		}
	}
	if n := len(m.Targets); n > 0 {
		p.ids, p.idOffs = p.idsBuf[:0], p.offsBuf[:0]
		if n > len(p.idsBuf) {
			p.ids, p.idOffs = make([]uint64, 0, n), make([]int, 0, n)
		}
		p.ids = p.ids[:n]
		var err error
		if p.idOffs, err = queueIDOffsets(p.idOffs, p.rec, n); err != nil {
			return fmt.Errorf("store: append: %w", err) // a bug: encodeMessage made rec
		}
	}
	return nil
}

// expiry is a dedupe entry's expiry for a message received at recv (unix
// nanoseconds); 0 means written without a dedupe window.
func expiry(recv int64, window time.Duration) uint64 {
	if window <= 0 {
		return 0
	}
	return uint64(recv + int64(window))
}

// encodeDedupeValue is a control-ID entry's value: the content hash and the
// dedupe expiry.
func encodeDedupeValue(hash []byte, expiry uint64) []byte {
	return appendDedupeValue(make([]byte, 0, dedupeValueLen), hash, expiry)
}

const dedupeValueLen = 32 + 8

func appendDedupeValue(dst, hash []byte, expiry uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, hash...), expiry)
}

// validName reports whether dest can name a destination: 1..maxNameLen bytes,
// no NUL (the pending-count keys use it as a marker).
func validName(dest string) bool {
	return dest != "" && len(dest) <= maxNameLen && !strings.Contains(dest, "\x00")
}

func validateMessage(m *Message) error {
	if len(m.Raw) > maxRawLen {
		return fmt.Errorf("store: append: %w: message of %d bytes", ErrInvalid, len(m.Raw))
	}
	for i, t := range m.Targets {
		if !validName(t.Destination) || len(t.Route) > maxNameLen {
			return fmt.Errorf("store: append: %w: target %d: destination and route names must be 1..%d bytes without NUL", ErrInvalid, i, maxNameLen)
		}
	}
	return nil
}

// appendMessages writes msgs (made ready in prep) and fills res. It is re-run
// from scratch if the batch transaction is retried. Each message's index and
// queue entries are staged (stage.go): they are carried by its record and
// written to idx later.
func (c *txCtx) appendMessages(msgs []Message, prep []prepared, res []AppendResult) error {
	if c.msgB == nil {
		// Once per transaction, not per op: an op is mostly one message.
		c.msgB = c.tx.Bucket(bMsg)
		c.msgB.FillPercent = appendFill
	}
	mb := c.msgB
	for i := range msgs {
		m, p := &msgs[i], &prep[i]
		res[i] = AppendResult{}
		if p.prefix != nil && m.DedupeWindow > 0 {
			if prev, ok := c.lastDeduped(p.prefix); ok && p.recv.UnixNano() < prev.expiry {
				if prev.hash == m.ContentHash {
					res[i] = AppendResult{Seq: prev.seq, Duplicate: true}
					continue
				}
				res[i].ReusedControlID = true
				res[i].PreviousSeq = prev.seq
			}
		}
		seq, err := mb.NextSequence()
		if err != nil {
			return err
		}
		res[i].Seq = seq
		for j, t := range m.Targets {
			p.ids[j] = c.nextQueueID(t.Destination)
			binary.BigEndian.PutUint64(p.rec[p.idOffs[j]:], p.ids[j])
		}
		// bbolt keeps the value until the commit (p.rec is this message's
		// own) and copies the key.
		c.seqKey = binary.BigEndian.AppendUint64(c.seqKey[:0], seq)
		if err := mb.Put(c.seqKey, p.rec); err != nil {
			return err
		}
		if err := c.indexTime(p.recv, seq); err != nil {
			return err
		}
		c.stageMessage(p, seq, m)
	}
	return nil
}

// lastDeduped finds the newest entry of sender and control ID (prefix) that
// was written with a dedupe window: staged first (newer), then in the index.
func (c *txCtx) lastDeduped(prefix []byte) (dedupeEntry, bool) {
	if e, ok := c.stagedDedupe(prefix); ok {
		return e, true
	}
	if c.idxCur == nil {
		c.idxCur = c.tx.Bucket(bIdx).Cursor() // one per transaction: Seek repositions it after writes
	}
	c.keyBuf = append(append(c.keyBuf[:0], prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	seq, v := lastIndexedDedupe(c.idxCur, c.keyBuf, prefix)
	if v == nil {
		return dedupeEntry{}, false
	}
	e := dedupeEntry{seq: seq, expiry: int64(binary.BigEndian.Uint64(v[32:]))}
	copy(e.hash[:], v[:32])
	return e, true
}

// dedupeLookback bounds how many newer non-deduped entries (DedupeWindow 0) of
// the same sender and control ID the dedupe lookup steps over.
const dedupeLookback = 8

// lastIndexedDedupe finds the newest index entry under prefix that was written
// with a dedupe window, and returns its seq and value (content hash, expiry).
// end is prefix followed by eight 0xff bytes.
func lastIndexedDedupe(cur *bolt.Cursor, end, prefix []byte) (uint64, []byte) {
	var v []byte
	k, _ := cur.Seek(end)
	if k == nil {
		k, v = cur.Last()
	} else {
		k, v = cur.Prev()
	}
	for range dedupeLookback {
		if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) || len(v) != 40 {
			return 0, nil
		}
		if binary.BigEndian.Uint64(v[32:]) != 0 {
			return binary.BigEndian.Uint64(k[len(prefix):]), v
		}
		k, v = cur.Prev()
	}
	return 0, nil
}

// enqueue adds a queue entry for seq at the tail of dest's queue.
func (c *txCtx) enqueue(dest, route string, seq uint64) (uint64, error) {
	q, err := c.queue(dest, true)
	if err != nil {
		return 0, err
	}
	return q.add(seq, c.now, route)
}

// indexTime records seq as the first message of its second, once per second.
func (c *txCtx) indexTime(recv time.Time, seq uint64) error {
	sec := recv.Unix()
	if c.lastSec >= 0 && sec <= c.lastSec {
		return nil
	}
	tb := c.tx.Bucket(bTime)
	tb.FillPercent = appendFill
	if c.lastSec < 0 {
		c.lastSec = 0
		if k, _ := tb.Cursor().Last(); len(k) == 8 {
			c.lastSec = int64(binary.BigEndian.Uint64(k))
		}
	}
	if sec <= c.lastSec {
		return nil
	}
	c.lastSec = sec
	return tb.Put(u64key(uint64(sec)), u64key(seq))
}

// The control-ID index serves both dedupe and queries by control ID. Its key
// is 'c' ctrlPart(control ID) senderPart(app, facility) seq (in the idx bucket); its value the content
// hash and the dedupe expiry (0: written without a dedupe window). One index
// entry per message keeps the append's write set small.
//
// Each part is length-prefixed, so no two control IDs or senders share a
// prefix; a part longer than maxIndexPart is replaced by its sha256 (marker 1
// instead of 0), which keeps keys short and still exact.

func indexPrefix(m *Message) []byte {
	return indexKeyPrefix(m.ControlID, m.SendingApp, m.SendingFacility)
}

func indexKeyPrefix[T string | []byte](ctrl, app, fac T) []byte {
	// Room for both parts (hashed or not), the tag and the seq appended later.
	n := min(len(ctrl), 32+maxIndexPart) + min(len(app)+len(fac), 32+maxIndexPart)
	k := make([]byte, 0, n+32)
	k = append(k, tagCtrl)
	k = ctrlPart(k, ctrl)
	return senderPart(k, app, fac)
}

func ctrlPart[T string | []byte](dst []byte, ctrl T) []byte {
	if len(ctrl) > maxIndexPart {
		h := sha256.Sum256([]byte(ctrl))
		return append(append(dst, 1), h[:]...)
	}
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(ctrl)))
	return append(dst, ctrl...)
}

func senderPart[T string | []byte](dst []byte, app, fac T) []byte {
	if len(app)+len(fac) > maxIndexPart {
		h := sha256.New()
		h.Write(binary.AppendUvarint(nil, uint64(len(app))))
		h.Write([]byte(app))
		h.Write([]byte(fac))
		return h.Sum(append(dst, 1))
	}
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(app)))
	dst = append(dst, app...)
	dst = binary.AppendUvarint(dst, uint64(len(fac)))
	return append(dst, fac...)
}

// recordPool holds record buffers for reuse. A record lives from the
// caller's prepare until its batch's commit, when bbolt copies it into its
// pages; reusing the buffer spares the allocation of fresh memory per
// message: measured with BenchmarkAppendCPU, 2,761 bytes allocated a
// message instead of 4,012.
var recordPool sync.Pool // *[]byte

// maxPooledRecord keeps outsized records out of the pool.
const maxPooledRecord = 64 << 10

// recordBuf returns a buffer of capacity n or more and its pool slot (nil
// for a buffer too large to pool).
func recordBuf(n int) ([]byte, *[]byte) {
	if n > maxPooledRecord {
		return make([]byte, 0, n), nil
	}
	if b, ok := recordPool.Get().(*[]byte); ok {
		if cap(*b) >= n {
			return (*b)[:0], b
		}
		*b = make([]byte, 0, n)
		return *b, b
	}
	b := make([]byte, 0, n)
	return b, &b
}

// release returns the op's record buffers to recordPool; the batch that
// wrote them is over. The pool holds the slots themselves, so putting one
// back allocates nothing.
func (o *op) release() {
	for i := range o.prep {
		p := &o.prep[i]
		if p.pooled != nil {
			*p.pooled = p.rec[:0]
			recordPool.Put(p.pooled)
		}
		p.rec, p.pooled = nil, nil
	}
	o.prep = nil
}
