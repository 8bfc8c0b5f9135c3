package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/relay/internal/transport"
	"github.com/mllpd/mllpd/store"
)

// QueueStore is what a worker needs of the store; *store.Store satisfies it.
type QueueStore interface {
	Pending(dest string, afterID uint64, limit int) ([]store.QueueEntry, error)
	PendingCount(dest string) (n int, oldest time.Time, err error)
	// GetMessage loads a message (its deliveries are not needed).
	GetMessage(seq uint64) (store.Record, error)
	// RecordAsync queues an attempt record for the next group commit, in
	// call order, and calls done with its outcome once committed.
	RecordAsync(ctx context.Context, dest string, id uint64, a store.Attempt, done func(error))
	SetBlocked(ctx context.Context, dest, reason string) error
	Blocked(dest string) (reason string, blocked bool)
}

// Transport sends one message to a destination (relay/internal/transport:
// MLLP, HTTP, file). A worker is its only user: Send is never concurrent.
type Transport interface {
	Send(ctx context.Context, msg transport.Message) (transport.Result, error)
	Close() error
}

// A Mapper returns the compiled mapping of a route for this worker's
// destination, from the config current now; ok=false means the route no
// longer exists (removed by a reload).
type Mapper func(route string) (mp *hl7map.Mapping, ok bool)

// Policies for a permanent failure (config on_permanent_failure).
const (
	PolicyDeadLetter = "dead_letter"
	PolicyBlock      = "block"
)

// Dead-letter reasons set by the worker itself (besides failure texts).
const (
	ReasonRouteRemoved   = "route removed"
	ReasonMessageMissing = "message missing from the store"
)

// Defaults for zero WorkerConfig fields.
const (
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultPoll         = time.Second
	// MaxRetryAfter bounds an HTTP Retry-After, so that a wrong header cannot
	// park a queue for days.
	MaxRetryAfter = time.Hour
	// batchSize is how many queue entries a worker reads at once.
	batchSize = 256
	// gaugeInterval is how often queue_depth and the oldest age are read.
	gaugeInterval = time.Second
	// prefetchDepth and prefetchBytes bound how far ahead of the entry in
	// flight entries are loaded and mapped: jobs, and raw bytes (beyond
	// the last job made, so that one larger message still goes through).
	prefetchDepth = 16
	prefetchBytes = 1 << 20
)

// Retry is the backoff of retriable failures: Initial doubling up to Max,
// with jitter; MaxAttempts 0 retries forever.
type Retry struct {
	Initial     time.Duration // 0 = DefaultRetryInitial
	Max         time.Duration // 0 = DefaultRetryMax
	MaxAttempts int           // attempts of one entry before it counts as permanent; 0 = no limit
}

// WorkerConfig configures one destination's worker.
type WorkerConfig struct {
	Name            string     // destination name = queue name
	Store           QueueStore // *store.Store
	Transport       Transport  // see NewTransport; closed by Run when it returns
	Mapper          Mapper     // required
	OutboundKeepAck bool       // outbound_ack_mode: keep (else MSH-15/16 are blanked)
	// Classify overrides design.md's ACK table: {"AE": "retriable", "AR/207": "permanent"}.
	Classify           map[string]string
	Retry              Retry
	OnPermanentFailure string        // PolicyDeadLetter ("" too) or PolicyBlock
	Poll               time.Duration // idle and blocked re-check interval; 0 = DefaultPoll
	Metrics            *Metrics      // nil = a private set (not exported)
	Logger             *zap.Logger   // nil = zap.NewNop()
	Now                func() time.Time
	// Jitter returns a random duration in [0, n); nil = math/rand/v2. Tests
	// make backoffs deterministic with it.
	Jitter func(n time.Duration) time.Duration
	// OnEvent, if set, is called after each attempt record is committed
	// (or failed) and after the queue was blocked: the moment the store
	// shows it. It runs on one of the worker's goroutines and must be quick.
	OnEvent func(Event)
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventDelivered    EventKind = iota // the entry left the queue as delivered
	EventAttempted                     // a failed attempt was recorded; the entry stays at the head
	EventDeadLettered                  // the entry moved to the dead letters
	EventBlocked                       // the queue was blocked (store.SetBlocked)
)

