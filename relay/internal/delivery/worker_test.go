package delivery_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/store"
)

func metric(t *testing.T, h *harness, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"destination": dest}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func TestDeliverInOrder(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(allAA)
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 50, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})
	for _, q := range qs {
		if e := h.next(delivery.EventDelivered); e.Seq != q.seq {
			t.Fatalf("delivered seq %d, want %d (accept order)", e.Seq, q.seq)
		}
	}
	h.stop()

	got, bodies := ds.received()
	if diff := cmp.Diff(ctrls(qs), got); diff != "" {
		t.Errorf("downstream order (-want +got):\n%s", diff)
	}
	for i, b := range bodies {
		// The stored message is forwarded with MSH-15/16 blanked (outbound
		// original mode) and CR terminators, otherwise byte for byte.
		want := strings.Replace(string(msgRaw(qs[i].ctrl, 0)), "|2.5.1|||AL|NE\r", "|2.5.1\r", 1)
		if string(b) != want {
			t.Fatalf("body %d = %q, want %q", i, b, want)
		}
	}
	if n, _, err := st.PendingCount(dest); err != nil || n != 0 {
		t.Errorf("PendingCount = %d, %v; want 0", n, err)
	}
	d := delivered(t, st, qs[0].seq)
	if d.State != store.StateDelivered || d.Attempts != 1 || d.AckCode != "AA" || d.AckControlID != qs[0].ctrl || d.LastError != "" {
		t.Errorf("delivery record = %+v", d)
	}
	if v := metric(t, h, "mllpd_delivery_delivered_total"); v != 50 {
		t.Errorf("delivered_total = %v, want 50", v)
	}
	if v := metric(t, h, "mllpd_delivery_queue_depth"); v != 0 {
		t.Errorf("queue_depth = %v, want 0", v)
	}
	rec, _ := st.Get(qs[0].seq)
	if !bytes.Equal(rec.Raw, msgRaw(qs[0].ctrl, 0)) {
		t.Errorf("stored message changed")
	}
}

// TestOrderUnderRetries: failures of every retriable kind and a downstream
// that goes away and comes back on the same address. No message is lost,
// first deliveries come in accept order, and replays (at least once) only
// repeat the message just sent.
func TestOrderUnderRetries(t *testing.T) {
	st := openStore(t)
	frame := 0
	ds := newDownstream(func(ctrl string, n int) reply {
		frame++
		switch frame {
		case 3, 4, 5:
			return reply{close: true} // not stored, no answer
		case 8:
			r := ack("AA", ctrl)
			r.close = true // stored, ACK lost: the sender must send it again
			return r
		case 10, 11:
			return ackErr("AR", ctrl, "207")
		case 13:
			r := ack("AA", "OTHER") // an ACK for another message
			r.store = true
			return r
		case 15:
			return ack("CE", ctrl)
		}
		return ack("AA", ctrl)
	})
	addr, stop1 := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 10, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})

	for i := 0; i < 10; i++ {
		h.next(delivery.EventDelivered)
	}
	stop1() // the downstream goes away
	qs = append(qs, appendN(t, st, 11, 20, "adt", 0)...)
	h.w.Notify()
	for i := 0; i < 3; i++ {
		if e := h.next(delivery.EventAttempted); e.Class != delivery.KindConnection {
			t.Errorf("attempt while down: class %q, want %q", e.Class, delivery.KindConnection)
		}
	}
	startMLLP(t, ds, addr) // and comes back
	for i := 10; i < 30; i++ {
		h.next(delivery.EventDelivered)
	}
	h.stop()

	got, _ := ds.received()
	if diff := cmp.Diff(ctrls(qs), collapse(got)); diff != "" {
		t.Errorf("first deliveries (-want +got):\n%s", diff)
	}
	replays := len(got) - len(collapse(got))
	if replays < 2 {
		t.Errorf("replays = %d, want >= 2 (lost ACK, wrong MSA-2)", replays)
	}
	t.Logf("%d frames, %d received, %d replays", ds.frames, len(got), replays)
	if n, _, _ := st.PendingCount(dest); n != 0 {
		t.Errorf("PendingCount = %d, want 0", n)
	}
	if v := metric(t, h, "mllpd_delivery_retries_total"); v < 9 {
		t.Errorf("retries_total = %v, want >= 9", v)
	}
}

