//go:build unix

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignals runs the real process (this test binary, with main as its entry point) in
// --listen mode, sends it a message and stops it with SIGINT or SIGTERM.
func TestSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--out", out)
			cmd.Env = append(os.Environ(), "HL7SEND_RUN_MAIN=1")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			lines := bufio.NewScanner(stderr)
			var addr string
			for addr == "" && lines.Scan() {
				if _, rest, ok := strings.Cut(lines.Text(), "listening on "); ok {
					addr, _, _ = strings.Cut(rest, " ")
				}
			}
			if addr == "" {
				t.Fatalf("no address announced: %v", lines.Err())
			}
			dir := writeFiles(t, map[string]string{"a.hl7": msgA})
			if r := hl7send(t, "", "--addr", addr, dir); r.code != exitOK {
				t.Fatalf("send: %v", r)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var rest strings.Builder
			for lines.Scan() {
				rest.WriteString(lines.Text() + "\n")
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("exit after %v: %v\n%s", sig, err, rest.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("still running 30s after %v", sig)
			}
			if !strings.Contains(rest.String(), "stopped after 1 message\n") {
				t.Errorf("stderr after %v = %q, want the stop line", sig, rest.String())
			}
			if _, err := os.Stat(filepath.Join(out, "000001-A1.hl7")); err != nil {
				t.Errorf("message not kept: %v", err)
			}
		})
	}
}
