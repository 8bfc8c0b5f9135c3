package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mllpd/mllpd/internal/testpki"
	"github.com/mllpd/mllpd/mllp"
)

// A goodSender sends a valid message every few milliseconds from 127.0.0.1
// on one connection for as long as the attacks last; every reply must be AA,
// and quickly.
type goodSender struct {
	mu       sync.Mutex
	sent     int
	failures []string
	maxWait  time.Duration
	stop     chan struct{}
	done     chan struct{}
}

func startGoodSender(addr string) *goodSender {
	g := &goodSender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		c := &mllp.Client{Addr: addr, AckTimeout: 5 * time.Second}
		defer func() { c.Close() }()
		pace := time.NewTicker(10 * time.Millisecond) // pacing only
		defer pace.Stop()
		deadline := time.Now().Add(3 * time.Minute)
		for n := 0; time.Now().Before(deadline); n++ {
			select {
			case <-g.stop:
				return
			case <-pace.C:
			}
			ctrl := fmt.Sprintf("GOOD-%d", n)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			reply, err := c.Send(ctx, adt("GOOD", ctrl))
			cancel()
			took := time.Since(start)
			g.mu.Lock()
			g.sent++
			g.maxWait = max(g.maxWait, took)
			switch {
			case err != nil:
				g.failures = append(g.failures, fmt.Sprintf("%s: %v", ctrl, err))
				c.Close()
				c = &mllp.Client{Addr: addr, AckTimeout: 5 * time.Second}
			case parseACK(reply).Code != "AA":
				g.failures = append(g.failures, fmt.Sprintf("%s: %v", ctrl, parseACK(reply)))
			}
			g.mu.Unlock()
		}
	}()
	return g
}

// finish stops the sender and reports whether it was served throughout.
func (g *goodSender) finish(t *testing.T) {
	t.Helper()
	close(g.stop)
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Logf("well-behaved sender: %d messages, longest wait for an ACK %v", g.sent, g.maxWait)
	if len(g.failures) > 0 {
		t.Errorf("the well-behaved sender on 127.0.0.1 was not served during the attacks (%d failures), first: %s",
			len(g.failures), strings.Join(g.failures[:min(5, len(g.failures))], "; "))
	}
	if g.sent < 50 {
		t.Errorf("the well-behaved sender got only %d messages through", g.sent)
	}
}

// rawConn is an attacker's connection: raw bytes out, MLLP frames in.
type rawConn struct {
	net.Conn
	r *mllp.Reader
}

func dialRaw(t *testing.T, src, addr string) *rawConn {
	t.Helper()
	c, err := dialFrom(src, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: mllp.NewReader(c, 1<<20)}
}

// reply reads the next frame within d and parses it as an ACK.
func (c *rawConn) reply(t *testing.T, d time.Duration) ack {
	t.Helper()
	a, err := c.tryReply(d)
	if err != nil {
		t.Fatalf("no reply from the daemon: %v", err)
	}
	return a
}

// tryReply is reply for goroutines other than the test's (no FailNow).
func (c *rawConn) tryReply(d time.Duration) (ack, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	p, err := c.r.ReadFrame()
	if err != nil {
		return ack{}, fmt.Errorf("no reply from the daemon: %w", err)
	}
	return parseACK(p), nil
}

// tryWrite is write for goroutines other than the test's.
func (c *rawConn) tryWrite(b []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Write(b)
	return err
}

// closedWithin requires that the daemon closes the connection within d
// without sending a frame; it returns how long that took.
func (c *rawConn) closedWithin(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	p, err := c.r.ReadFrame()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("got a frame %q, want the connection closed without a reply", p)
	}
	if !isClosedWithoutReply(err) {
		t.Fatalf("connection still open after %v (%v), want it closed by the daemon", took, err)
	}
	return took
}

func (c *rawConn) write(t *testing.T, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// noFraming returns n random bytes that contain no MLLP framing byte.
func noFraming(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		for {
			b[i] = byte(rng.UintN(256))
			if b[i] != 0x0b && b[i] != 0x1c {
				break
			}
		}
	}
	return b
}

