package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/mllpd/mllpd/mllp"
)

// TestRejectedLogBoundedUnderFlood: promise 2 bounds the rejected log by
// storage.rejected_max_bytes. A sender flooding garbage must not grow it past
// that bound (which would fill the disk and, through the free-space guard,
// refuse every real message). Today the bound is applied only by the
// retention loop (every 10 minutes, relay/retention.go); relay.New does not
// pass rejected_max_bytes to store.Open, whose AddRejected would enforce it.
func TestRejectedLogBoundedUnderFlood(t *testing.T) {
	d := newDaemon(t, plainBin, "pas")
	d.writeConfig(fmt.Sprintf(`storage: {min_free_bytes: 1048576, rejected_max_bytes: 1048576}
listeners:
  - name: pas
    listen: %q
`, d.addrs["pas"]))
	d.start()
	garbage := frame(bytes.Repeat([]byte("GARBAGE|"), (mllp.PrefixBytes)/8))
	c := dialRaw(t, "127.0.0.2", d.addrs["pas"])
	const frames = 300 // 300 x 64 KiB = 19 MiB of rejected input
	for range frames {
		c.write(t, garbage)
		if a := c.reply(t, 10*time.Second); a.Code != "AE" {
			t.Fatalf("garbage frame: reply %v, want AE", a)
		}
	}
	d.stop()
	st := d.openStore()
	rej, err := st.ListRejected(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range rej {
		full, err := st.GetRejected(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		total += int64(len(full.Raw))
	}
	if total > 1<<20+int64(mllp.PrefixBytes) {
		t.Errorf("rejected log holds %d entries, %d KiB, after %d garbage frames; rejected_max_bytes is 1024 KiB",
			len(rej), total>>10, frames)
	}
}