var eventNames = [...]string{"delivered", "attempted", "dead_lettered", "blocked"}

// String returns the kind's snake_case name.
func (k EventKind) String() string {
	if k >= 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// An Event reports a committed step of a worker (WorkerConfig.OnEvent).
type Event struct {
	Kind    EventKind
	Dest    string
	QueueID uint64
	Seq     uint64
	Class   string // outcome kind (KindTimeout, KindAckAR, ...); "delivered" on success
	Reason  string // dead letter or block reason
	Err     error  // the store's error, if writing the record failed
}

// A Worker delivers one destination's queue in accept order. Create it with
// NewWorker, run it with Run, wake it with Notify.
type Worker struct {
	cfg    WorkerConfig
	cls    *Classifier
	log    *zap.Logger
	m      *Metrics
	wake   chan struct{}
	rec    *recorder
	nextGa time.Time // next gauge refresh

	// This destination's series of the per-message metrics, looked up once.
	delivered  prometheus.Counter
	attemptDur prometheus.Observer
}

// NewWorker checks cfg and returns its worker.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("delivery: worker without a destination name")
	case cfg.Store == nil || cfg.Transport == nil || cfg.Mapper == nil:
		return nil, fmt.Errorf("delivery: worker %q: Store, Transport and Mapper are required", cfg.Name)
	}
	switch cfg.OnPermanentFailure {
	case "":
		cfg.OnPermanentFailure = PolicyDeadLetter
	case PolicyDeadLetter, PolicyBlock:
	default:
		return nil, fmt.Errorf("delivery: worker %q: on_permanent_failure %q (dead_letter or block)", cfg.Name, cfg.OnPermanentFailure)
	}
	cls, err := NewClassifier(cfg.Classify)
	if err != nil {
		return nil, fmt.Errorf("delivery: worker %q: %w", cfg.Name, err)
	}
	if cfg.Retry.Initial <= 0 {
		cfg.Retry.Initial = DefaultRetryInitial
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = DefaultRetryMax
	}
	cfg.Retry.Max = max(cfg.Retry.Max, cfg.Retry.Initial)
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(n time.Duration) time.Duration {
			if n <= 0 {
				return 0
			}
			return rand.N(n)
		}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Worker{
		cfg:        cfg,
		cls:        cls,
		log:        cfg.Logger.With(zap.String("destination", cfg.Name)),
		m:          cfg.Metrics,
		wake:       make(chan struct{}, 1),
		delivered:  cfg.Metrics.delivered.WithLabelValues(cfg.Name),
		attemptDur: cfg.Metrics.attemptDur.WithLabelValues(cfg.Name),
	}, nil
}

// Name returns the destination name.
func (w *Worker) Name() string { return w.cfg.Name }

// Notify wakes the worker: ingest calls it after an append queued something
// for this destination, the admin API after an unblock or a resend. It never
// blocks.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then returns nil, having waited for every
// attempt record to be committed and closed the transport. It stops at a
// message boundary: an in-flight send finishes or is cut by ctx, and an entry
// not recorded as delivered is sent again by the next run (at least once).
// The store must stay open until Run returns. A non-nil error means the store
// failed in a way the worker cannot wait out (it was closed). Run is called
// once per Worker.
func (w *Worker) Run(ctx context.Context) error {
	w.rec = newRecorder(w.cfg.Store, w.cfg.Name, w.log, w.cfg.OnEvent)
	defer func() {
		w.rec.close()
		w.updateGauges(true) // true as of the last record
		if err := w.cfg.Transport.Close(); err != nil {
			w.log.Warn("closing transport", zap.Error(err))
		}
	}()
	w.log.Info("delivery worker started")
	defer w.log.Info("delivery worker stopped")

	var after uint64 // last entry settled in this run: delivered or dead-lettered
	for ctx.Err() == nil {
		if reason, blocked := w.cfg.Store.Blocked(w.cfg.Name); blocked {
			w.m.blocked.WithLabelValues(w.cfg.Name).Set(1)
			w.log.Debug("queue blocked; waiting for unblock", zap.String("reason", reason))
			w.updateGauges(true)
			w.wait(ctx, w.cfg.Poll, true)
			continue
		}
		w.m.blocked.WithLabelValues(w.cfg.Name).Set(0)
		w.updateGauges(false)
		entries, err := w.cfg.Store.Pending(w.cfg.Name, after, batchSize)
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return fmt.Errorf("delivery: %s: %w", w.cfg.Name, err)
			}
			w.log.Error("reading queue", zap.Error(err))
			w.wait(ctx, w.cfg.Poll, false)
			continue
		}
		if len(entries) == 0 {
			// Idle. The records still uncommitted are not waited for (one
			// fsync per caught-up message would throttle a worker that keeps
			// up); wait refreshes the gauges when they are committed.
			w.updateGauges(true)
			w.wait(ctx, w.cfg.Poll, true)
			continue
		}
		if last, ok := w.deliverBatch(ctx, entries); ok {
			after = last
		}
	}
	return nil
}

