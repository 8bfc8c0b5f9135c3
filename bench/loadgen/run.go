package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mllpd/mllpd/mllp"
)

const defaultDuration = 5 * time.Second

type options struct {
	mllpd, out, conns, targets, nodeDir string
	duration                            time.Duration
	runs                                int
}

// A cell is one target at one connection count: medians over the runs.
type cell struct {
	rate, p50, p99 float64 // msg/s, ms, ms
	delivered      float64 // mllpd-e2e: delivered msg/s
	whileSending   float64 // mllpd-e2e: delivered msg/s while the senders sent
	errors         int
	n              int64 // messages accepted (ACKed)
	// CPU per accepted message, in µs (cpu.go): the whole machine's, the
	// server process's, the e2e downstream's. The run ends when the senders
	// stop or, for mllpd-e2e, when the last message has arrived downstream.
	machineCPU, serverCPU, downCPU float64
}

// adtTemplate is a realistic 1 KB ADT^A01 (fictional patient); %s is MSH-10.
const adtTemplate = "MSH|^~\\&|PAS|RXH|EPR|RXH|20260301081500||ADT^A01^ADT_A01|%s|P|2.5.1\r" +
	"EVN|A01|20260301081500|||OPER01^TESTOPERATOR^ONE|20260301081000\r" +
	"PID|1||9990000018^^^NHS^NH~RXH1000001^^^RXH^MR||TESTPATIENT^ALPHA^^^MR||19700101|M|||1 TEST STREET^^TESTTOWN^^ZZ99 9ZZ^GBR^H||01632960001^PRN^PH|||M\r" +
	"PD1|||RIVERSIDE SURGERY^^Z99999|G9999998^TESTGP^DOCTOR^^^DR\r" +
	"NK1|1|TESTPATIENT^BETA^^^MRS|SPO^Spouse^HL70063|1 TEST STREET^^TESTTOWN^^ZZ99 9ZZ^GBR|01632960002\r" +
	"PV1|1|I|W1^B3^BED12^RXH||||C9999991^TESTCONSULTANT^ONE^^^DR|||180||||19|||C9999991^TESTCONSULTANT^ONE^^^DR|IP|VN000101|||||||||||||||||||||RXH|||||20260301080000\r" +
	"PV2|||R10.4^Abdominal pain^I10\r" +
	"AL1|1|DA|PENICILLIN^Penicillin^L|SV|Rash\r" +
	"DG1|1||R10.4^Abdominal pain^I10||20260301|A\r" +
	"OBX|1|NM|8867-4^Heart rate^LN||72|/min^beats per minute^UCUM|60-100|N|||F|||20260301081000\r" +
	"OBX|2|NM|8480-6^Systolic blood pressure^LN||128|mm[Hg]^mmHg^UCUM|90-140|N|||F|||20260301081000\r" +
	"NTE|1||Admitted via emergency department; observations on arrival recorded by triage nurse.\r"

func run(ctx context.Context, o options) error {
	conns, err := parseInts(o.conns)
	if err != nil {
		return err
	}
	targets := strings.Split(o.targets, ",")
	// Runs are interleaved (run 1 of every target and connection count, then
	// run 2, ...), so that a slow spell of the shared machine costs every
	// target alike and the same-run ratios stay fair.
	all := map[string]map[int][]cell{}
	for _, target := range targets {
		all[target] = map[int][]cell{}
	}
	for i := 0; i < o.runs; i++ {
		for _, c := range conns {
			for _, target := range targets {
				r, err := measure(ctx, o, target, c)
				if err != nil {
					return fmt.Errorf("%s at %d connections: %w", target, c, err)
				}
				fmt.Fprintf(os.Stderr, "%-12s conns=%-4d run %d: %8.0f msg/s  p50 %6.2f ms  p99 %6.2f ms  delivered %8.0f msg/s  errors %d\n",
					target, c, i+1, r.rate, r.p50, r.p99, r.delivered, r.errors)
				all[target][c] = append(all[target][c], r)
			}
		}
	}
	results := map[string]map[int]cell{}
	for _, target := range targets {
		results[target] = map[int]cell{}
		for _, c := range conns {
			results[target][c] = median(all[target][c])
		}
	}
	report := render(o, targets, conns, results)
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Print(report)
	return nil
}

