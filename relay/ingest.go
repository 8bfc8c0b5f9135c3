package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/store"
)

// patientIDPath is what the store indexes for admins' "messages for this
// patient" queries: the first identifier of PID-3.
var patientIDPath = hl7.MustParsePath("PID-3[1].1")

// An ingest is one listener's mllp.Handler: parse, validate, route, append
// durably, then answer. Its settings can be swapped by a reload while
// connections stay open.
type ingest struct {
	name string
	cfg  atomic.Pointer[config.Listener]
	d    *Daemon
	m    listenerMetrics
}

// listenerMetrics are the per-listener children of the ingest metrics, looked
// up once so the per-message path does no label-map lookups.
type listenerMetrics struct {
	frames, accepted, duplicates, reused, unrouted prometheus.Counter
	latency                                        prometheus.Observer
	acks                                           map[hl7.AckCode]prometheus.Counter
}

func newIngest(d *Daemon, lc *config.Listener) *ingest {
	in := &ingest{name: lc.Name, d: d}
	in.cfg.Store(lc)
	mm := d.metrics
	in.m = listenerMetrics{
		frames:     mm.frames.WithLabelValues(lc.Name),
		accepted:   mm.accepted.WithLabelValues(lc.Name),
		duplicates: mm.duplicates.WithLabelValues(lc.Name),
		reused:     mm.reused.WithLabelValues(lc.Name),
		unrouted:   mm.unrouted.WithLabelValues(lc.Name),
		latency:    mm.ackLatency.WithLabelValues(lc.Name),
		acks:       map[hl7.AckCode]prometheus.Counter{},
	}
	for _, c := range []hl7.AckCode{hl7.AA, hl7.AE, hl7.AR, hl7.CA, hl7.CE, hl7.CR} {
		in.m.acks[c] = mm.acks.WithLabelValues(lc.Name, string(c))
	}
	return in
}

// replyMode is how a message is to be answered: original mode always answers;
// enhanced mode follows MSH-15 (reference §5.2).
type replyMode struct {
	enhanced bool
	accept   string // AL NE ER SU (enhanced only)
}

func (r replyMode) code(original hl7.AckCode, enhanced hl7.AckCode) hl7.AckCode {
	if r.enhanced {
		return enhanced
	}
	return original
}

// answers reports whether a reply is sent for a success (ok) or a failure.
func (r replyMode) answers(ok bool) bool {
	if !r.enhanced {
		return true
	}
	switch r.accept {
	case "NE":
		return false
	case "ER":
		return !ok
	case "SU":
		return ok
	}
	return true // AL
}

func modeFor(lc *config.Listener, h *hl7.Header) replyMode {
	if lc.AckMode != "enhanced" {
		return replyMode{}
	}
	accept := h.AcceptAckType
	switch accept {
	case "AL", "NE", "ER", "SU":
	default:
		accept = "" // a value outside table 0155 counts as blank
	}
	if accept == "" && h.AppAckType == "" {
		return replyMode{} // both blank: original mode
	}
	if accept == "" {
		accept = "AL" // blank MSH-15 with MSH-16 valued: answer (reference §5.2 note)
	}
	return replyMode{enhanced: true, accept: accept}
}

// ServeMLLP answers one frame. It never returns a positive ACK for a message
// that is not durably stored; a commit whose outcome is still unknown after
// commit_timeout closes the connection without a reply.
func (in *ingest) ServeMLLP(ctx context.Context, req *mllp.Request) ([]byte, error) {
	lc := in.cfg.Load()
	in.m.frames.Inc()
	start := req.Received
	if start.IsZero() {
		start = time.Now()
	}
	reply, err := in.serve(ctx, lc, req)
	if reply != nil {
		in.m.latency.Observe(time.Since(start).Seconds())
	}
	return reply, err
}

