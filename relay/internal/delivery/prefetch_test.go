package delivery_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/store"
)

// TestOrderAcrossHolds: a batch far longer than the prefetch depth, with a
// head retried, a queue blocked and unblocked, and a connection lost in its
// middle. Entries prepared ahead are never sent out of turn, skipped or sent
// twice (only the failed ones are repeated).
func TestOrderAcrossHolds(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(ctrl string, n int) reply {
		switch {
		case ctrl == ctrlID(3) && n <= 2:
			return ackErr("AR", ctrl, "207") // retriable: the queue waits
		case ctrl == ctrlID(20) && n == 1:
			return ack("AE", ctrl) // permanent, policy block
		case ctrl == ctrlID(41) && n == 1:
			return reply{close: true}
		}
		return ack("AA", ctrl)
	})
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 60, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr), OnPermanentFailure: delivery.PolicyBlock})
	var order []uint64
	for len(order) < len(qs) {
		select {
		case e := <-h.events:
			switch e.Kind {
			case delivery.EventDelivered:
				order = append(order, e.Seq)
			case delivery.EventBlocked:
				if e.Seq != qs[19].seq {
					t.Fatalf("blocked at seq %d, want %d", e.Seq, qs[19].seq)
				}
				if err := st.Unblock(context.Background(), dest); err != nil {
					t.Fatal(err)
				}
				h.w.Notify()
			}
		case <-time.After(waitFor):
			t.Fatalf("%d of %d delivered", len(order), len(qs))
		}
	}
	h.stop()
	want := make([]uint64, len(qs))
	for i, q := range qs {
		want[i] = q.seq
	}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("delivered events (-want +got):\n%s", diff)
	}
	got, _ := ds.received()
	// C0003 answered AR twice, C0020 AE once; C0041's lost frame is not counted.
	wantFrames := repeatAt(ctrls(qs), map[int]int{2: 2, 19: 1})
	if diff := cmp.Diff(wantFrames, got); diff != "" {
		t.Errorf("downstream frames (-want +got):\n%s", diff)
	}
	if n, _, _ := st.PendingCount(dest); n != 0 {
		t.Errorf("PendingCount = %d, want 0", n)
	}
}

// repeatAt repeats s[i] extra[i] more times in place (-1 drops it).
func repeatAt(s []string, extra map[int]int) []string {
	var out []string
	for i, v := range s {
		for range 1 + extra[i] {
			out = append(out, v)
		}
	}
	return out
}

// routeTable is a Mapper whose config a test replaces while the worker runs,
// as a reload does; it reports the routes it is asked about.
type routeTable struct {
	cur   atomic.Pointer[map[string]*hl7map.Mapping]
	mu    sync.Mutex
	asked map[string]chan struct{} // closed on the first ask
}

func newRouteTable(m map[string]*hl7map.Mapping, watch ...string) *routeTable {
	rt := &routeTable{asked: map[string]chan struct{}{}}
	rt.cur.Store(&m)
	for _, r := range watch {
		rt.asked[r] = make(chan struct{})
	}
	return rt
}

