package e2e

import (
	"testing"
	"time"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/store"
)

// TestDeliveredMarkSurvivesFailedRecordCommit: the downstream accepts a
// message (AA) while the store's commits fail, so the worker's "delivered"
// record cannot be committed. Once commits work again the store must still
// end up saying delivered (the worker retries the record, or re-sends the
// message and records that) — not "pending" for a message the destination
// has, which the next start re-sends out of order.
func TestDeliveredMarkSurvivesFailedRecordCommit(t *testing.T) {
	release := make(chan struct{})
	var fd *faultDaemon
	ds := newDownstream(t, func(ctrl string, nth int) (hl7.AckCode, hl7.ErrorCode) {
		if ctrl == "REC-1" && nth == 1 {
			<-release // hold the AA until commits fail
		}
		return hl7.AA, 0
	})
	fd = newFaultDaemon(t, ds)
	fd.start()
	addr := fd.addrs["pas"]
	if a, err := sendOnce(addr, adt("REC", "REC-1"), 10*time.Second); err != nil || a.Code != "AA" {
		t.Fatalf("REC-1: %v %v", a, err)
	}
	pollUntil(t, 10*time.Second, "REC-1 at the destination", func() bool { return ds.seen("REC-1") == 1 })
	fd.setFault("fail")
	close(release)
	fd.waitLog("recording delivery attempt", 10*time.Second) // the failed commit of the delivered mark
	fd.setFault("")
	if a, err := sendOnce(addr, adt("REC", "REC-2"), 10*time.Second); err != nil || a.Code != "AA" {
		t.Fatalf("REC-2: %v %v", a, err)
	}
	pollUntil(t, 10*time.Second, "REC-2 at the destination", func() bool { return ds.seen("REC-2") == 1 })
	if !waitUntil(5*time.Second, func() bool {
		n, ok := fd.metric("mllpd_delivery_queue_depth", `destination="epr"`)
		return ok && n == 0
	}) {
		n, _ := fd.metric("mllpd_delivery_queue_depth", `destination="epr"`)
		t.Errorf("queue_depth stays %v after the destination accepted everything", n)
	}
	fd.stop()
	fd.start()
	if waitUntil(3*time.Second, func() bool { return ds.seen("REC-1") > 1 }) {
		t.Errorf("REC-1 sent again after a clean restart (no crash), after the newer REC-2: %v", ds.firstArrivals())
	}
	fd.stop()
	stored := storedByControlID(t, fd.openStore())
	for _, id := range []string{"REC-1", "REC-2"} {
		if dl, _ := deliveryTo(stored[id][0], "epr"); dl.State != store.StateDelivered {
			t.Errorf("%s: delivery state %q after the destination accepted it, want delivered", id, dl.State)
		}
	}
}