func (in *ingest) serve(ctx context.Context, lc *config.Listener, req *mllp.Request) ([]byte, error) {
	if req.Oversize > 0 {
		return in.rejectOversize(ctx, lc, req), nil
	}
	if len(bytes.TrimLeft(req.Frame, " \t\r\n\x00")) == 0 {
		in.d.logger.Debug("blank frame ignored", zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr))
		return nil, nil // whitespace only: a keep-alive (reference §6 step 2)
	}
	b, err := hl7.SplitBatch(req.Frame, hl7.Options{CharsetFallback: lc.CharsetFallback})
	if err != nil {
		f := failBadDelimiters
		var be *hl7.BatchError
		switch {
		case errors.Is(err, hl7.ErrNoMSH):
			f = failNoMSH
		case errors.As(err, &be):
			f = failBrokenBatch
		}
		return in.rejectFrame(ctx, lc, req, f, err), nil
	}
	if (b.Kind == hl7.BatchBHS || b.Kind == hl7.BatchFHS) && !lc.Batches {
		return in.rejectFrame(ctx, lc, req, failBatchesOff, nil), nil
	}
	for _, msg := range b.Messages {
		if r := msg.Repairs(); r != 0 {
			for _, name := range r.Names() {
				in.d.metrics.repairs.WithLabelValues(in.name, name).Inc()
			}
		}
	}

	// Validate and route every message before anything is stored: a frame is
	// all or nothing (reference §7).
	rt := in.d.routes.Load()
	recs := make([]store.Message, len(b.Messages))
	headers := make([]hl7.Header, len(b.Messages))
	fails := make([]failure, len(b.Messages))
	failed := false
	for i, msg := range b.Messages {
		f := in.check(lc, msg, &headers[i])
		if f == 0 {
			targets := rt.targets(in.name, &headers[i], msg)
			if len(targets) == 0 && lc.RejectUnrouted {
				f = failUnrouted
			}
			recs[i] = in.record(lc, req, msg, &headers[i], targets)
		}
		if f != 0 {
			fails[i], failed = f, true
		}
	}
	mode := modeFor(lc, &headers[0])
	if failed {
		return in.rejectMessages(ctx, lc, req, b, headers, fails, mode), nil
	}
	return in.commit(lc, req, b, headers, recs, mode)
}

// check validates a parsed message's header against the listener's accept
// lists; 0 means acceptable. h is filled as far as it can be read.
func (in *ingest) check(lc *config.Listener, msg *hl7.Message, h *hl7.Header) failure {
	*h = msg.Header()
	if err := msg.ValidateHeader(); err != nil {
		var he *hl7.HeaderError
		if errors.As(err, &he) && he.Field == 10 {
			if errors.Is(err, hl7.ErrMalformedField) {
				return failBadControlID
			}
			return failMissingControlID
		}
		return failMissingType
	}
	if a := lc.Accept.Versions; len(a) > 0 && !matchAny(a, h.Version) {
		return failVersion
	}
	if a := lc.Accept.ProcessingIDs; len(a) > 0 && !matchAny(a, h.ProcessingID) {
		return failProcessingID
	}
	if a := lc.Accept.MessageTypes; len(a) > 0 && !matchType(a, h.Type, h.Event) {
		for _, g := range a {
			gt, _, _ := strings.Cut(g, "^")
			if ok, _ := path.Match(gt, h.Type); ok {
				return failEventNotAccepted // a known code with an event we do not take
			}
		}
		return failTypeNotAccepted
	}
	return 0
}

func (in *ingest) record(lc *config.Listener, req *mllp.Request, msg *hl7.Message, h *hl7.Header, targets []store.Target) store.Message {
	return store.Message{
		Raw:             msg.Raw(), // aliases req.Frame: AppendAsync copies it before it returns
		Received:        req.Received,
		Listener:        in.name,
		Peer:            peerString(req),
		Charset:         msg.Charset(),
		ControlID:       h.ControlID,
		Type:            h.Type,
		Event:           h.Event,
		SendingApp:      h.SendingApp,
		SendingFacility: h.SendingFacility,
		PatientID:       msg.Get(patientIDPath),
		ContentHash:     msg.ContentHash(),
		DedupeWindow:    lc.DedupeWindow,
		Targets:         targets,
	}
}

// commitDeadline is the context AppendAsync waits under: done when the
// commit_timeout timer closes done. It carries no values and no parent's
// cancellation: a commit, once queued, is waited for.
type commitDeadline struct {
	context.Context // Background: no values, no deadline of its own
	done            chan struct{}
}

func (d *commitDeadline) Done() <-chan struct{} { return d.done }

