package relay

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/mllpd/mllpd/config"
)

// adminServer is the daemon's HTTP admin API: /healthz, /readyz and /metrics
// are open; everything that shows or changes messages needs the bearer token
// from admin.token_file, and each such access is logged (who, what, when).
type adminServer struct {
	srv   *http.Server
	ln    net.Listener
	token string
	done  chan error
}

func (a *adminServer) addr() net.Addr { return a.ln.Addr() }

func (a *adminServer) shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	if e := <-a.done; err == nil && !errors.Is(e, http.ErrServerClosed) {
		err = e
	}
	return err
}

// AdminAddr returns the admin API's bound address, or nil before Start.
func (d *Daemon) AdminAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.admin == nil {
		return nil
	}
	return d.admin.addr()
}

func (d *Daemon) startAdmin(cfg *config.Config) (*adminServer, error) {
	token, err := EnsureAdminToken(cfg.AdminTokenFile())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, err
	}
	a := &adminServer{ln: ln, token: token, done: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	api := http.NewServeMux()
	d.registerAPI(api)
	mux.Handle("/api/", a.authorized(d.logger, api))
	// Profiles show no message content but do cost CPU: token only.
	prof := http.NewServeMux()
	prof.HandleFunc("/debug/pprof/", pprof.Index)
	prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
	prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", a.authorized(d.logger, prof))
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(d.logger.Named("admin")),
	}
	go func() { a.done <- a.srv.Serve(ln) }()
	return a, nil
}

// authorized requires the bearer token and logs every access: who (peer),
// what (method and path, never bodies) and whether it was allowed.
func (a *adminServer) authorized(logger *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		allowed := ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
		logger.Info("admin access", zap.String("peer", r.RemoteAddr), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Bool("allowed", allowed))
		if !allowed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mllpd"`)
			http.Error(w, "admin token required: send Authorization: Bearer <contents of admin.token_file>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// EnsureAdminToken returns the token in path, creating the file with a new
// random token (mode 0600) when it does not exist.
func EnsureAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("admin token file %s is empty", path)
		}
		return t, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(t + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return t, nil
}

// ReadAdminToken reads the token the CLI sends to a running daemon.
func ReadAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w (is the daemon started with this config?)", err)
	}
	return strings.TrimSpace(string(b)), nil
}
