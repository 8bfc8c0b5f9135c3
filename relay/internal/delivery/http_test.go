package delivery_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/relay/internal/transport"
	"github.com/mllpd/mllpd/store"
)

// request is what the HTTP downstream saw.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// startHTTP serves d over HTTP; reply.status (0 = 200) and reply.header
// answer each POST.
func startHTTP(t *testing.T, d *downstream) (string, func() []request) {
	t.Helper()
	var mu sync.Mutex
	var reqs []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, request{header: r.Header.Clone(), body: body, at: time.Now()})
		mu.Unlock()
		rep := d.handle(body)
		if rep.hang {
			select {
			case <-d.release:
			case <-r.Context().Done():
			}
			return
		}
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		if rep.status == 0 {
			rep.status = http.StatusOK
		}
		w.WriteHeader(rep.status)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(d.release) })
	return srv.URL, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), reqs...)
	}
}

func status(code int) reply { return reply{store: true, status: code} }

func TestHTTPStatusClasses(t *testing.T) {
	tests := []struct {
		first    reply
		state    string
		attempts int
		status   int // recorded HTTPStatus of the last attempt
		text     string
		event    delivery.EventKind
	}{
		{status(200), store.StateDelivered, 1, 200, "", delivery.EventDelivered},
		{status(204), store.StateDelivered, 1, 204, "", delivery.EventDelivered},
		{status(503), store.StateDelivered, 2, 200, "http 503", delivery.EventDelivered},
		{status(500), store.StateDelivered, 2, 200, "http 500", delivery.EventDelivered},
		{status(429), store.StateDelivered, 2, 200, "http 429", delivery.EventDelivered},
		{status(408), store.StateDelivered, 2, 200, "http 408", delivery.EventDelivered},
		{status(425), store.StateDelivered, 2, 200, "http 425", delivery.EventDelivered},
		{reply{hang: true}, store.StateDelivered, 2, 200, "timeout", delivery.EventDelivered},
		{status(400), store.StateDead, 1, 400, "http 400", delivery.EventDeadLettered},
		{status(404), store.StateDead, 1, 404, "http 404", delivery.EventDeadLettered},
		{status(422), store.StateDead, 1, 422, "http 422", delivery.EventDeadLettered},
		{status(301), store.StateDead, 1, 301, "http 301", delivery.EventDeadLettered},
		{status(401), store.StatePending, 1, 401, "http 401", delivery.EventBlocked},
		{status(403), store.StatePending, 1, 403, "http 403", delivery.EventBlocked},
	}
	for _, tt := range tests {
		name := "hang"
		if tt.first.status != 0 {
			name = http.StatusText(tt.first.status)
		}
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			st := openStore(t)
			ds := newDownstream(func(ctrl string, n int) reply {
				if ctrl == ctrlID(1) && n == 1 {
					return tt.first
				}
				return status(200)
			})
			url, _ := startHTTP(t, ds)
			qs := appendN(t, st, 1, 2, "adt", 0)
			tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "http", URL: url, Timeout: 300 * ms})
			if err != nil {
				t.Fatal(err)
			}
			h := startWorker(t, st, delivery.WorkerConfig{Transport: tr})
			if e := h.next(tt.event); e.Seq != qs[0].seq {
				t.Fatalf("%v for seq %d", tt.event, e.Seq)
			}
			if tt.event != delivery.EventBlocked {
				if e := h.next(delivery.EventDelivered); e.Seq != qs[1].seq {
					t.Fatalf("next delivered %d", e.Seq)
				}
			} else if _, blocked := st.Blocked(dest); !blocked {
				t.Errorf("queue not blocked after %d", tt.first.status)
			}
			h.stop()
			d := delivered(t, st, qs[0].seq)
			if d.State != tt.state || d.Attempts != tt.attempts || d.HTTPStatus != tt.status {
				t.Errorf("delivery = state %q attempts %d status %d; want %q %d %d", d.State, d.Attempts, d.HTTPStatus, tt.state, tt.attempts, tt.status)
			}
			text := d.LastError
			if d.State == store.StateDead {
				text = d.DeadReason
			}
			if !strings.Contains(text, tt.text) {
				t.Errorf("LastError/DeadReason = %q, want %q in it", text, tt.text)
			}
		})
	}
}

