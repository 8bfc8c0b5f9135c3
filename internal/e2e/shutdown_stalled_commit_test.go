package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestShutdownTimeoutWithStalledCommit: SIGTERM while a commit hangs (a dead
// disk or NFS fsync). shutdown_timeout (10s here) is the longest wait; the
// stalled message never got an ACK, so exiting loses nothing. Today
// Daemon.Shutdown -> store.Close -> groupCommit.close waits for the stalled
// leader without a bound: the process runs until a second signal.
func TestShutdownTimeoutWithStalledCommit(t *testing.T) {
	fd := newFaultDaemon(t)
	fd.start()
	fd.setFault("stall")
	if _, err := sendOnce(fd.addrs["pas"], adt("P", "P-1"), 5*time.Second); !isClosedWithoutReply(err) {
		t.Fatalf("send during the stall: %v, want closed without reply", err)
	}
	termWithin(t, fd, 15*time.Second, "a commit is stalled")
	fd.setFault("")
}

// TestShutdownTimeoutWithStalledBackgroundWrite: the commit stalls from the
// start, so the retention pass that runs at startup hangs in it, with no
// sender involved. shutdown_timeout must bound the wait for that
// background pass as it does the store's close.
func TestShutdownTimeoutWithStalledBackgroundWrite(t *testing.T) {
	fd := newFaultDaemon(t)
	fd.setFault("stall")
	fd.start()
	time.Sleep(500 * time.Millisecond) // the startup retention pass reaches its commit
	termWithin(t, fd, 15*time.Second, "a background write is stalled")
	fd.setFault("")
}

// termWithin sends SIGTERM and expects the daemon, whose shutdown_timeout
// is 10s, to have exited within d.
func termWithin(t *testing.T, fd *faultDaemon, d time.Duration, why string) {
	t.Helper()
	fd.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-fd.proc.done:
	case <-time.After(d):
		t.Errorf("mllpd still running %v after SIGTERM with shutdown_timeout 10s (%s)", d, why)
	}
}
