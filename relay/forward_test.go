package relay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/store"
)

// receiver is a downstream MLLP system for tests: it records every frame and
// answers with the ACK code that answer returns (AA when answer is nil).
type receiver struct {
	addr string
	mu   sync.Mutex
	got  [][]byte
	more chan struct{}
}

func startReceiver(t *testing.T, answer func(n int, msg *hl7.Message) (hl7.AckCode, hl7.ErrorCode)) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: ln.Addr().String(), more: make(chan struct{}, 1)}
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(ctx context.Context, req *mllp.Request) ([]byte, error) {
		m, err := hl7.Parse(req.Frame)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.got = append(r.got, bytes.Clone(req.Frame))
		n := len(r.got)
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
		code, ec := hl7.AA, hl7.ErrorCode(0)
		if answer != nil {
			code, ec = answer(n, m)
		}
		o := hl7.AckOptions{Now: time.Now(), ControlID: fmt.Sprintf("D%d", n)}
		if ec != 0 {
			o.Text, o.Error = "downstream says no", &hl7.AckError{Code: ec}
		}
		return hl7.NewACK(m, code, o), nil
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// wait blocks until n frames have arrived, failing after 20 s.
func (r *receiver) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			out := slices.Clone(r.got)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("downstream got %d messages, want %d", len(r.got), n)
		}
	}
}

func adt(id, ward string) string {
	return "MSH|^~\\&|PAS|RXH|MLLPD|HUB|20240131120000||ADT^A01^ADT_A01|" + id + "|P|2.5.1\r" +
		"PID|1||9990000018^^^NHS^NH||TESTPATIENT^ALPHA\r" +
		"PV1|1|I|" + ward + "^BED1\r" +
		"ZPI|1|VIP^Y\r"
}

func TestForwardMappedInOrder(t *testing.T) {
	down := startReceiver(t, nil)
	td := startDaemon(t, oneListener+`destinations:
  - {name: epr, type: mllp, address: "`+down.addr+`", retry: {initial: 10ms, max: 50ms}}
  - {name: archive, type: file, dir: "{{dir}}/archive"}
routes:
  - name: adt-to-epr
    match: {message_type: ["ADT^A*"], where: {"PV1-2": "I"}}
    to:
      - destination: epr
        map:
          - {set: MSH-5, value: EPR}
          - {delete: ZPI}
          - {translate: PV1-3.1, table: wards, default: keep}
  - name: all-to-archive
    to: [{destination: archive}]
tables:
  wards: {W1: WARD-ONE, W2: WARD-TWO}
`)
	c := dial(t, td.addr(t, "pas"))
	const n = 30
	var sent []string
	for i := range n {
		m := adt(fmt.Sprintf("F%03d", i), []string{"W1", "W2", "W3"}[i%3])
		sent = append(sent, m)
		if r := c.roundTrip(m); segField(r, "MSA", 1) != "AA" {
			t.Fatalf("reply %q", r)
		}
	}
	got := down.wait(t, n)
	for i, g := range got[:n] {
		m, err := hl7.Parse(g)
		if err != nil {
			t.Fatal(err)
		}
		h := m.Header()
		if want := fmt.Sprintf("F%03d", i); h.ControlID != want {
			t.Fatalf("delivery %d is %s, want %s: order not kept", i, h.ControlID, want)
		}
		if h.ReceivingApp != "EPR" {
			t.Errorf("MSH-5 = %q, want EPR", h.ReceivingApp)
		}
		if bytes.Contains(g, []byte("ZPI")) {
			t.Errorf("ZPI not deleted")
		}
		ward := m.Get(hl7.MustParsePath("PV1-3.1"))
		if want := []string{"WARD-ONE", "WARD-TWO", "W3"}[i%3]; ward != want {
			t.Errorf("PV1-3.1 = %q, want %q", ward, want)
		}
	}
	// The archive got every message unmapped, byte for byte (they are CR-terminated).
	archive := filepath.Join(td.dir, "archive")
	waitFor(t, "archive files", func() bool {
		files, _ := filepath.Glob(filepath.Join(archive, "*.hl7"))
		return len(files) == n
	})
	files, _ := filepath.Glob(filepath.Join(archive, "*.hl7"))
	slices.Sort(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(sent, string(b)) {
			t.Errorf("%s is not byte for byte a sent message", filepath.Base(f))
		}
	}
	// Delivery records say delivered, with the downstream's ACK.
	waitFor(t, "delivery records", func() bool {
		recs, err := td.Store().Query(store.Filter{ControlID: "F000", Limit: 1})
		if err != nil || len(recs) != 1 {
			return false
		}
		rec, err := td.Store().Get(recs[0].Seq)
		if err != nil {
			return false
		}
		delivered := 0
		for _, dl := range rec.Deliveries {
			if dl.State == "delivered" {
				delivered++
			}
		}
		return delivered == 2
	})
	recs, _ := td.Store().Query(store.Filter{ControlID: "F000", Limit: 1})
	rec, _ := td.Store().Get(recs[0].Seq)
	for _, dl := range rec.Deliveries {
		if dl.Destination == "epr" && (dl.AckCode != "AA" || dl.Route != "adt-to-epr") {
			t.Errorf("epr delivery record = %+v", dl)
		}
	}
	if string(rec.Raw) != sent[0] {
		t.Errorf("the stored original was modified by the mapping")
	}
}

