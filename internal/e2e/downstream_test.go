package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/store"
)

// ackOfAnother, returned by an answerFunc, makes the downstream answer AA
// with an MSA-2 that is not the message's control ID (a stale ACK).
const ackOfAnother hl7.AckCode = "stale"

// An answerFunc decides the downstream's reply to the nth (1-based) copy of
// the message with control ID ctrl: an MSA-1 code and, for negative ones, an
// ERR-3 code.
type answerFunc func(ctrl string, nth int) (code hl7.AckCode, errCode hl7.ErrorCode)

// A downstream is an MLLP receiver standing in for a destination system. It
// records every message it receives, in arrival order, and can be stopped and
// started again on the same address (an outage).
type downstream struct {
	t      *testing.T
	addr   string
	answer answerFunc // nil: AA to everything

	mu       sync.Mutex
	received []string       // control IDs in arrival order, repeats included
	count    map[string]int // copies received per control ID
	srv      *mllp.Server
	served   chan error
}

func newDownstream(t *testing.T, answer answerFunc) *downstream {
	t.Helper()
	ds := &downstream{t: t, addr: freePort(t), answer: answer, count: map[string]int{}}
	ds.up()
	t.Cleanup(ds.down)
	return ds
}

// up starts serving on ds.addr.
func (ds *downstream) up() {
	ds.t.Helper()
	ln, err := net.Listen("tcp", ds.addr)
	if err != nil {
		ds.t.Fatalf("downstream listen %s: %v", ds.addr, err)
	}
	srv := &mllp.Server{Name: "downstream", Handler: mllp.HandlerFunc(ds.serve), ReadTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ds.mu.Lock()
	ds.srv, ds.served = srv, served
	ds.mu.Unlock()
}

// down stops serving at once: the daemon's connection and any reply in flight
// are cut.
func (ds *downstream) down() {
	ds.mu.Lock()
	srv, served := ds.srv, ds.served
	ds.srv, ds.served = nil, nil
	ds.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	if err := <-served; !errors.Is(err, mllp.ErrServerClosed) {
		ds.t.Errorf("downstream serve: %v", err)
	}
}

func (ds *downstream) serve(_ context.Context, req *mllp.Request) ([]byte, error) {
	m, err := hl7.Parse(req.Frame)
	if err != nil {
		ds.t.Errorf("downstream received a frame that does not parse: %v", err)
		return nil, mllp.ErrCloseConn
	}
	ctrl := m.Header().ControlID
	ds.mu.Lock()
	ds.received = append(ds.received, ctrl)
	ds.count[ctrl]++
	nth := ds.count[ctrl]
	ds.mu.Unlock()
	code, errCode := hl7.AA, hl7.ErrorCode(0)
	if ds.answer != nil {
		code, errCode = ds.answer(ctrl, nth)
	}
	if code == ackOfAnother {
		return []byte("MSH|^~\\&|DOWN|E2E|||20260101120000||ACK|DS-X|P|2.5.1\rMSA|AA|NOT-" + ctrl + "\r"), nil
	}
	o := hl7.AckOptions{Now: time.Now(), ControlID: fmt.Sprintf("DS-%s-%d", ctrl, nth), App: "DOWN", Facility: "E2E"}
	if code != hl7.AA {
		o.Text = "test downstream refuses"
		o.Error = &hl7.AckError{Code: errCode}
	}
	return hl7.NewACK(m, code, o), nil
}

// seen returns how many copies of ctrl arrived.
func (ds *downstream) seen(ctrl string) int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.count[ctrl]
}

// seenAll reports whether every control ID in ids arrived at least once.
func (ds *downstream) seenAll(ids []string) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, id := range ids {
		if ds.count[id] == 0 {
			return false
		}
	}
	return true
}

