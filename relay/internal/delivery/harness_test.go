package delivery_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keeps idle-connection goroutines of httptest clients briefly.
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const dest = "epr"

const ms = time.Millisecond

// waitFor bounds every wait of a test for an event.
const waitFor = 20 * time.Second

// msgRaw is a CR-terminated ADT^A01 with MSH-15/16 set (the outbound copy
// must blank them) and pad bytes of OBX text.
func msgRaw(ctrl string, pad int) []byte {
	s := "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045||ADT^A01^ADT_A01|" + ctrl + "|P|2.5.1|||AL|NE\r" +
		"PID|1||12345^^^RXH^MR||DOE^JOHN\r" +
		"PV1|1|I|W1\r"
	if pad > 0 {
		s += "OBX|1|TX|NOTE^Note||" + strings.Repeat("x", pad) + "||||||F\r"
	}
	return []byte(s)
}

func ctrlID(i int) string { return fmt.Sprintf("C%04d", i) }

func openStore(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.Open(store.Options{Path: filepath.Join(tb.TempDir(), "mllpd.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := st.Check(); err != nil {
			tb.Errorf("store check: %v", err)
		}
		if err := st.Close(); err != nil {
			tb.Errorf("store close: %v", err)
		}
	})
	return st
}

// queued is one appended message.
type queued struct {
	seq  uint64
	ctrl string
}

// appendN appends n messages (control IDs C0001.., or from first) for dest
// under route, in one call, and returns them in accept order.
func appendN(tb testing.TB, st *store.Store, first, n int, route string, pad int) []queued {
	tb.Helper()
	msgs := make([]store.Message, n)
	out := make([]queued, n)
	for i := range msgs {
		ctrl := ctrlID(first + i)
		raw := msgRaw(ctrl, pad)
		msgs[i] = store.Message{
			Raw: raw, Received: time.Now(), Listener: "test", Charset: "UTF-8",
			ControlID: ctrl, Type: "ADT", Event: "A01", SendingApp: "LAB", SendingFacility: "RXH",
			ContentHash: sha256.Sum256(raw),
			Targets:     []store.Target{{Destination: dest, Route: route}},
		}
		out[i].ctrl = ctrl
	}
	res, err := st.Append(context.Background(), msgs)
	if err != nil {
		tb.Fatal(err)
	}
	for i, r := range res {
		out[i].seq = r.Seq
	}
	return out
}

// reply is what a test downstream does with one frame.
type reply struct {
	ack    string // payload to answer
	store  bool   // count the frame as received (false: the "stored" state is unknown to the sender)
	close  bool   // close the connection without answering
	hang   bool   // never answer (until the test ends)
	status int    // HTTP status
	header map[string]string
}

// scripts: the n-th frame (1-based) of a control ID gets script(ctrl, n).
type script func(ctrl string, n int) reply

func ack(code, ctrl string) reply {
	return reply{store: true, ack: "MSH|^~\\&|EPR|CITY|MLLPD|HUB|20240131123046||ACK^A01^ACK|A" + ctrl + "|P|2.5.1\rMSA|" + code + "|" + ctrl + "\r"}
}

// ackErr answers code with a v2.5 ERR-3 error code.
func ackErr(code, ctrl, errCode string) reply {
	r := ack(code, ctrl)
	r.ack += "ERR|||" + errCode + "^Error^HL70357|E\r"
	return r
}

// ackErr24 answers code with a v2.4 ERR-1 (ELD) error code.
func ackErr24(code, ctrl, errCode string) reply {
	return reply{store: true, ack: "MSH|^~\\&|EPR|CITY|MLLPD|HUB|20240131123046||ACK^A01|A" + ctrl + "|P|2.4\rMSA|" + code + "|" + ctrl +
		"\rERR|PID^1^3^" + errCode + "&Error&HL70357\r"}
}

func allAA(ctrl string, _ int) reply { return ack("AA", ctrl) }

// downstream is a test receiver: an MLLP server or HTTP server that
// answers by script and remembers what it received.
type downstream struct {
	mu      sync.Mutex
	script  script
	tries   map[string]int
	got     []string // control IDs of the frames counted as received
	bodies  [][]byte
	frames  int // every frame, received or not
	arrived chan string
	release chan struct{} // closed at cleanup: hanging handlers return
}

func newDownstream(s script) *downstream {
	return &downstream{script: s, tries: map[string]int{}, arrived: make(chan string, 100000), release: make(chan struct{})}
}

