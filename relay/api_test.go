package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/store"
)

const apiConfig = `listeners:
  - name: pas
    listen: {{listen}}
destinations:
  - {name: lab, type: file, dir: "{{dir}}/lab"}
  - {name: backfill, type: file, dir: "{{dir}}/backfill"}
routes:
  - name: oru
    match: {message_type: ["ORU^R01"]}
    to: [{destination: lab}]
`

// apiClient returns a Client for td's admin API with its token.
func apiClient(t *testing.T, td *testDaemon) *Client {
	t.Helper()
	token, err := ReadAdminToken(td.Config().AdminTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(td.AdminAddr().String(), token)
	t.Cleanup(c.HTTPClient.CloseIdleConnections)
	return c
}

// adminCode returns the status of an *AdminError, 0 for nil and -1 for
// another error.
func adminCode(err error) int {
	var ae *AdminError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ae):
		return ae.Code
	}
	return -1
}

// seeded is a daemon that received three messages over MLLP (an ORU routed
// to lab, two unrouted ADTs) and one frame it rejected.
type seeded struct {
	*testDaemon
	c              *Client
	start          time.Time
	oru, a01, a08  uint64
	adtA01, adtA08 string
	rejected       string
}

func seed(t *testing.T) *seeded {
	t.Helper()
	td := startDaemon(t, apiConfig)
	s := &seeded{testDaemon: td, c: apiClient(t, td), start: time.Now().Add(-time.Second)}
	s.adtA01 = hdr("ADT^A01", "A1", "P", "2.5.1")
	s.adtA08 = strings.Replace(hdr("ADT^A08", "A2", "P", "2.5.1"), "PID|1||55", "PID|1||77", 1)
	s.rejected = "PID|1||123\r"
	c := dial(t, td.addr(t, "pas"))
	for _, m := range []string{m1, s.adtA01, s.adtA08} {
		if r := c.roundTrip(m); segField(r, "MSA", 1) != "AA" {
			t.Fatalf("seeding: reply %q", r)
		}
	}
	if r := c.roundTrip(s.rejected); segField(r, "MSA", 1) != "AE" {
		t.Fatalf("seeding the rejected log: reply %q", r)
	}
	ids := map[string]*uint64{"CTL0001": &s.oru, "A1": &s.a01, "A2": &s.a08}
	recs, err := td.Store().Query(store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		*ids[r.ControlID] = r.Seq
	}
	if s.oru == 0 || s.a01 == 0 || s.a08 == 0 {
		t.Fatalf("seeded messages not all stored: %+v", recs)
	}
	return s
}

func summaryIDs(ms []MessageSummary) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ControlID)
	}
	return out
}

