package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashEnv makes the test binary a crash-test child: it appends to the store
// at that path until killed, printing "seq writer n" after each Append returned.
const crashEnv = "MLLPD_STORE_CRASH_CHILD"

// crashRaw is the message the child writes as writer w's n-th; the parent
// derives the same bytes to compare.
func crashRaw(w, n int) []byte {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", w, n)))
	size := 200 + int(h[0])*8 // 200..2240 bytes: some messages span pages
	raw := make([]byte, 0, size)
	raw = fmt.Appendf(raw, "MSH|^~\\&|CRASH|T|||20261127||ADT^A01|%d-%d|P|2.5\r", w, n)
	for len(raw) < size {
		raw = append(raw, h[len(raw)%32]|0x40)
	}
	return raw
}

// crashChildMain runs the child when crashEnv is set and reports whether it did.
func crashChildMain() bool {
	path := os.Getenv(crashEnv)
	if path == "" {
		return false
	}
	s, err := Open(Options{Path: path, LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	// Each round starts its own numbers, so that it does not resend (and
	// dedupe against) the messages of earlier rounds.
	base, _ := strconv.Atoi(os.Getenv(crashEnv + "_ROUND"))
	base *= 1 << 20
	var mu sync.Mutex
	out := bufio.NewWriterSize(os.Stdout, 64)
	fmt.Fprintln(os.Stdout, "ready")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := base; ; n++ {
				raw := crashRaw(w, n)
				m := Message{Raw: raw, Received: time.Now(), ControlID: fmt.Sprintf("%d-%d", w, n),
					SendingApp: "CRASH", SendingFacility: "T", ContentHash: sha256.Sum256(raw),
					DedupeWindow: time.Hour, Targets: []Target{{"epic", "r"}}}
				msgs := []Message{m}
				if n%5 == 0 { // now and then a second copy in the same call
					msgs = append(msgs, m)
				}
				res, err := s.Append(context.Background(), msgs)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(4)
				}
				mu.Lock()
				// One write(2) per line: a kill leaves at most a partial last line.
				fmt.Fprintf(out, "%d %d %d\n", res[0].Seq, w, n)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return true
}

// TestCrashKeepsAcknowledgedAppends kills a child that appends under
// concurrency at random moments (SIGKILL, several rounds on the same file) and
// checks that every append it saw succeed is in the file, byte for byte.
func TestCrashKeepsAcknowledgedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	deadline := time.Now().Add(12 * time.Second)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := map[uint64][2]int{}
	rounds := 0
	for rounds < 8 && time.Now().Before(deadline) {
		rounds++
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, fmt.Sprintf("%s_ROUND=%d", crashEnv, rounds))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Wait until the child appends, then kill it after a random number of
		// acknowledged appends: a moment somewhere inside its commits.
		killAfter := 20 + rng.IntN(400)
		var got []string
		killed := false
		for l := range lines {
			got = append(got, l)
			if !killed && len(got) > killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child ended on its own after %d lines: %s", rounds, len(got), stderr.String())
		}
		for _, l := range got[1:] { // got[0] is "ready"
			f := strings.Fields(l)
			if len(f) != 3 {
				continue // a line cut by the kill
			}
			seq, _ := strconv.ParseUint(f[0], 10, 64)
			w, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			acked[seq] = [2]int{w, n}
		}
		t.Logf("round %d: killed after %d lines (target %d)", rounds, len(got), killAfter)
		verifyCrashFile(t, path, acked)
		if t.Failed() {
			t.Fatalf("round %d failed; child stderr: %s", rounds, stderr.String())
		}
	}
	t.Logf("%d rounds, %d acknowledged appends checked", rounds, len(acked))
	if len(acked) == 0 {
		t.Fatal("no appends acknowledged")
	}
}

func verifyCrashFile(t *testing.T, path string, acked map[uint64][2]int) {
	t.Helper()
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer closeChecked(t, s)
	for seq, wn := range acked {
		rec, err := s.Get(seq)
		if err != nil {
			t.Errorf("acknowledged seq %d (writer %d #%d): %v", seq, wn[0], wn[1], err)
			continue
		}
		if want := crashRaw(wn[0], wn[1]); !bytes.Equal(rec.Raw, want) {
			t.Errorf("seq %d: raw bytes differ from writer %d #%d's", seq, wn[0], wn[1])
		}
	}
	// The persisted pending count agrees with the queue (same transactions).
	n, _, err := s.PendingCount("epic")
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for after := uint64(0); ; {
		page, err := s.Pending("epic", after, MaxPageSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		count += len(page)
		after = page[len(page)-1].ID
	}
	if n != count {
		t.Errorf("PendingCount %d, queue holds %d", n, count)
	}
}