func (d *commitDeadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

type appendOutcome struct {
	res     []store.AppendResult
	err     error
	expired bool // commit_timeout passed first
}

// commit appends the frame's messages in one transaction and answers once the
// outcome is known.
func (in *ingest) commit(lc *config.Listener, req *mllp.Request, b *hl7.Batch, headers []hl7.Header, recs []store.Message, mode replyMode) ([]byte, error) {
	// The commit runs on the store's committing goroutine (one per batch, not
	// one per message); this one waits for its outcome or commit_timeout. The
	// same deadline bounds the store's wait for room in a batch. One timer
	// does both (a context.WithTimeout with an AfterFunc and a select cost 6%
	// of the rate at 256 connections), and done gets whichever comes first,
	// the outcome or the expiry: it has room for both, so neither sender
	// ever blocks. The deadline ignores ctx: a queued commit is waited for.
	done := make(chan appendOutcome, 2)
	var abandoned, waiting atomic.Bool
	dl := &commitDeadline{Context: context.Background(), done: make(chan struct{})}
	timer := time.AfterFunc(lc.CommitTimeout, func() {
		abandoned.Store(true)
		if !waiting.Load() {
			// With no commit in progress AppendAsync commits in the handler's
			// goroutine, which cannot watch the deadline: close the
			// connection from here.
			req.Abort()
		}
		close(dl.done)
		done <- appendOutcome{expired: true}
	})
	timedOut := func(msg string, fields ...zap.Field) ([]byte, error) {
		in.d.metrics.noReply.WithLabelValues(in.name, "commit_timeout").Inc()
		in.d.logger.Warn(msg, append(fields, zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr),
			zap.String("control_id", headers[0].ControlID), zap.Duration("commit_timeout", lc.CommitTimeout))...)
		return nil, mllp.ErrCloseConn
	}
	in.d.store.AppendAsync(dl, recs, func(res []store.AppendResult, err error) {
		done <- appendOutcome{res: res, err: err}
		if abandoned.Load() {
			// The sender got no reply and its connection was closed; its resend
			// meets the dedupe if this commit did reach the disk.
			in.d.logger.Warn("commit finished after commit_timeout",
				zap.String("listener", in.name), zap.Bool("stored", err == nil), zap.Error(err))
		}
	})
	waiting.Store(true)
	out := <-done
	if out.expired {
		return timedOut("commit still pending after commit_timeout: closing the connection without a reply")
	}
	if !timer.Stop() {
		// The outcome came as commit_timeout passed: the timer may have
		// closed the connection already. A resend meets the dedupe.
		return timedOut("commit finished as commit_timeout passed: closing the connection without a reply",
			zap.Bool("stored", out.err == nil))
	}
	if out.err != nil {
		f := failStore
		if errors.Is(out.err, store.ErrLowDiskSpace) {
			f = failLowSpace
		}
		p := nakPolicies[f]
		in.d.metrics.rejected.WithLabelValues(in.name, p.reason).Inc()
		in.d.logger.Warn("message not stored", zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr),
			zap.String("control_id", headers[0].ControlID), zap.String("reason", p.reason), zap.Error(out.err))
		fails := make([]failure, len(b.Messages))
		for i := range fails {
			fails[i] = f
		}
		return in.answerAll(lc, b, headers, fails, mode), nil
	}
	for i, r := range out.res {
		switch {
		case r.Duplicate:
			in.m.duplicates.Inc()
		default:
			in.m.accepted.Inc()
			if len(recs[i].Targets) == 0 {
				in.m.unrouted.Inc()
			}
			for _, t := range recs[i].Targets {
				in.d.notify(t.Destination)
			}
		}
		if r.ReusedControlID {
			in.m.reused.Inc()
			in.d.logger.Warn("control ID reused with different content: stored as a new message",
				zap.String("listener", in.name), zap.String("control_id", headers[i].ControlID),
				zap.Uint64("seq", r.Seq), zap.Uint64("previous_seq", r.PreviousSeq))
		}
		if ce := in.d.logger.Check(zap.DebugLevel, "message accepted"); ce != nil {
			ce.Write(zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr),
				msgField(&headers[i], len(recs[i].Raw)), zap.Uint64("seq", r.Seq), zap.Bool("duplicate", r.Duplicate),
				zap.Duration("latency", time.Since(req.Received)), in.body(recs[i].Raw))
		}
	}
	if b.Kind == hl7.Headerless {
		in.d.logger.Warn("several messages in one frame without a batch header: stored together, one ACK",
			zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr), zap.Int("messages", len(b.Messages)))
	}
	return in.answerAll(lc, b, headers, make([]failure, len(b.Messages)), mode), nil
}

