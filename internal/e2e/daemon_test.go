package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mllpd/mllpd/store"
)

// startTimeout bounds a daemon start (open, bind, admin up); stopTimeout a
// graceful stop.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 20 * time.Second
)

// A daemon is one mllpd configuration under test: its files and ports stay
// the same across restarts, so senders reconnect to the same addresses and
// the store survives in the same data directory.
type daemon struct {
	t       *testing.T
	bin     string
	dir     string
	cfgPath string
	dataDir string
	admin   string            // admin API host:port
	addrs   map[string]string // listener name -> host:port
	env     []string          // extra environment for the subprocess

	proc *proc // the running process, nil when stopped
}

// A proc is one run of `mllpd serve`, its stderr (the JSON log) collected.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{} // closed when the process has exited and its log is read
	err  error         // Wait's result, set before done closes
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// newDaemon prepares a daemon in a fresh temp dir with one free loopback port
// per listener name and one for the admin API. Call writeConfig, then start.
func newDaemon(t *testing.T, bin string, listeners ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{
		t:       t,
		bin:     bin,
		dir:     dir,
		cfgPath: filepath.Join(dir, "mllpd.yaml"),
		dataDir: filepath.Join(dir, "data"),
		admin:   freePort(t),
		addrs:   map[string]string{},
	}
	for _, name := range listeners {
		d.addrs[name] = freePort(t)
	}
	t.Cleanup(func() {
		if d.proc != nil {
			d.kill()
		}
	})
	return d
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// configHead is the part of every config the helpers own: data_dir, the
// admin API, logs. Tests append storage, listeners, destinations and routes.
func (d *daemon) configHead() string {
	return fmt.Sprintf("data_dir: %q\nshutdown_timeout: 10s\nlog: {level: info, format: json}\nadmin: {listen: %q}\n",
		d.dataDir, d.admin)
}

// writeConfig writes configHead followed by body.
func (d *daemon) writeConfig(body string) {
	d.t.Helper()
	if err := os.WriteFile(d.cfgPath, []byte(d.configHead()+body), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// start runs the daemon (through wrap, e.g. prlimit, when given) and waits
// until its admin API answers /healthz, which happens only after every
// listener is bound.
func (d *daemon) start(wrap ...string) {
	d.t.Helper()
	if d.proc != nil {
		d.t.Fatal("daemon already running")
	}
	args := append(append([]string{}, wrap...), d.bin, "serve", "--config", d.cfgPath)
	p := &proc{cmd: exec.Command(args[0], args[1:]...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), d.env...)
	p.cmd.Dir = d.dir
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			if p.log.Len() < 8<<20 { // bounded: floods log one line per refusal
				p.log.Write(sc.Bytes())
				p.log.WriteByte('\n')
			}
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	d.proc = p
	t := d.t
	t.Cleanup(func() {
		// A recovered handler panic or a runtime crash is a bug whatever
		// the test was about.
		for _, sign := range []string{"handler panicked", "panic:", "fatal error:", "DATA RACE"} {
			if strings.Contains(p.logText(), sign) {
				t.Errorf("daemon log (pid %d) contains %q", p.cmd.Process.Pid, sign)
			}
		}
		if t.Failed() {
			log := p.logText()
			if len(log) > 16<<10 {
				log = "...\n" + log[len(log)-16<<10:]
			}
			t.Logf("daemon log (pid %d):\n%s", p.cmd.Process.Pid, log)
		}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		if p.exited() {
			d.proc = nil
			d.t.Fatalf("mllpd exited during start (%v):\n%s", p.err, p.logText())
		}
		if code, _, err := d.get("/healthz"); err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("mllpd did not answer /healthz within %v:\n%s", startTimeout, p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid returns the running daemon's process ID.
func (d *daemon) pid() int {
	d.t.Helper()
	if d.proc == nil {
		d.t.Fatal("daemon not running")
	}
	return d.proc.cmd.Process.Pid
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	if d.proc == nil {
		return
	}
	_ = d.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-d.proc.done
	d.proc = nil
}

// stop sends SIGTERM and requires a clean exit within stopTimeout.
func (d *daemon) stop() {
	d.t.Helper()
	if d.proc == nil {
		return
	}
	p := d.proc
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		d.kill()
		d.t.Fatalf("mllpd did not exit within %v of SIGTERM", stopTimeout)
	}
	d.proc = nil
	if p.err != nil {
		d.t.Fatalf("mllpd exited with %v after SIGTERM:\n%s", p.err, p.logText())
	}
}

// logText returns the running (or last) process's log.
func (d *daemon) logText() string {
	if d.proc == nil {
		return ""
	}
	return d.proc.logText()
}

// waitLog polls the daemon's log until it contains s.
func (d *daemon) waitLog(s string, within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(d.logText(), s) {
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon log never said %q within %v", s, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get fetches an admin API path without a token.
func (d *daemon) get(path string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.admin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// metric returns the sum of every sample of the named metric whose labels
// contain all of labels (e.g. `code="AA"`), from /metrics.
func (d *daemon) metric(name string, labels ...string) (float64, bool) {
	d.t.Helper()
	code, body, err := d.get("/metrics")
	if err != nil || code != http.StatusOK {
		d.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return parseMetric(body, name, labels...)
}

func parseMetric(body, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) {
			continue
		}
		rest := line[len(name):]
		if rest[0] != ' ' && rest[0] != '{' {
			continue // a longer name with this prefix
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// rssBytes reads the process's resident set size from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// openStore opens the stopped daemon's bbolt file read-only.
func (d *daemon) openStore() *store.Store {
	d.t.Helper()
	if d.proc != nil {
		d.t.Fatal("openStore while the daemon runs")
	}
	st, err := store.Open(store.Options{Path: filepath.Join(d.dataDir, "mllpd.db"), ReadOnly: true})
	if err != nil {
		d.t.Fatalf("open the daemon's store: %v", err)
	}
	d.t.Cleanup(func() { st.Close() })
	return st
}

// storedByControlID reads every message in st and indexes them by control
// ID (a control ID stored twice appears twice).
func storedByControlID(t *testing.T, st *store.Store) map[string][]store.Record {
	t.Helper()
	out := map[string][]store.Record{}
	var after uint64
	for {
		p, err := st.Search(store.Filter{AfterSeq: after, Limit: 1000})
		if err != nil {
			t.Fatalf("store search: %v", err)
		}
		for _, r := range p.Records {
			out[r.ControlID] = append(out[r.ControlID], r)
			after = r.Seq
		}
		if p.Next != 0 {
			after = p.Next
			continue
		}
		if len(p.Records) == 0 {
			return out
		}
	}
}

// pollUntil polls cond every 10ms until it holds, or fails the test when
// within passes.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitUntil(within, cond) {
		t.Fatalf("%s: not within %v", what, within)
	}
}

// waitUntil polls cond every 10ms and reports whether it held within d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// isClosedWithoutReply reports whether err is the end of a connection (EOF,
// reset) rather than a timeout.
func isClosedWithoutReply(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// ctxT returns a context bounded by d, cancelled at test end.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