// handle applies the script to one frame.
func (d *downstream) handle(body []byte) reply {
	ctrl := "?"
	if m, err := hl7.Parse(body); err == nil {
		ctrl = m.Header().ControlID
	}
	d.mu.Lock()
	d.tries[ctrl]++
	d.frames++
	r := d.script(ctrl, d.tries[ctrl])
	if r.store {
		d.got = append(d.got, ctrl)
		d.bodies = append(d.bodies, append([]byte(nil), body...))
	}
	d.mu.Unlock()
	select {
	case d.arrived <- ctrl:
	default: // nobody reads it (benchmarks)
	}
	return r
}

func (d *downstream) received() ([]string, [][]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.got...), append([][]byte(nil), d.bodies...)
}

// startMLLP serves d on a loopback MLLP server at addr ("" = a new port).
func startMLLP(tb testing.TB, d *downstream, addr string) (string, func()) {
	tb.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &mllp.Server{Name: "downstream", Logger: zaptest.NewLogger(tb), Handler: mllp.HandlerFunc(
		func(ctx context.Context, req *mllp.Request) ([]byte, error) {
			r := d.handle(req.Frame)
			switch {
			case r.hang:
				select {
				case <-d.release:
				case <-ctx.Done():
				}
				return nil, mllp.ErrCloseConn
			case r.close:
				return nil, mllp.ErrCloseConn
			}
			return []byte(r.ack), nil
		})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
			if err := <-served; !errors.Is(err, mllp.ErrServerClosed) {
				tb.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		})
	}
	tb.Cleanup(stop)
	tb.Cleanup(func() {
		select {
		case <-d.release:
		default:
			close(d.release)
		}
	})
	return ln.Addr().String(), stop
}

// harness runs one worker and collects its events.
type harness struct {
	tb     testing.TB
	st     *store.Store
	w      *delivery.Worker
	reg    *prometheus.Registry
	events chan delivery.Event
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func mllpTransport(tb testing.TB, addr string) delivery.Transport {
	tb.Helper()
	tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "mllp", Address: addr, AckTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

// anyRoute maps every route to no rules.
func anyRoute(string) (*hl7map.Mapping, bool) { return nil, true }

// startWorker starts a worker with test defaults: tiny backoffs and no
// fallback poll (Poll 1h), so that a missing Notify shows as a timeout.
func startWorker(tb testing.TB, st *store.Store, cfg delivery.WorkerConfig) *harness {
	tb.Helper()
	h := &harness{tb: tb, st: st, reg: prometheus.NewPedanticRegistry(), events: make(chan delivery.Event, 100000), done: make(chan error, 1)}
	cfg.Name = dest
	cfg.Store = st
	if cfg.Mapper == nil {
		cfg.Mapper = anyRoute
	}
	if cfg.Retry.Initial == 0 {
		cfg.Retry.Initial = time.Millisecond
		cfg.Retry.Max = 4 * time.Millisecond
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Hour
	}
	cfg.Metrics = delivery.NewMetrics(h.reg)
	cfg.Logger = zaptest.NewLogger(tb)
	cfg.OnEvent = func(e delivery.Event) { h.events <- e }
	w, err := delivery.NewWorker(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx) }()
	tb.Cleanup(h.stop)
	return h
}

// stop ends the worker and waits for Run (records written, transport closed).
func (h *harness) stop() {
	h.once.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				h.tb.Errorf("Run = %v", err)
			}
		case <-time.After(waitFor):
			h.tb.Fatalf("Run did not return after cancel")
		}
	})
}

// next returns the next event of kind, skipping others.
func (h *harness) next(kind delivery.EventKind) delivery.Event {
	h.tb.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case e := <-h.events:
			if e.Err != nil {
				h.tb.Errorf("event %v for seq %d: store error %v", e.Kind, e.Seq, e.Err)
			}
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			h.tb.Fatalf("no %v event within %v", kind, waitFor)
		}
	}
}

// delivery returns seq's delivery record for dest.
func delivered(tb testing.TB, st *store.Store, seq uint64) store.Delivery {
	tb.Helper()
	rec, err := st.Get(seq)
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range rec.Deliveries {
		if d.Destination == dest {
			return d
		}
	}
	tb.Fatalf("seq %d has no delivery for %s", seq, dest)
	return store.Delivery{}
}

func ctrls(qs []queued) []string {
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q.ctrl
	}
	return out
}

// collapse drops consecutive repeats: a retried message that the downstream
// saw twice (at least once) counts once.
func collapse(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}