func TestAckClassification(t *testing.T) {
	tests := []struct {
		name     string
		first    func(ctrl string) reply // the first message's first answer; then AA
		override map[string]string
		state    string
		attempts int
		ack      string // recorded MSA-1 of the last attempt
		errCode  string
		lastErr  string // substring of LastError (or DeadReason when dead)
		event    delivery.EventKind
	}{
		{name: "AA", first: func(c string) reply { return ack("AA", c) }, state: store.StateDelivered, attempts: 1, ack: "AA", event: delivery.EventDelivered},
		{name: "CA", first: func(c string) reply { return ack("CA", c) }, state: store.StateDelivered, attempts: 1, ack: "CA", event: delivery.EventDelivered},
		{name: "AE_permanent", first: func(c string) reply { return ackErr("AE", c, "207") }, state: store.StateDead, attempts: 1, ack: "AE", errCode: "207", lastErr: "downstream AE 207", event: delivery.EventDeadLettered},
		{name: "AR_207_retriable", first: func(c string) reply { return ackErr("AR", c, "207") }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "downstream AR 207", event: delivery.EventDelivered},
		{name: "AR_206_retriable", first: func(c string) reply { return ackErr("AR", c, "206") }, state: store.StateDelivered, attempts: 2, ack: "AA", event: delivery.EventDelivered},
		{name: "AR_200_permanent", first: func(c string) reply { return ackErr("AR", c, "200") }, state: store.StateDead, attempts: 1, ack: "AR", errCode: "200", lastErr: "downstream AR 200", event: delivery.EventDeadLettered},
		{name: "AR_101_permanent", first: func(c string) reply { return ackErr("AR", c, "101") }, state: store.StateDead, attempts: 1, ack: "AR", errCode: "101", event: delivery.EventDeadLettered},
		{name: "AR_local_code_retriable", first: func(c string) reply { return ackErr("AR", c, "E42") }, state: store.StateDelivered, attempts: 2, ack: "AA", event: delivery.EventDelivered},
		{name: "AR_no_code_retriable", first: func(c string) reply { return ack("AR", c) }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "downstream AR", event: delivery.EventDelivered},
		{name: "AR_v24_ERR1_207_retriable", first: func(c string) reply { return ackErr24("AR", c, "207") }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "downstream AR 207", event: delivery.EventDelivered},
		{name: "AR_v24_ERR1_203_permanent", first: func(c string) reply { return ackErr24("AR", c, "203") }, state: store.StateDead, attempts: 1, ack: "AR", errCode: "203", event: delivery.EventDeadLettered},
		{name: "CE_no_code_retriable", first: func(c string) reply { return ack("CE", c) }, state: store.StateDelivered, attempts: 2, ack: "AA", event: delivery.EventDelivered},
		{name: "CE_103_permanent", first: func(c string) reply { return ackErr("CE", c, "103") }, state: store.StateDead, attempts: 1, ack: "CE", event: delivery.EventDeadLettered},
		{name: "CR_permanent", first: func(c string) reply { return ack("CR", c) }, state: store.StateDead, attempts: 1, ack: "CR", lastErr: "downstream CR", event: delivery.EventDeadLettered},
		{name: "wrong_MSA2_retriable", first: func(string) reply { return ack("AA", "C9999") }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "ack_mismatch", event: delivery.EventDelivered},
		{name: "timeout_retriable", first: func(string) reply { return reply{hang: true} }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "timeout", event: delivery.EventDelivered},
		{name: "no_answer_retriable", first: func(string) reply { return reply{close: true} }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "connection", event: delivery.EventDelivered},
		{name: "not_hl7_retriable", first: func(string) reply { return reply{ack: "hello"} }, state: store.StateDelivered, attempts: 2, ack: "AA", lastErr: "ack_mismatch", event: delivery.EventDelivered},

		// classify overrides
		{name: "override_AE_retriable", override: map[string]string{"AE": "retriable"}, first: func(c string) reply { return ack("AE", c) }, state: store.StateDelivered, attempts: 2, ack: "AA", event: delivery.EventDelivered},
		{name: "override_AR_207_permanent", override: map[string]string{"AR/207": "permanent", "AR": "retriable"}, first: func(c string) reply { return ackErr("AR", c, "207") }, state: store.StateDead, attempts: 1, ack: "AR", event: delivery.EventDeadLettered},
		{name: "override_AR_specific_wins", override: map[string]string{"AR/200": "retriable"}, first: func(c string) reply { return ackErr("AR", c, "200") }, state: store.StateDelivered, attempts: 2, ack: "AA", event: delivery.EventDelivered},
		{name: "override_CR_delivered", override: map[string]string{"CR": "delivered"}, first: func(c string) reply { return ack("CR", c) }, state: store.StateDelivered, attempts: 1, ack: "CR", event: delivery.EventDelivered},
		{name: "override_AE_block", override: map[string]string{"AE": "block"}, first: func(c string) reply { return ack("AE", c) }, state: store.StatePending, attempts: 1, ack: "AE", event: delivery.EventBlocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t)
			ds := newDownstream(func(ctrl string, n int) reply {
				if ctrl == ctrlID(1) && n == 1 {
					return tt.first(ctrl)
				}
				return ack("AA", ctrl)
			})
			addr, _ := startMLLP(t, ds, "")
			qs := appendN(t, st, 1, 2, "adt", 0)
			tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "mllp", Address: addr, AckTimeout: 300 * ms})
			if err != nil {
				t.Fatal(err)
			}
			h := startWorker(t, st, delivery.WorkerConfig{Transport: tr, Classify: tt.override})
			if e := h.next(tt.event); e.Seq != qs[0].seq {
				t.Fatalf("%v event for seq %d, want %d", tt.event, e.Seq, qs[0].seq)
			}
			if tt.event != delivery.EventBlocked {
				// The queue goes on after a delivery or a dead letter.
				if e := h.next(delivery.EventDelivered); e.Seq != qs[1].seq {
					t.Fatalf("next delivered seq %d, want %d", e.Seq, qs[1].seq)
				}
			}
			h.stop()
			d := delivered(t, st, qs[0].seq)
			if d.State != tt.state || d.Attempts != tt.attempts || d.AckCode != tt.ack {
				t.Errorf("delivery = state %q attempts %d ack %q; want %q %d %q (%+v)", d.State, d.Attempts, d.AckCode, tt.state, tt.attempts, tt.ack, d)
			}
			if tt.errCode != "" && d.ErrorCode != tt.errCode {
				t.Errorf("ErrorCode = %q, want %q", d.ErrorCode, tt.errCode)
			}
			text := d.LastError
			if d.State == store.StateDead {
				text = d.DeadReason
			}
			if !strings.Contains(text, tt.lastErr) {
				t.Errorf("LastError/DeadReason = %q, want it to contain %q", text, tt.lastErr)
			}
			if tt.state == store.StateDead && metric(t, h, "mllpd_delivery_failed_total", "class", "permanent") != 1 {
				t.Errorf("failed_total{class=permanent} != 1")
			}
		})
	}
}

