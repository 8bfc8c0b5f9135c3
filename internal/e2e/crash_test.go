package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/store"
)

// A loadSender is one sending system on its own connection: it sends
// C<id>-0, C<id>-1, ... in order and resends the same message (same MSH-10,
// same content) until it gets AA, reconnecting after any error, as a PAS
// does. It records every control ID that got AA, in order.
type loadSender struct {
	id    int
	app   string
	addr  string
	batch int // > 0: each frame is a BHS batch of this many messages
	mu    sync.Mutex
	acked []string
	other int     // replies other than AA
	errs  []error // sends without a reply (refused, reset, timeout)
}

func (s *loadSender) failures() (other int, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.other, append([]error(nil), s.errs...)
}

func (s *loadSender) ctrl(n int) string {
	if s.batch > 0 {
		return fmt.Sprintf("B%d-%d", s.id, n)
	}
	return fmt.Sprintf("C%d-%d", s.id, n)
}

// members returns the control IDs of the messages frame ctrl carries.
func (s *loadSender) members(ctrl string) []string {
	if s.batch == 0 {
		return []string{ctrl}
	}
	out := make([]string, s.batch)
	for k := range out {
		out[k] = fmt.Sprintf("%s-%d", ctrl, k)
	}
	return out
}

// frame builds the payload for frame ctrl: one message, or a BHS batch.
func (s *loadSender) frame(ctrl string) []byte {
	if s.batch == 0 {
		return adt(s.app, ctrl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BHS|^~\\&|%s|E2EFAC|MLLPD|HUB|20260101120000||||%s\r", s.app, ctrl)
	for _, m := range s.members(ctrl) {
		b.Write(adt(s.app, m))
	}
	fmt.Fprintf(&b, "BTS|%d\r", s.batch)
	return []byte(b.String())
}

// allAccepted reports whether reply accepts every message of the frame: an
// AA, or for a batch an AA per member.
func (s *loadSender) allAccepted(reply []byte) bool {
	if s.batch == 0 {
		return parseACK(reply).Code == "AA"
	}
	codes := batchAckCodes(reply)
	if len(codes) != s.batch {
		return false
	}
	for _, c := range codes {
		if c != "AA" {
			return false
		}
	}
	return true
}

// ackedMessageIDs returns the control IDs of every message acknowledged, in
// order.
func (s *loadSender) ackedMessageIDs() []string {
	var out []string
	for _, ctrl := range s.ackedIDs() {
		out = append(out, s.members(ctrl)...)
	}
	return out
}

func (s *loadSender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *loadSender) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

// run sends until stop closes or deadline passes.
func (s *loadSender) run(stop <-chan struct{}, deadline time.Time) {
	c := &mllp.Client{Addr: s.addr, AckTimeout: 5 * time.Second, DialTimeout: time.Second}
	defer func() { c.Close() }()
	n := 0
	pace := time.NewTicker(time.Millisecond) // pacing only, never synchronisation
	defer pace.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		case <-pace.C:
		}
		ctrl := s.ctrl(n)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := c.Send(ctx, s.frame(ctrl))
		cancel()
		if err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s: %w", ctrl, err))
			s.mu.Unlock()
			c.Close()
			c = &mllp.Client{Addr: s.addr, AckTimeout: 5 * time.Second, DialTimeout: time.Second}
			select { // the daemon is down: do not spin on refused dials
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		s.mu.Lock()
		if s.allAccepted(reply) {
			s.acked = append(s.acked, ctrl)
			n++
		} else {
			s.other++
		}
		s.mu.Unlock()
	}
}

// startLoad starts n senders against addr, the last batches of them sending
// BHS batches of 5; the returned func stops them and waits for them.
func startLoad(addr string, n, batches int, within time.Duration) ([]*loadSender, func()) {
	stop := make(chan struct{})
	deadline := time.Now().Add(within)
	var wg sync.WaitGroup
	senders := make([]*loadSender, n)
	for i := range senders {
		senders[i] = &loadSender{id: i, app: fmt.Sprintf("CRASH%d", i), addr: addr}
		if i >= n-batches {
			senders[i].batch = 5
		}
		wg.Go(func() { senders[i].run(stop, deadline) })
	}
	var once sync.Once
	return senders, func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
}

func totalAcked(ss []*loadSender) int {
	n := 0
	for _, s := range ss {
		n += s.ackedCount()
	}
	return n
}

// TestCrashKeepsAckedMessages kills the daemon with SIGKILL at random moments
// under concurrent load, several rounds, restarting it each time, while a
// downstream receiver takes everything. Promise 1: every message that got AA
// is in the store afterwards (checked offline in the bbolt file), exactly
// once (resends of a message stored before its ACK was lost meet the
// dedupe), and each sender's messages are stored in the order they were
// accepted. Promises 4 and 5: every AA'd message reaches the destination and
// is marked delivered; first deliveries follow the accept order (replays
// after a crash are allowed: at least once).
func TestCrashKeepsAckedMessages(t *testing.T) {
	ds := newDownstream(t, nil)
	d := newDaemon(t, plainBin, "pas")
	d.writeConfig(fmt.Sprintf(`storage: {min_free_bytes: 1048576}
listeners:
  - name: pas
    listen: %q
    dedupe_window: 1h
destinations:
  - name: epr
    type: mllp
    address: %q
    ack_timeout: 5s
    retry: {initial: 20ms, max: 200ms}
routes:
  - name: all
    to: [{destination: epr}]
`, d.addrs["pas"], ds.addr))
	d.start()

	const rounds = 20
	senders, stopLoad := startLoad(d.addrs["pas"], 7, 1, 90*time.Second)
	defer stopLoad()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	for round := range rounds {
		// Let the load make real progress on this run of the daemon, then
		// kill it at a random moment within the next 150ms.
		base := totalAcked(senders)
		want := base + 50 + rng.IntN(100)
		pollUntil(t, 30*time.Second, fmt.Sprintf("round %d: %d AAs", round, want-base), func() bool {
			return totalAcked(senders) >= want
		})
		<-time.After(time.Duration(rng.IntN(150)) * time.Millisecond) // the random moment
		d.kill()
		t.Logf("round %d: SIGKILL after %d AAs in total", round, totalAcked(senders))
		d.start()
	}
	base := totalAcked(senders)
	pollUntil(t, 30*time.Second, "AAs after the last restart", func() bool { return totalAcked(senders) >= base+50 })
	stopLoad()
	var all []string
	for _, s := range senders {
		all = append(all, s.ackedMessageIDs()...)
	}
	// Not fatal: if delivery stalls, the store checks below still say why.
	delivered := waitUntil(30*time.Second, func() bool { return ds.seenAll(all) })
	d.stop()

	stored := storedByControlID(t, d.openStore())
	checkFirstDeliveryOrder(t, ds, stored)
	total := 0
	for _, s := range senders {
		ids := s.ackedMessageIDs()
		total += len(ids)
		if n := s.ackedCount(); n < 10 {
			t.Errorf("sender %d (batch %d) got only %d frames acknowledged", s.id, s.batch, n)
		}
		// A frame is all or nothing (reference §7): every batch sent, the
		// one in flight at the end included, is stored whole or not at all.
		if s.batch > 0 {
			for n := 0; n <= len(s.ackedIDs()); n++ {
				got := 0
				for _, m := range s.members(s.ctrl(n)) {
					got += len(stored[m])
				}
				if got != 0 && got != s.batch {
					t.Errorf("batch %s: %d of its %d messages stored, want all or none", s.ctrl(n), got, s.batch)
				}
			}
		}
		for _, ctrl := range ids {
			if recs := stored[ctrl]; len(recs) == 1 && ds.seen(ctrl) > 0 {
				if dl, ok := deliveryTo(recs[0], "epr"); !ok || dl.State != store.StateDelivered {
					t.Errorf("%s arrived downstream but its delivery record is %+v, want delivered", ctrl, dl)
				}
			}
		}
		var prev uint64
		var lost []string
		for i, ctrl := range ids {
			recs := stored[ctrl]
			if len(recs) != 1 {
				lost = append(lost, fmt.Sprintf("%s (stored %d times)", ctrl, len(recs)))
				continue
			}
			if seq := recs[0].Seq; seq <= prev {
				t.Errorf("%s stored as seq %d, not after its predecessor %s (seq %d): accept order lost",
					ctrl, seq, ids[i-1], prev)
			} else {
				prev = seq
			}
		}
		if len(lost) > 0 {
			t.Errorf("sender %d: %d messages got AA but are not stored exactly once; first: %s",
				s.id, len(lost), strings.Join(lost[:min(5, len(lost))], ", "))
		}
	}
	if !delivered {
		var missing []string
		for _, id := range all {
			if ds.seen(id) == 0 {
				missing = append(missing, id)
			}
		}
		t.Errorf("%d acknowledged messages never reached the destination within 30s, first: %v",
			len(missing), missing[:min(10, len(missing))])
	}
	ds.mu.Lock()
	copies := len(ds.received)
	ds.mu.Unlock()
	t.Logf("%d messages acknowledged across %d SIGKILLs, %d copies downstream (at least once)", total, rounds, copies)
}
