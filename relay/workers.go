package relay

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"go.uber.org/zap"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/relay/internal/transport"
)

// Reasons a reload gives to the entries it moves to dead letters.
const reasonDestinationRemoved = "destination removed"

// workerHandle is one destination's delivery worker and the means to stop it.
type workerHandle struct {
	cfg    config.Destination
	worker *delivery.Worker
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the worker at a message boundary and waits for it.
func (w *workerHandle) stop() {
	w.cancel()
	<-w.done
}

type workerSet = map[string]*workerHandle

// notify wakes the worker of dest after an append queued something for it.
// It takes no lock: the set is replaced, never modified, so ingest never
// waits for a reload that is stopping a worker.
func (d *Daemon) notify(dest string) {
	if ws := d.workers.Load(); ws != nil {
		if w := (*ws)[dest]; w != nil {
			w.worker.Notify()
		}
	}
}

// transportConfig turns a destination's config into its transport settings,
// loading TLS files; Prepare calls it so check-config catches bad files.
func transportConfig(dc *config.Destination) (transport.Config, error) {
	tc := transport.Config{
		Name:       dc.Name,
		Type:       dc.Type,
		Address:    dc.Address,
		AckTimeout: dc.AckTimeout,
		URL:        dc.URL,
		Format:     dc.Format,
		Timeout:    dc.Timeout,
		Headers:    dc.Headers,
		Dir:        dc.Dir,
	}
	if dc.TLS != nil && (dc.TLS.CAFile != "" || dc.TLS.CertFile != "") {
		c, err := transport.ClientTLSConfig(dc.TLS.CAFile, dc.TLS.CertFile, dc.TLS.KeyFile)
		if err != nil {
			return tc, err
		}
		tc.TLS = c
	}
	return tc, nil
}

// prepareDestinations checks what a worker needs of each destination
// (transport settings, TLS files, classification overrides).
func prepareDestinations(cfg *config.Config) (map[string]transport.Config, config.Errors) {
	out := make(map[string]transport.Config, len(cfg.Destinations))
	var errs config.Errors
	for i := range cfg.Destinations {
		dc := &cfg.Destinations[i]
		tc, err := transportConfig(dc)
		if err != nil {
			errs = append(errs, config.FieldError{Path: fmt.Sprintf("destinations[%d].tls", i), Msg: err.Error()})
			continue
		}
		if _, err := delivery.NewClassifier(dc.Classify); err != nil {
			errs = append(errs, config.FieldError{Path: fmt.Sprintf("destinations[%d].classify", i), Msg: err.Error()})
			continue
		}
		out[dc.Name] = tc
	}
	return out, errs
}

// startWorker starts the delivery worker of one destination.
func (d *Daemon) startWorker(dc config.Destination, tc transport.Config) (*workerHandle, error) {
	tr, err := delivery.NewTransport(tc)
	if err != nil {
		return nil, err
	}
	w, err := delivery.NewWorker(delivery.WorkerConfig{
		Name:            dc.Name,
		Store:           d.store,
		Transport:       tr,
		Mapper:          d.mapperFor(dc.Name),
		OutboundKeepAck: dc.OutboundAckMode == "keep",
		Classify:        dc.Classify,
		Retry: delivery.Retry{
			Initial:     dc.Retry.Initial,
			Max:         dc.Retry.Max,
			MaxAttempts: dc.Retry.MaxAttempts,
		},
		OnPermanentFailure: dc.OnPermanentFailure,
		Metrics:            d.delivery,
		Logger:             d.logger,
	})
	if err != nil {
		tr.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	h := &workerHandle{cfg: dc, worker: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		if err := w.Run(ctx); err != nil {
			d.logger.Error("delivery worker stopped", zap.String("destination", dc.Name), zap.Error(err))
		}
	}()
	return h, nil
}

// mapperFor returns how the worker of dest finds the mapping of a queue
// entry's route in the config current at delivery. A route removed by a
// reload has no mapping: its entries go to dead letters, never out unmapped.
// An admin resend that no route chose (route "") takes the mapping of the
// first route that sends to dest, or none.
func (d *Daemon) mapperFor(dest string) delivery.Mapper {
	return func(route string) (*hl7map.Mapping, bool) {
		rt := d.routes.Load()
		if route == "" {
			for _, r := range rt.routes {
				if mp, ok := rt.mapping(r.name, dest); ok {
					return mp, true
				}
			}
			return nil, true
		}
		return rt.mapping(route, dest)
	}
}

func (d *Daemon) startWorkers(cfg *config.Config) {
	ws := workerSet{}
	for _, dc := range cfg.Destinations {
		h, err := d.startWorker(dc, d.plan0.transports[dc.Name])
		if err != nil {
			// Prepare checked these settings; a failure here is a bug or a
			// file that vanished since. The queue keeps its entries.
			d.logger.Error("delivery worker not started", zap.String("destination", dc.Name), zap.Error(err))
			continue
		}
		ws[dc.Name] = h
	}
	d.workers.Store(&ws)
}

// stopWorkers stops every worker at a message boundary. A worker stuck on a
// stalled disk cannot hold shutdown past ctx: it is reported and left.
func (d *Daemon) stopWorkers(ctx context.Context) error {
	ws := d.workers.Swap(&workerSet{})
	if ws == nil {
		return nil
	}
	all := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, w := range *ws {
			wg.Go(w.stop)
		}
		wg.Wait()
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("delivery workers still busy at the shutdown deadline: %w", ctx.Err())
	}
}

// reloadWorkers applies a reload to the delivery side: a removed
// destination's worker stops after its in-flight delivery and its pending
// entries go to its dead letters; a changed one restarts with the new
// settings (and is unblocked: an admin changed it); an added one starts and
// receives what is accepted from now on.
func (d *Daemon) reloadWorkers(plan *Plan, next *config.Config) {
	old := d.workers.Load()
	ws := workerSet{}
	for _, dc := range next.Destinations {
		if h, ok := (*old)[dc.Name]; ok && reflect.DeepEqual(h.cfg, dc) {
			ws[dc.Name] = h
			continue
		}
		changed := false
		if h, ok := (*old)[dc.Name]; ok {
			h.stop()
			changed = true
		}
		if changed {
			if _, blocked := d.store.Blocked(dc.Name); blocked {
				if err := d.store.Unblock(d.runCtx, dc.Name); err != nil {
					d.logger.Error("unblocking a changed destination failed", zap.String("destination", dc.Name), zap.Error(err))
				}
			}
		}
		h, err := d.startWorker(dc, plan.transports[dc.Name])
		if err != nil {
			d.logger.Error("delivery worker not started", zap.String("destination", dc.Name), zap.Error(err))
			continue
		}
		ws[dc.Name] = h
		d.logger.Info("destination started", zap.String("destination", dc.Name), zap.Bool("changed", changed))
	}
	d.workers.Store(&ws)
	for name, h := range *old {
		if _, kept := ws[name]; kept {
			continue
		}
		h.stop()
		n, err := d.store.DeadLetterQueue(d.runCtx, name, reasonDestinationRemoved)
		if err != nil {
			d.logger.Error("moving a removed destination's queue to dead letters failed",
				zap.String("destination", name), zap.Error(err))
			continue
		}
		d.delivery.Forget(name)
		d.logger.Info("destination removed: pending entries moved to its dead letters",
			zap.String("destination", name), zap.Int("entries", n))
	}
}