// TestBadInput attacks a running daemon with everything promise 6 names —
// garbage, frames without MSH, oversized frames, frames that never end,
// slowloris, 2,000 idle connections, failed TLS handshakes — from 127.0.0.2
// and up, while a well-behaved sender on 127.0.0.1 must keep getting AA
// promptly. Each attack must get a clear NAK or a close, the daemon's memory
// must stay bounded, and the refused input must be in the rejected log.
func TestBadInput(t *testing.T) {
	d := newDaemon(t, plainBin, "pas", "secure")
	cert, key := testpki.New(t, "mllpd-e2e").Issue("mllpd")
	d.writeConfig(fmt.Sprintf(`storage: {min_free_bytes: 1048576}
listeners:
  - name: pas
    listen: %q
    max_message_bytes: 1048576
    max_connections: 3000
    max_connections_per_ip: 110
    read_timeout: 2s
    idle_timeout: 5m
  - name: secure
    listen: %q
    read_timeout: 2s
    tls: {cert_file: %q, key_file: %q}
`, d.addrs["pas"], d.addrs["secure"], cert, key))
	d.start()
	pas, secure := d.addrs["pas"], d.addrs["secure"]
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))

	good := startGoodSender(pas)
	defer func() {
		if good != nil {
			good.finish(t)
		}
	}()

	t.Run("garbage between frames is skipped", func(t *testing.T) {
		c := dialRaw(t, "127.0.0.2", pas)
		c.write(t, noFraming(rng, 64<<10))
		c.write(t, frame(adt("ATTACK", "AFTER-JUNK")))
		if a := c.reply(t, 10*time.Second); a.Code != "AA" || a.Ctrl != "AFTER-JUNK" {
			t.Errorf("valid frame after 64 KiB of junk: reply %v, want AA", a)
		}
	})

	t.Run("garbage frame gets AE/100", func(t *testing.T) {
		c := dialRaw(t, "127.0.0.2", pas)
		c.write(t, frame(noFraming(rng, 4096)))
		if a := c.reply(t, 10*time.Second); a.Code != "AE" || a.ErrCode != "100" || a.Ctrl != "" {
			t.Errorf("frame of random bytes: reply %v, want AE/100 with empty MSA-2", a)
		}
		c.write(t, frame(adt("ATTACK", "AFTER-GARBAGE")))
		if a := c.reply(t, 10*time.Second); a.Code != "AA" {
			t.Errorf("valid frame on the same connection: reply %v, want AA", a)
		}
	})

	t.Run("message without MSH gets AE/100", func(t *testing.T) {
		c := dialRaw(t, "127.0.0.2", pas)
		c.write(t, frame([]byte("EVN|A01|20260101120000\rPID|1||NOMSH^^^E2E^MR||TESTPATIENT^BETA\r")))
		if a := c.reply(t, 10*time.Second); a.Code != "AE" || a.ErrCode != "100" || a.Ctrl != "" {
			t.Errorf("frame without MSH: reply %v, want AE/100 with empty MSA-2", a)
		}
	})

	t.Run("oversized frames get AE and cost bounded memory", func(t *testing.T) {
		// Ten at once: a daemon that buffered whole frames would hold 80 MiB
		// of them; one that keeps about max_message_bytes per connection
		// (plus slack for append growth) stays near 20 MiB.
		const (
			conns     = 10
			perConn   = 5
			frameSize = 8 << 20
		)
		filler := bytes.Repeat([]byte("A"), frameSize)
		rss0 := rssBytes(t, d.pid())
		heap0, heapOK := d.metric("go_memstats_heap_inuse_bytes")
		var wg sync.WaitGroup
		for i := range conns {
			nc, err := dialFrom("127.0.0.3", pas, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			c := &rawConn{Conn: nc, r: mllp.NewReader(nc, 1<<20)}
			wg.Go(func() {
				for j := range perConn {
					ctrl := fmt.Sprintf("BIG-%d-%d", i, j)
					version := "2.5.1"
					wantCode := "207" // before v2.7 there is no 104 (reference §5.7)
					if j%2 == 1 {
						version, wantCode = "2.7", "104"
					}
					head := fmt.Sprintf("\x0bMSH|^~\\&|BIG|E2EFAC|MLLPD|HUB|20260101120000||ORU^R01^ORU_R01|%s|P|%s\rOBX|1|ED|PDF||", ctrl, version)
					err := errors.Join(c.tryWrite([]byte(head)), c.tryWrite(filler), c.tryWrite([]byte("\r\x1c\x0d")))
					if err != nil {
						t.Errorf("sending 8 MiB frame %s: %v", ctrl, err)
						return
					}
					a, err := c.tryReply(30 * time.Second)
					if err != nil {
						t.Errorf("8 MiB frame %s: %v, want AE", ctrl, err)
						return
					}
					if a.Code != "AE" || a.ErrCode != wantCode || a.Ctrl != ctrl {
						t.Errorf("8 MiB frame %s (v%s) over max_message_bytes 1 MiB: reply %v, want AE/%s with MSA-2 %s",
							ctrl, version, a, wantCode, ctrl)
					}
				}
				if err := c.tryWrite(frame(adt("ATTACK", fmt.Sprintf("AFTER-BIG-%d", i)))); err != nil {
					t.Errorf("valid frame after oversized ones: %v", err)
					return
				}
				if a, err := c.tryReply(10 * time.Second); err != nil || a.Code != "AA" {
					t.Errorf("valid frame after oversized ones on the same connection: reply %v %v, want AA", a, err)
				}
			})
		}
		wg.Wait()
		rss1 := rssBytes(t, d.pid())
		t.Logf("daemon RSS %d MiB before %d oversized 8 MiB frames, %d MiB after", rss0>>20, conns*perConn, rss1>>20)
		if growth := rss1 - rss0; growth > 64<<20 {
			t.Errorf("daemon RSS grew by %d MiB over %d oversized frames, want < 64 MiB", growth>>20, conns*perConn)
		}
		if heap1, ok := d.metric("go_memstats_heap_inuse_bytes"); heapOK && ok {
			if growth := heap1 - heap0; growth > 64<<20 {
				t.Errorf("daemon heap in use grew by %.0f MiB, want < 64 MiB", growth/(1<<20))
			}
		}
	})

	t.Run("frame that never ends is closed after read_timeout", func(t *testing.T) {
		c := dialRaw(t, "127.0.0.4", pas)
		c.write(t, []byte("\x0bMSH|^~\\&|SLOW|E2EFAC|MLLPD|HUB|20260101120000||ADT^A01|NEVER-1|P|2.5.1\rPID|1"))
		took := c.closedWithin(t, 10*time.Second)
		if took < time.Second {
			t.Errorf("unfinished frame closed after %v, before read_timeout (2s)", took)
		}
	})

	t.Run("slowloris is closed after read_timeout", func(t *testing.T) {
		c := dialRaw(t, "127.0.0.5", pas)
		msg := frame(adt("SLOW", "SLOWLORIS-1"))
		stop := make(chan struct{})
		trickled := make(chan int, 1)
		go func() { // one byte every 20ms: the whole frame would take ~4s
			n := 0
			defer func() { trickled <- n }()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for ; n < len(msg)-2; n++ { // never the final FS CR
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(msg[n : n+1]); err != nil {
					return
				}
			}
		}()
		took := c.closedWithin(t, 10*time.Second)
		close(stop)
		n := <-trickled
		if took < time.Second {
			t.Errorf("slow frame closed after %v, before read_timeout (2s)", took)
		}
		if n >= len(msg)-2 {
			t.Errorf("the whole slow frame (%d bytes) was accepted over %v", n, took)
		}
	})

	t.Run("100 slowloris connections at once are all closed", func(t *testing.T) {
		const n = 100
		msg := frame(adt("SLOW", "SWARM"))
		conns := make([]*rawConn, n)
		for i := range conns {
			conns[i] = dialRaw(t, fmt.Sprintf("127.0.0.%d", 40+i%5), pas)
		}
		stop := make(chan struct{})
		defer close(stop)
		var wg sync.WaitGroup
		start := time.Now()
		for _, c := range conns {
			go func() { // one byte every 50ms each, never the frame's end
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < len(msg)-2; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if c.tryWrite(msg[i:i+1]) != nil {
						return
					}
				}
			}()
			wg.Go(func() {
				_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
				if p, err := c.r.ReadFrame(); err == nil {
					t.Errorf("slow connection got a frame %q, want it closed", p)
				} else if !isClosedWithoutReply(err) {
					t.Errorf("slow connection not closed by the daemon: %v", err)
				}
			})
		}
		wg.Wait()
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("closing %d slow connections took %v, want about read_timeout (2s)", n, took)
		}
	})

	t.Run("2000 idle connections and the per-IP limit", func(t *testing.T) {
		const ips, perIP = 20, 100
		// Start from a quiet listener: only the well-behaved sender's
		// connection (the earlier attackers' closes may still be counted down).
		pollUntil(t, 10*time.Second, "earlier attack connections released", func() bool {
			n, _ := d.metric("mllpd_mllp_open_connections", `listener="pas"`)
			return n <= 1
		})
		open0, _ := d.metric("mllpd_mllp_open_connections", `listener="pas"`)
		rss0 := rssBytes(t, d.pid())
		conns := make([]net.Conn, 0, ips*perIP)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range ips {
			src := fmt.Sprintf("127.0.0.%d", 10+i)
			wg.Go(func() {
				for range perIP {
					c, err := dialFrom(src, pas, 5*time.Second)
					if err != nil {
						t.Errorf("dial from %s: %v", src, err)
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		if t.Failed() {
			return
		}
		pollUntil(t, 30*time.Second, "the daemon holding 2,000 idle connections", func() bool {
			n, _ := d.metric("mllpd_mllp_open_connections", `listener="pas"`)
			return n >= open0+ips*perIP
		})
		rss1 := rssBytes(t, d.pid())
		t.Logf("daemon RSS %d MiB with %d idle connections (%d MiB before)", rss1>>20, ips*perIP, rss0>>20)
		if growth := rss1 - rss0; growth > 256<<20 {
			t.Errorf("2,000 idle connections cost %d MiB of RSS, want < 256 MiB", growth>>20)
		}

		// 127.0.0.10 holds 100; max_connections_per_ip is 110: ten more fit,
		// the eleventh is closed at once.
		refused0, _ := d.metric("mllpd_mllp_events_total", `listener="pas"`, `event="per_ip_limit"`)
		for range 10 {
			c := dialRaw(t, "127.0.0.10", pas)
			conns = append(conns, c.Conn)
		}
		pollUntil(t, 10*time.Second, "ten more connections from 127.0.0.10 admitted", func() bool {
			n, _ := d.metric("mllpd_mllp_open_connections", `listener="pas"`)
			return n >= open0+ips*perIP+10
		})
		over := dialRaw(t, "127.0.0.10", pas)
		over.closedWithin(t, 5*time.Second)
		refused1, _ := d.metric("mllpd_mllp_events_total", `listener="pas"`, `event="per_ip_limit"`)
		if refused1 != refused0+1 {
			t.Errorf("per_ip_limit events went from %v to %v, want exactly one refusal", refused0, refused1)
		}
		// Another address is not affected by 127.0.0.10's limit.
		other := dialRaw(t, "127.0.0.9", pas)
		other.write(t, frame(adt("ATTACK", "OTHER-IP")))
		if a := other.reply(t, 10*time.Second); a.Code != "AA" {
			t.Errorf("sender on 127.0.0.9 while 127.0.0.10 is at its limit: reply %v, want AA", a)
		}

		for _, c := range conns {
			c.Close()
		}
		pollUntil(t, 30*time.Second, "idle connections released", func() bool {
			n, _ := d.metric("mllpd_mllp_open_connections", `listener="pas"`)
			return n <= open0+1
		})
	})

	t.Run("plain bytes to the TLS listener are closed", func(t *testing.T) {
		// Prove the TLS listener works for a real TLS sender first.
		c := &mllp.Client{Addr: secure, AckTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{InsecureSkipVerify: true}} // a throwaway self-signed test certificate
		defer c.Close()
		reply, err := c.Send(ctxT(t, 10*time.Second), adt("TLS", "TLS-OK"))
		if err != nil || parseACK(reply).Code != "AA" {
			t.Fatalf("TLS sender: %v %v, want AA", err, parseACK(reply))
		}
		failed0, _ := d.metric("mllpd_mllp_events_total", `listener="secure"`, `event="tls_handshake_failed"`)
		raw := dialRaw(t, "127.0.0.6", secure)
		raw.write(t, frame(adt("ATTACK", "PLAIN-TO-TLS")))
		raw.closedWithin(t, 10*time.Second)
		pollUntil(t, 5*time.Second, "tls_handshake_failed counted", func() bool {
			n, _ := d.metric("mllpd_mllp_events_total", `listener="secure"`, `event="tls_handshake_failed"`)
			return n >= failed0+1
		})
	})

	t.Run("TLS ClientHello to the plain listener fails", func(t *testing.T) {
		nc, err := dialFrom("127.0.0.7", pas, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: "127.0.0.1"}) // never completes
		hctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		err = tc.HandshakeContext(hctx)
		if err == nil {
			t.Fatal("TLS handshake with the plain MLLP listener succeeded")
		}
		t.Logf("TLS handshake with the plain listener: %v", err)
	})

	good.finish(t)
	good = nil

	// Promise 6: each attack leaves a clear log line (warn or error) naming
	// its peer. Wording is the daemon's; the peer is what an admin greps.
	logText := d.logText()
	for src, attack := range map[string]string{
		"127.0.0.2":  "garbage",
		"127.0.0.3":  "oversized frames",
		"127.0.0.4":  "unfinished frame",
		"127.0.0.5":  "slowloris",
		"127.0.0.6":  "plain bytes to TLS",
		"127.0.0.7":  "TLS ClientHello to plain",
		"127.0.0.10": "per-IP limit",
	} {
		if !hasWarnForPeer(logText, src) {
			t.Errorf("no warn/error log line names peer %s (%s)", src, attack)
		}
	}

	// Promise 2: what was refused is in the rejected log, bounded to 64 KiB
	// each, with its real size.
	d.stop()
	st := d.openStore()
	rejected, err := st.ListRejected(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, r := range rejected {
		reasons[r.Reason]++
		if r, err = st.GetRejected(r.ID); err != nil { // ListRejected leaves Raw out
			t.Fatal(err)
		}
		if len(r.Raw) == 0 || len(r.Raw) > mllp.PrefixBytes {
			t.Errorf("rejected entry %d (%s) keeps %d bytes, want 1 to %d", r.ID, r.Reason, len(r.Raw), mllp.PrefixBytes)
		}
		if r.Reason == "frame_too_large" && r.Size < 8<<20 {
			t.Errorf("rejected oversized frame %d records size %d, want its full size (> 8 MiB)", r.ID, r.Size)
		}
	}
	if reasons["frame_too_large"] != 50 || reasons["no_msh"] < 2 {
		t.Errorf("rejected log reasons %v, want 50 frame_too_large and >= 2 no_msh", reasons)
	}
}

// hasWarnForPeer reports whether a JSON log line at warn level or above names
// a peer at address ip.
func hasWarnForPeer(log, ip string) bool {
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Level string `json:"level"`
			Peer  string `json:"peer"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if (e.Level == "warn" || e.Level == "error") && strings.HasPrefix(e.Peer, ip+":") {
			return true
		}
	}
	return false
}