func TestDeadLetterThenRequeue(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(ctrl string, n int) reply {
		if ctrl == ctrlID(1) && n == 1 {
			return ack("AE", ctrl)
		}
		return ack("AA", ctrl)
	})
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 2, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})
	if e := h.next(delivery.EventDeadLettered); e.Seq != qs[0].seq {
		t.Fatalf("dead-lettered seq %d", e.Seq)
	}
	h.next(delivery.EventDelivered)
	dl, err := st.DeadLetters(dest, 0, 10)
	if err != nil || len(dl) != 1 || dl[0].Seq != qs[0].seq {
		t.Fatalf("DeadLetters = %+v, %v", dl, err)
	}
	if _, err := st.Requeue(context.Background(), dest, qs[0].seq, ""); err != nil {
		t.Fatal(err)
	}
	h.w.Notify()
	if e := h.next(delivery.EventDelivered); e.Seq != qs[0].seq {
		t.Fatalf("delivered seq %d after requeue, want %d", e.Seq, qs[0].seq)
	}
	h.stop()
	got, _ := ds.received()
	if diff := cmp.Diff([]string{"C0001", "C0002", "C0001"}, got); diff != "" {
		t.Errorf("downstream (-want +got):\n%s", diff)
	}
	if d := delivered(t, st, qs[0].seq); d.State != store.StateDelivered {
		t.Errorf("state after requeue = %q", d.State)
	}
}