// firstArrivals returns the control IDs in the order of their first arrival.
func (ds *downstream) firstArrivals() []string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, id := range ds.received {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// checkFirstDeliveryOrder requires that first arrivals downstream follow the
// store's sequence numbers (accept order; one destination, one queue), and
// that nothing arrived downstream that is not in the store.
func checkFirstDeliveryOrder(t *testing.T, ds *downstream, stored map[string][]store.Record) {
	t.Helper()
	var prevSeq uint64
	prevID := ""
	var bad []string
	for _, id := range ds.firstArrivals() {
		recs := stored[id]
		if len(recs) != 1 {
			bad = append(bad, fmt.Sprintf("%s arrived downstream but is stored %d times", id, len(recs)))
			continue
		}
		if seq := recs[0].Seq; seq < prevSeq {
			bad = append(bad, fmt.Sprintf("%s (seq %d) arrived first after %s (seq %d)", id, seq, prevID, prevSeq))
		} else {
			prevSeq, prevID = seq, id
		}
	}
	if len(bad) > 0 {
		t.Errorf("first deliveries do not follow the accept order (%d violations); first: %s",
			len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
	}
}

// routeAllTo is the config section that sends every message to ds as
// destination "epr" (nothing without ds).
func routeAllTo(ds ...*downstream) string {
	if len(ds) == 0 {
		return ""
	}
	return fmt.Sprintf(`destinations:
  - name: epr
    type: mllp
    address: %q
    ack_timeout: 5s
    retry: {initial: 20ms, max: 200ms}
routes:
  - name: all
    to: [{destination: epr}]
`, ds[0].addr)
}

// deliveryTo returns rec's delivery record for dest.
func deliveryTo(rec store.Record, dest string) (store.Delivery, bool) {
	for _, dl := range rec.Deliveries {
		if dl.Destination == dest {
			return dl, true
		}
	}
	return store.Delivery{}, false
}

// TestDownstreamOutage: the destination is down for a while (and the daemon
// is SIGKILLed and restarted meanwhile) and comes back; then it answers AE to
// one message, AR/207 once to another, AR/200 to a third, a fourth's AA only
// after ack_timeout and a fifth's with the wrong MSA-2. Promises 4 and 5:
// afterwards every message is delivered or dead-lettered as the
// classification says (AE permanent -> dead letter, AR/207 retriable ->
// delivered on retry, AR/200 permanent -> dead letter, no ACK in time or a
// stale ACK -> delivered on retry), first deliveries keep the accept order,
// nothing is lost.
func TestDownstreamOutage(t *testing.T) {
	const (
		ae     = "O-45" // AE: permanent
		ar207  = "O-46" // AR/207 on the first copy: retriable
		ar200  = "O-47" // AR/200: permanent
		late   = "O-48" // first copy answered only after ack_timeout: retriable
		stale  = "O-49" // first copy answered with another MSA-2: retriable
		total  = 60
		outage = 20 // O-21..O-40 are accepted while the destination is down
	)
	ds := newDownstream(t, func(ctrl string, nth int) (hl7.AckCode, hl7.ErrorCode) {
		switch {
		case ctrl == late && nth == 1:
			// A peer slower than ack_timeout (1s): its AA comes too late and
			// must not be taken for the next message's.
			<-time.After(1500 * time.Millisecond)
			return hl7.AA, 0
		case ctrl == stale && nth == 1:
			return ackOfAnother, 0
		case ctrl == ae:
			return hl7.AE, hl7.ErrCodeDataType
		case ctrl == ar207 && nth == 1:
			return hl7.AR, hl7.ErrCodeInternal
		case ctrl == ar200:
			return hl7.AR, hl7.ErrCodeUnsupportedMessageType
		}
		return hl7.AA, 0
	})
	d := newDaemon(t, plainBin, "pas")
	d.writeConfig(fmt.Sprintf(`storage: {min_free_bytes: 1048576}
listeners:
  - name: pas
    listen: %q
destinations:
  - name: epr
    type: mllp
    address: %q
    ack_timeout: 1s
    retry: {initial: 20ms, max: 200ms}
    on_permanent_failure: dead_letter
routes:
  - name: all
    to: [{destination: epr}]
`, d.addrs["pas"], ds.addr))
	d.start()

	c := &mllp.Client{Addr: d.addrs["pas"], AckTimeout: 10 * time.Second}
	defer c.Close()
	var ids []string
	send := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			ctrl := fmt.Sprintf("O-%d", i)
			reply, err := c.Send(ctxT(t, 10*time.Second), adt("OUTAGE", ctrl))
			if err != nil {
				t.Fatalf("%s: %v", ctrl, err)
			}
			if a := parseACK(reply); a.Code != "AA" {
				t.Fatalf("%s: reply %v, want AA (ingest does not depend on the destination)", ctrl, a)
			}
			ids = append(ids, ctrl)
		}
	}

	send(1, outage)
	pollUntil(t, 30*time.Second, "the first messages delivered", func() bool { return ds.seenAll(ids) })

	ds.down()
	// Failed attempts of any class: a daemon that misclassified the outage
	// is then caught below, message by message.
	failed0, _ := d.metric("mllpd_delivery_failed_total", `destination="epr"`)
	send(outage+1, 2*outage)
	pollUntil(t, 30*time.Second, "the worker failing against the stopped destination", func() bool {
		n, _ := d.metric("mllpd_delivery_failed_total", `destination="epr"`)
		return n >= failed0+3
	})
	for i := outage + 1; i <= 2*outage; i++ {
		if n := ds.seen(fmt.Sprintf("O-%d", i)); n != 0 {
			t.Fatalf("O-%d arrived while the destination was down", i)
		}
	}
	// The queue built up during the outage survives a crash.
	d.kill()
	c.Close()
	d.start()
	c = &mllp.Client{Addr: d.addrs["pas"], AckTimeout: 10 * time.Second}

	ds.up()
	send(2*outage+1, total)
	// Not fatal: when delivery goes wrong, the store checks below say how.
	if !waitUntil(30*time.Second, func() bool {
		return ds.seenAll(ids) && ds.seen(ar207) >= 2 && ds.seen(late) >= 2 && ds.seen(stale) >= 2
	}) {
		var missing []string
		for _, id := range ids {
			if ds.seen(id) == 0 {
				missing = append(missing, id)
			}
		}
		t.Errorf("30s after the outage: %d messages never reached the destination %v; copies of %s, %s, %s: %d, %d, %d (want >= 2 each)",
			len(missing), missing[:min(10, len(missing))], ar207, late, stale, ds.seen(ar207), ds.seen(late), ds.seen(stale))
	}
	if !waitUntil(10*time.Second, func() bool {
		n, ok := d.metric("mllpd_delivery_queue_depth", `destination="epr"`)
		return ok && n == 0
	}) {
		n, _ := d.metric("mllpd_delivery_queue_depth", `destination="epr"`)
		t.Errorf("queue_depth of epr is %v, want 0 once everything is settled", n)
	}
	d.stop()

	st := d.openStore()
	stored := storedByControlID(t, st)
	checkFirstDeliveryOrder(t, ds, stored)
	dead := map[uint64]string{}
	dls, err := st.DeadLetters("epr", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dls {
		dead[dl.Seq] = dl.Reason
	}
	for _, id := range ids {
		recs := stored[id]
		if len(recs) != 1 {
			t.Errorf("%s got AA, stored %d times", id, len(recs))
			continue
		}
		dl, ok := deliveryTo(recs[0], "epr")
		if !ok {
			t.Errorf("%s has no delivery record for epr", id)
			continue
		}
		want := store.StateDelivered
		if id == ae || id == ar200 {
			want = store.StateDead
			if _, ok := dead[recs[0].Seq]; !ok {
				t.Errorf("%s (permanent failure) is not in epr's dead letters", id)
			}
		} else if _, ok := dead[recs[0].Seq]; ok {
			t.Errorf("%s is in epr's dead letters (%q), want delivered", id, dead[recs[0].Seq])
		}
		if dl.State != want {
			t.Errorf("%s: delivery state %q (ack %s/%s, %d attempts, %q), want %q",
				id, dl.State, dl.AckCode, dl.ErrorCode, dl.Attempts, dl.LastError, want)
		}
		if (id == ar207 || id == late || id == stale) && dl.Attempts < 2 {
			t.Errorf("%s: delivered after %d attempts, want a retry after its first copy failed", id, dl.Attempts)
		}
	}
	if len(dead) != 2 {
		got := make([]string, 0, len(dead))
		for seq, r := range dead {
			got = append(got, fmt.Sprintf("%d:%s", seq, r))
		}
		sort.Strings(got)
		t.Errorf("epr has %d dead letters %v, want exactly 2 (%s, %s)", len(dead), got, ae, ar200)
	}
}