func TestAPIListMessages(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	waitDelivered(t, s.Store(), "lab", s.oru)
	tests := []struct {
		name string
		f    MessageFilter
		want []string
	}{
		{"all", MessageFilter{}, []string{"CTL0001", "A1", "A2"}},
		{"type", MessageFilter{Type: "ADT"}, []string{"A1", "A2"}},
		{"type and event", MessageFilter{Type: "ADT^A08"}, []string{"A2"}},
		{"whole MSH-9", MessageFilter{Type: "ADT^A08^ADT_A01"}, []string{"A2"}},
		{"control id", MessageFilter{ControlID: "CTL0001"}, []string{"CTL0001"}},
		{"patient id", MessageFilter{PatientID: "77"}, []string{"A2"}},
		{"facility", MessageFilter{SendingFacility: "RXH"}, []string{"CTL0001", "A1", "A2"}},
		{"other facility", MessageFilter{SendingFacility: "NOPE"}, []string{}},
		{"unrouted", MessageFilter{State: "unrouted"}, []string{"A1", "A2"}},
		{"dead", MessageFilter{State: "dead"}, []string{}},
		{"delivered", MessageFilter{State: "delivered"}, []string{"CTL0001"}},
		{"pending", MessageFilter{State: "pending"}, []string{}},
		{"since", MessageFilter{Since: s.start}, []string{"CTL0001", "A1", "A2"}},
		{"until before", MessageFilter{Until: s.start}, []string{}},
		{"after", MessageFilter{After: s.oru}, []string{"A1", "A2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.c.ListMessages(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summaryIDs(got.Messages)); diff != "" {
				t.Errorf("control IDs (-want +got):\n%s", diff)
			}
		})
	}

	// The summary's fields.
	got, err := s.c.ListMessages(ctx, MessageFilter{ControlID: "CTL0001"})
	if err != nil {
		t.Fatal(err)
	}
	m := got.Messages[0]
	if m.Seq != s.oru || m.Listener != "pas" || m.Type != "ORU" || m.Event != "R01" || m.SendingApp != "LAB" ||
		m.SendingFacility != "RXH" || m.PatientID != "12345" || m.Size != len(m1) || m.Unrouted ||
		len(m.Deliveries) != 1 || m.Deliveries[0].Destination != "lab" || m.Deliveries[0].Route != "oru" {
		t.Errorf("summary = %+v", m)
	}
	if m.Received.Before(s.start) || m.Received.After(time.Now()) {
		t.Errorf("received = %v, want within the test", m.Received)
	}

	// Paging: two pages of one and a last one.
	var pages [][]string
	var after uint64
	for range 5 {
		p, err := s.c.ListMessages(ctx, MessageFilter{Limit: 1, After: after})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, summaryIDs(p.Messages))
		if p.Next == 0 {
			break
		}
		after = p.Next
	}
	if diff := cmp.Diff([][]string{{"CTL0001"}, {"A1"}, {"A2"}}, pages); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
}

func TestAPIShowMessage(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	got, err := s.c.ShowMessage(ctx, s.oru)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Raw) != m1 {
		t.Errorf("raw = %q, want the bytes as received", got.Raw)
	}
	if got.Seq != s.oru || got.ControlID != "CTL0001" || len(got.ContentHash) != 64 {
		t.Errorf("detail = %+v", got.MessageSummary)
	}
	if len(got.Deliveries) != 1 || got.Deliveries[0].Destination != "lab" ||
		!slices.Contains([]string{"pending", "delivered"}, got.Deliveries[0].State) {
		t.Errorf("deliveries = %+v", got.Deliveries)
	}
	_, err = s.c.ShowMessage(ctx, 999)
	if adminCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "999") {
		t.Errorf("unknown seq: err = %v, want 404 naming it", err)
	}
}

