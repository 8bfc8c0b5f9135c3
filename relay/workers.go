package relay

import (
	"github.com/mllpd/mllpd/config"
)

// workerHandle is one destination's delivery worker and the means to stop it.
type workerHandle struct {
	notify func()
	stop   func() // cancels and waits
}

// notify wakes the worker of dest after an append queued something for it.
func (d *Daemon) notify(dest string) {
	d.mu.Lock()
	w := d.workers[dest]
	d.mu.Unlock()
	if w != nil && w.notify != nil {
		w.notify()
	}
}

func (d *Daemon) startWorkers(cfg *config.Config) {}

func (d *Daemon) stopWorkers() {
	d.mu.Lock()
	ws := d.workers
	d.workers = map[string]*workerHandle{}
	d.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
}

func (d *Daemon) reloadWorkers(old, next *config.Config) {}