// measure starts target fresh (a new data directory each run), drives it with
// c connections for o.duration, and stops it.
func measure(ctx context.Context, o options, target string, c int) (cell, error) {
	dir, err := os.MkdirTemp("", "mllpd-bench-")
	if err != nil {
		return cell{}, err
	}
	defer os.RemoveAll(dir)
	addr := freeAddr()
	var down *downstream
	var cmd *exec.Cmd
	self, _ := os.Executable()
	switch target {
	case "ack-only":
		cmd = exec.Command(self, "serve-ack", addr)
	case "bbolt-gc":
		cmd = exec.Command(self, "serve-bbolt", addr, filepath.Join(dir, "bench.db"))
	case "mllpd", "mllpd-e2e":
		cfg := fmt.Sprintf("data_dir: %s\nlog: {level: warn, format: json}\nadmin: {listen: %q}\nstorage: {min_free_bytes: 0}\n"+
			"listeners:\n  - name: bench\n    listen: %q\n    max_connections: 2000\n    max_connections_per_ip: 2000\n",
			filepath.Join(dir, "data"), freeAddr(), addr)
		if target == "mllpd-e2e" {
			down, err = startDownstream()
			if err != nil {
				return cell{}, err
			}
			defer down.close()
			cfg += fmt.Sprintf("destinations:\n  - {name: epr, type: mllp, address: %q}\nroutes:\n  - {name: all, to: [{destination: epr}]}\n", down.addr)
		}
		path := filepath.Join(dir, "mllpd.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return cell{}, err
		}
		cmd = exec.Command(o.mllpd, "serve", "--config", path)
	case "python3-hl7":
		portFile := filepath.Join(dir, "port")
		cmd = exec.Command("/usr/bin/python3", "relay/testdata/hl7_receiver.py", portFile, filepath.Join(dir, "out.txt"))
		addr = "" // it picks its own port
		if err := cmd.Start(); err != nil {
			return cell{}, err
		}
		defer stop(cmd)
		deadline := time.Now().Add(10 * time.Second)
		for addr == "" {
			if b, err := os.ReadFile(portFile); err == nil && len(b) > 0 {
				addr = "127.0.0.1:" + string(b)
			} else if time.Now().After(deadline) {
				return cell{}, errors.New("python3-hl7 receiver did not start (is python3-hl7 installed? make test-deps)")
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
		return drive(ctx, addr, c, o.duration, nil)
	case "simple-hl7":
		_, port, _ := net.SplitHostPort(addr)
		cmd = exec.Command("node", filepath.Join(o.nodeDir, "server.js"), port, filepath.Join(dir, "out.txt"))
	default:
		return cell{}, fmt.Errorf("unknown target %q", target)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return cell{}, err
	}
	defer stop(cmd)
	if err := waitListening(addr, 15*time.Second); err != nil {
		return cell{}, err
	}
	pids := []int{cmd.Process.Pid}
	if down != nil {
		pids = append(pids, down.cmd.Process.Pid)
	}
	before := sampleCPU(pids...)
	r, err := drive(ctx, addr, c, o.duration, down)
	if err != nil {
		return cell{}, err
	}
	r.setCPU(before, sampleCPU(pids...))
	return r, nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitListening(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // the loopback interface is gone: nothing to measure
	}
	defer ln.Close()
	return ln.Addr().String()
}

// drive runs c connections against addr for d, one message in flight each.
// With down set, it then waits for the downstream to have every accepted
// message and reports the end-to-end delivery rate.
func drive(ctx context.Context, addr string, c int, d time.Duration, down *downstream) (cell, error) {
	var total, failed atomic.Int64
	lats := make([][]time.Duration, c)
	start := time.Now()
	deadline := start.Add(d)
	// Control IDs unique across runs against one daemon (drive mode): a
	// repeated ID with the same content is a duplicate, acknowledged unstored.
	run := strconv.FormatInt(start.UnixNano()/1e6%1e8, 36)
	var wg sync.WaitGroup
	for i := range c {
		wg.Go(func() {
			cl := &mllp.Client{Addr: addr, AckTimeout: 30 * time.Second}
			defer cl.Close()
			buf := make([]byte, 0, 2048)
			for n := 0; time.Now().Before(deadline); n++ {
				buf = fmt.Appendf(buf[:0], adtTemplate, "B"+run+"-"+strconv.Itoa(i)+"-"+strconv.Itoa(n))
				t0 := time.Now()
				if _, err := cl.Send(ctx, buf); err != nil {
					failed.Add(1)
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
				total.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var deliveredWhileSending int64
	if down != nil {
		deliveredWhileSending = down.count.Load()
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := cell{rate: float64(total.Load()) / elapsed.Seconds(), errors: int(failed.Load()), n: total.Load()}
	if len(all) > 0 {
		r.p50 = ms(all[len(all)/2])
		r.p99 = ms(all[len(all)*99/100])
	}
	if down != nil {
		waitUntil := time.Now().Add(2 * time.Minute)
		for down.count.Load() < total.Load() && time.Now().Before(waitUntil) {
			time.Sleep(10 * time.Millisecond)
		}
		last := down.lastAt()
		if n := down.count.Load(); n > 0 && !last.IsZero() {
			r.delivered = float64(n) / last.Sub(start).Seconds()
		}
		r.whileSending = float64(deliveredWhileSending) / elapsed.Seconds()
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// downstream is the end-to-end benchmark's MLLP receiver: a separate
// process (`loadgen serve-count ADDR`), as a downstream system is, that ACKs
// at once and reports on its stdout how many messages arrived and when the
// latest did. In the generator's own process its handler would queue behind
// the 64 sender goroutines and measure the generator's scheduler.
type downstream struct {
	addr  string
	cmd   *exec.Cmd
	count atomic.Int64
	last  atomic.Int64 // unix nanos of the latest arrival
}

func startDownstream() (*downstream, error) {
	d := &downstream{addr: freeAddr()}
	self, _ := os.Executable()
	d.cmd = exec.Command(self, "serve-count", d.addr)
	d.cmd.Stderr = os.Stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n, at int64
			if _, err := fmt.Sscan(sc.Text(), &n, &at); err == nil {
				d.last.Store(at)
				d.count.Store(n)
			}
		}
	}()
	if err := waitListening(d.addr, 15*time.Second); err != nil {
		stop(d.cmd)
		return nil, err
	}
	return d, nil
}

func (d *downstream) lastAt() time.Time {
	if n := d.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (d *downstream) close() { stop(d.cmd) }

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-conns: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

func median(runs []cell) cell {
	pick := func(f func(cell) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := cell{
		rate:         pick(func(c cell) float64 { return c.rate }),
		p50:          pick(func(c cell) float64 { return c.p50 }),
		p99:          pick(func(c cell) float64 { return c.p99 }),
		delivered:    pick(func(c cell) float64 { return c.delivered }),
		whileSending: pick(func(c cell) float64 { return c.whileSending }),
		machineCPU:   pick(func(c cell) float64 { return c.machineCPU }),
		serverCPU:    pick(func(c cell) float64 { return c.serverCPU }),
		downCPU:      pick(func(c cell) float64 { return c.downCPU }),
	}
	for _, r := range runs {
		out.errors += r.errors
	}
	return out
}

func render(o options, targets []string, conns []int, res map[string]map[int]cell) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# mllpd benchmarks\n\n")
	fmt.Fprintf(&b, "Measured %s on %s (%d cores, %s), %s. Each cell: median of %d runs of %s, interleaved (run 1 of every cell, then run 2, ...); "+
		"one message in flight per connection; a realistic %d-byte ADT^A01 with a unique MSH-10; "+
		"load generator and server share the machine. Reproduce: `make bench-load`.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version(),
		o.runs, o.duration, len(fmt.Sprintf(adtTemplate, "B0-0")))
	fmt.Fprintf(&b, "| target | conns | msg/s | p50 ms | p99 ms | delivered msg/s | delivered while sending | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range targets {
		for _, c := range conns {
			r := res[t][c]
			del, during := "—", "—"
			if t == "mllpd-e2e" {
				del, during = fmt.Sprintf("%.0f", r.delivered), fmt.Sprintf("%.0f", r.whileSending)
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %s | %s | %d |\n", t, c, r.rate, r.p50, r.p99, del, during, r.errors)
		}
	}
	fmt.Fprintf(&b, "\nTargets: `mllpd` is the real binary with fsync on and no routes; `mllpd-e2e` the same with one MLLP "+
		"destination that ACKs at once (delivered msg/s counts arrivals at the downstream until every accepted message is there; delivered while sending, those before the senders stopped); "+
		"`ack-only` ACKs without storing; `bbolt-gc` stores each message with a bare bbolt leader/follower group commit; "+
		"`python3-hl7` is Debian's python3-hl7 asyncio server and `simple-hl7` the npm simple-hl7 3.3.0 listener "+
		"(both append to a file without fsync: not durable).\n\n")
	fmt.Fprintf(&b, "## CPU per message (same run)\n\n| target | conns | machine CPU µs/msg | server process CPU µs/msg | downstream CPU µs/msg |\n|---|---:|---:|---:|---:|\n")
	for _, t := range targets {
		for _, c := range conns {
			if r := res[t][c]; r.machineCPU > 0 {
				fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s |\n", t, c, r.machineCPU, micros(r.serverCPU), micros(r.downCPU))
			}
		}
	}
	fmt.Fprintf(&b, "\nMachine CPU is every core's busy time (user, system, interrupts; not idle or I/O wait) from the start of the run "+
		"until the senders stopped or, for mllpd-e2e, until the last message arrived downstream, over the messages accepted: it counts "+
		"the generator, the server and the downstream alike. On a machine they keep busy, no target can go faster than "+
		"cores × 10⁶ / machine CPU µs per message; the e2e ceiling below is that bound for mllpd-e2e.\n\n")
	fmt.Fprintf(&b, "## Ratios (same run)\n\n| conns | mllpd / bbolt-gc msg/s | mllpd / bbolt-gc p99 | mllpd / ack-only msg/s | e2e delivered / mllpd accepted | e2e ceiling / mllpd accepted |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range conns {
		m, g, a, e := res["mllpd"][c], res["bbolt-gc"][c], res["ack-only"][c], res["mllpd-e2e"][c]
		var ceiling float64
		if e.machineCPU > 0 {
			ceiling = float64(runtime.NumCPU()) * 1e6 / e.machineCPU
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", c, ratio(m.rate, g.rate), ratio(m.p99, g.p99), ratio(m.rate, a.rate), ratio(e.delivered, m.rate), ratio(ceiling, m.rate))
	}
	fmt.Fprintf(&b, "\n| conns | mllpd / python3-hl7 msg/s | mllpd / simple-hl7 msg/s |\n|---:|---:|---:|\n")
	for _, c := range conns {
		m := res["mllpd"][c]
		fmt.Fprintf(&b, "| %d | %s | %s |\n", c, ratio(m.rate, res["python3-hl7"][c].rate), ratio(m.rate, res["simple-hl7"][c].rate))
	}
	fmt.Fprintf(&b, "\nTargets of issue 16: at every connection count mllpd ≥ 0.8x bbolt-gc msg/s with p99 ≤ 2x its p99; "+
		"at 64 connections ahead of every third-party listener. Issue 14: e2e delivered ≥ 0.6x the accept rate of the same binary with no routes.\n")
	return b.String()
}

// micros formats a CPU figure, or a dash when it was not measured.
func micros(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", v)
}

// ratio is a/b, or a dash when either was not measured in this run.
func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return fmt.Sprintf("%.0f GiB RAM", kb/1024/1024)
			}
		}
	}
	return "memory unknown"
}