func TestAPIBadRequests(t *testing.T) {
	s := seed(t)
	token, _ := ReadAdminToken(s.Config().AdminTokenFile())
	base := "http://" + s.AdminAddr().String()
	tests := []struct {
		method, path, body string
		code               int
		hint               string // part of the error text
	}{
		{"GET", "/api/v1/messages?since=yesterday", "", 400, "RFC 3339"},
		{"GET", "/api/v1/messages?state=lost", "", 400, "pending, delivered"},
		{"GET", "/api/v1/messages?limit=-1", "", 400, "positive"},
		{"GET", "/api/v1/messages?after=x", "", 400, "not a number"},
		{"GET", "/api/v1/messages/abc", "", 400, "sequence number"},
		{"GET", "/api/v1/messages/12345", "", 404, "12345"},
		{"GET", "/api/v1/rejected/77", "", 404, "77"},
		{"GET", "/api/v1/dead-letters?destination=epx", "", 404, `unknown destination "epx"`},
		{"GET", "/api/v1/dead-letters/lab/1", "", 404, "no dead letter 1"},
		{"POST", "/api/v1/messages/resend", `{"seqs":[1],"to":"epx"}`, 404, `unknown destination "epx"`},
		{"POST", "/api/v1/messages/resend", `{"seqs":[999],"to":"lab"}`, 404, "999"},
		{"POST", "/api/v1/messages/resend", `{"to":"lab"}`, 400, "since"},
		{"POST", "/api/v1/messages/resend", `{"seqs":[1],"to":"lab","type":"ADT"}`, 400, "not both"},
		{"POST", "/api/v1/messages/resend", `{"seq":[1],"to":"lab"}`, 400, "unknown field"},
		{"POST", "/api/v1/messages/resend", ``, 400, "empty"},
		{"POST", "/api/v1/dead-letters/lab/resend", `{}`, 400, "ids"},
		{"POST", "/api/v1/dead-letters/lab/purge", `{}`, 400, "older_than"},
		{"POST", "/api/v1/destinations/epx/unblock", ``, 404, `unknown destination "epx"`},
		{"POST", "/api/v1/destinations/lab/skip", ``, 409, "not blocked"},
		{"GET", "/api/v2/messages", "", 404, "/api/v1/"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.body, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.code || !strings.Contains(e.Error, tt.hint) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, e.Error, tt.code, tt.hint)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestAPIResend(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	res, err := s.c.Resend(ctx, []uint64{s.a08, s.a01}, "backfill")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Queued) != 2 || res.Queued[0].Seq != s.a08 || res.Queued[1].Seq != s.a01 ||
		res.Queued[0].Route != "" || res.Queued[1].QueueID <= res.Queued[0].QueueID {
		t.Fatalf("resend result = %+v, want a08 then a01 under no route", res)
	}
	for _, q := range res.Queued {
		waitDelivered(t, s.Store(), "backfill", q.Seq)
	}
	files, err := filepath.Glob(filepath.Join(s.dir, "backfill", "*"))
	if err != nil || len(files) != 2 {
		t.Errorf("files delivered to backfill: %v (%v), want 2", files, err)
	}
	// The ORU keeps the route that chose lab.
	res, err = s.c.Resend(ctx, []uint64{s.oru}, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Queued)+len(res.Skipped) != 1 {
		t.Fatalf("resend result = %+v", res)
	}
	if len(res.Queued) == 1 {
		if res.Queued[0].Route != "oru" {
			t.Errorf("resend to lab: route %q, want the original %q", res.Queued[0].Route, "oru")
		}
		waitDelivered(t, s.Store(), "lab", s.oru)
	}
	if len(res.Skipped) == 1 && !strings.Contains(res.Skipped[0].Reason, "already queued") {
		t.Errorf("skipped: %+v", res.Skipped)
	}

	// Backfill: both ADTs received since the start, into a fresh destination.
	res, err = s.c.ResendRange(ctx, s.start, time.Time{}, "ADT", "backfill")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Queued) + len(res.Skipped); got != 2 {
		t.Errorf("backfill touched %d messages, want the 2 ADTs: %+v", got, res)
	}
	for _, q := range res.Queued {
		waitDelivered(t, s.Store(), "backfill", q.Seq)
	}
	// An empty range queues nothing.
	res, err = s.c.ResendRange(ctx, time.Now().Add(time.Hour), time.Time{}, "", "backfill")
	if err != nil || len(res.Queued) != 0 {
		t.Errorf("future range: %+v, %v", res, err)
	}
	_, err = s.c.ResendRange(ctx, s.start, time.Time{}, "", "epx")
	if adminCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "mllpd destinations list") {
		t.Errorf("unknown destination: %v", err)
	}
}

// waitDelivered waits until the delivery worker of dest has delivered seq,
// failing at once if it was dead-lettered.
func waitDelivered(t *testing.T, st *store.Store, dest string, seq uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("message %d delivered to %s", seq, dest), func() bool {
		rec, err := st.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range rec.Deliveries {
			if d.Destination == dest {
				if d.State == store.StateDead {
					t.Fatalf("message %d dead-lettered for %s: %+v", seq, dest, d)
				}
				return d.State == store.StateDelivered
			}
		}
		return false
	})
}

