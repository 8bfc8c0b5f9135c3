package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mllpd/mllpd/mllp"
)

var (
	serveBinOnce sync.Once
	serveBinPath string
	serveBinErr  error
)

// serveBinary builds cmd/mllpd once per test run.
func serveBinary(t *testing.T) string {
	t.Helper()
	serveBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mllpd-bin-")
		if err != nil {
			serveBinErr = err
			return
		}
		serveBinPath = filepath.Join(dir, "mllpd")
		out, err := exec.Command("go", "build", "-o", serveBinPath, ".").CombinedOutput()
		if err != nil {
			serveBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if serveBinErr != nil {
		t.Fatal(serveBinErr)
	}
	return serveBinPath
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemonProc is `mllpd serve` running as a subprocess, its log collected.
type daemonProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

func startServe(t *testing.T, cfgPath string) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: exec.Command(serveBinary(t), "serve", "--config", cfgPath), done: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.logText())
		}
	})
	return p
}

func (p *daemonProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits until the daemon's log contains s.
func (p *daemonProc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.logText(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon log never said %q", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendAA sends one message to addr and requires an AA for it.
func sendAA(t *testing.T, addr, controlID string) {
	t.Helper()
	c := &mllp.Client{Addr: addr, AckTimeout: 10 * time.Second}
	defer c.Close()
	msg := "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01^ADT_A01|" + controlID + "|P|2.5.1\rPID|1||55\r"
	var reply []byte
	var err error
	for i := 0; i < 100; i++ { // the listener may still be binding
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reply, err = c.Send(ctx, []byte(msg))
		cancel()
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("send %s to %s: %v", controlID, addr, err)
	}
	if !bytes.Contains(reply, []byte("MSA|AA|"+controlID)) {
		t.Fatalf("reply to %s = %q, want AA", controlID, reply)
	}
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeReloadAndShutdown runs the real binary: a SIGHUP with an invalid
// file is refused and the old config keeps serving; a valid one adds a
// listener without touching the first; SIGTERM exits cleanly.
func TestServeReloadAndShutdown(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mllpd.yaml")
	first, second, admin := freePort(t), freePort(t), freePort(t)
	base := fmt.Sprintf("data_dir: %s\nlog: {level: info, format: json}\nadmin: {listen: %q}\nlisteners:\n  - name: pas\n    listen: %q\n",
		filepath.Join(dir, "data"), admin, first)
	writeConfig(t, cfgPath, base)
	p := startServe(t, cfgPath)
	p.waitLog(t, "mllpd started")
	sendAA(t, first, "R1")

	writeConfig(t, cfgPath, base+"    ack_mode: sometimes\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reload refused")
	if !strings.Contains(p.logText(), "listeners[0].ack_mode") {
		t.Errorf("the refusal does not name the bad key:\n%s", p.logText())
	}
	sendAA(t, first, "R2")

	writeConfig(t, cfgPath, base+fmt.Sprintf("  - name: lab\n    listen: %q\n", second))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded")
	sendAA(t, second, "R3")
	sendAA(t, first, "R4")

	writeConfig(t, cfgPath, strings.Replace(base, "data_dir: ", "data_dir: /elsewhere", 1))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "data_dir cannot change while running")
	sendAA(t, first, "R5")

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("mllpd exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mllpd did not exit after SIGTERM")
	}
	if !strings.Contains(p.logText(), `"stopped"`) {
		t.Errorf("no clean stop in the log")
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeConfig(t, good, "data_dir: "+dir+"\nlisteners:\n  - name: pas\n    listen: \"127.0.0.1:2575\"\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeConfig(t, bad, "data_dir: "+dir+"\nlisteners:\n  - name: pas\n    listen: \"0.0.0.0:99999\"\n    ack_timout: 3s\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"valid", []string{"check-config", good}, 0, []string{"ok", "1 listener"}},
		{"invalid", []string{"check-config", bad}, 1, []string{"listeners[0].listen", "port out of range", "listeners[0].ack_timout"}},
		{"missing file", []string{"check-config", filepath.Join(dir, "nope.yaml")}, 2, []string{"nope.yaml"}},
		{"no argument", []string{"check-config"}, 2, []string{"FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(serveBinary(t), tt.args...).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			for _, s := range tt.contains {
				if !strings.Contains(string(out), s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}