func TestBlockThenUnblock(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(ctrl string, n int) reply {
		if ctrl == ctrlID(1) && n == 1 {
			return ack("AE", ctrl)
		}
		return ack("AA", ctrl)
	})
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 3, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr), OnPermanentFailure: delivery.PolicyBlock})
	e := h.next(delivery.EventBlocked)
	if e.Seq != qs[0].seq || !strings.Contains(e.Reason, "AE") {
		t.Fatalf("blocked event %+v", e)
	}
	if reason, blocked := st.Blocked(dest); !blocked || !strings.Contains(reason, "downstream AE") {
		t.Errorf("Blocked = %q, %v", reason, blocked)
	}
	if got, _ := ds.received(); len(got) != 1 {
		t.Errorf("downstream got %v while blocking, want only the head", got)
	}
	if v := metric(t, h, "mllpd_delivery_blocked"); v != 1 {
		t.Errorf("blocked gauge = %v, want 1", v)
	}
	if err := st.Unblock(context.Background(), dest); err != nil {
		t.Fatal(err)
	}
	h.w.Notify()
	for _, q := range qs {
		if e := h.next(delivery.EventDelivered); e.Seq != q.seq {
			t.Fatalf("delivered seq %d, want %d", e.Seq, q.seq)
		}
	}
	h.stop()
	got, _ := ds.received()
	if diff := cmp.Diff([]string{"C0001", "C0001", "C0002", "C0003"}, got); diff != "" {
		t.Errorf("downstream (-want +got):\n%s", diff)
	}
	if v := metric(t, h, "mllpd_delivery_blocked"); v != 0 {
		t.Errorf("blocked gauge = %v after unblock, want 0", v)
	}
	if d := delivered(t, st, qs[0].seq); d.Attempts != 2 {
		t.Errorf("head attempts = %d, want 2", d.Attempts)
	}
	lintMetrics(t, h)
}

// lintMetrics checks the exposed metrics against Prometheus naming rules.
func lintMetrics(t *testing.T, h *harness) {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"mllpd_delivery_delivered_total", "mllpd_delivery_failed_total", "mllpd_delivery_queue_depth",
		"mllpd_delivery_oldest_undelivered_age_seconds", "mllpd_delivery_blocked", "mllpd_delivery_last_error_class",
		"mllpd_delivery_attempt_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not exposed", n)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestBlockedAtStart: a queue blocked before (a restart) is not delivered
// until unblocked.
func TestBlockedAtStart(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(allAA)
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 1, "adt", 0)
	if err := st.SetBlocked(context.Background(), dest, "test"); err != nil {
		t.Fatal(err)
	}
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})
	h.w.Notify() // a wake-up alone does not unblock
	if err := st.Unblock(context.Background(), dest); err != nil {
		t.Fatal(err)
	}
	h.w.Notify()
	if e := h.next(delivery.EventDelivered); e.Seq != qs[0].seq {
		t.Fatalf("delivered %d", e.Seq)
	}
}

func TestRouteRemoved(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(allAA)
	addr, _ := startMLLP(t, ds, "")
	gone := appendN(t, st, 1, 1, "gone", 0)
	kept := appendN(t, st, 2, 1, "kept", 0)
	h := startWorker(t, st, delivery.WorkerConfig{
		Transport: mllpTransport(t, addr),
		Mapper:    func(route string) (*hl7map.Mapping, bool) { return nil, route == "kept" },
	})
	e := h.next(delivery.EventDeadLettered)
	if e.Seq != gone[0].seq || e.Reason != delivery.ReasonRouteRemoved {
		t.Fatalf("dead letter event %+v", e)
	}
	if e := h.next(delivery.EventDelivered); e.Seq != kept[0].seq {
		t.Fatalf("delivered %d", e.Seq)
	}
	h.stop()
	if got, _ := ds.received(); !cmp.Equal(got, []string{"C0002"}) {
		t.Errorf("downstream got %v: a message of a removed route went out", got)
	}
	d := delivered(t, st, gone[0].seq)
	if d.State != store.StateDead || d.DeadReason != "route removed" || d.Attempts != 0 {
		t.Errorf("delivery = %+v", d)
	}
}

