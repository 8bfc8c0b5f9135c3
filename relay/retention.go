package relay

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/mllpd/mllpd/store"
)

// retentionInterval is how often delivered messages, dead letters and rejected
// entries past their retention are pruned. Pruning is cheap and idempotent.
const retentionInterval = 10 * time.Minute

func (d *Daemon) retentionLoop(ctx context.Context) {
	defer d.bg.Done()
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	for {
		d.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) prune(ctx context.Context) {
	s := d.cfg.Load().Storage
	st, err := d.store.Prune(ctx, store.Retention{
		Delivered:        s.Retention,
		DeadLetters:      s.DeadLetterRetention,
		Rejected:         s.RejectedRetention,
		RejectedMaxBytes: s.RejectedMaxBytes,
	})
	if err != nil {
		if ctx.Err() == nil {
			d.logger.Error("retention pruning failed", zap.Error(err))
		}
		return
	}
	d.logger.Debug("retention pruning done", zap.Any("pruned", st))
}
