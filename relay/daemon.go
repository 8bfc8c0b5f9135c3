package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/relay/internal/transport"
	"github.com/mllpd/mllpd/store"
)

// A Plan is a config compiled and checked without binding anything: routes,
// mappings, CIDR lists and TLS files. check-config, startup and reload share it.
type Plan struct {
	cfg    *config.Config
	routes *routeTable
	tls    map[string]*listenerTLS // by listener name
	allow  map[string][]netip.Prefix
	// transports are the destinations' transport settings, TLS loaded.
	transports map[string]transport.Config
}

type listenerTLS struct {
	cfg    *tls.Config
	reload func() error
}

// Prepare compiles cfg: every route, mapping, allow list and TLS file. It binds
// no port and opens no store, so it is safe while a daemon runs.
func Prepare(cfg *config.Config) (*Plan, error) {
	p := &Plan{cfg: cfg, tls: map[string]*listenerTLS{}, allow: map[string][]netip.Prefix{}}
	var errs config.Errors
	rt, err := compileRoutes(cfg)
	if err != nil {
		var ce config.Errors
		if !errors.As(err, &ce) {
			return nil, err
		}
		errs = append(errs, ce...)
	}
	p.routes = rt
	for i, l := range cfg.Listeners {
		for j, a := range l.Allow {
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				if addr, aerr := netip.ParseAddr(a); aerr == nil {
					pfx = netip.PrefixFrom(addr, addr.BitLen())
				} else {
					errs = append(errs, config.FieldError{Path: fmt.Sprintf("listeners[%d].allow[%d]", i, j), Msg: err.Error()})
					continue
				}
			}
			p.allow[l.Name] = append(p.allow[l.Name], pfx)
		}
		if l.TLS != nil && l.TLS.CertFile != "" {
			c, reload, err := mllp.NewServerTLSConfig(l.TLS.CertFile, l.TLS.KeyFile, l.TLS.ClientCAFile)
			if err != nil {
				errs = append(errs, config.FieldError{Path: fmt.Sprintf("listeners[%d].tls", i), Msg: err.Error()})
				continue
			}
			p.tls[l.Name] = &listenerTLS{cfg: c, reload: reload}
		}
	}
	var derrs config.Errors
	p.transports, derrs = prepareDestinations(cfg)
	errs = append(errs, derrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// Options are what the caller of New supplies besides the config.
type Options struct {
	Logger   *zap.Logger          // nil = zap.NewNop()
	Registry *prometheus.Registry // nil = a new registry
	// FreeSpace, when set, replaces the statfs reading of the data
	// directory's free bytes (tests of the free-space guard).
	FreeSpace func() (uint64, error)
}

// A Daemon is mllpd at run time: its store, listeners, delivery workers and
// admin API. main owns it; nothing here is global.
type Daemon struct {
	logger  *zap.Logger
	reg     *prometheus.Registry
	metrics *metrics
	store   *store.Store
	ackIDs  *ackIDSource

	cfg    atomic.Pointer[config.Config]
	routes atomic.Pointer[routeTable]

	mu        sync.Mutex // guards listeners (start, reload, shutdown)
	listeners map[string]*listener
	retired   []*listener               // replaced by a reload, still serving their connections
	workers   atomic.Pointer[workerSet] // replaced whole by start and reload
	delivery  *delivery.Metrics
	admin     *adminServer
	started   atomic.Bool
	stopping  atomic.Bool
	runCtx    context.Context // the workers' context, set by Start
	cancelRun context.CancelFunc
	bg        sync.WaitGroup // background loops (retention)
	plan0     *Plan          // the plan New compiled, used by Start
}

type listener struct {
	cfg    *config.Listener
	srv    *mllp.Server
	ln     net.Listener
	in     *ingest
	tls    *listenerTLS
	served chan error
}

// New compiles cfg and opens the store. It binds nothing; Start does.
func New(cfg *config.Config, o Options) (*Daemon, error) {
	plan, err := Prepare(cfg)
	if err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	st, err := store.Open(store.Options{
		Path:             filepath.Join(cfg.DataDir, "mllpd.db"),
		MinFreeBytes:     cfg.Storage.MinFreeBytes,
		FreeSpace:        o.FreeSpace,
		RejectedMaxBytes: cfg.Storage.RejectedMaxBytes, // bounded at every write, not only by pruning
	})
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		logger:    logger,
		reg:       reg,
		store:     st,
		ackIDs:    newAckIDSource(time.Now()),
		listeners: map[string]*listener{},
	}
	d.metrics = newMetrics(reg,
		func() float64 {
			fi, err := os.Stat(st.Path())
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		},
		func() float64 { return float64(st.FreeBytes()) })
	d.delivery = delivery.NewMetrics(reg)
	d.cfg.Store(cfg)
	d.routes.Store(plan.routes)
	d.plan0 = plan
	return d, nil
}