func (rt *routeTable) mapper(route string) (*hl7map.Mapping, bool) {
	rt.mu.Lock()
	if ch, ok := rt.asked[route]; ok {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	rt.mu.Unlock()
	mp, ok := (*rt.cur.Load())[route]
	return mp, ok
}

func setMSH5(tb testing.TB, v string) *hl7map.Mapping {
	tb.Helper()
	mp, err := hl7map.Compile([]hl7map.Rule{{Set: "MSH-5", Value: v}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return mp
}

// TestReloadAfterPrefetch: entries prepared ahead under one config are sent
// under the config current at their send: a changed mapping is applied, a
// removed route dead-letters its entry instead of sending what was prepared.
func TestReloadAfterPrefetch(t *testing.T) {
	st := openStore(t)
	const n = 8
	var qs []queued
	routes := map[string]*hl7map.Mapping{}
	old := setMSH5(t, "OLD")
	for i := 1; i <= n; i++ {
		r := "r" + ctrlID(i)
		qs = append(qs, appendN(t, st, i, 1, r, 0)...)
		routes[r] = old
	}
	// r(n) is asked only once the worker, still on the first entry, has
	// prepared every entry after it.
	rt := newRouteTable(routes, "r"+ctrlID(n))
	reloaded := make(chan struct{})
	ds := newDownstream(func(ctrl string, k int) reply {
		if ctrl == ctrlID(1) && k == 1 {
			select {
			case <-rt.asked["r"+ctrlID(n)]:
			case <-time.After(waitFor):
				t.Errorf("entries after the head were not prepared while it was in flight")
			}
			next := map[string]*hl7map.Mapping{}
			for r := range routes {
				next[r] = setMSH5(t, "NEW")
			}
			delete(next, "r"+ctrlID(3))
			rt.cur.Store(&next)
			close(reloaded)
		}
		return ack("AA", ctrl)
	})
	addr, _ := startMLLP(t, ds, "")
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr), Mapper: rt.mapper})
	for i := range qs {
		kind := delivery.EventDelivered
		if i == 2 {
			kind = delivery.EventDeadLettered
		}
		if e := h.next(kind); e.Seq != qs[i].seq {
			t.Fatalf("%v event for seq %d, want %d", kind, e.Seq, qs[i].seq)
		}
	}
	h.stop()
	<-reloaded
	got, bodies := ds.received()
	if diff := cmp.Diff(repeatAt(ctrls(qs), map[int]int{2: -1}), got); diff != "" {
		t.Errorf("downstream (-want +got):\n%s", diff)
	}
	for i, b := range bodies {
		want := "|NEW|"
		if i == 0 {
			want = "|OLD|"
		}
		if !strings.Contains(string(b), "|RXH|"+want[1:]) {
			t.Errorf("frame %d (%s) not mapped with %s: %q", i, got[i], want, b)
		}
	}
	if d := delivered(t, st, qs[2].seq); d.State != store.StateDead || d.DeadReason != delivery.ReasonRouteRemoved {
		t.Errorf("removed route's entry: %+v", d)
	}
}

// TestWorkerWithoutEvents: the daemon's configuration (no OnEvent): the
// delivered marks settle on the store's goroutine; the queue depth falls to
// 0 while the worker idles, and Run returns with every mark written.
func TestWorkerWithoutEvents(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(allAA)
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 40, "adt", 0)
	reg := prometheus.NewPedanticRegistry()
	w, err := delivery.NewWorker(delivery.WorkerConfig{Name: dest, Store: st, Transport: mllpTransport(t, addr), Mapper: anyRoute,
		Poll: time.Hour, Metrics: delivery.NewMetrics(reg), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	for range qs {
		select {
		case <-ds.arrived:
		case <-time.After(waitFor):
			t.Fatal("not every message arrived")
		}
	}
	h := &harness{reg: reg}
	deadline := time.Now().Add(waitFor)
	for metric(t, h, "mllpd_delivery_queue_depth") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue_depth = %v while idle, want 0", metric(t, h, "mllpd_delivery_queue_depth"))
		}
		time.Sleep(5 * ms)
	}
	if n, _, _ := st.PendingCount(dest); n != 0 {
		t.Errorf("PendingCount = %d, want 0", n)
	}
	if v := metric(t, h, "mllpd_delivery_delivered_total"); v != float64(len(qs)) {
		t.Errorf("delivered_total = %v, want %d", v, len(qs))
	}
}

// TestGaugesWhileRetrying: queue_depth follows messages queued behind a head
// that is retried with backoffs shorter than the gauge interval.
func TestGaugesWhileRetrying(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(string, int) reply { return reply{close: true} })
	addr, _ := startMLLP(t, ds, "")
	appendN(t, st, 1, 1, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})
	h.next(delivery.EventAttempted)
	appendN(t, st, 2, 5, "adt", 0)
	deadline := time.Now().Add(waitFor)
	for metric(t, h, "mllpd_delivery_queue_depth") != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("queue_depth = %v while the head is retried, want 6", metric(t, h, "mllpd_delivery_queue_depth"))
		}
		time.Sleep(10 * ms)
	}
}
