package mllp

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// refusalLogsPerSecond bounds the log lines for refused connections and
// failed TLS handshakes: a connection flood or a port scanner must not fill
// the disk with log lines. Every refusal is still an Event (and so counted).
const refusalLogsPerSecond = 10

// A logLimiter lets at most refusalLogsPerSecond lines through per second
// and reports how many it held back on the next line that passes.
type logLimiter struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be logged now, and with it the number of
// lines suppressed since the last one logged.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= refusalLogsPerSecond {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// warn logs msg through l at warn level, adding the count of lines held back.
func (l *logLimiter) warn(log *zap.Logger, msg string, fields ...zap.Field) {
	ok, suppressed := l.allow(time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed_since_last", suppressed))
	}
	log.Warn(msg, fields...)
}
