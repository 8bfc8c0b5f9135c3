package e2e

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestFreeSpaceGuardReload: storage.min_free_bytes changed by SIGHUP must
// take effect (design: an admin reloads the file; promise 6: the guard
// recovers). Today the reload reports "config reloaded" but the store keeps
// the min_free_bytes it was opened with: AR/206 and /readyz 503 continue.
func TestFreeSpaceGuardReload(t *testing.T) {
	d := newDaemon(t, plainBin, "pas")
	cfg := func(m uint64) string {
		return fmt.Sprintf("storage: {min_free_bytes: %d}\nlisteners:\n  - name: pas\n    listen: %q\n", m, d.addrs["pas"])
	}
	d.writeConfig(cfg(1 << 62))
	d.start()
	if a, err := sendOnce(d.addrs["pas"], adt("SPACE", "R-1"), 5*time.Second); err != nil || a.Code != "AR" || a.ErrCode != "206" {
		t.Fatalf("below min_free_bytes: %v %v, want AR/206", a, err)
	}
	d.writeConfig(cfg(1 << 20))
	d.proc.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog("config reloaded", 5*time.Second)
	if !waitUntil(5*time.Second, func() bool { c, _, _ := d.get("/readyz"); return c == http.StatusOK }) {
		t.Errorf("/readyz still not 200 after reloading a sane min_free_bytes")
	}
	if a, err := sendOnce(d.addrs["pas"], adt("SPACE", "R-1"), 5*time.Second); err != nil || a.Code != "AA" {
		t.Errorf("after reloading a sane min_free_bytes: %v %v, want AA", a, err)
	}
}
