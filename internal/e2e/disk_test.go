package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// setFsizeLimit sets the soft RLIMIT_FSIZE of the running process pid
// (unix.RLIM_INFINITY lifts it). The hard limit stays, so that lifting the
// soft one again needs no CAP_SYS_RESOURCE (containers often lack it, even
// as root).
func setFsizeLimit(t *testing.T, pid int, limit uint64) {
	t.Helper()
	var cur unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &cur); err != nil {
		t.Fatalf("prlimit(%d, RLIMIT_FSIZE): %v", pid, err)
	}
	next := unix.Rlimit{Cur: min(limit, cur.Max), Max: cur.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &next, nil); err != nil {
		t.Fatalf("prlimit(%d, RLIMIT_FSIZE, %d): %v", pid, limit, err)
	}
}

// TestWriteLimitRefusesWithAR207 makes the daemon's writes to its bbolt file
// fail, the way a full or broken disk makes them fail: RLIMIT_FSIZE on the
// running process far below the file's size (bbolt pre-grows its file, so a
// limit at the current size would only stop growth that never comes; Go
// ignores SIGXFSZ unless notified, so write returns EFBIG). Promise 1: no
// message gets AA while writes fail, each gets AR/207; once the limit is
// lifted the resends get AA, and after a restart every AA'd message is in
// the store exactly once.
func TestWriteLimitRefusesWithAR207(t *testing.T) {
	d := newDaemon(t, plainBin, "pas")
	d.writeConfig(fmt.Sprintf(`storage: {min_free_bytes: 1048576}
listeners:
  - name: pas
    listen: %q
    dedupe_window: 1h
`, d.addrs["pas"]))
	d.start()
	addr := d.addrs["pas"]
	send := func(ctrl string) ack {
		t.Helper()
		a, err := sendOnce(addr, adt("DISK", ctrl), 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v, want a reply", ctrl, err)
		}
		if a.Ctrl != ctrl {
			t.Fatalf("%s: reply for %q", ctrl, a.Ctrl)
		}
		return a
	}
	for i := range 20 {
		if a := send(fmt.Sprintf("BEFORE-%d", i)); a.Code != "AA" {
			t.Fatalf("before the limit: %v, want AA", a)
		}
	}
	fi, err := os.Stat(filepath.Join(d.dataDir, "mllpd.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Two pages: bbolt's meta pages stay writable, every data page is not.
	const limit = 8192
	if fi.Size() <= limit {
		t.Fatalf("store file is only %d bytes; the limit would not bite", fi.Size())
	}
	setFsizeLimit(t, d.pid(), limit)

	refused := []string{"LIMITED-1", "LIMITED-2", "LIMITED-3", "LIMITED-4", "LIMITED-5"}
	for _, ctrl := range refused {
		if a := send(ctrl); a.Code != "AR" || a.ErrCode != "207" {
			t.Errorf("%s while writes fail (RLIMIT_FSIZE %d, file %d bytes): reply %v, want AR/207", ctrl, limit, fi.Size(), a)
		}
	}
	// The refusals must come from the write limit (EFBIG), not from elsewhere.
	d.waitLog("file too large", 5*time.Second)
	// Input refused for its content still gets its NAK when the rejected log
	// cannot be written; the lost rejected entry is counted.
	drops0, _ := d.metric("mllpd_store_rejected_log_failures_total")
	if a, err := sendOnce(addr, []byte("PID|1||NOMSH^^^E2E^MR\r"), 10*time.Second); err != nil || a.Code != "AE" || a.ErrCode != "100" {
		t.Errorf("frame without MSH while writes fail: %v %v, want AE/100", a, err)
	}
	if drops, _ := d.metric("mllpd_store_rejected_log_failures_total"); drops != drops0+1 {
		t.Errorf("rejected_log_failures_total went from %v to %v, want +1 (the rejected log could not be written)", drops0, drops)
	}
	if code, body, err := d.get("/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz while writes fail: %d %q %v, want the daemon alive", code, body, err)
	}

	setFsizeLimit(t, d.pid(), unix.RLIM_INFINITY)
	for _, ctrl := range refused {
		if a := send(ctrl); a.Code != "AA" {
			t.Errorf("%s resent after the limit was lifted: reply %v, want AA", ctrl, a)
		}
	}
	if a := send("AFTER-1"); a.Code != "AA" {
		t.Errorf("after the limit was lifted: %v, want AA", a)
	}

	// A crash now must not lose any of it; restart without any limit.
	d.kill()
	d.start()
	if a := send("AFTER-RESTART"); a.Code != "AA" {
		t.Errorf("after restart: %v, want AA", a)
	}
	d.stop()
	stored := storedByControlID(t, d.openStore())
	want := append(append([]string{"AFTER-1", "AFTER-RESTART"}, refused...), "BEFORE-0", "BEFORE-19")
	for _, ctrl := range want {
		if n := len(stored[ctrl]); n != 1 {
			t.Errorf("%s stored %d times, want exactly once", ctrl, n)
		}
	}
}

// TestFreeSpaceGuard sets storage.min_free_bytes above the disk's free space,
// as an admin would see it on a nearly full disk. Promise 6: listeners answer
// AR/206 and /readyz fails (503) while /healthz stays up; with a sane value
// (applied by a restart: min_free_bytes is read when the store opens, see the
// report) the same resend gets AA and /readyz is 200.
func TestFreeSpaceGuard(t *testing.T) {
	d := newDaemon(t, plainBin, "pas")
	cfg := func(minFree uint64) string {
		return fmt.Sprintf(`storage: {min_free_bytes: %d}
listeners:
  - name: pas
    listen: %q
    dedupe_window: 1h
`, minFree, d.addrs["pas"])
	}
	d.writeConfig(cfg(1 << 62)) // 4 EiB: more than any disk has free
	d.start()
	addr := d.addrs["pas"]

	code, body, err := d.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz below min_free_bytes: %d %q %v, want 503", code, body, err)
	}
	for _, ctrl := range []string{"FULL-1", "FULL-2"} {
		a, err := sendOnce(addr, adt("SPACE", ctrl), 10*time.Second)
		if err != nil {
			t.Fatalf("%s below min_free_bytes: %v, want an AR/206 reply", ctrl, err)
		}
		if a.Code != "AR" || a.ErrCode != "206" || a.Ctrl != ctrl {
			t.Errorf("%s below min_free_bytes: reply %v, want AR/206", ctrl, a)
		}
	}
	if n, _ := d.metric("mllpd_ingest_rejected_total", `reason="low_disk_space"`); n < 2 {
		t.Errorf("mllpd_ingest_rejected_total{reason=low_disk_space} = %v, want >= 2", n)
	}

	d.writeConfig(cfg(1 << 20))
	d.stop()
	d.start()
	pollUntil(t, 10*time.Second, "/readyz 200 with a sane min_free_bytes", func() bool {
		code, _, err := d.get("/readyz")
		return err == nil && code == http.StatusOK
	})
	for _, ctrl := range []string{"FULL-1", "FULL-2"} {
		a, err := sendOnce(addr, adt("SPACE", ctrl), 10*time.Second)
		if err != nil || a.Code != "AA" {
			t.Errorf("%s resent with space available: %v %v, want AA", ctrl, a, err)
		}
	}
	d.stop()
	st := d.openStore()
	stored := storedByControlID(t, st)
	for _, ctrl := range []string{"FULL-1", "FULL-2"} {
		if n := len(stored[ctrl]); n != 1 {
			t.Errorf("%s stored %d times, want once", ctrl, n)
		}
	}
	// Promise 2: refusals by the free-space guard are counted, not logged
	// with their bytes.
	if rej, err := st.ListRejected(0, 100); err != nil || len(rej) != 0 {
		t.Errorf("rejected log holds %d entries (%v) after free-space refusals, want none", len(rej), err)
	}
}
