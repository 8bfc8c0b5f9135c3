package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadUnderLoad reloads the config with SIGHUP again and again while
// four senders keep sending: routes and destinations come and go, listener
// settings that keep the socket change, a second listener is added and
// removed, and one file is invalid (refused, the running config stays).
// Design ("reload it without dropping connections"): no sender sees an error
// or a negative ACK, every AA'd message is stored once, and what a
// destination gets while it is configured arrives in accept order.
//
// A reload that changes a listener's socket settings (limits, timeouts,
// allow, TLS) is left out: it rebinds the listener and closes its idle
// connections, so a sender whose frame crosses the close gets a reset
// (testdata/gaps/reload_socket_change_test.go.txt).
func TestReloadUnderLoad(t *testing.T) {
	ds := newDownstream(t, nil)
	d := newDaemon(t, plainBin, "pas", "lab")
	listener := func(dedupe string) string {
		return fmt.Sprintf(`storage: {min_free_bytes: 1048576}
listeners:
  - name: pas
    listen: %q
    dedupe_window: %s
`, d.addrs["pas"], dedupe)
	}
	lab := fmt.Sprintf("  - name: lab\n    listen: %q\n", d.addrs["lab"])
	configs := []struct {
		name, body string
		valid      bool
	}{
		{"route to epr", listener("1h") + routeAllTo(ds), true},
		{"no routes (unrouted, stored)", listener("2h"), true},
		{"route back, second listener", listener("2h") + lab + routeAllTo(ds), true},
		{"invalid: unknown destination", listener("1h") + "routes:\n  - name: bad\n    to: [{destination: nowhere}]\n", false},
		{"second listener removed", listener("1h") + routeAllTo(ds), true},
		{"dedupe window changed", listener("3h") + routeAllTo(ds), true},
	}
	d.writeConfig(configs[0].body)
	d.start()

	senders, stopLoad := startLoad(d.addrs["pas"], 4, 1, 90*time.Second)
	defer stopLoad()
	reloaded, refused := 0, 0
	for i, c := range configs[1:] {
		base := totalAcked(senders)
		pollUntil(t, 30*time.Second, fmt.Sprintf("progress before reload %d", i+1), func() bool {
			return totalAcked(senders) >= base+100
		})
		d.writeConfig(c.body)
		if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if c.valid {
			reloaded++
			pollUntil(t, 10*time.Second, "reload "+c.name, func() bool {
				return strings.Count(d.logText(), `"config reloaded"`) == reloaded
			})
		} else {
			refused++
			pollUntil(t, 10*time.Second, "refusal of "+c.name, func() bool {
				return strings.Count(d.logText(), "config reload refused") == refused
			})
		}
		if c.name == "route back, second listener" {
			if a, err := sendOnce(d.addrs["lab"], adt("LAB", "LAB-1"), 10*time.Second); err != nil || a.Code != "AA" {
				t.Errorf("listener added by reload: %v %v, want AA", a, err)
			}
		}
	}
	base := totalAcked(senders)
	pollUntil(t, 30*time.Second, "progress after the last reload", func() bool { return totalAcked(senders) >= base+100 })
	stopLoad()
	d.stop()

	stored := storedByControlID(t, d.openStore())
	total := 0
	for _, s := range senders {
		other, errs := s.failures()
		if n := s.ackedCount(); n < 10 {
			t.Errorf("sender %d (batch %d) got only %d frames acknowledged", s.id, s.batch, n)
		}
		if other > 0 || len(errs) > 0 {
			t.Errorf("sender %d: %d negative ACKs and %d failed sends across the reloads; first errors: %v",
				s.id, other, len(errs), errs[:min(3, len(errs))])
		}
		for _, ctrl := range s.ackedMessageIDs() {
			total++
			if n := len(stored[ctrl]); n != 1 {
				t.Errorf("%s got AA but is stored %d times, want once", ctrl, n)
			}
		}
	}
	checkFirstDeliveryOrder(t, ds, stored)
	t.Logf("%d messages over %d reloads and %d refused reloads", total, reloaded, refused)
}