// answerAll builds the reply for a parsed frame: one ACK for a single message
// or a headerless multi-message frame (MSA-2 = the first MSH-10), an ack batch
// for FHS/BHS input. fails[i] == 0 means message i was accepted.
func (in *ingest) answerAll(lc *config.Listener, b *hl7.Batch, headers []hl7.Header, fails []failure, mode replyMode) []byte {
	ok := true
	for _, f := range fails {
		ok = ok && f == 0
	}
	if !mode.answers(ok) {
		in.d.metrics.noReply.WithLabelValues(in.name, "enhanced_"+strings.ToLower(mode.accept)).Inc()
		return nil
	}
	switch b.Kind {
	case hl7.BatchBHS, hl7.BatchFHS:
		acks := make([][]byte, len(b.Messages))
		for i, msg := range b.Messages {
			acks[i] = in.ack(lc, msg, &headers[i], fails[i], mode)
		}
		return hl7.NewBatchACK(b, acks, in.ackOptions(lc))
	default:
		f := failure(0)
		for _, fi := range fails {
			if fi != 0 {
				f = fi
				break
			}
		}
		return in.ack(lc, b.Messages[0], &headers[0], f, mode)
	}
}

// ack builds one message's ACK: positive when f is 0, else the NAK of f's policy.
func (in *ingest) ack(lc *config.Listener, msg *hl7.Message, h *hl7.Header, f failure, mode replyMode) []byte {
	o := in.ackOptions(lc)
	code := mode.code(hl7.AA, hl7.CA)
	if f != 0 {
		p := nakPolicies[f]
		code = mode.code(p.original, p.enhanced)
		o.Text = p.text
		o.Error = &hl7.AckError{Code: p.code, Location: p.location}
	}
	in.m.acks[code].Inc()
	return hl7.NewACK(msg, code, o)
}

func (in *ingest) ackOptions(lc *config.Listener) hl7.AckOptions {
	return hl7.AckOptions{
		Now:            time.Now(),
		ControlID:      in.d.ackIDs.next(),
		App:            lc.Identity.App,
		Facility:       lc.Identity.Facility,
		DefaultVersion: lc.DefaultVersion,
	}
}

// rejectMessages answers a frame whose messages parsed but at least one failed
// validation: nothing is stored, the raw frame goes to the rejected log.
func (in *ingest) rejectMessages(ctx context.Context, lc *config.Listener, req *mllp.Request, b *hl7.Batch, headers []hl7.Header, fails []failure, mode replyMode) []byte {
	first := failure(0)
	for i := range fails {
		if fails[i] == 0 {
			fails[i] = failBatchRejected // valid, but its frame is not taken
		} else if first == 0 {
			first = fails[i]
		}
	}
	p := nakPolicies[first]
	in.d.metrics.rejected.WithLabelValues(in.name, p.reason).Inc()
	in.d.logger.Warn("frame rejected", zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr),
		zap.String("reason", p.reason), zap.String("control_id", headers[0].ControlID),
		zap.String("type", headers[0].Type+"^"+headers[0].Event), zap.Int("bytes", len(req.Frame)))
	if p.rejectedLog {
		in.keepRejected(ctx, req, p.reason, req.Frame, int64(len(req.Frame)))
	}
	return in.answerAll(lc, b, headers, fails, mode)
}