func TestMapping(t *testing.T) {
	set, err := hl7map.Compile([]hl7map.Rule{{Set: "MSH-5", Value: "EPR"}, {Delete: "PV1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reject, err := hl7map.Compile([]hl7map.Rule{{Translate: "PV1-3", Table: "wards", Default: "reject"}},
		map[string]map[string]string{"wards": {"W2": "TWO"}})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	ds := newDownstream(allAA)
	addr, _ := startMLLP(t, ds, "")
	ok := appendN(t, st, 1, 1, "mapped", 0)
	bad := appendN(t, st, 2, 1, "reject", 0)
	h := startWorker(t, st, delivery.WorkerConfig{
		Transport:       mllpTransport(t, addr),
		OutboundKeepAck: true,
		Mapper: func(route string) (*hl7map.Mapping, bool) {
			if route == "reject" {
				return reject, true
			}
			return set, true
		},
	})
	h.next(delivery.EventDelivered)
	e := h.next(delivery.EventDeadLettered)
	if e.Seq != bad[0].seq || e.Class != delivery.KindMapping {
		t.Fatalf("dead letter %+v", e)
	}
	h.stop()
	_, bodies := ds.received()
	want := "MSH|^~\\&|LAB|RXH|EPR|HUB|20240131123045||ADT^A01^ADT_A01|C0001|P|2.5.1|||AL|NE\rPID|1||12345^^^RXH^MR||DOE^JOHN\r"
	if len(bodies) != 1 || string(bodies[0]) != want {
		t.Errorf("downstream got %q, want %q", bodies, want)
	}
	rec, _ := st.Get(ok[0].seq)
	if !bytes.Equal(rec.Raw, msgRaw("C0001", 0)) {
		t.Errorf("the stored original changed")
	}
	if d := delivered(t, st, bad[0].seq); d.State != store.StateDead || !strings.Contains(d.DeadReason, "mapping") {
		t.Errorf("delivery = %+v", d)
	}
}

func TestMaxAttempts(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(ctrl string, n int) reply {
		if ctrl == ctrlID(1) {
			return ackErr("AR", ctrl, "207")
		}
		return ack("AA", ctrl)
	})
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 2, "adt", 0)
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr), Retry: delivery.Retry{Initial: ms, Max: 2 * ms, MaxAttempts: 3}})
	e := h.next(delivery.EventDeadLettered)
	if e.Seq != qs[0].seq || !strings.Contains(e.Reason, "3 attempts failed") {
		t.Fatalf("dead letter %+v", e)
	}
	h.next(delivery.EventDelivered)
	h.stop()
	if d := delivered(t, st, qs[0].seq); d.Attempts != 3 || d.State != store.StateDead {
		t.Errorf("delivery = %+v", d)
	}
	if v := metric(t, h, "mllpd_delivery_last_error_class", "class", delivery.KindAckAR); v != 1 {
		t.Errorf("last_error_class{class=ack_ar} = %v, want 1", v)
	}
	if r, p := metric(t, h, "mllpd_delivery_failed_total", "class", "retriable"), metric(t, h, "mllpd_delivery_failed_total", "class", "permanent"); r != 2 || p != 1 {
		t.Errorf("failed_total retriable %v permanent %v, want 2 and 1", r, p)
	}
	if v := metric(t, h, "mllpd_delivery_retries_total"); v != 2 {
		t.Errorf("retries_total = %v, want 2", v)
	}
}