func TestForwardRetriesThenDelivers(t *testing.T) {
	// The downstream answers AR/207 (retriable) to the first three attempts,
	// AE (permanent) to message P2 once, then AA: P1 arrives after retries,
	// P2 goes to dead letters, P3 follows; order is kept.
	var mu sync.Mutex
	attempts := map[string]int{}
	down := startReceiver(t, func(n int, m *hl7.Message) (hl7.AckCode, hl7.ErrorCode) {
		mu.Lock()
		defer mu.Unlock()
		id := m.Header().ControlID
		attempts[id]++
		switch {
		case n <= 3:
			return hl7.AR, hl7.ErrCodeInternal
		case id == "P2":
			return hl7.AE, hl7.ErrCodeRequiredFieldMissing
		}
		return hl7.AA, 0
	})
	td := startDaemon(t, oneListener+`destinations:
  - {name: epr, type: mllp, address: "`+down.addr+`", retry: {initial: 5ms, max: 20ms}}
routes:
  - {name: all, to: [{destination: epr}]}
`)
	c := dial(t, td.addr(t, "pas"))
	for _, id := range []string{"P1", "P2", "P3"} {
		if r := c.roundTrip(adt(id, "W1")); segField(r, "MSA", 1) != "AA" {
			t.Fatalf("reply %q", r)
		}
	}
	got := down.wait(t, 6)
	var order []string
	for _, g := range got {
		m, _ := hl7.Parse(g)
		order = append(order, m.Header().ControlID)
	}
	if want := []string{"P1", "P1", "P1", "P1", "P2", "P3"}; !slices.Equal(order[:6], want) {
		t.Errorf("delivery attempts %v, want %v", order, want)
	}
	waitFor(t, "P2 dead-lettered", func() bool {
		dl, err := td.Store().DeadLetters("epr", 0, 10)
		return err == nil && len(dl) == 1
	})
	dl, _ := td.Store().DeadLetters("epr", 0, 10)
	rec, err := td.Store().Get(dl[0].Seq)
	if err != nil || rec.ControlID != "P2" {
		t.Fatalf("dead letter is %q (%v), want P2", rec.ControlID, err)
	}
}