// deliverBatch delivers entries in order until one is held (blocked, store
// trouble, stopping). It returns the ID of the last entry settled, ok=false
// if none was. The entries after the one in flight are loaded and mapped
// meanwhile (prefetch), so the next send follows the previous ACK at once.
func (w *Worker) deliverBatch(ctx context.Context, entries []store.QueueEntry) (last uint64, ok bool) {
	// The first entry is prepared here: a worker that keeps up reads one
	// entry at a time and needs no second goroutine.
	first := w.prepare(entries[0])
	var pf *prefetcher
	if len(entries) > 1 {
		pf = w.startPrefetch(ctx, entries[1:])
		defer pf.stop()
	}
	for i := range entries {
		if ctx.Err() != nil {
			return last, ok // stop at a message boundary
		}
		j := first
		if i > 0 {
			if j = pf.next(); j == nil {
				return last, ok // ctx ended
			}
		}
		if !w.deliver(ctx, j) {
			return last, ok // held: the caller reads the queue again from last
		}
		last, ok = j.e.ID, true
		w.updateGauges(false)
	}
	return last, ok
}

// wait returns after d, when ctx ends (false) or, if wakeable, on Notify.
// While it waits it keeps queue_depth and the oldest age current: a long
// backoff or a blocked queue is when an admin looks at them.
func (w *Worker) wait(ctx context.Context, d time.Duration, wakeable bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(gaugeInterval)
	defer tick.Stop()
	var wake <-chan struct{}
	if wakeable {
		wake = w.wake
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-wake:
			return true
		case <-t.C:
			return true
		case <-tick.C:
			w.updateGauges(true)
		case <-w.rec.settled:
			w.updateGauges(true) // the store now counts what was delivered
		}
	}
}

func (w *Worker) updateGauges(force bool) {
	now := w.cfg.Now()
	if !force && now.Before(w.nextGa) {
		return
	}
	w.nextGa = now.Add(gaugeInterval)
	n, oldest, err := w.cfg.Store.PendingCount(w.cfg.Name)
	if err != nil {
		return
	}
	w.m.depth.WithLabelValues(w.cfg.Name).Set(float64(n))
	age := 0.0
	if n > 0 && !oldest.IsZero() {
		age = max(now.Sub(oldest).Seconds(), 0)
	}
	w.m.oldest.WithLabelValues(w.cfg.Name).Set(age)
}

