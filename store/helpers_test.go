package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if crashChildMain() {
		return
	}
	goleak.VerifyTestMain(m)
}

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens a store in t.TempDir() and, at cleanup, runs bbolt's
// consistency check over the file before closing it.
func openTest(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "data", "mllpd.db")
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		closeChecked(t, s)
	})
	return s
}

func closeChecked(t testing.TB, s *Store) {
	t.Helper()
	if s.closed.Load() {
		return
	}
	if err := s.Check(); err != nil {
		t.Errorf("consistency check: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// reopen closes s (after a check) and opens the same file again.
func reopenTest(t testing.TB, s *Store, o Options) *Store {
	t.Helper()
	closeChecked(t, s)
	o.Path = s.Path()
	return openTest(t, o)
}

// msg builds a message whose raw bytes and content hash derive from ctrl and body.
func msg(app, fac, ctrl, body string, targets ...Target) Message {
	raw := []byte(fmt.Sprintf("MSH|^~\\&|%s|%s|||20261127120000||ADT^A01|%s|P|2.5\rPID|1||%s\r", app, fac, ctrl, body))
	return Message{
		Raw:             raw,
		Received:        time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Listener:        "pas",
		Peer:            "127.0.0.1:5000",
		Charset:         "UTF-8",
		ControlID:       ctrl,
		Type:            "ADT",
		Event:           "A01",
		SendingApp:      app,
		SendingFacility: fac,
		PatientID:       body,
		ContentHash:     sha256.Sum256([]byte(body)),
		DedupeWindow:    time.Hour,
		Targets:         targets,
	}
}

func mustAppend(t testing.TB, s *Store, msgs ...Message) []AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}