// Store returns the daemon's store (for the admin API and tests).
func (d *Daemon) Store() *store.Store { return d.store }

// Registry returns the metrics registry.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Config returns the config in force.
func (d *Daemon) Config() *config.Config { return d.cfg.Load() }

// ListenerAddr returns the bound address of the named listener, or nil.
func (d *Daemon) ListenerAddr(name string) net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.listeners[name]; ok {
		return l.ln.Addr()
	}
	return nil
}

// Start binds every listener and the admin API and starts the delivery
// workers. If one bind fails, the ones already bound are closed and the error
// names the failing listener.
func (d *Daemon) Start(ctx context.Context) error {
	cfg := d.cfg.Load()
	plan := d.plan0
	d.runCtx, d.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		l, err := d.bind(lc, plan)
		if err != nil {
			for _, l := range d.listeners {
				l.srv.Close()
			}
			d.listeners = map[string]*listener{}
			return fmt.Errorf("listeners[%d] (%s): %w", i, lc.Name, err)
		}
		d.listeners[lc.Name] = l
	}
	adm, err := d.startAdmin(cfg)
	if err != nil {
		for _, l := range d.listeners {
			l.srv.Close()
		}
		return fmt.Errorf("admin.listen: %w", err)
	}
	d.admin = adm
	for _, l := range d.listeners {
		d.serve(l)
	}
	d.startWorkers(cfg)
	d.bg.Add(1)
	go d.retentionLoop(d.runCtx)
	d.started.Store(true)
	d.logger.Info("mllpd started", zap.Int("listeners", len(d.listeners)), zap.Int("destinations", len(cfg.Destinations)),
		zap.Int("routes", len(cfg.Routes)), zap.String("data_dir", cfg.DataDir), zap.String("admin", adm.addr().String()))
	return nil
}

func (d *Daemon) bind(lc *config.Listener, plan *Plan) (*listener, error) {
	ln, err := net.Listen("tcp", lc.Listen)
	if err != nil {
		return nil, err
	}
	in := newIngest(d, lc)
	l := &listener{cfg: lc, ln: ln, in: in, tls: plan.tls[lc.Name], served: make(chan error, 1)}
	l.srv = &mllp.Server{
		Name:          lc.Name,
		Handler:       in,
		MaxFrameBytes: lc.MaxMessageBytes,
		MaxConns:      lc.MaxConnections,
		MaxConnsPerIP: lc.MaxConnectionsPerIP,
		ReadTimeout:   lc.ReadTimeout,
		IdleTimeout:   lc.IdleTimeout,
		WriteTimeout:  lc.WriteTimeout,
		Allow:         plan.allow[lc.Name],
		OnEvent:       d.onEvent,
		Logger:        d.logger,
	}
	if l.tls != nil {
		l.srv.TLSConfig = l.tls.cfg
	}
	d.logger.Info("listening", zap.String("listener", lc.Name), zap.Stringer("addr", ln.Addr()),
		zap.Bool("tls", l.tls != nil), zap.String("ack_mode", lc.AckMode))
	return l, nil
}

func (d *Daemon) serve(l *listener) {
	go func() { l.served <- l.srv.Serve(l.ln) }()
}

// onEvent counts connection-level events and keeps the fragment of a
// restarted frame in the rejected log (reference §11.1 case 8).
func (d *Daemon) onEvent(ev mllp.Event) {
	d.metrics.events.WithLabelValues(ev.Listener, ev.Kind.String()).Inc()
	switch ev.Kind {
	case mllp.ConnOpened:
		d.metrics.openConns.WithLabelValues(ev.Listener).Inc()
	case mllp.ConnClosed:
		d.metrics.openConns.WithLabelValues(ev.Listener).Dec()
	case mllp.FrameRestarted:
		if len(ev.Fragment) > 0 {
			d.mu.Lock()
			l := d.listeners[ev.Listener]
			d.mu.Unlock()
			if l != nil {
				req := &mllp.Request{Listener: ev.Listener, RemoteAddr: ev.RemoteAddr}
				l.in.keepRejected(d.runCtx, req, "frame_restarted", ev.Fragment, max(ev.Bytes, int64(len(ev.Fragment))))
			}
		}
	}
}

