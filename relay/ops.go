package relay

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/store"
)

// SkipReason is the dead-letter reason of a queue head skipped by an admin.
const SkipReason = "skipped by admin"

// Message states a MessageFilter may select on.
var messageStates = []string{store.StatePending, store.StateDelivered, store.StateDead, store.StateRequeued, "unrouted"}

// An AdminError is an admin operation refused for a reason the caller can
// fix. Code is the HTTP status the admin API answers with (400 bad parameter,
// 404 unknown message, destination or entry, 409 wrong state); Msg says what
// to do and is the API's {"error": Msg}. Other errors are internal (500).
type AdminError struct {
	Code int
	Msg  string
}

// Error returns Msg: what was refused and what to do instead.
func (e *AdminError) Error() string { return e.Msg }

func badRequest(format string, a ...any) error {
	return &AdminError{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &AdminError{Code: http.StatusNotFound, Msg: fmt.Sprintf(format, a...)}
}

func conflict(format string, a ...any) error {
	return &AdminError{Code: http.StatusConflict, Msg: fmt.Sprintf(format, a...)}
}

// Ops are the admin operations over one store: what the admin API serves
// while the daemon runs, and what the CLI runs on the file directly while it
// is stopped. The zero value is not usable; Store and Config are required.
//
// Results are plain structs whose JSON encoding is the admin API's wire
// format: times are RFC 3339 with nanoseconds, zero times and empty fields are
// left out, raw message bytes are base64 (JSON's []byte encoding).
type Ops struct {
	Store  *store.Store
	Config *config.Config
	// Notify wakes dest's delivery worker after something was queued for it
	// or its queue was unblocked; nil when no daemon runs (the queue is read
	// when it starts).
	Notify func(dest string)
	// Now is the clock for ages; nil = time.Now.
	Now func() time.Time
}

func (o *Ops) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Ops) notify(dest string) {
	if o.Notify != nil {
		o.Notify(dest)
	}
}

// ---------------------------------------------------------------------------
// Messages

// A MessageFilter selects messages; zero fields do not filter. Its query
// parameters in GET /api/v1/messages are since, until (RFC 3339), type
// ("ADT" or "ADT^A01"), control_id, patient_id, sending_facility, state
// (pending|delivered|dead|requeued|unrouted), after (a seq) and limit.
type MessageFilter struct {
	Since, Until    time.Time // on the receive time; Until is exclusive
	Type            string
	ControlID       string
	PatientID       string
	SendingFacility string
	State           string
	After           uint64 // paging: messages after this seq
	Limit           int    // 0 = store.DefaultPageSize; at most store.MaxPageSize
}

// A MessageSummary is one stored message without its bytes.
type MessageSummary struct {
	Seq             uint64         `json:"seq"`
	Received        time.Time      `json:"received"`
	Listener        string         `json:"listener"`
	Peer            string         `json:"peer,omitempty"`
	Type            string         `json:"type"`
	Event           string         `json:"event,omitempty"`
	ControlID       string         `json:"control_id"`
	SendingApp      string         `json:"sending_app,omitempty"`
	SendingFacility string         `json:"sending_facility,omitempty"`
	PatientID       string         `json:"patient_id,omitempty"`
	Charset         string         `json:"charset,omitempty"`
	Size            int            `json:"size"`
	Unrouted        bool           `json:"unrouted,omitempty"`
	Deliveries      []DeliveryInfo `json:"deliveries,omitempty"`
}