// rejectFrame answers a frame that could not be split into messages at all,
// with a NAK salvaged from its raw bytes (reference §6).
func (in *ingest) rejectFrame(ctx context.Context, lc *config.Listener, req *mllp.Request, f failure, cause error) []byte {
	p := nakPolicies[f]
	in.d.metrics.rejected.WithLabelValues(in.name, p.reason).Inc()
	in.d.logger.Warn("frame rejected", zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr),
		zap.String("reason", p.reason), zap.Int("bytes", len(req.Frame)), zap.Error(cause))
	in.keepRejected(ctx, req, p.reason, req.Frame, int64(len(req.Frame)))
	if ce := in.d.logger.Check(zap.DebugLevel, "rejected frame"); ce != nil {
		ce.Write(zap.String("listener", in.name), zap.String("reason", p.reason), in.body(req.Frame))
	}
	o := in.ackOptions(lc)
	o.Text = p.text
	o.Error = &hl7.AckError{Code: p.code, Location: p.location}
	in.m.acks[p.original].Inc()
	return hl7.NewNAK(req.Frame, p.original, o)
}

// rejectOversize answers a frame over max_message_bytes: AE with 104 for
// v2.7+ senders, else 207, salvaged from the frame's first 64 KiB.
func (in *ingest) rejectOversize(ctx context.Context, lc *config.Listener, req *mllp.Request) []byte {
	p := nakPolicies[failTooLarge]
	in.d.metrics.rejected.WithLabelValues(in.name, p.reason).Inc()
	in.d.logger.Warn("frame too large", zap.String("listener", in.name), zap.Stringer("peer", req.RemoteAddr),
		zap.Int64("bytes", req.Oversize), zap.Int("max_message_bytes", lc.MaxMessageBytes))
	in.keepRejected(ctx, req, p.reason, req.Frame, req.Oversize)
	version := lc.DefaultVersion
	if h, ok := hl7.SalvageHeader(req.Frame); ok && h.Version != "" {
		version = h.Version
	}
	o := in.ackOptions(lc)
	o.Text = p.text
	o.Error = &hl7.AckError{Code: hl7.ValueTooLongCode(version), Diagnostic: "frame of " + strconv.FormatInt(req.Oversize, 10) + " bytes exceeds max_message_bytes"}
	in.m.acks[p.original].Inc()
	return hl7.NewNAK(req.Frame, p.original, o)
}

// keepRejected writes input that was not accepted to the rejected log (its
// first 64 KiB, with its full size and the hash of what was kept). A failure
// here is counted and logged; it never changes the reply.
func (in *ingest) keepRejected(ctx context.Context, req *mllp.Request, reason string, raw []byte, size int64) {
	if len(raw) > mllp.PrefixBytes {
		raw = raw[:mllp.PrefixBytes]
	}
	r := store.Rejected{
		Time:     time.Now(),
		Listener: in.name,
		Peer:     peerString(req),
		Reason:   reason,
		Size:     size,
		Hash:     sha256.Sum256(raw),
		Raw:      bytes.Clone(raw),
	}
	if _, err := in.d.store.AddRejected(ctx, r); err != nil {
		in.d.metrics.rejectDrops.Inc()
		in.d.logger.Error("rejected log write failed", zap.String("listener", in.name), zap.Error(err))
	}
}

// body logs a message's content only when log.bodies is on: it holds
// patient data, so it is an explicit debugging choice (design promise 7).
func (in *ingest) body(raw []byte) zap.Field {
	if !in.d.cfg.Load().Log.Bodies {
		return zap.Skip()
	}
	return zap.ByteString("body", raw)
}

// peerString is the sender as stored with a message: its address and, over
// mutual TLS, the verified certificate's subject CN.
func peerString(req *mllp.Request) string {
	peer := req.Peer
	if peer == "" && req.RemoteAddr != nil {
		peer = req.RemoteAddr.String() // a Request not made by mllp.Server
	}
	if req.PeerName != "" {
		return peer + " CN=" + req.PeerName
	}
	return peer
}

// ackIDSource makes the ACKs' own MSH-10 values: unique within a process by a
// counter, across restarts by the start time (millisecond resolution), and
// within v2.5.1's 20 characters.
type ackIDSource struct {
	prefix string
	n      atomic.Uint64
}

func newAckIDSource(now time.Time) *ackIDSource {
	return &ackIDSource{prefix: "M" + strconv.FormatInt(now.UnixMilli(), 36)}
}

func (s *ackIDSource) next() string {
	return s.prefix + "-" + strconv.FormatUint(s.n.Add(1), 36)
}
