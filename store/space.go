package store

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// freeSpaceEveryBytes: the free-space figure is refreshed after this many bytes
// written, whatever the interval says, so a burst cannot overshoot the guard by
// more than this.
const freeSpaceEveryBytes = 4 << 20

// spaceGuard caches the data directory's free space. low is on every Append's
// path, so it costs an atomic load and a clock read; the statfs runs at most
// once per interval or per freeSpaceEveryBytes written, by one caller at a time.
type spaceGuard struct {
	source   func() (uint64, error)
	min      atomic.Uint64 // changed live by SetMinFreeBytes (config reload)
	interval time.Duration

	free    atomic.Uint64
	isLow   atomic.Bool
	checked atomic.Int64 // monotonic nanoseconds since base of the last refresh
	written atomic.Int64 // bytes written since the last refresh
	base    time.Time
	mu      sync.Mutex // one refresher at a time
}

func (g *spaceGuard) init(source func() (uint64, error), min uint64, interval time.Duration) {
	g.source, g.interval = source, interval
	g.min.Store(min)
	g.base = time.Now()
	g.refresh()
}

// low reports whether writes must be refused, refreshing the figure when stale.
func (g *spaceGuard) low() bool {
	if g.min.Load() == 0 {
		return false
	}
	g.maybeRefresh()
	return g.isLow.Load()
}

func (g *spaceGuard) maybeRefresh() {
	if time.Since(g.base).Nanoseconds()-g.checked.Load() < int64(g.interval) &&
		g.written.Load() < freeSpaceEveryBytes {
		return
	}
	if g.mu.TryLock() { // someone else refreshing: their figure will do
		g.refreshLocked()
		g.mu.Unlock()
	}
}

func (g *spaceGuard) wrote(n int) { g.written.Add(int64(n)) }

func (g *spaceGuard) refresh() {
	g.mu.Lock()
	g.refreshLocked()
	g.mu.Unlock()
}

func (g *spaceGuard) refreshLocked() {
	g.checked.Store(time.Since(g.base).Nanoseconds())
	g.written.Store(0)
	free, err := g.source()
	if err != nil {
		// An unreadable figure does not stop writes: the commit itself reports
		// a full disk. Keep the last known value.
		return
	}
	g.free.Store(free)
	threshold := g.min.Load()
	g.isLow.Store(threshold > 0 && free < threshold)
}

// LowSpace reports whether the free-space guard refuses appends now (for
// /readyz). It refreshes the figure if it is stale.
func (s *Store) LowSpace() bool { return s.space.low() }

// FreeBytes returns the last measured free space of the data directory.
func (s *Store) FreeBytes() uint64 {
	s.space.maybeRefresh()
	return s.space.free.Load()
}

// statfsFree returns the bytes available to an unprivileged user in dir's filesystem.
func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// SetMinFreeBytes changes the free-space guard's threshold (a config
// reload); 0 turns the guard off. The free space is read again at once.
func (s *Store) SetMinFreeBytes(n uint64) {
	s.space.min.Store(n)
	s.space.refresh()
}
