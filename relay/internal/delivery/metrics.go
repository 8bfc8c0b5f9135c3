package delivery

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the delivery metrics of every destination (label
// "destination", a config name, plus closed sets). One Metrics serves all
// workers of a process; [Metrics.Forget] drops a removed destination.
type Metrics struct {
	delivered  *prometheus.CounterVec
	failed     *prometheus.CounterVec
	retries    *prometheus.CounterVec
	depth      *prometheus.GaugeVec
	oldest     *prometheus.GaugeVec
	blocked    *prometheus.GaugeVec
	lastError  *prometheus.GaugeVec
	attemptDur *prometheus.HistogramVec

	mu   sync.Mutex
	last map[string]string // destination → current last_error_class label
}

// NewMetrics registers the delivery metrics with reg (nil: a private
// registry, for tests and tools). It panics on a duplicate registration, a
// startup bug.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	const ns, sub = "mllpd", "delivery"
	return &Metrics{
		delivered: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "delivered_total",
			Help: "Messages the destination accepted."}, []string{"destination"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "failed_total",
			Help: "Failed delivery attempts by class: retriable (retried), permanent (dead-lettered or blocked per policy; also the last of max_attempts), block (HTTP 401/403)."}, []string{"destination", "class"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Attempts scheduled again after a retriable failure."}, []string{"destination"}),
		depth: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_depth",
			Help: "Messages waiting in the destination's queue."}, []string{"destination"}),
		oldest: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "oldest_undelivered_age_seconds",
			Help: "Age of the oldest message waiting in the destination's queue; 0 when empty."}, []string{"destination"}),
		blocked: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "blocked",
			Help: "1 while the destination's queue is blocked (an admin must unblock or skip)."}, []string{"destination"}),
		lastError: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_error_class",
			Help: "1 for the kind of the destination's last failed attempt (timeout, connection, ack_ar, http_5xx, ...)."},
			[]string{"destination", "class"}),
		attemptDur: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "attempt_duration_seconds",
			Help:    "Time from send to the downstream's answer (or failure).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"destination"}),
		last: map[string]string{},
	}
}

// setLastError makes kind the destination's one last_error_class series at 1.
func (m *Metrics) setLastError(dest, kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.last[dest]; ok && old != kind {
		m.lastError.WithLabelValues(dest, old).Set(0)
	}
	m.last[dest] = kind
	m.lastError.WithLabelValues(dest, kind).Set(1)
}

// Forget deletes every series of dest (a destination removed by reload).
func (m *Metrics) Forget(dest string) {
	l := prometheus.Labels{"destination": dest}
	m.delivered.DeletePartialMatch(l)
	m.failed.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.depth.DeletePartialMatch(l)
	m.oldest.DeletePartialMatch(l)
	m.blocked.DeletePartialMatch(l)
	m.lastError.DeletePartialMatch(l)
	m.attemptDur.DeletePartialMatch(l)
	m.mu.Lock()
	delete(m.last, dest)
	m.mu.Unlock()
}