func TestReloadRemovesDestination(t *testing.T) {
	// A destination that never answers holds its queue; removing it by
	// reload moves the pending entries to its dead letters.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	body := oneListener + `destinations:
  - {name: gone, type: mllp, address: "` + dead + `", retry: {initial: 1s, max: 1s}}
  - {name: archive, type: file, dir: "{{dir}}/archive"}
routes:
  - {name: all, to: [{destination: gone}, {destination: archive}]}
`
	td := startDaemon(t, body)
	c := dial(t, td.addr(t, "pas"))
	for _, id := range []string{"G1", "G2"} {
		if r := c.roundTrip(adt(id, "W1")); segField(r, "MSA", 1) != "AA" {
			t.Fatalf("reply %q", r)
		}
	}
	next := *td.Config()
	next.Destinations = slices.DeleteFunc(slices.Clone(next.Destinations), func(d config.Destination) bool { return d.Name == "gone" })
	next.Routes = slices.Clone(next.Routes)
	next.Routes[0].To = next.Routes[0].To[1:]
	if err := td.Reload(context.Background(), &next); err != nil {
		t.Fatal(err)
	}
	dl, err := td.Store().DeadLetters("gone", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 2 {
		t.Fatalf("dead letters of the removed destination: %d, want 2", len(dl))
	}
	for _, d := range dl {
		if d.Reason != reasonDestinationRemoved {
			t.Errorf("reason %q, want %q", d.Reason, reasonDestinationRemoved)
		}
	}
	if n, _, err := td.Store().PendingCount("gone"); err != nil || n != 0 {
		t.Errorf("pending after removal: %d (%v)", n, err)
	}
	// Messages accepted after the reload go only to archive.
	if r := c.roundTrip(adt("G3", "W1")); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("reply %q", r)
	}
	waitFor(t, "archive files", func() bool {
		files, _ := filepath.Glob(filepath.Join(td.dir, "archive", "*.hl7"))
		return len(files) == 3
	})
}

// TestThirdPartyReceiver forwards mapped copies to Debian's python3-hl7
// asyncio MLLP server (installed by make test) and checks what it received.
func TestThirdPartyReceiver(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import hl7.mllp").Run(); err != nil {
		t.Fatalf("python3-hl7 is not installed (run `make test-deps`): %v", err)
	}
	dir := t.TempDir()
	portFile, outFile := filepath.Join(dir, "port"), filepath.Join(dir, "received.txt")
	cmd := exec.Command(py, filepath.Join("testdata", "hl7_receiver.py"), portFile, outFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var port []byte
	waitFor(t, "the python receiver to listen", func() bool {
		var err error
		port, err = os.ReadFile(portFile)
		return err == nil && len(port) > 0
	})
	td := startDaemon(t, oneListener+`destinations:
  - {name: py, type: mllp, address: "127.0.0.1:`+string(port)+`", retry: {initial: 10ms, max: 100ms}}
routes:
  - name: to-py
    to:
      - destination: py
        map:
          - {set: MSH-6, value: PYHUB}
          - {delete: ZPI}
`)
	c := dial(t, td.addr(t, "pas"))
	ids := []string{"T1", "T2", "T3", "T4", "T5"}
	for _, id := range ids {
		if r := c.roundTrip(adt(id, "W1")); segField(r, "MSA", 1) != "AA" {
			t.Fatalf("reply %q", r)
		}
	}
	var lines []string
	waitFor(t, "the python receiver to get every message", func() bool {
		b, _ := os.ReadFile(outFile)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(lines) >= len(ids)
	})
	for i, l := range lines[:len(ids)] {
		msg := strings.ReplaceAll(l, `\r`, "\r")
		if !strings.Contains(msg, "|"+ids[i]+"|") {
			t.Errorf("message %d received by python-hl7 is not %s: order broken", i, ids[i])
		}
		if !strings.Contains(msg, "|MLLPD|PYHUB|") || strings.Contains(msg, "ZPI") {
			t.Errorf("message %d was not mapped", i)
		}
	}
	waitFor(t, "delivery records", func() bool {
		recs, err := td.Store().Query(store.Filter{ControlID: "T5", Limit: 1})
		if err != nil || len(recs) != 1 {
			return false
		}
		rec, err := td.Store().Get(recs[0].Seq)
		return err == nil && len(rec.Deliveries) == 1 && rec.Deliveries[0].State == "delivered" && rec.Deliveries[0].AckCode == "AA"
	})
}
