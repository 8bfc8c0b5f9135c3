package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadSocketChangeUnderLoad: a SIGHUP that changes a listener's
// max_connections while four senders keep sending. design.md: reload
// "without dropping connections". Today relay.Reload rebinds the listener and
// Shutdown()s the old mllp.Server, which closes its idle connections; a
// sender whose next frame crosses that close gets "connection reset by peer"
// and no reply (1 to 4 failed sends per run; nothing AA'd is lost).
func TestReloadSocketChangeUnderLoad(t *testing.T) {
	d := newDaemon(t, plainBin, "pas")
	cfg := func(maxConns int) string {
		return fmt.Sprintf("storage: {min_free_bytes: 1048576}\nlisteners:\n  - name: pas\n    listen: %q\n    max_connections: %d\n",
			d.addrs["pas"], maxConns)
	}
	d.writeConfig(cfg(1000))
	d.start()
	senders, stopLoad := startLoad(d.addrs["pas"], 4, 0, 60*time.Second)
	defer stopLoad()
	for i := 1; i <= 5; i++ {
		base := totalAcked(senders)
		pollUntil(t, 30*time.Second, "progress", func() bool { return totalAcked(senders) >= base+100 })
		d.writeConfig(cfg(1000 + i))
		d.proc.cmd.Process.Signal(syscall.SIGHUP)
		pollUntil(t, 10*time.Second, "reload", func() bool { return strings.Count(d.logText(), `"config reloaded"`) == i })
	}
	base := totalAcked(senders)
	pollUntil(t, 30*time.Second, "progress", func() bool { return totalAcked(senders) >= base+100 })
	stopLoad()
	for _, s := range senders {
		if other, errs := s.failures(); other > 0 || len(errs) > 0 {
			t.Errorf("sender %d: %d negative ACKs, %d failed sends across socket-changing reloads: %v",
				s.id, other, len(errs), errs[:min(3, len(errs))])
		}
	}
}
