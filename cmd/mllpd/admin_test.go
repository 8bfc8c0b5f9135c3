package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/relay"
	"github.com/mllpd/mllpd/store"
)

// cliResult is one run of the mllpd binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the mllpd binary with args and returns its output and exit
// status; it fails the test after 60 s.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, serveBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("mllpd %v: %v", args, err)
	}
	return r
}

// expect checks a run's exit status and that its stdout (out) and stderr
// (errs) hold the given strings.
func (r cliResult) expect(t *testing.T, what string, code int, out, errs []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
		return
	}
	for _, s := range out {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("%s: stdout lacks %q:\n%s", what, s, r.stdout)
		}
	}
	for _, s := range errs {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("%s: stderr lacks %q:\n%s", what, s, r.stderr)
		}
	}
}

// sentADT is what sendAA sends for controlID.
func sentADT(controlID string) string {
	return "MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01^ADT_A01|" + controlID + "|P|2.5.1\rPID|1||55\r"
}

// sendRaw sends one frame and returns the reply without checking it.
func sendRaw(t *testing.T, addr, frame string) string {
	t.Helper()
	c := &mllp.Client{Addr: addr, AckTimeout: 10 * time.Second, Check: func(sent, reply []byte) error { return nil }}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := c.Send(ctx, []byte(frame))
	if err != nil {
		t.Fatal(err)
	}
	return string(reply)
}

func adminConfig(dataDir, admin, listen, labDir, epic string) string {
	return fmt.Sprintf(`data_dir: %s
log: {level: info, format: json}
admin: {listen: %q}
listeners:
  - name: pas
    listen: %q
destinations:
  - {name: lab, type: file, dir: %q}
  - {name: epic, type: mllp, address: %q, retry: {initial: 1h, max: 1h}}
routes:
  - name: adt
    match: {message_type: ["ADT^A01"]}
    to: [{destination: lab}, {destination: epic}]
`, dataDir, admin, listen, labDir, epic)
}

