package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the daemon's ingest-side metrics. Labels come only from config
// names and closed sets (ACK codes, reasons, repair and event names), never
// from message content or peer addresses.
type metrics struct {
	frames      *prometheus.CounterVec   // listener
	accepted    *prometheus.CounterVec   // listener
	duplicates  *prometheus.CounterVec   // listener
	reused      *prometheus.CounterVec   // listener
	unrouted    *prometheus.CounterVec   // listener
	acks        *prometheus.CounterVec   // listener, code
	rejected    *prometheus.CounterVec   // listener, reason
	repairs     *prometheus.CounterVec   // listener, repair
	events      *prometheus.CounterVec   // listener, event
	noReply     *prometheus.CounterVec   // listener, reason
	ackLatency  *prometheus.HistogramVec // listener
	openConns   *prometheus.GaugeVec     // listener
	storeBytes  prometheus.GaugeFunc
	freeBytes   prometheus.GaugeFunc
	reloads     *prometheus.CounterVec // result
	rejectDrops prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, storeSize, freeSpace func() float64) *metrics {
	f := promauto.With(reg)
	return &metrics{
		frames: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "frames_received_total",
			Help: "MLLP frames received, by listener.",
		}, []string{"listener"}),
		accepted: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "messages_accepted_total",
			Help: "Messages durably stored and acknowledged, by listener (duplicates excluded).",
		}, []string{"listener"}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "duplicates_total",
			Help: "Resends recognised by the dedupe index and acknowledged again without storing.",
		}, []string{"listener"}),
		reused: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "control_id_reused_total",
			Help: "Messages stored whose sender, facility and control ID were seen with other content.",
		}, []string{"listener"}),
		unrouted: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "unrouted_total",
			Help: "Messages stored that no route matched.",
		}, []string{"listener"}),
		acks: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "acks_total",
			Help: "ACKs sent, by listener and MSA-1 code (AA AE AR CA CE CR).",
		}, []string{"listener", "code"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "rejected_total",
			Help: "Frames or messages not accepted, by listener and reason.",
		}, []string{"listener", "reason"}),
		repairs: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "repairs_total",
			Help: "Tolerated deviations from the standard (LF terminators, missing final CR, ...), by listener.",
		}, []string{"listener", "repair"}),
		events: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "mllp", Name: "events_total",
			Help: "Connection-level events and refusals (junk bytes, timeouts, limits, TLS failures), by listener.",
		}, []string{"listener", "event"}),
		noReply: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "no_reply_total",
			Help: "Frames deliberately left without a reply (commit timeout, enhanced-mode NE/ER/SU).",
		}, []string{"listener", "reason"}),
		ackLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mllpd", Subsystem: "ingest", Name: "ack_latency_seconds",
			Help:    "Time from a frame's end to its reply being ready, by listener.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"listener"}),
		openConns: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "mllpd", Subsystem: "mllp", Name: "open_connections",
			Help: "Open MLLP connections, by listener.",
		}, []string{"listener"}),
		storeBytes: f.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mllpd", Subsystem: "store", Name: "size_bytes",
			Help: "Size of the bbolt file.",
		}, storeSize),
		freeBytes: f.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mllpd", Subsystem: "store", Name: "free_disk_bytes",
			Help: "Free bytes on the data directory's file system.",
		}, freeSpace),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "config", Name: "reloads_total",
			Help: "Config reloads, by result (ok, invalid, failed).",
		}, []string{"result"}),
		rejectDrops: f.NewCounter(prometheus.CounterOpts{
			Namespace: "mllpd", Subsystem: "store", Name: "rejected_log_failures_total",
			Help: "Rejected-log entries that could not be written.",
		}),
	}
}