// TestHTTPRetryAfter: a 503 with Retry-After: 1 delays the retry by a
// second, although the backoff is a millisecond.
func TestHTTPRetryAfter(t *testing.T) {
	st := openStore(t)
	ds := newDownstream(func(ctrl string, n int) reply {
		if n == 1 {
			r := status(503)
			r.header = map[string]string{"Retry-After": "1"}
			return r
		}
		return status(200)
	})
	url, reqs := startHTTP(t, ds)
	appendN(t, st, 1, 1, "adt", 0)
	tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "http", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	h := startWorker(t, st, delivery.WorkerConfig{Transport: tr})
	h.next(delivery.EventDelivered)
	h.stop()
	rs := reqs()
	if len(rs) != 2 {
		t.Fatalf("%d requests, want 2", len(rs))
	}
	if gap := rs[1].at.Sub(rs[0].at); gap < 900*ms {
		t.Errorf("retry after %v, want >= 1s (Retry-After)", gap)
	}
}

func TestHTTPRequest(t *testing.T) {
	for _, format := range []string{"er7", "json"} {
		t.Run(format, func(t *testing.T) {
			st := openStore(t)
			ds := newDownstream(func(string, int) reply { return status(200) })
			url, reqs := startHTTP(t, ds)
			appendN(t, st, 1, 1, "adt", 0)
			tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "http", URL: url, Format: format,
				Headers: map[string]string{"Authorization": "Bearer s3cret", "X-Source": "mllpd"}})
			if err != nil {
				t.Fatal(err)
			}
			h := startWorker(t, st, delivery.WorkerConfig{Transport: tr})
			h.next(delivery.EventDelivered)
			h.stop()
			rs := reqs()
			if len(rs) != 1 {
				t.Fatalf("%d requests", len(rs))
			}
			r := rs[0]
			if got := r.header.Get("Authorization"); got != "Bearer s3cret" {
				t.Errorf("Authorization = %q", got)
			}
			if got := r.header.Get("X-Source"); got != "mllpd" {
				t.Errorf("X-Source = %q", got)
			}
			outbound := strings.Replace(string(msgRaw("C0001", 0)), "|2.5.1|||AL|NE\r", "|2.5.1\r", 1)
			switch format {
			case "er7":
				if ct := r.header.Get("Content-Type"); ct != transport.ContentTypeER7 {
					t.Errorf("Content-Type = %q", ct)
				}
				if string(r.body) != outbound {
					t.Errorf("body = %q, want %q", r.body, outbound)
				}
			case "json":
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				var doc struct {
					Segments []struct {
						ID     string
						Fields [][][][]*string
					}
				}
				if err := json.Unmarshal(r.body, &doc); err != nil {
					t.Fatalf("body is not JSON: %v\n%s", err, r.body)
				}
				var ids []string
				for _, s := range doc.Segments {
					ids = append(ids, s.ID)
				}
				if diff := cmp.Diff([]string{"MSH", "PID", "PV1"}, ids); diff != "" {
					t.Errorf("segments (-want +got):\n%s", diff)
				}
				if got := *doc.Segments[1].Fields[2][0][3][0]; got != "RXH" { // PID-3.4
					t.Errorf("PID-3.4 = %q", got)
				}
			}
		})
	}
}

func TestFileDestination(t *testing.T) {
	st := openStore(t)
	dir := filepath.Join(t.TempDir(), "out")
	qs := appendN(t, st, 1, 3, "adt", 0)
	tr, err := delivery.NewTransport(delivery.TransportConfig{Name: dest, Type: "file", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h := startWorker(t, st, delivery.WorkerConfig{Transport: tr})
	for range qs {
		h.next(delivery.EventDelivered)
	}
	h.stop()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"000000000001-C0001.hl7", "000000000002-C0002.hl7", "000000000003-C0003.hl7"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for i, q := range qs {
		b, err := os.ReadFile(filepath.Join(dir, want[i]))
		if err != nil {
			t.Fatal(err)
		}
		if w := strings.Replace(string(msgRaw(q.ctrl, 0)), "|2.5.1|||AL|NE\r", "|2.5.1\r", 1); string(b) != w {
			t.Errorf("%s = %q, want %q", want[i], b, w)
		}
	}
}

func TestNewTransportErrors(t *testing.T) {
	for _, c := range []delivery.TransportConfig{
		{Name: dest, Type: "ftp"},
		{Name: dest, Type: "mllp", Address: "no-port"},
		{Name: dest, Type: "http", URL: "ftp://x/"},
		{Name: dest, Type: "http", URL: "http://x/", Format: "xml"},
		{Name: dest, Type: "file"},
	} {
		if tr, err := delivery.NewTransport(c); err == nil {
			tr.Close()
			t.Errorf("NewTransport(%+v) = nil error", c)
		}
	}
}