func TestAPIRejected(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	list, err := s.c.ListRejected(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Rejected) != 1 || list.Rejected[0].Reason != "no_msh" || list.Rejected[0].Size != int64(len(s.rejected)) ||
		list.Rejected[0].Listener != "pas" || len(list.Rejected[0].Hash) != 64 {
		t.Fatalf("rejected list = %+v", list)
	}
	got, err := s.c.ShowRejected(ctx, list.Rejected[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Raw) != s.rejected || got.Truncated {
		t.Errorf("rejected bytes = %q (truncated %v), want %q", got.Raw, got.Truncated, s.rejected)
	}
	if _, err := s.c.ShowRejected(ctx, 42); adminCode(err) != http.StatusNotFound {
		t.Errorf("unknown id: %v", err)
	}
}

func TestAPIDestinations(t *testing.T) {
	s := seed(t)
	got, err := s.c.Destinations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range got {
		names = append(names, d.Name+" "+d.Type+" "+d.Target)
		if d.Blocked {
			t.Errorf("%s blocked: %+v", d.Name, d)
		}
	}
	want := []string{"lab file " + filepath.Join(s.dir, "lab"), "backfill file " + filepath.Join(s.dir, "backfill")}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("destinations (-want +got):\n%s", diff)
	}
}

func TestAPIBackup(t *testing.T) {
	s := seed(t)
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.c.Backup(context.Background(), f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != n || n == 0 {
		t.Fatalf("backup wrote %d bytes, file %v (%v)", n, fi, err)
	}
	cp, err := store.Open(store.Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Errorf("backup copy fails its check: %v", err)
	}
	recs, err := cp.Query(store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CTL0001", "A1", "A2"}, recordIDs(recs)); diff != "" {
		t.Errorf("messages in the copy (-want +got):\n%s", diff)
	}
	rec, err := cp.Get(s.oru)
	if err != nil || string(rec.Raw) != m1 {
		t.Errorf("copy of %d: %q, %v", s.oru, rec.Raw, err)
	}
}

func recordIDs(rs []store.Record) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ControlID)
	}
	return out
}

// A stopped-worker fixture: the API over a store and config with no delivery
// workers, so queue states (blocked, dead letters) stay exactly as the test
// sets them.
type quietAPI struct {
	st       *store.Store
	c        *Client
	notified chan string
	logs     *observer.ObservedLogs
}

func startQuietAPI(t *testing.T, yaml string) *quietAPI {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte("data_dir: "+dir+"\n"+strings.ReplaceAll(yaml, "{{dir}}", dir)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "mllpd.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		st.Close()
	})
	q := &quietAPI{st: st, notified: make(chan string, 100)}
	core, logs := observer.New(zapcore.InfoLevel)
	q.logs = logs
	logger := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	ops := &Ops{Store: st, Config: cfg, Notify: func(dest string) { q.notified <- dest }}
	mux := http.NewServeMux()
	registerAdminAPI(mux, logger, func() *Ops { return ops })
	a := &adminServer{token: "secret"}
	srv := httptest.NewServer(a.authorized(logger, mux))
	t.Cleanup(srv.Close)
	q.c = &Client{BaseURL: srv.URL, Token: "secret"}
	return q
}