// deliver handles one entry until it is settled (true: delivered or
// dead-lettered, left the queue) or held (false: blocked, ctx ended, the
// store failed).
func (w *Worker) deliver(ctx context.Context, j *job) bool {
	e, rec := j.e, &j.rec
	switch {
	case errors.Is(j.err, store.ErrNotFound):
		return w.deadLetter(ctx, w.entryLog(e, nil), e, store.Attempt{}, KindMissing, ReasonMessageMissing)
	case j.err != nil:
		w.entryLog(e, nil).Error("reading message", zap.Error(j.err))
		w.wait(ctx, w.cfg.Poll, false)
		return false
	case j.parseErr != nil:
		return w.permanent(ctx, w.entryLog(e, rec), e, store.Attempt{Err: j.parseErr.Error()}, KindMapping, "stored message does not parse")
	}

	// The body prepared ahead is used only while the route still has the
	// mapping it was made with.
	mp, mapped, body, mapErr := j.mp, j.mapped, j.body, j.mapErr
	attempts := 0
	for {
		// The mapping is looked up before every attempt: a reload may have
		// changed or removed the route while this entry waited or was retried.
		cur, ok := w.cfg.Mapper(e.Route)
		if !ok {
			return w.deadLetter(ctx, w.entryLog(e, rec), e, store.Attempt{}, KindRouteRemoved, ReasonRouteRemoved)
		}
		if !mapped || cur != mp {
			mp, mapped = cur, true
			body, mapErr = hl7map.Outbound(j.parsed, mp, w.cfg.OutboundKeepAck)
		}
		if mapErr != nil {
			return w.permanent(ctx, w.entryLog(e, rec), e, store.Attempt{Err: mapErr.Error()}, KindMapping, "mapping failed")
		}

		start := w.cfg.Now()
		res, err := w.cfg.Transport.Send(ctx, transport.Message{Seq: e.Seq, ControlID: rec.ControlID, Body: body})
		if err != nil && ctx.Err() != nil {
			return false // cut by shutdown: not the downstream's failure; sent again next run
		}
		w.attemptDur.Observe(w.cfg.Now().Sub(start).Seconds())
		attempts++
		class, kind := w.cls.Classify(res, err)
		a := store.Attempt{
			At: start, AckCode: res.AckCode, AckControlID: res.AckControlID,
			ErrorCode: res.ErrorCode, HTTPStatus: res.HTTPStatus, Err: failureText(kind, res, err),
		}
		switch class {
		case Delivered:
			a.Outcome = store.Delivered
			a.Err = ""
			w.rec.submit(e, a, kind, nil) // group-committed behind the next sends
			w.delivered.Inc()
			if ce := w.log.Check(zap.DebugLevel, "delivered"); ce != nil {
				ce.Write(append(entryFields(e, rec), zap.Int("attempts", attempts), zap.String("ack", res.AckCode), zap.Int("http_status", res.HTTPStatus))...)
			}
			return true
		case Retriable:
			log := w.entryLog(e, rec)
			if n := w.cfg.Retry.MaxAttempts; n > 0 && attempts >= n {
				// The last attempt counts as permanent, not also as retriable.
				return w.permanent(ctx, log, e, a, kind, fmt.Sprintf("%d attempts failed, last: %s", attempts, a.Err))
			}
			w.m.failed.WithLabelValues(w.cfg.Name, Retriable.String()).Inc()
			w.m.setLastError(w.cfg.Name, kind)
			a.Outcome = store.Attempted
			w.rec.submit(e, a, kind, nil)
			delay := w.backoff(attempts)
			if ra := min(res.RetryAfter, MaxRetryAfter); ra > delay {
				delay = ra
			}
			log.Warn("delivery failed; will retry", zap.String("class", kind), zap.Int("attempts", attempts),
				zap.Duration("backoff", delay), zap.String("error", a.Err))
			w.m.retries.WithLabelValues(w.cfg.Name).Inc()
			if !w.wait(ctx, delay, false) {
				return false
			}
		case Permanent:
			w.m.setLastError(w.cfg.Name, kind)
			return w.permanent(ctx, w.entryLog(e, rec), e, a, kind, a.Err)
		case Block:
			w.m.setLastError(w.cfg.Name, kind)
			w.m.failed.WithLabelValues(w.cfg.Name, Block.String()).Inc()
			return w.block(ctx, w.entryLog(e, rec), e, a, kind, a.Err)
		}
	}
}

// entryFields identify an entry in logs: sequence number, queue ID and, once
// the record is loaded, control ID and type (never content).
func entryFields(e store.QueueEntry, rec *store.Record) []zap.Field {
	f := make([]zap.Field, 0, 8)
	f = append(f, zap.Uint64("seq", e.Seq), zap.Uint64("queue_id", e.ID))
	if rec != nil {
		f = append(f, zap.String("control_id", rec.ControlID), zap.String("type", rec.Type+"^"+rec.Event))
	}
	return f
}