// TestStopDuringRetry: cancel while the head is being retried; Run returns,
// the entry stays queued with its attempts recorded.
func TestStopDuringRetry(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(string, int) reply { return reply{close: true} })
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 1, "adt", 0)
	// The worker's clock runs an hour ahead of the store's: the oldest
	// entry is an hour old to it.
	later := func() time.Time { return time.Now().Add(time.Hour) }
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr), Now: later})
	h.next(delivery.EventAttempted)
	h.next(delivery.EventAttempted)
	h.stop()
	if age := metric(t, h, "mllpd_delivery_oldest_undelivered_age_seconds"); age < 3590 || age > 3700 {
		t.Errorf("oldest_undelivered_age_seconds = %v, want about 3600", age)
	}
	if n, _, _ := st.PendingCount(dest); n != 1 {
		t.Errorf("PendingCount = %d, want 1", n)
	}
	if d := delivered(t, st, qs[0].seq); d.State != store.StatePending || d.Attempts < 2 {
		t.Errorf("delivery = %+v", d)
	}
	if v := metric(t, h, "mllpd_delivery_queue_depth"); v != 1 {
		t.Errorf("queue_depth = %v, want 1", v)
	}
}

// TestNotifyWakesIdleWorker: with the fallback poll at an hour, only Notify
// can make an idle worker see a new message.
func TestNotifyWakesIdleWorker(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(allAA)
	addr, _ := startMLLP(t, ds, "")
	h := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})
	for i := 1; i <= 3; i++ {
		qs := appendN(t, st, i, 1, "adt", 0)
		h.w.Notify()
		if e := h.next(delivery.EventDelivered); e.Seq != qs[0].seq {
			t.Fatalf("delivered %d", e.Seq)
		}
	}
}

func TestNewWorkerErrors(t *testing.T) {
	st := openStore(t)
	tr := mllpTransport(t, "127.0.0.1:1")
	defer tr.Close()
	for _, cfg := range []delivery.WorkerConfig{
		{Name: "", Store: st, Transport: tr, Mapper: anyRoute},
		{Name: dest, Store: st, Transport: tr},
		{Name: dest, Store: st, Transport: tr, Mapper: anyRoute, OnPermanentFailure: "drop"},
		{Name: dest, Store: st, Transport: tr, Mapper: anyRoute, Classify: map[string]string{"XX": "retriable"}},
		{Name: dest, Store: st, Transport: tr, Mapper: anyRoute, Classify: map[string]string{"AE": "later"}},
	} {
		if _, err := delivery.NewWorker(cfg); err == nil {
			t.Errorf("NewWorker(%+v) = nil error", cfg)
		}
	}
}

// TestRestartResendsUnrecorded: a stop cuts the in-flight send (the ACK
// timeout is far away); the next run sends that message again and not the
// ones recorded as delivered: at least once, in order.
func TestRestartResendsUnrecorded(t *testing.T) {
	st := openStore(t)
	hung := make(chan struct{}, 1)
	ds := newDownstream(func(ctrl string, n int) reply {
		if ctrl == ctrlID(2) && n == 1 {
			hung <- struct{}{}
			return reply{hang: true, store: true}
		}
		return ack("AA", ctrl)
	})
	addr, _ := startMLLP(t, ds, "")
	qs := appendN(t, st, 1, 3, "adt", 0)
	tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "mllp", Address: addr, AckTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := startWorker(t, st, delivery.WorkerConfig{Transport: tr})
	h.next(delivery.EventDelivered)
	select {
	case <-hung:
	case <-time.After(waitFor):
		t.Fatal("second message never sent")
	}
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v with a send in flight", d)
	}
	if d := delivered(t, st, qs[1].seq); d.State != store.StatePending || d.Attempts != 0 {
		t.Errorf("cut send recorded as %+v, want pending with no attempt", d)
	}

	h2 := startWorker(t, st, delivery.WorkerConfig{Transport: mllpTransport(t, addr)})
	for _, q := range qs[1:] {
		if e := h2.next(delivery.EventDelivered); e.Seq != q.seq {
			t.Fatalf("after restart delivered %d, want %d", e.Seq, q.seq)
		}
	}
	h2.stop()
	got, _ := ds.received()
	if diff := cmp.Diff([]string{"C0001", "C0002", "C0002", "C0003"}, got); diff != "" {
		t.Errorf("downstream (-want +got):\n%s", diff)
	}
}