// appendTo stores n messages queued for dest under route and returns their seqs.
func (q *quietAPI) appendTo(t *testing.T, dest, route string, n int) []uint64 {
	t.Helper()
	var msgs []store.Message
	for i := range n {
		id := "Q" + string(rune('A'+i))
		msgs = append(msgs, store.Message{
			Raw: []byte(hdr("ADT^A01", id, "P", "2.5.1")), Received: time.Now(), Listener: "pas",
			ControlID: id, Type: "ADT", Event: "A01", Targets: []store.Target{{Destination: dest, Route: route}},
		})
	}
	res, err := q.st.Append(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range res {
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

// wantLog requires one log entry msg whose fields include want.
func (q *quietAPI) wantLog(t *testing.T, msg string, want map[string]any) {
	t.Helper()
	entries := q.logs.FilterMessage(msg).All()
	if len(entries) == 0 {
		t.Errorf("no %q log line", msg)
		return
	}
	got := entries[len(entries)-1].ContextMap()
	for k, v := range want {
		if diff := cmp.Diff(v, got[k]); diff != "" {
			t.Errorf("%q field %s (-want +got):\n%s", msg, k, diff)
		}
	}
	if _, ok := got["peer"]; !ok {
		t.Errorf("%q does not say who (peer): %v", msg, got)
	}
}

func (q *quietAPI) wantNotified(t *testing.T, dest string) {
	t.Helper()
	select {
	case got := <-q.notified:
		if got != dest {
			t.Errorf("notified %s, want %s", got, dest)
		}
	default:
		t.Errorf("worker of %s not notified", dest)
	}
}

const quietConfig = `destinations:
  - {name: epic, type: mllp, address: "127.0.0.1:1"}
  - {name: lab, type: http, url: "http://127.0.0.1:1/x"}
`

func TestAPIBlockedSkipUnblock(t *testing.T) {
	q := startQuietAPI(t, quietConfig)
	ctx := context.Background()
	seqs := q.appendTo(t, "epic", "r1", 3)
	pend, _ := q.st.Pending("epic", 0, 10)
	if err := q.st.Record(ctx, "epic", pend[0].ID, store.Attempt{At: time.Now(), Outcome: store.Attempted, AckCode: "AR", Err: "downstream AR"}); err != nil {
		t.Fatal(err)
	}
	if err := q.st.SetBlocked(ctx, "epic", "downstream 401"); err != nil {
		t.Fatal(err)
	}
	ds, err := q.c.Destinations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := ds[0]
	if e.Name != "epic" || e.Type != "mllp" || e.Target != "127.0.0.1:1" || e.Queue != 3 || !e.Blocked ||
		e.BlockedReason != "downstream 401" || e.Head == nil || e.Head.Seq != seqs[0] || e.Head.Attempts != 1 ||
		e.Head.LastError != "downstream AR" || e.Oldest.IsZero() {
		t.Errorf("epic = %+v head %+v", e, e.Head)
	}
	if l := ds[1]; l.Name != "lab" || l.Queue != 0 || l.Head != nil || l.Target != "http://127.0.0.1:1/x" {
		t.Errorf("lab = %+v", l)
	}

	sk, err := q.c.Skip(ctx, "epic")
	if err != nil {
		t.Fatal(err)
	}
	if sk.Skipped.Seq != seqs[0] || sk.Destination.Blocked || sk.Destination.Queue != 2 || sk.Destination.Head.Seq != seqs[1] ||
		sk.Destination.DeadLetters != 1 || !sk.Destination.Configured {
		t.Errorf("skip = %+v", sk)
	}
	q.wantLog(t, "admin skip", map[string]any{"destination": "epic", "seq": seqs[0]})
	q.wantNotified(t, "epic")
	dl, err := q.c.ListDeadLetters(ctx, "epic", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl.DeadLetters) != 1 || dl.DeadLetters[0].Seq != seqs[0] || dl.DeadLetters[0].Reason != SkipReason {
		t.Errorf("dead letters after skip = %+v", dl)
	}
	// Not blocked any more: a second skip is refused.
	if _, err := q.c.Skip(ctx, "epic"); adminCode(err) != http.StatusConflict {
		t.Errorf("skip of an unblocked queue: %v, want 409", err)
	}

	if err := q.st.SetBlocked(ctx, "lab", "downstream 403"); err != nil {
		t.Fatal(err)
	}
	st, err := q.c.Unblock(ctx, "lab")
	if err != nil || st.Blocked {
		t.Errorf("unblock: %+v, %v", st, err)
	}
	q.wantNotified(t, "lab")
	if _, blocked := q.st.Blocked("lab"); blocked {
		t.Error("lab still blocked in the store")
	}
	// Blocked with nothing queued: skip says to unblock.
	if err := q.st.SetBlocked(ctx, "lab", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.c.Skip(ctx, "lab"); adminCode(err) != http.StatusConflict || !strings.Contains(err.Error(), "unblock") {
		t.Errorf("skip of an empty blocked queue: %v", err)
	}
}

func TestAPIDeadLetters(t *testing.T) {
	q := startQuietAPI(t, quietConfig)
	ctx := context.Background()
	seqs := q.appendTo(t, "epic", "r1", 3)
	// Dead-letter the whole queue (as a removed route or a permanent failure would).
	if n, err := q.st.DeadLetterQueue(ctx, "epic", "route removed"); err != nil || n != 3 {
		t.Fatalf("DeadLetterQueue = %d, %v", n, err)
	}
	list, err := q.c.ListDeadLetters(ctx, "epic", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, d := range list.DeadLetters {
		got = append(got, d.Seq)
		if d.Reason != "route removed" || d.Route != "r1" || d.Destination != "epic" {
			t.Errorf("dead letter %+v", d)
		}
	}
	if diff := cmp.Diff(seqs, got); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	// All destinations at once.
	all, err := q.c.ListDeadLetters(ctx, "", 0, 0)
	if err != nil || len(all.DeadLetters) != 3 {
		t.Errorf("all dead letters: %d, %v", len(all.DeadLetters), err)
	}
	// Paging.
	p1, err := q.c.ListDeadLetters(ctx, "epic", 0, 2)
	if err != nil || len(p1.DeadLetters) != 2 || p1.Next == 0 {
		t.Fatalf("page 1: %+v, %v", p1, err)
	}
	p2, err := q.c.ListDeadLetters(ctx, "epic", p1.Next, 2)
	if err != nil || len(p2.DeadLetters) != 1 || p2.DeadLetters[0].Seq != seqs[2] || p2.Next != 0 {
		t.Errorf("page 2: %+v, %v", p2, err)
	}

	one, err := q.c.ShowDeadLetter(ctx, "epic", list.DeadLetters[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if one.Seq != seqs[1] || one.Message.Seq != seqs[1] || !bytes.HasPrefix(one.Message.Raw, []byte("MSH|")) ||
		len(one.Message.Deliveries) != 1 || one.Message.Deliveries[0].State != store.StateDead {
		t.Errorf("show = %+v", one)
	}

	// Resend one by id: it leaves the list and is queued again under its route.
	res, err := q.c.ResendDeadLetters(ctx, "epic", []uint64{list.DeadLetters[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Queued) != 1 || res.Queued[0].Seq != seqs[0] || res.Queued[0].Route != "r1" {
		t.Errorf("resend = %+v", res)
	}
	q.wantLog(t, "admin dead-letter resend", map[string]any{"destination": "epic", "queued": int64(1), "seqs": []any{seqs[0]}})
	q.wantNotified(t, "epic")
	pend, _ := q.st.Pending("epic", 0, 10)
	if len(pend) != 1 || pend[0].Seq != seqs[0] {
		t.Errorf("queue after resend = %+v", pend)
	}
	if _, err := q.c.ShowDeadLetter(ctx, "epic", list.DeadLetters[0].ID); adminCode(err) != http.StatusNotFound {
		t.Errorf("resent dead letter still shown: %v", err)
	}

	// Purge: older_than before they died purges nothing, now purges the rest.
	pr, err := q.c.PurgeDeadLetters(ctx, "epic", time.Now().Add(-time.Hour))
	if err != nil || pr.Purged != 0 {
		t.Errorf("purge older than an hour ago: %+v, %v", pr, err)
	}
	pr, err = q.c.PurgeDeadLetters(ctx, "", time.Now().Add(time.Second))
	if err != nil || pr.Purged != 2 {
		t.Errorf("purge all: %+v, %v", pr, err)
	}
	q.wantLog(t, "admin purge", map[string]any{"destination": "", "purged": int64(2)})
	if left, _ := q.c.ListDeadLetters(ctx, "epic", 0, 0); len(left.DeadLetters) != 0 {
		t.Errorf("after purge: %+v", left)
	}

	// Resend all (none left) and to an unknown destination.
	if res, err := q.c.ResendDeadLetters(ctx, "epic", nil); err != nil || len(res.Queued) != 0 {
		t.Errorf("resend all of none: %+v, %v", res, err)
	}
	if _, err := q.c.ResendDeadLetters(ctx, "epx", nil); adminCode(err) != http.StatusNotFound {
		t.Errorf("unknown destination: %v", err)
	}
}

// A removed destination's dead letters stay readable and purgeable.
func TestAPIDeadLettersOfRemovedDestination(t *testing.T) {
	q := startQuietAPI(t, quietConfig)
	ctx := context.Background()
	q.appendTo(t, "gone", "r1", 1)
	if _, err := q.st.DeadLetterQueue(ctx, "gone", "destination removed"); err != nil {
		t.Fatal(err)
	}
	list, err := q.c.ListDeadLetters(ctx, "gone", 0, 0)
	if err != nil || len(list.DeadLetters) != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if all, err := q.c.ListDeadLetters(ctx, "", 0, 0); err != nil || len(all.DeadLetters) != 1 || all.DeadLetters[0].Destination != "gone" {
		t.Errorf("all dead letters: %+v, %v", all, err)
	}
	ds, err := q.c.Destinations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, fmt.Sprintf("%s configured=%v dead=%d", d.Name, d.Configured, d.DeadLetters))
	}
	want := []string{"epic configured=true dead=0", "lab configured=true dead=0", "gone configured=false dead=1"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("destinations (-want +got):\n%s", diff)
	}
	if _, err := q.c.ResendDeadLetters(ctx, "gone", nil); adminCode(err) != http.StatusNotFound {
		t.Errorf("resend to a removed destination: %v, want 404", err)
	}
	if pr, err := q.c.PurgeDeadLetters(ctx, "gone", time.Now().Add(time.Second)); err != nil || pr.Purged != 1 {
		t.Errorf("purge: %+v, %v", pr, err)
	}
}

func TestAPIInfo(t *testing.T) {
	q := startQuietAPI(t, quietConfig)
	info, err := q.c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs(q.st.Path())
	if info.Store != want || info.Destinations != 2 {
		t.Errorf("info = %+v, want store %s and 2 destinations", info, want)
	}
}

func TestAPIUnauthorizedClient(t *testing.T) {
	q := startQuietAPI(t, quietConfig)
	c := *q.c
	c.Token = "wrong"
	_, err := c.Destinations(context.Background())
	if adminCode(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "token") {
		t.Errorf("wrong token: %v", err)
	}
	_ = io.Discard
}

// A Client talks to a running daemon's admin API with the token from
// admin.token_file; its methods mirror Ops, which works on the store file
// while the daemon is stopped.
func ExampleClient() {
	cfg, err := config.Load("/etc/mllpd/mllpd.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	token, err := ReadAdminToken(cfg.AdminTokenFile())
	if err != nil {
		fmt.Println(err)
		return
	}
	c := NewClient(cfg.Admin.Listen, token)
	ctx := context.Background()
	page, err := c.ListMessages(ctx, MessageFilter{Type: "ADT^A01", State: "dead", Limit: 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range page.Messages {
		// Queue each again at the tail of epic's queue, under its original route.
		if _, err := c.Resend(ctx, []uint64{m.Seq}, "epic"); err != nil {
			fmt.Println(err)
		}
	}
}

// A backup stream that ends early, or whose length the daemon did not
// confirm, must not pass for a complete copy.
func TestClientBackupDetectsTruncation(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr error
	}{
		{"confirmed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", BackupBytesTrailer)
			io.WriteString(w, "12345")
			w.Header().Set(BackupBytesTrailer, "5")
		}, nil},
		{"no trailer", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "12345")
		}, ErrBackupTruncated},
		{"length differs", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", BackupBytesTrailer)
			io.WriteString(w, "123")
			w.Header().Set(BackupBytesTrailer, "5")
		}, ErrBackupTruncated},
		{"aborted", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", BackupBytesTrailer)
			io.WriteString(w, "123")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, ErrBackupTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, Token: "x"}
			var b bytes.Buffer
			_, err := c.Backup(context.Background(), &b)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Backup error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