// A DeliveryInfo is a message's delivery state for one destination: the
// latest attempt and what the downstream answered (MSA-1, MSA-2, ERR-3 or the
// HTTP status).
type DeliveryInfo struct {
	Destination  string    `json:"destination"`
	Route        string    `json:"route,omitempty"`
	State        string    `json:"state"` // pending | delivered | dead | requeued
	Attempts     int       `json:"attempts,omitempty"`
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	DeliveredAt  time.Time `json:"delivered_at,omitzero"`
	AckCode      string    `json:"ack_code,omitempty"`
	AckControlID string    `json:"ack_control_id,omitempty"`
	ErrorCode    string    `json:"error_code,omitempty"`
	HTTPStatus   int       `json:"http_status,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	DeadReason   string    `json:"dead_reason,omitempty"`
	QueueID      uint64    `json:"queue_id,omitempty"`
	DeadLetterID uint64    `json:"dead_letter_id,omitempty"`
}

// A MessageList is one page of GET /api/v1/messages. Next, when not zero, is
// the after parameter of the following page; a sparse filter may return fewer
// than limit messages and still have a Next.
type MessageList struct {
	Messages []MessageSummary `json:"messages"`
	Next     uint64           `json:"next,omitempty"`
}

// A MessageDetail is GET /api/v1/messages/{seq}: the summary, the exact bytes
// as received, and the content hash (hex) used for dedupe.
type MessageDetail struct {
	MessageSummary
	ContentHash string `json:"content_hash,omitempty"`
	Raw         []byte `json:"raw"`
}

func summarize(r *store.Record) MessageSummary {
	s := MessageSummary{
		Seq: r.Seq, Received: r.Received, Listener: r.Listener, Peer: r.Peer,
		Type: r.Type, Event: r.Event, ControlID: r.ControlID,
		SendingApp: r.SendingApp, SendingFacility: r.SendingFacility, PatientID: r.PatientID,
		Charset: r.Charset, Size: r.Size, Unrouted: r.Unrouted,
	}
	if s.Size == 0 {
		s.Size = len(r.Raw)
	}
	for _, d := range r.Deliveries {
		s.Deliveries = append(s.Deliveries, DeliveryInfo{
			Destination: d.Destination, Route: d.Route, State: d.State, Attempts: d.Attempts,
			FirstAttempt: d.FirstAttempt, LastAttempt: d.LastAttempt, DeliveredAt: d.DeliveredAt,
			AckCode: d.AckCode, AckControlID: d.AckControlID, ErrorCode: d.ErrorCode,
			HTTPStatus: d.HTTPStatus, LastError: d.LastError, DeadReason: d.DeadReason,
			QueueID: d.QueueID, DeadLetterID: d.DeadLetterID,
		})
	}
	return s
}

// Validate checks the filter's values and says which one is wrong.
func (f *MessageFilter) Validate() error {
	if f.State != "" && !slices.Contains(messageStates, f.State) {
		return badRequest("unknown state %q: use one of pending, delivered, dead, requeued, unrouted", f.State)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return badRequest("until (%s) must be after since (%s)", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	if f.Limit < 0 {
		return badRequest("limit must be positive (at most %d)", store.MaxPageSize)
	}
	return nil
}

// ListMessages returns one page of the messages f selects, in seq order.
func (o *Ops) ListMessages(ctx context.Context, f MessageFilter) (MessageList, error) {
	if err := f.Validate(); err != nil {
		return MessageList{}, err
	}
	sf := store.Filter{
		Since: f.Since, Until: f.Until, Type: typeFilter(f.Type), ControlID: f.ControlID, PatientID: f.PatientID,
		SendingFacility: f.SendingFacility, State: f.State, AfterSeq: f.After, Limit: f.Limit,
	}
	if f.State == "unrouted" {
		sf.State, sf.Unrouted = "", true
	}
	p, err := o.Store.Search(sf)
	if err != nil {
		return MessageList{}, err
	}
	out := MessageList{Messages: make([]MessageSummary, 0, len(p.Records)), Next: p.Next}
	for i := range p.Records {
		out.Messages = append(out.Messages, summarize(&p.Records[i]))
	}
	return out, nil
}

// typeFilter keeps MSH-9.1 and MSH-9.2 of a type filter: admins paste whole
// MSH-9 values such as ADT^A01^ADT_A01, and the structure (MSH-9.3) is not
// indexed.
func typeFilter(t string) string {
	parts := strings.SplitN(strings.TrimSpace(t), "^", 3)
	if len(parts) == 3 {
		parts = parts[:2]
	}
	return strings.Join(parts, "^")
}

// ShowMessage returns message seq with its bytes and its delivery record per
// destination.
func (o *Ops) ShowMessage(ctx context.Context, seq uint64) (MessageDetail, error) {
	r, err := o.getMessage(seq)
	if err != nil {
		return MessageDetail{}, err
	}
	d := MessageDetail{MessageSummary: summarize(&r), Raw: r.Raw}
	if r.ContentHash != ([32]byte{}) {
		d.ContentHash = hex.EncodeToString(r.ContentHash[:])
	}
	return d, nil
}

func (o *Ops) getMessage(seq uint64) (store.Record, error) {
	r, err := o.Store.Get(seq)
	if errors.Is(err, store.ErrNotFound) {
		return r, notFound("no message with seq %d (it may have passed its retention); mllpd messages list shows the stored ones", seq)
	}
	return r, err
}

// summary returns message seq without its bytes.
func (o *Ops) summary(seq uint64) (store.Record, error) {
	if seq == 0 {
		return store.Record{}, notFound("no message with seq 0: sequence numbers start at 1")
	}
	recs, err := o.Store.Query(store.Filter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return store.Record{}, err
	}
	if len(recs) == 0 || recs[0].Seq != seq {
		return store.Record{}, notFound("no message with seq %d (it may have passed its retention); mllpd messages list shows the stored ones", seq)
	}
	return recs[0], nil
}

// ---------------------------------------------------------------------------
// Resend

// A ResendRequest is the body of POST /api/v1/messages/resend: either Seqs,
// or the backfill form Since [Until] [Type] (every message received in that
// range, of that type). To is the destination; it must be configured.
type ResendRequest struct {
	Seqs  []uint64  `json:"seqs,omitempty"`
	To    string    `json:"to"`
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	Type  string    `json:"type,omitempty"`
}

// A ResendResult says what a resend queued and what it left alone.
type ResendResult struct {
	To      string        `json:"to"`
	Queued  []QueuedEntry `json:"queued"`
	Skipped []SkippedSeq  `json:"skipped,omitempty"`
}

// A QueuedEntry is one new queue entry at the tail of a destination's queue.
// Route is the route that chose the destination for that message; "" for
// an admin resend no route chose (a backfill to a new destination), which
// the worker maps with the first route that sends to the destination, or
// forwards unmapped when none does.
type QueuedEntry struct {
	Seq     uint64 `json:"seq"`
	QueueID uint64 `json:"queue_id"`
	Route   string `json:"route"`
}

// A SkippedSeq is a message a resend did not queue, and why.
type SkippedSeq struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// maxResend bounds one resend call, so a mistyped backfill range cannot
// queue the whole log at once; the caller is told to narrow the range.
const maxResend = 100000

func (o *Ops) destination(name string) error {
	if name == "" {
		return badRequest("no destination given: name one with --to (mllpd destinations list shows the configured ones)")
	}
	if _, ok := o.Config.Destination(name); !ok {
		return notFound("unknown destination %q; mllpd destinations list shows the configured ones", name)
	}
	return nil
}

// Resend queues each message of seqs again for destination to, in the order
// given, at the tail of its queue. Each entry keeps the route that chose to
// for that message, or none ("") when no route did (see QueuedEntry).
// Unknown seqs fail the whole call before anything is queued; a message still
// waiting in to's queue is skipped (reported in ResendResult.Skipped).
func (o *Ops) Resend(ctx context.Context, seqs []uint64, to string) (ResendResult, error) {
	if err := o.destination(to); err != nil {
		return ResendResult{}, err
	}
	if len(seqs) == 0 {
		return ResendResult{}, badRequest("nothing to resend: give sequence numbers, or since/until/type for a backfill")
	}
	if len(seqs) > maxResend {
		return ResendResult{}, badRequest("%d messages in one resend; at most %d", len(seqs), maxResend)
	}
	recs := make([]store.Record, 0, len(seqs))
	for _, seq := range seqs {
		r, err := o.summary(seq)
		if err != nil {
			return ResendResult{}, err
		}
		recs = append(recs, r)
	}
	res := ResendResult{To: to, Queued: []QueuedEntry{}}
	defer func() {
		if len(res.Queued) > 0 {
			o.notify(to)
		}
	}()
	items := make([]requeueItem, len(recs))
	for i := range recs {
		items[i] = requeueItem{seq: recs[i].Seq, route: routeTo(&recs[i], to)}
	}
	return res, o.requeueMany(ctx, to, items, &res)
}

// ResendRange is the backfill form of Resend: every message received in
// [since, until) (until zero = now), of type typ when given ("ADT" or
// "ADT^A01"), is queued for to in seq order.
func (o *Ops) ResendRange(ctx context.Context, since, until time.Time, typ, to string) (ResendResult, error) {
	if err := o.destination(to); err != nil {
		return ResendResult{}, err
	}
	if since.IsZero() {
		return ResendResult{}, badRequest("a backfill needs since (RFC 3339), e.g. since=2024-01-31T00:00:00Z")
	}
	f := store.Filter{Since: since, Until: until, Type: typeFilter(typ), Limit: store.MaxPageSize}
	if !until.IsZero() && !until.After(since) {
		return ResendResult{}, badRequest("until (%s) must be after since (%s)", until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	// Collect first: the pages are read before anything is queued, so the
	// resend cannot see its own entries and the bound is checked up front.
	var recs []store.Record
	for {
		p, err := o.Store.Search(f)
		if err != nil {
			return ResendResult{}, err
		}
		recs = append(recs, p.Records...)
		if len(recs) > maxResend {
			return ResendResult{}, badRequest("more than %d messages in that range; resend it in smaller ranges", maxResend)
		}
		if p.Next == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return ResendResult{}, err
		}
		f.AfterSeq = p.Next
	}
	res := ResendResult{To: to, Queued: []QueuedEntry{}}
	defer func() {
		if len(res.Queued) > 0 {
			o.notify(to)
		}
	}()
	items := make([]requeueItem, len(recs))
	for i := range recs {
		items[i] = requeueItem{seq: recs[i].Seq, route: routeTo(&recs[i], to)}
	}
	return res, o.requeueMany(ctx, to, items, &res)
}

// routeTo is the route that chose to for r, or "" when none did.
func routeTo(r *store.Record, to string) string {
	route := ""
	for _, d := range r.Deliveries {
		if d.Destination == to && d.Route != "" {
			route = d.Route
		}
	}
	return route
}

// A requeueItem is one message of a resend and the route it goes under.
type requeueItem struct {
	seq   uint64
	route string
}

// requeueMany queues items for to, in order, and records each outcome in res.
// The requeues are handed to the store without waiting for each commit, so
// they share commits (a backfill of thousands of messages takes one fsync
// per batch, not per message) and keep their order.
func (o *Ops) requeueMany(ctx context.Context, to string, items []requeueItem, res *ResendResult) error {
	type outcome struct {
		e   store.QueueEntry
		err error
	}
	outs := make([]outcome, len(items))
	var wg sync.WaitGroup
	var done atomic.Int64
	for i, it := range items {
		wg.Add(1)
		o.Store.RequeueAsync(ctx, to, it.seq, it.route, func(e store.QueueEntry, err error) {
			outs[i] = outcome{e, err}
			if err == nil && done.Add(1)%notifyEvery == 0 {
				o.notify(to) // a long backfill: delivery starts while the rest is queued
			}
			wg.Done()
		})
	}
	wg.Wait()
	for i, out := range outs {
		seq := items[i].seq
		switch {
		case errors.Is(out.err, store.ErrAlreadyQueued):
			res.Skipped = append(res.Skipped, SkippedSeq{Seq: seq, Reason: "already queued for " + to})
		case errors.Is(out.err, store.ErrNotFound):
			res.Skipped = append(res.Skipped, SkippedSeq{Seq: seq, Reason: "no longer stored"})
		case out.err != nil:
			return fmt.Errorf("resend message %d to %s: %w", seq, to, out.err)
		default:
			res.Queued = append(res.Queued, QueuedEntry{Seq: out.e.Seq, QueueID: out.e.ID, Route: out.e.Route})
		}
	}
	return nil
}

// notifyEvery is how many entries a long resend queues between wake-ups of
// the destination's worker.
const notifyEvery = 100

// ---------------------------------------------------------------------------
// Rejected input

// A RejectedSummary is one entry of the rejected log without its bytes.
type RejectedSummary struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Listener string    `json:"listener"`
	Peer     string    `json:"peer,omitempty"`
	Reason   string    `json:"reason"`
	Size     int64     `json:"size"` // of the whole input
	Hash     string    `json:"hash"` // sha256 of the bytes kept (all of them unless oversized), hex
}

// A RejectedList is one page of GET /api/v1/rejected (after, limit).
type RejectedList struct {
	Rejected []RejectedSummary `json:"rejected"`
	Next     uint64            `json:"next,omitempty"`
}

// A RejectedDetail is GET /api/v1/rejected/{id}: the entry and the bytes kept
// (the first 64 KiB of an oversized input; Truncated says so).
type RejectedDetail struct {
	RejectedSummary
	Truncated bool   `json:"truncated,omitempty"`
	Raw       []byte `json:"raw"`
}

func rejectedSummary(r *store.Rejected) RejectedSummary {
	return RejectedSummary{ID: r.ID, Time: r.Time, Listener: r.Listener, Peer: r.Peer, Reason: r.Reason,
		Size: r.Size, Hash: hex.EncodeToString(r.Hash[:])}
}

// ListRejected returns up to limit rejected inputs after ID after, oldest first.
func (o *Ops) ListRejected(ctx context.Context, after uint64, limit int) (RejectedList, error) {
	if limit < 0 {
		return RejectedList{}, badRequest("limit must be positive (at most %d)", store.MaxPageSize)
	}
	rs, err := o.Store.ListRejected(after, limit)
	if err != nil {
		return RejectedList{}, err
	}
	out := RejectedList{Rejected: make([]RejectedSummary, 0, len(rs))}
	for i := range rs {
		out.Rejected = append(out.Rejected, rejectedSummary(&rs[i]))
	}
	if n := len(rs); n > 0 && n == effectiveLimit(limit) {
		out.Next = rs[n-1].ID
	}
	return out, nil
}

// ShowRejected returns rejected input id with the bytes kept.
func (o *Ops) ShowRejected(ctx context.Context, id uint64) (RejectedDetail, error) {
	r, err := o.Store.GetRejected(id)
	if errors.Is(err, store.ErrNotFound) {
		return RejectedDetail{}, notFound("no rejected input with id %d (it may have passed its retention); mllpd rejected list shows the kept ones", id)
	}
	if err != nil {
		return RejectedDetail{}, err
	}
	return RejectedDetail{RejectedSummary: rejectedSummary(&r), Truncated: int64(len(r.Raw)) < r.Size, Raw: r.Raw}, nil
}

func effectiveLimit(n int) int {
	if n <= 0 {
		return store.DefaultPageSize
	}
	return min(n, store.MaxPageSize)
}

// ---------------------------------------------------------------------------
// Dead letters

// A DeadLetterInfo is one message given up on for one destination.
type DeadLetterInfo struct {
	Destination string    `json:"destination"`
	ID          uint64    `json:"id"`
	Seq         uint64    `json:"seq"`
	Route       string    `json:"route,omitempty"`
	Enqueued    time.Time `json:"enqueued,omitzero"`
	Time        time.Time `json:"time"` // when it was dead-lettered
	Reason      string    `json:"reason"`
}

// A DeadLetterList is one page of GET /api/v1/dead-letters (destination,
// after, limit). Without a destination it lists the dead letters of every
// destination that has some (also one a reload removed), by destination name,
// up to limit per destination, and Next is unset.
type DeadLetterList struct {
	DeadLetters []DeadLetterInfo `json:"dead_letters"`
	Next        uint64           `json:"next,omitempty"`
}

// A DeadLetterDetail is GET /api/v1/dead-letters/{dest}/{id}: the dead letter
// and its message with bytes and delivery records.
type DeadLetterDetail struct {
	DeadLetterInfo
	Message MessageDetail `json:"message"`
}

// A PurgeResult says how many dead letters a purge deleted.
type PurgeResult struct {
	Destination string    `json:"destination,omitempty"`
	OlderThan   time.Time `json:"older_than"`
	Purged      int       `json:"purged"`
}

func deadLetterInfo(d *store.DeadLetter) DeadLetterInfo {
	return DeadLetterInfo{Destination: d.Destination, ID: d.ID, Seq: d.Seq, Route: d.Route,
		Enqueued: d.Enqueued, Time: d.Time, Reason: d.Reason}
}

// knownDestination accepts a configured destination, and one a reload
// removed while it still has dead letters ("destination removed"): those
// stay readable and purgeable.
func (o *Ops) knownDestination(dest string) error {
	if dest == "" {
		return badRequest("no destination given (mllpd destinations list shows the configured ones)")
	}
	if _, ok := o.Config.Destination(dest); ok {
		return nil
	}
	dls, err := o.Store.DeadLetters(dest, 0, 1)
	if err != nil {
		return err
	}
	if len(dls) == 0 {
		return notFound("unknown destination %q; mllpd destinations list shows the configured ones", dest)
	}
	return nil
}

// ListDeadLetters returns up to limit of dest's dead letters after ID after,
// oldest first; dest "" lists every destination's (see DeadLetterList).
func (o *Ops) ListDeadLetters(ctx context.Context, dest string, after uint64, limit int) (DeadLetterList, error) {
	if limit < 0 {
		return DeadLetterList{}, badRequest("limit must be positive (at most %d)", store.MaxPageSize)
	}
	out := DeadLetterList{DeadLetters: []DeadLetterInfo{}}
	if dest == "" {
		if after != 0 {
			return out, badRequest("after pages one destination's dead letters: give a destination too")
		}
		states, err := o.Store.Destinations()
		if err != nil {
			return out, err
		}
		for _, ss := range states {
			if ss.DeadLetters == 0 {
				continue
			}
			dls, err := o.Store.DeadLetters(ss.Name, 0, limit)
			if err != nil {
				return out, err
			}
			for i := range dls {
				out.DeadLetters = append(out.DeadLetters, deadLetterInfo(&dls[i]))
			}
		}
		return out, nil
	}
	if err := o.knownDestination(dest); err != nil {
		return out, err
	}
	dls, err := o.Store.DeadLetters(dest, after, limit)
	if err != nil {
		return out, err
	}
	for i := range dls {
		out.DeadLetters = append(out.DeadLetters, deadLetterInfo(&dls[i]))
	}
	if n := len(dls); n > 0 && n == effectiveLimit(limit) {
		out.Next = dls[n-1].ID
	}
	return out, nil
}

func (o *Ops) deadLetter(dest string, id uint64) (store.DeadLetter, error) {
	if err := o.knownDestination(dest); err != nil {
		return store.DeadLetter{}, err
	}
	if id == 0 {
		return store.DeadLetter{}, notFound("no dead letter 0 for %s: ids start at 1", dest)
	}
	dls, err := o.Store.DeadLetters(dest, id-1, 1)
	if err != nil {
		return store.DeadLetter{}, err
	}
	if len(dls) == 0 || dls[0].ID != id {
		return store.DeadLetter{}, notFound("no dead letter %d for %s (resent or purged?); mllpd dead-letters list --destination %s shows them", id, dest, dest)
	}
	return dls[0], nil
}

// ShowDeadLetter returns dest's dead letter id with its message.
func (o *Ops) ShowDeadLetter(ctx context.Context, dest string, id uint64) (DeadLetterDetail, error) {
	dl, err := o.deadLetter(dest, id)
	if err != nil {
		return DeadLetterDetail{}, err
	}
	m, err := o.ShowMessage(ctx, dl.Seq)
	if err != nil {
		return DeadLetterDetail{}, err
	}
	return DeadLetterDetail{DeadLetterInfo: deadLetterInfo(&dl), Message: m}, nil
}

// ResendDeadLetters queues dest's dead letters ids (all of them when ids is
// empty) again at the tail of dest's queue, in dead-letter order, each under
// its original route. A resent dead letter leaves the list.
func (o *Ops) ResendDeadLetters(ctx context.Context, dest string, ids []uint64) (ResendResult, error) {
	if err := o.destination(dest); err != nil {
		return ResendResult{}, err
	}
	var dls []store.DeadLetter
	if len(ids) == 0 {
		var after uint64
		for {
			page, err := o.Store.DeadLetters(dest, after, store.MaxPageSize)
			if err != nil {
				return ResendResult{}, err
			}
			dls = append(dls, page...)
			if len(dls) > maxResend {
				return ResendResult{}, badRequest("more than %d dead letters; resend them by id in smaller sets", maxResend)
			}
			if len(page) < store.MaxPageSize {
				break
			}
			after = page[len(page)-1].ID
		}
	} else {
		for _, id := range ids {
			dl, err := o.deadLetter(dest, id)
			if err != nil {
				return ResendResult{}, err
			}
			dls = append(dls, dl)
		}
	}
	res := ResendResult{To: dest, Queued: []QueuedEntry{}}
	defer func() {
		if len(res.Queued) > 0 {
			o.notify(dest)
		}
	}()
	items := make([]requeueItem, len(dls))
	for i, dl := range dls {
		items[i] = requeueItem{seq: dl.Seq, route: dl.Route}
	}
	return res, o.requeueMany(ctx, dest, items, &res)
}

// PurgeDeadLetters deletes dest's dead letters dead-lettered before olderThan
// (dest "" = every destination's). A zero olderThan is refused: purging
// everything must be asked for with an explicit time (now).
func (o *Ops) PurgeDeadLetters(ctx context.Context, dest string, olderThan time.Time) (PurgeResult, error) {
	if olderThan.IsZero() {
		return PurgeResult{}, badRequest("older_than is required (RFC 3339); to purge everything give the current time")
	}
	if dest != "" {
		if err := o.knownDestination(dest); err != nil {
			return PurgeResult{}, err
		}
	}
	n, err := o.Store.PurgeDeadLetters(ctx, dest, olderThan)
	res := PurgeResult{Destination: dest, OlderThan: olderThan, Purged: n}
	if err != nil {
		return res, fmt.Errorf("purge dead letters: %w", err)
	}
	return res, nil
}

// ---------------------------------------------------------------------------
// Destinations

// A DestinationStatus is GET /api/v1/destinations' view of one destination:
// its queue, whether it is blocked and how many dead letters it has. Head is
// the message at the head of the queue, with its latest attempt, when the
// queue is not empty. Configured is false for a destination a reload removed
// that still has dead letters (Type and Target are then empty).
type DestinationStatus struct {
	Name          string        `json:"name"`
	Configured    bool          `json:"configured"`
	Type          string        `json:"type,omitempty"`
	Target        string        `json:"target,omitempty"` // address, URL or directory
	Queue         int           `json:"queue"`
	Oldest        time.Time     `json:"oldest,omitzero"` // enqueue time of the head
	OldestAge     time.Duration `json:"oldest_age_ns,omitempty"`
	Blocked       bool          `json:"blocked,omitempty"`
	BlockedReason string        `json:"blocked_reason,omitempty"`
	BlockedAt     time.Time     `json:"blocked_at,omitzero"`
	DeadLetters   int           `json:"dead_letters"`
	Head          *QueueHead    `json:"head,omitempty"`
}

// A QueueHead is the first entry of a destination's queue.
type QueueHead struct {
	QueueID     uint64    `json:"queue_id"`
	Seq         uint64    `json:"seq"`
	Route       string    `json:"route,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// A SkipResult is POST /api/v1/destinations/{name}/skip: the head entry moved
// to the dead letters, and the queue's state afterwards (unblocked).
type SkipResult struct {
	Skipped     QueuedEntry       `json:"skipped"`
	Destination DestinationStatus `json:"destination"`
}

// Destinations returns the state of every configured destination, in
// config order, then of the destinations the store still knows that the
// config no longer names (a reload removed them; their dead letters or a
// blocked mark remain), by name, with Configured false.
func (o *Ops) Destinations(ctx context.Context) ([]DestinationStatus, error) {
	states, err := o.Store.Destinations()
	if err != nil {
		return nil, err
	}
	byName := make(map[string]store.DestinationState, len(states))
	for _, st := range states {
		byName[st.Name] = st
	}
	out := make([]DestinationStatus, 0, len(o.Config.Destinations))
	for _, dc := range o.Config.Destinations {
		st, err := o.destinationStatus(dc, byName[dc.Name], true)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	for _, ss := range states {
		if _, ok := o.Config.Destination(ss.Name); ok || (ss.Pending == 0 && ss.DeadLetters == 0 && !ss.Blocked) {
			continue
		}
		st, err := o.destinationStatus(config.Destination{Name: ss.Name}, ss, false)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (o *Ops) destinationStatus(dc config.Destination, ss store.DestinationState, configured bool) (DestinationStatus, error) {
	st := DestinationStatus{Name: dc.Name, Type: dc.Type, Configured: configured, Queue: ss.Pending,
		Blocked: ss.Blocked, BlockedReason: ss.Reason, BlockedAt: ss.BlockedAt, DeadLetters: ss.DeadLetters}
	switch dc.Type {
	case "mllp":
		st.Target = dc.Address
	case "http":
		st.Target = dc.URL
	case "file":
		st.Target = dc.Dir
	}
	if ss.Pending > 0 && !ss.Oldest.IsZero() {
		st.Oldest = ss.Oldest
		st.OldestAge = max(o.now().Sub(ss.Oldest), 0)
	}
	if ss.Pending > 0 {
		head, err := o.Store.Pending(dc.Name, 0, 1)
		if err != nil {
			return st, fmt.Errorf("destination %s: %w", dc.Name, err)
		}
		if len(head) == 1 {
			h := &QueueHead{QueueID: head[0].ID, Seq: head[0].Seq, Route: head[0].Route}
			if r, err := o.summary(head[0].Seq); err == nil {
				for _, d := range r.Deliveries {
					if d.Destination == dc.Name {
						h.Attempts, h.LastAttempt, h.LastError = d.Attempts, d.LastAttempt, d.LastError
					}
				}
			}
			st.Head = h
		}
	}
	return st, nil
}

// destinationState is the store's view of one destination (zero when the
// store has never seen it).
func (o *Ops) destinationState(name string) (store.DestinationState, error) {
	states, err := o.Store.Destinations()
	if err != nil {
		return store.DestinationState{}, err
	}
	for _, st := range states {
		if st.Name == name {
			return st, nil
		}
	}
	return store.DestinationState{Name: name}, nil
}

func (o *Ops) configured(name string) (config.Destination, error) {
	dc, ok := o.Config.Destination(name)
	if !ok {
		return dc, notFound("unknown destination %q; mllpd destinations list shows the configured ones", name)
	}
	return dc, nil
}

// Unblock clears dest's blocked mark and wakes its worker. Unblocking a
// queue that is not blocked is not an error.
func (o *Ops) Unblock(ctx context.Context, dest string) (DestinationStatus, error) {
	dc, err := o.configured(dest)
	if err != nil {
		return DestinationStatus{}, err
	}
	if err := o.Store.Unblock(ctx, dest); err != nil {
		return DestinationStatus{}, fmt.Errorf("unblock %s: %w", dest, err)
	}
	o.notify(dest)
	ss, err := o.destinationState(dest)
	if err != nil {
		return DestinationStatus{}, err
	}
	return o.destinationStatus(dc, ss, true)
}

// Skip moves the head entry of dest's blocked queue to its dead letters
// (reason SkipReason), unblocks the queue and wakes its worker. A queue that
// is not blocked is refused: its worker may be sending the head right now.
func (o *Ops) Skip(ctx context.Context, dest string) (SkipResult, error) {
	dc, err := o.configured(dest)
	if err != nil {
		return SkipResult{}, err
	}
	if _, blocked := o.Store.Blocked(dest); !blocked {
		return SkipResult{}, conflict("destination %s is not blocked; skip moves only the head of a blocked queue (an unblocked worker may be sending it right now)", dest)
	}
	head, err := o.Store.Pending(dest, 0, 1)
	if err != nil {
		return SkipResult{}, err
	}
	var res SkipResult
	if len(head) == 0 {
		return SkipResult{}, conflict("destination %s is blocked but its queue is empty; use mllpd destinations unblock %s", dest, dest)
	}
	h := head[0]
	err = o.Store.Record(ctx, dest, h.ID, store.Attempt{At: o.now(), Outcome: store.DeadLettered, Reason: SkipReason})
	if err != nil {
		return SkipResult{}, fmt.Errorf("skip %s head (seq %d): %w", dest, h.Seq, err)
	}
	res.Skipped = QueuedEntry{Seq: h.Seq, QueueID: h.ID, Route: h.Route}
	if err := o.Store.Unblock(ctx, dest); err != nil {
		return res, fmt.Errorf("unblock %s after skipping its head: %w", dest, err)
	}
	o.notify(dest)
	ss, err := o.destinationState(dest)
	if err != nil {
		return res, err
	}
	res.Destination, err = o.destinationStatus(dc, ss, true)
	return res, err
}

// ---------------------------------------------------------------------------
// Info

// Info is GET /api/v1/info: which store the daemon serves, so that a CLI
// given another config can tell it is talking to another mllpd.
type Info struct {
	Store        string `json:"store"` // the store file's absolute path
	Destinations int    `json:"destinations"`
}

// Info describes the store and config these Ops work on.
func (o *Ops) Info(ctx context.Context) (Info, error) {
	p, err := filepath.Abs(o.Store.Path())
	if err != nil {
		return Info{}, err
	}
	return Info{Store: p, Destinations: len(o.Config.Destinations)}, nil
}

// ---------------------------------------------------------------------------
// Backup

// Backup writes a consistent copy of the whole store file to w (one read
// transaction; writers are not held up) and returns the bytes written. The
// copy opens with store.Open like the original.
func (o *Ops) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return o.Store.Backup(w)
}
