package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mllpd/mllpd/mllp"
)

// sendConfig is the sending side of the command line.
type sendConfig struct {
	addr          string
	tls           *tls.Config
	timeout       time.Duration // per message: dial, write and wait for the ACK
	concurrency   int
	rate          float64 // messages per second over all connections; 0 = as fast as ACKs come
	repeat        int
	newControlIDs bool
	expect        []string // ACK codes that count as success
}

type outcome int

const (
	outcomeOK         outcome = iota // an ACK with an expected code
	outcomeUnexpected                // an ACK, but not an expected one (or not for this message)
	outcomeNoAck                     // timeout, refused, reset: no ACK at all
)

// A result is the fate of one sent message.
type result struct {
	msg       *message
	pass      int    // 1-based repetition
	controlID string // MSH-10 as sent (after --new-control-ids)
	msgType   string // MSH-9
	ack       ackInfo
	hasAck    bool
	latency   time.Duration
	outcome   outcome
	problem   string // why the outcome is not OK (no PHI: codes, control IDs, network errors)
}

// job is one message to send on some connection.
type job struct {
	msg     *message
	pass    int
	payload []byte
	header  header
}

// sender runs one send: workers, one per connection, take jobs in order.
type sender struct {
	cfg   sendConfig
	paths *ackPaths
}

// run sends every message cfg.repeat times and hands each result to report, from one
// goroutine, in completion order. It returns how many jobs were not sent (interrupted).
func (s *sender) run(ctx context.Context, msgs []*message, report func(result)) (notSent int) {
	jobs := make(chan job)
	results := make(chan result, s.cfg.concurrency)
	var workers sync.WaitGroup
	for range s.cfg.concurrency {
		workers.Go(func() { s.worker(ctx, jobs, results) })
	}
	produced := make(chan int, 1)
	go func() {
		produced <- s.produce(ctx, msgs, jobs)
		close(jobs)
		workers.Wait()
		close(results)
	}()
	for r := range results {
		report(r)
	}
	return len(msgs)*s.cfg.repeat - <-produced
}

// produce hands out the jobs in order, paced by --rate. It returns how many it handed out.
func (s *sender) produce(ctx context.Context, msgs []*message, jobs chan<- job) int {
	var (
		p     = newPacer(s.cfg.rate)
		tag   = runTag()
		n     = 0
		total = 0
	)
	for pass := 1; pass <= s.cfg.repeat; pass++ {
		for _, m := range msgs {
			if err := p.wait(ctx); err != nil {
				return total
			}
			payload := m.data
			if s.cfg.newControlIDs {
				n++
				payload = withControlIDSuffix(payload, "-"+tag+"-"+strconv.Itoa(n))
			}
			select {
			case jobs <- job{msg: m, pass: pass, payload: payload, header: readHeader(payload)}:
				total++
			case <-ctx.Done():
				return total
			}
		}
	}
	return total
}

func (s *sender) worker(ctx context.Context, jobs <-chan job, results chan<- result) {
	c := &mllp.Client{
		Addr:        s.cfg.addr,
		TLSConfig:   s.cfg.tls,
		DialTimeout: s.cfg.timeout,
		AckTimeout:  s.cfg.timeout,
		Check:       s.check,
	}
	defer c.Close()
	for j := range jobs {
		start := time.Now()
		reply, err := c.Send(ctx, j.payload)
		results <- s.classify(j, reply, err, time.Since(start))
	}
}

// check rejects a reply that acknowledges another message (its MSA-2 is not the MSH-10
// sent). A message without MSH-10 is matched by nothing: its NAK has an empty MSA-2.
func (s *sender) check(sent, reply []byte) error {
	want := readHeader(sent).ControlID
	if want == "" {
		return nil
	}
	a, err := s.paths.parse(reply)
	if err != nil {
		return nil // reported by classify as an unreadable ACK
	}
	if a.ControlID != want {
		return &mismatchError{sent: want, ack: a}
	}
	return nil
}

func (s *sender) classify(j job, reply []byte, err error, latency time.Duration) result {
	r := result{
		msg: j.msg, pass: j.pass, latency: latency,
		controlID: j.header.ControlID, msgType: j.header.Type,
	}
	var mm *mismatchError
	switch {
	case errors.As(err, &mm):
		r.ack, r.hasAck, r.outcome = mm.ack, true, outcomeUnexpected
		r.problem = mm.Error()
	case err != nil:
		r.outcome, r.problem = outcomeNoAck, s.describe(err)
	default:
		a, perr := s.paths.parse(reply)
		if perr != nil {
			r.hasAck, r.outcome = true, outcomeUnexpected
			r.ack.Code = "?"
			r.problem = "unreadable ACK: " + perr.Error()
			break
		}
		r.ack, r.hasAck = a, true
		if slices.Contains(s.cfg.expect, a.Code) {
			r.outcome = outcomeOK
		} else {
			r.outcome = outcomeUnexpected
		}
	}
	return r
}

// describe turns a send error into a short reason for the report.
func (s *sender) describe(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		var se *mllp.SendError
		if errors.As(err, &se) && se.Op == "dial" {
			return fmt.Sprintf("no connection within %v", s.cfg.timeout)
		}
		return fmt.Sprintf("no ACK within %v", s.cfg.timeout)
	}
	return err.Error()
}

// runTag is a short random tag that makes --new-control-ids unique across runs, not only
// within one.
func runTag() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

// A pacer spaces events rate per second apart; nil paces nothing.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next slot. Slots missed while the sender was slower than the rate
// are not made up in a burst.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = at.Add(p.interval)
	if d := at.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}