// Ready reports why the daemon should not receive traffic, or nil.
func (d *Daemon) Ready() error {
	switch {
	case !d.started.Load():
		return errors.New("starting")
	case d.stopping.Load():
		return errors.New("shutting down")
	case d.store.LowSpace():
		return fmt.Errorf("free disk space below storage.min_free_bytes (%d bytes free)", d.store.FreeBytes())
	}
	return nil
}

// Run starts the daemon and serves until ctx ends, then shuts down within
// shutdown_timeout. reload, when it delivers, applies a new config (SIGHUP).
func (d *Daemon) Run(ctx context.Context, reload <-chan *config.Config) error {
	if err := d.Start(ctx); err != nil {
		d.store.Close()
		return err
	}
	for {
		select {
		case next := <-reload:
			if err := d.Reload(ctx, next); err != nil {
				d.logger.Error("config reload refused: the running config stays", zap.Error(err))
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.Load().ShutdownTimeout)
	defer cancel()
	return d.Shutdown(sctx)
}

// Shutdown stops accepting, lets in-flight frames get their replies, stops
// the delivery workers at a message boundary, and closes the store last.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopping.Store(true)
	d.logger.Info("shutting down")
	d.mu.Lock()
	ls := make([]*listener, 0, len(d.listeners)+len(d.retired))
	for _, l := range d.listeners {
		ls = append(ls, l)
	}
	ls = append(ls, d.retired...)
	d.retired = nil
	d.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, l := range ls {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				l.srv.Close()
				emu.Lock()
				errs = append(errs, fmt.Errorf("listener %s: %w", l.cfg.Name, err))
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	if d.cancelRun != nil {
		d.cancelRun()
	}
	if err := d.stopWorkers(ctx); err != nil {
		errs = append(errs, err)
	}
	// The retention pass writes through the store: behind a stalled commit it
	// waits as long as that commit does, so it gets the same deadline.
	if !waitUntil(ctx, d.bg.Wait) {
		errs = append(errs, fmt.Errorf("retention: still waiting for a commit at the shutdown deadline: %w", ctx.Err()))
	}
	if d.admin != nil {
		if err := d.admin.shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		}
	}
	// A commit stalled on a sick disk must not hold the process past
	// shutdown_timeout: nothing it holds was acknowledged.
	var closeErr error
	if !waitUntil(ctx, func() { closeErr = d.store.Close() }) {
		errs = append(errs, fmt.Errorf("store: a commit is still pending at the shutdown deadline; exiting without it (nothing of it was acknowledged): %w", ctx.Err()))
	} else if closeErr != nil {
		errs = append(errs, fmt.Errorf("store: %w", closeErr))
	}
	d.logger.Info("stopped")
	return errors.Join(errs...)
}

// waitUntil runs wait and reports whether it returned before ctx ended. If
// not, wait goes on in the background: the caller is about to exit.
func waitUntil(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait()
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Reload applies next: listeners added or removed without touching other
// connections, listener settings swapped in place, certificates re-read,
// routes and destinations replaced. An invalid config changes nothing.
func (d *Daemon) Reload(ctx context.Context, next *config.Config) error {
	cur := d.cfg.Load()
	if filepath.Clean(next.DataDir) != filepath.Clean(cur.DataDir) {
		d.metrics.reloads.WithLabelValues("invalid").Inc()
		return fmt.Errorf("reload: data_dir cannot change while running (old %q, new %q); restart mllpd", cur.DataDir, next.DataDir)
	}
	if next.Admin.Listen != cur.Admin.Listen {
		d.metrics.reloads.WithLabelValues("invalid").Inc()
		return fmt.Errorf("reload: admin.listen cannot change while running (old %q, new %q); restart mllpd", cur.Admin.Listen, next.Admin.Listen)
	}
	plan, err := Prepare(next)
	if err != nil {
		d.metrics.reloads.WithLabelValues("invalid").Inc()
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Bind new listeners first: if one fails, close those and keep the old config.
	added := map[string]*listener{}
	for i := range next.Listeners {
		lc := &next.Listeners[i]
		old, ok := d.listeners[lc.Name]
		if ok && old.cfg.Listen == lc.Listen && reflect.DeepEqual(old.cfg.TLS, lc.TLS) && reflect.DeepEqual(old.cfg.Allow, lc.Allow) &&
			old.cfg.MaxConnections == lc.MaxConnections && old.cfg.MaxConnectionsPerIP == lc.MaxConnectionsPerIP &&
			old.cfg.MaxMessageBytes == lc.MaxMessageBytes && old.cfg.ReadTimeout == lc.ReadTimeout &&
			old.cfg.IdleTimeout == lc.IdleTimeout && old.cfg.WriteTimeout == lc.WriteTimeout {
			continue // same socket settings: kept, its ingest settings swapped below
		}
		l, err := d.bindReplacing(lc, plan, old)
		if err != nil {
			for name, a := range added {
				a.srv.Close()
				if prev := d.listeners[name]; prev != nil && prev.cfg.Listen == a.cfg.Listen {
					d.resume(prev) // its socket was handed over: take it back
				}
			}
			if old != nil && old.cfg.Listen == lc.Listen {
				d.resume(old)
			}
			d.metrics.reloads.WithLabelValues("failed").Inc()
			return fmt.Errorf("reload: listeners[%d] (%s): %w", i, lc.Name, err)
		}
		added[lc.Name] = l
	}
	// Commit: routes first, so messages accepted from now on use them.
	d.routes.Store(plan.routes)
	if next.Storage.MinFreeBytes != cur.Storage.MinFreeBytes {
		d.store.SetMinFreeBytes(next.Storage.MinFreeBytes)
	}
	d.cfg.Store(next)
	var stop []*listener
	keep := map[string]bool{}
	for i := range next.Listeners {
		lc := &next.Listeners[i]
		keep[lc.Name] = true
		if l, ok := added[lc.Name]; ok {
			if old, ok := d.listeners[lc.Name]; ok {
				// Settings changed: the old server stops accepting but keeps
				// its connections (a frame may be in flight on any of them);
				// they end when their senders or idle_timeout close them.
				d.retired = append(d.retired, old)
			}
			d.listeners[lc.Name] = l
			d.serve(l)
			continue
		}
		l := d.listeners[lc.Name]
		l.cfg = lc
		l.in.cfg.Store(lc)
		if l.tls != nil {
			if err := l.tls.reload(); err != nil {
				d.logger.Error("certificate reload failed; the old certificate stays", zap.String("listener", lc.Name), zap.Error(err))
			}
		}
	}
	for name, l := range d.listeners {
		if !keep[name] {
			stop = append(stop, l)
			delete(d.listeners, name)
		}
	}
	d.reapRetired()
	for _, l := range stop {
		go func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				l.srv.Close()
			}
		}()
	}
	d.reloadWorkers(plan, next)
	d.metrics.reloads.WithLabelValues("ok").Inc()
	d.logger.Info("config reloaded", zap.Int("listeners", len(next.Listeners)), zap.Int("destinations", len(next.Destinations)),
		zap.Int("routes", len(next.Routes)))
	return nil
}

// resume rebinds a listener whose socket a failed reload had closed.
func (d *Daemon) resume(l *listener) {
	ln, err := net.Listen("tcp", l.cfg.Listen)
	if err != nil {
		d.logger.Error("listener lost: its address could not be bound again after a failed reload; restart mllpd",
			zap.String("listener", l.cfg.Name), zap.Error(err))
		return
	}
	l.ln = ln
	l.served = make(chan error, 1)
	d.serve(l)
}

// reapRetired shuts down servers replaced by a reload once their last
// connection has ended. d.mu is held.
func (d *Daemon) reapRetired() {
	kept := d.retired[:0]
	for _, l := range d.retired {
		if l.srv.ActiveConns() == 0 {
			l.srv.Close()
			continue
		}
		kept = append(kept, l)
	}
	d.retired = kept
}

// bindReplacing binds lc; when old holds the same address (settings changed),
// old stops accepting first so the address can be taken over.
func (d *Daemon) bindReplacing(lc *config.Listener, plan *Plan, old *listener) (*listener, error) {
	if old != nil && old.cfg.Listen == lc.Listen {
		old.ln.Close() // stop accepting; its connections carry on until Shutdown
	}
	return d.bind(lc, plan)
}

// msgField logs a message's metadata, never its content.
func msgField(h *hl7.Header, size int) zap.Field {
	return zap.Object("msg", zapcore.ObjectMarshalerFunc(func(e zapcore.ObjectEncoder) error {
		e.AddString("type", h.Type+"^"+h.Event)
		e.AddString("control_id", h.ControlID)
		e.AddString("sender", h.SendingApp+"/"+h.SendingFacility)
		e.AddInt("bytes", size)
		return nil
	}))
}
