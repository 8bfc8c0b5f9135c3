package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The daemon binaries TestMain builds: plain (what ships) and with the
// faultinject tag (honours MLLPD_FAULT_FILE).
var (
	plainBin string
	faultBin string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Thousands of idle connections need descriptors on both ends; the daemon
	// inherits this limit.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	dir, err := os.MkdirTemp("", "mllpd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	plainBin = filepath.Join(dir, "mllpd")
	faultBin = filepath.Join(dir, "mllpd-faultinject")
	for _, b := range []struct {
		out  string
		args []string
	}{
		{plainBin, nil},
		{faultBin, []string{"-tags", "faultinject"}},
	} {
		args := append([]string{"build", "-o", b.out}, b.args...)
		args = append(args, "github.com/mllpd/mllpd/cmd/mllpd")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n%s", args, err, out)
			return 1
		}
	}
	return m.Run()
}