// entryLog is the worker's logger with entryFields: built only for the
// lines of failures, not for every delivered message.
func (w *Worker) entryLog(e store.QueueEntry, rec *store.Record) *zap.Logger {
	return w.log.With(entryFields(e, rec)...)
}

// backoff returns the wait before attempt n+1: Initial·2^(n-1) capped at
// Max, the upper half jittered so that destinations that failed together do
// not retry together.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.Retry.Initial
	for i := 1; i < n && d < w.cfg.Retry.Max; i++ {
		d *= 2
	}
	d = min(d, w.cfg.Retry.Max)
	half := d / 2
	return half + w.cfg.Jitter(d-half+1)
}

// permanent applies on_permanent_failure to a failed entry.
func (w *Worker) permanent(ctx context.Context, log *zap.Logger, e store.QueueEntry, a store.Attempt, kind, reason string) bool {
	w.m.failed.WithLabelValues(w.cfg.Name, Permanent.String()).Inc()
	w.m.setLastError(w.cfg.Name, kind)
	if w.cfg.OnPermanentFailure == PolicyBlock {
		return w.block(ctx, log, e, a, kind, reason)
	}
	return w.deadLetter(ctx, log, e, a, kind, reason)
}

// deadLetter moves the entry to the dead letters and waits for the commit
// (a rare event; waiting keeps the log line true).
func (w *Worker) deadLetter(ctx context.Context, log *zap.Logger, e store.QueueEntry, a store.Attempt, kind, reason string) bool {
	a.Outcome = store.DeadLettered
	a.Reason = reason
	if a.At.IsZero() && (a.Err != "" || a.AckCode != "" || a.HTTPStatus != 0) {
		a.At = w.cfg.Now()
	}
	if kind == KindRouteRemoved || kind == KindMissing {
		w.m.failed.WithLabelValues(w.cfg.Name, Permanent.String()).Inc()
		w.m.setLastError(w.cfg.Name, kind)
	}
	if err := w.rec.wait(e, a, kind); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("dead-lettering failed; the entry stays queued", zap.Error(err))
		w.wait(ctx, w.cfg.Poll, false)
		return false
	}
	log.Warn("dead-lettered", zap.String("class", kind), zap.String("reason", reason))
	return true
}

// block records the attempt, blocks the queue and alerts.
func (w *Worker) block(ctx context.Context, log *zap.Logger, e store.QueueEntry, a store.Attempt, kind, reason string) bool {
	a.Outcome = store.Attempted
	if a.At.IsZero() {
		a.At = w.cfg.Now()
	}
	if err := w.rec.wait(e, a, kind); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("recording attempt", zap.Error(err))
	}
	if err := w.cfg.Store.SetBlocked(context.WithoutCancel(ctx), w.cfg.Name, reason); err != nil {
		log.Error("blocking queue failed", zap.Error(err))
		w.wait(ctx, w.cfg.Poll, false)
		return false
	}
	w.m.blocked.WithLabelValues(w.cfg.Name).Set(1)
	if w.cfg.OnEvent != nil {
		w.cfg.OnEvent(Event{Kind: EventBlocked, Dest: w.cfg.Name, QueueID: e.ID, Seq: e.Seq, Class: kind, Reason: reason})
	}
	log.Error("queue blocked: an admin must unblock or skip its head", zap.String("reason", reason))
	return false
}

// failureText is the recorded error of an attempt: codes and transport
// errors, never ACK text (MSA-3/ERR-7 may quote patient data).
func failureText(kind string, res transport.Result, err error) string {
	switch {
	case err != nil:
		return kind + ": " + err.Error()
	case res.AckCode != "" && kind != KindDelivered:
		if res.ErrorCode != "" {
			return "downstream " + res.AckCode + " " + res.ErrorCode
		}
		return "downstream " + res.AckCode
	case res.HTTPStatus != 0 && kind != KindDelivered:
		return fmt.Sprintf("http %d", res.HTTPStatus)
	}
	return ""
}