// TestAdminCLI runs the admin commands against a running `mllpd serve`
// (through its API), then against its stopped data directory (offline).
func TestAdminCLI(t *testing.T) {
	dir := t.TempDir()
	listen, admin, epic := freePort(t), freePort(t), freePort(t) // epic: nothing listens, deliveries keep failing
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "mllpd.yaml")
	writeConfig(t, cfg, adminConfig(dataDir, admin, listen, filepath.Join(dir, "lab"), epic))
	p := startServe(t, cfg)
	p.waitLog(t, "mllpd started")
	sendAA(t, listen, "C1")
	sendAA(t, listen, "C2")
	if r := sendRaw(t, listen, "garbage\r"); !strings.Contains(r, "MSA|AE") {
		t.Fatalf("garbage got %q, want AE", r)
	}
	c := func(args ...string) cliResult { return runCLI(t, append(args, "--config", cfg)...) }

	c("messages", "list").expect(t, "list", 0,
		[]string{"SEQ", "RECEIVED", "DELIVERY", "C1", "C2", "ADT^A01", "LAB/RXH", "lab:", "epic:pending"}, nil)
	if r := c("messages", "list", "--control-id", "C2"); strings.Contains(r.stdout, "C1") || !strings.Contains(r.stdout, "C2") {
		t.Errorf("list --control-id C2:\n%s", r.stdout)
	}
	if r := c("messages", "list", "--limit", "1"); !strings.Contains(r.stderr, "--after 1") || strings.Contains(r.stdout, "C2") {
		t.Errorf("list --limit 1: stdout\n%s\nstderr\n%s", r.stdout, r.stderr)
	}
	r := c("messages", "show", "1")
	r.expect(t, "show", 0, []string{"Control ID:", "C1", "Fields:", "PID-3", "Deliveries:", "lab (route adt)", "epic (route adt): pending", "Last error:"}, nil)
	if !regexp.MustCompile(`(?m)^MSH-10\s+C1$`).MatchString(r.stdout) {
		t.Errorf("show: no MSH-10 line:\n%s", r.stdout)
	}
	if r := c("messages", "show", "1", "--raw"); r.code != 0 || r.stdout != sentADT("C1") {
		t.Errorf("show --raw = %q (exit %d), want the exact bytes", r.stdout, r.code)
	}
	var detail relay.MessageDetail
	if r := c("messages", "show", "1", "--json"); json.Unmarshal([]byte(r.stdout), &detail) != nil || string(detail.Raw) != sentADT("C1") || detail.Seq != 1 {
		t.Errorf("show --json = %s (exit %d)", r.stdout, r.code)
	}
	c("messages", "show", "99").expect(t, "show unknown", 1, nil, []string{"no message with seq 99"})
	c("messages", "show", "abc").expect(t, "show abc", 2, nil, []string{"not a message sequence number"})
	c("messages", "list", "--since", "yesterday").expect(t, "bad --since", 2, nil, []string{"RFC 3339"})
	c("messages", "list", "--state", "lost").expect(t, "bad --state", 2, nil, []string{"unknown state"})
	c("messages", "resend", "1", "--to", "epx").expect(t, "resend to epx", 1, nil,
		[]string{`unknown destination "epx"; mllpd destinations list shows the configured ones`})
	c("messages", "resend", "1").expect(t, "resend without --to", 2, nil, []string{"--to"})
	c("messages", "resend", "1", "--to", "lab").expect(t, "resend", 0, []string{"queued 1 message for lab", "seq 1", "route adt"}, nil)
	c("messages", "resend", "--since", "-1h", "--type", "ADT", "--to", "epic").expect(t, "backfill", 0,
		[]string{"queued 0 messages for epic", "skipped seq 1: already queued", "skipped seq 2"}, nil)

	c("rejected", "list").expect(t, "rejected list", 0, []string{"REASON", "no_msh"}, nil)
	c("rejected", "show", "1").expect(t, "rejected show", 0, []string{"Reason:", "no_msh", "SHA-256:", "garbage"}, nil)
	if r := c("rejected", "show", "1", "--raw"); r.stdout != "garbage\r" {
		t.Errorf("rejected show --raw = %q", r.stdout)
	}
	c("destinations", "list").expect(t, "destinations", 0, []string{"NAME", "lab", "epic", epic, "seq 1"}, nil)
	c("destinations", "skip", "epic").expect(t, "skip unblocked", 1, nil, []string{"not blocked"})
	c("destinations", "unblock", "nope").expect(t, "unblock unknown", 1, nil, []string{`unknown destination "nope"`})
	c("dead-letters", "list").expect(t, "dead letters", 0, []string{"DESTINATION"}, nil)
	c("dead-letters", "purge").expect(t, "purge without age", 2, nil, []string{"--older-than"})

	online := filepath.Join(dir, "online.db")
	c("backup", online).expect(t, "backup online", 0, []string{"streamed by the running daemon"}, nil)
	assertStoreHas(t, online, []string{"C1", "C2"})
	c("backup", online).expect(t, "backup over a file", 2, nil, []string{"--force"})
	piped := c("backup", "-")
	piped.expect(t, "backup to stdout", 0, nil, []string{"to stdout"})
	if err := os.WriteFile(filepath.Join(dir, "piped.db"), []byte(piped.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	assertStoreHas(t, filepath.Join(dir, "piped.db"), []string{"C1", "C2"})
	c("compact").expect(t, "compact online", 1, nil, []string{"mllpd is running", "stop it first"})

	// The daemon's admin.listen and token, another data_dir: a note says so.
	mis := filepath.Join(dir, "mismatch.yaml")
	body := adminConfig(filepath.Join(dir, "elsewhere"), admin, freePort(t), filepath.Join(dir, "lab"), epic)
	body = strings.Replace(body, fmt.Sprintf("admin: {listen: %q}", admin),
		fmt.Sprintf("admin: {listen: %q, token_file: %q}", admin, filepath.Join(dataDir, "admin.token")), 1)
	writeConfig(t, mis, body)
	runCLI(t, "messages", "list", "--config", mis).expect(t, "other data_dir", 0, []string{"C1"},
		[]string{"note: the mllpd at " + admin + " serves " + filepath.Join(dataDir, "mllpd.db")})
	if r := c("messages", "list"); strings.Contains(r.stderr, "note:") {
		t.Errorf("a note for the daemon's own config: %s", r.stderr)
	}

	// Same data_dir, an admin.listen where nothing answers: the lock is named.
	other := filepath.Join(dir, "other.yaml")
	otherAdmin := freePort(t)
	writeConfig(t, other, adminConfig(dataDir, otherAdmin, freePort(t), filepath.Join(dir, "lab"), epic))
	runCLI(t, "messages", "list", "--config", other).expect(t, "locked", 1, nil,
		[]string{"the store is locked by a running mllpd whose admin API at " + otherAdmin + " does not answer; check admin.listen"})
	writeConfig(t, other, adminConfig(dataDir, "127.0.0.1:0", freePort(t), filepath.Join(dir, "lab"), epic))
	runCLI(t, "compact", "--config", other).expect(t, "locked, port 0", 1, nil, []string{"locked", "give admin.listen a fixed port"})

	stopServe(t, p)

	// Offline: the same answers from the file.
	c("messages", "list").expect(t, "offline list", 0, []string{"C1", "C2"}, nil)
	if r := c("messages", "show", "2", "--raw"); r.stdout != sentADT("C2") {
		t.Errorf("offline show --raw = %q", r.stdout)
	}
	c("messages", "resend", "2", "--to", "lab").expect(t, "offline resend", 0,
		[]string{"queued 1 message for lab", "delivered when it starts"}, nil)
	c("destinations", "list").expect(t, "offline destinations", 0, []string{"epic"}, nil)
	c("rejected", "show", "1").expect(t, "offline rejected", 0, []string{"no_msh"}, nil)

	// Block epic as a permanent failure would, then work its queue offline.
	st, err := store.Open(store.Options{Path: filepath.Join(dataDir, "mllpd.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetBlocked(context.Background(), "epic", "downstream AR"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	c("destinations", "list").expect(t, "blocked", 0, []string{"blocked: downstream AR"}, nil)
	c("destinations", "skip", "epic").expect(t, "skip", 0, []string{"skipped seq 1 of epic to its dead letters; queue unblocked, 1 message queued"}, nil)
	c("dead-letters", "list", "--destination", "epic").expect(t, "dead letters", 0, []string{"epic", "skipped by admin"}, nil)
	c("dead-letters", "show", "1", "--destination", "epic").expect(t, "dead letter show", 0,
		[]string{"Dead letter 1 of epic: skipped by admin", "Control ID:", "C1", "epic (route adt): dead"}, nil)
	c("dead-letters", "show", "1").expect(t, "dead letter show without destination", 2, nil, []string{"--destination"})
	c("dead-letters", "resend", "--destination", "epic").expect(t, "resend nothing", 2, nil, []string{"--all"})
	c("dead-letters", "resend", "--destination", "epic", "--all").expect(t, "dead letter resend", 0, []string{"queued 1 message for epic", "seq 1"}, nil)
	c("dead-letters", "list", "--destination", "epic").expect(t, "dead letters after resend", 0, nil, nil)
	if r := c("dead-letters", "list", "--destination", "epic"); strings.Contains(r.stdout, "skipped by admin") {
		t.Errorf("resent dead letter still listed:\n%s", r.stdout)
	}
	c("dead-letters", "purge", "--older-than", "now").expect(t, "purge", 0, []string{"purged 0 dead letters of every destination"}, nil)
	c("destinations", "unblock", "epic").expect(t, "unblock", 0, []string{"epic unblocked; 2 messages queued"}, nil)

	offline := filepath.Join(dir, "offline.db")
	c("backup", offline).expect(t, "backup offline", 0, []string{"from the stopped store"}, nil)
	assertStoreHas(t, offline, []string{"C1", "C2"})
	c("compact").expect(t, "compact offline", 0, []string{"compacted"}, nil)
	if _, err := os.Stat(filepath.Join(dataDir, "mllpd.db.bak")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mllpd.db.bak left after a successful compact: %v", err)
	}
	c("messages", "list").expect(t, "list after compact", 0, []string{"C1", "C2"}, nil)

	// A config whose data_dir holds no store.
	empty := filepath.Join(dir, "empty.yaml")
	writeConfig(t, empty, adminConfig(filepath.Join(dir, "nothing"), freePort(t), freePort(t), filepath.Join(dir, "lab"), epic))
	runCLI(t, "messages", "list", "--config", empty).expect(t, "no store", 1, nil, []string{"there is no store at"})
}

func stopServe(t *testing.T, p *daemonProc) {
	t.Helper()
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
}

// assertStoreHas opens path as a store and compares its control IDs.
func assertStoreHas(t *testing.T, path string, want []string) {
	t.Helper()
	st, err := store.Open(store.Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	recs, err := st.Query(store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ControlID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: control IDs (-want +got):\n%s", path, diff)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2024, 1, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-01-30T10:00:00Z", time.Date(2024, 1, 30, 10, 0, 0, 0, time.UTC), true},
		{"2024-01-30T11:00:00+01:00", time.Date(2024, 1, 30, 10, 0, 0, 0, time.UTC), true},
		{"2024-01-30", time.Date(2024, 1, 30, 0, 0, 0, 0, time.Local), true},
		{"2024-01-30T08:15:00", time.Date(2024, 1, 30, 8, 15, 0, 0, time.Local), true},
		{"now", now, true},
		{"-2h", now.Add(-2 * time.Hour), true},
		{"-90m", now.Add(-90 * time.Minute), true},
		{"-7d", now.Add(-7 * 24 * time.Hour), true},
		{"-1d12h", now.Add(-36 * time.Hour), true},
		{"-", time.Time{}, false},
		{"-0h", time.Time{}, false},
		{"-1d-2h", time.Time{}, false},
		{"--2h", time.Time{}, false},
		{"2h", time.Time{}, false}, // ambiguous: a time is asked for
		{"yesterday", time.Time{}, false},
		{"2024-13-01", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in, now)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseAge(t *testing.T) {
	now := time.Date(2024, 1, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"30d", now.Add(-30 * 24 * time.Hour), true},
		{"72h", now.Add(-72 * time.Hour), true},
		{"now", now, true},
		{"-1h", now.Add(-time.Hour), true},
		{"2024-01-01T00:00:00Z", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"0h", time.Time{}, false},
		{"soon", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseAge(tt.in, now)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("parseAge(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"DOE^JOHN", "DOE^JOHN"},
		{"Müller", "Müller"},
		{"\x1b[31mred", `\x1B[31mred`},
		{"a\x00b\tc\r", `a\x00b\x09c\x0D`},
		{"caf\xe9", `caf\xE9`},     // Latin-1 byte, not UTF-8
		{"\u009b2J", `\xC2\x9B2J`}, // C1 CSI
	}
	for _, tt := range tests {
		if got := clean(tt.in); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2024-01-30T10:00:00Z", "2024-01-30", "now", "-2h", "-7d", "-1d12h", "30d", "-", "-9999999d", "-1d-2h"} {
		f.Add(s)
	}
	now := time.Date(2024, 1, 31, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s, now)
		if err != nil {
			if !strings.Contains(err.Error(), "time") {
				t.Errorf("parseTime(%q) error does not say what is expected: %v", s, err)
			}
			return
		}
		if strings.HasPrefix(strings.TrimSpace(s), "-") && !got.Before(now) {
			t.Errorf("parseTime(%q) = %v: a relative time must lie in the past", s, got)
		}
		// A time parseTime reads, parseAge reads the same way (durations aside).
		if _, derr := parseDays(strings.TrimSpace(s)); derr != nil {
			if age, err := parseAge(s, now); err != nil || !age.Equal(got) {
				t.Errorf("parseAge(%q) = %v, %v; parseTime gave %v", s, age, err, got)
			}
		}
	})
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"DOE^JOHN", "Müller", "\x1b[31m", "caf\xe9", "\u009b2J", "\\x41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := clean(s)
		if !utf8.ValidString(got) {
			t.Fatalf("clean(%q) = %q is not UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("clean(%q) = %q keeps control character %U", s, got, r)
			}
		}
		if again := clean(got); again != got {
			t.Fatalf("clean is not idempotent: %q -> %q -> %q", s, got, again)
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) && got != s {
			t.Fatalf("clean changed printable text %q to %q", s, got)
		}
	})
}

// Usage errors exit 2 before any config is read or store opened.
func TestAdminUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"messages", "bogus"}, `unknown command "bogus"`},
		{[]string{"messages", "show"}, "usage: mllpd messages show SEQ"},
		{[]string{"messages", "show", "0"}, "positive number"},
		{[]string{"messages", "list", "extra"}, "takes no arguments"},
		{[]string{"messages", "list", "--limit", "-1"}, "--limit"},
		{[]string{"messages", "list", "--until", "-2h", "--since", "-1h"}, "must be after"},
		{[]string{"messages", "resend", "--to", "lab"}, "--since"},
		{[]string{"messages", "resend", "1", "--to", "lab", "--since", "-1h"}, "not both"},
		{[]string{"rejected", "show", "x"}, "not a rejected-input id"},
		{[]string{"dead-letters", "list", "--after", "3"}, "--destination"},
		{[]string{"dead-letters", "purge", "--older-than", "soon"}, "--older-than"},
		{[]string{"dead-letters", "resend", "--destination", "lab", "1", "--all"}, "not both"},
		{[]string{"destinations", "skip"}, "usage: mllpd destinations skip NAME"},
		{[]string{"backup"}, "usage: mllpd backup FILE"},
		{[]string{"compact", "now"}, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			runCLI(t, append(tt.args, "--config", filepath.Join(t.TempDir(), "absent.yaml"))...).expect(t, "usage", 2, nil, []string{tt.want})
		})
	}
}
