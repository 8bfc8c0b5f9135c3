package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// reporter prints one line (or JSON object) per result and the summary, and draws the
// progress bar. Results come from one goroutine; the bar from a ticker: mu orders both.
type reporter struct {
	stdout, stderr io.Writer
	json, quiet    bool
	expect         []string
	repeat         int
	total          int // messages to send, all passes

	mu        sync.Mutex
	start     time.Time
	done      int
	counts    map[string]int // per ACK code
	ok        int
	unexpect  int
	noAck     int
	latencies []time.Duration // of the messages that got an ACK
	barShown  bool
}

func newReporter(stdout, stderr io.Writer, jsonOut, quiet bool, expect []string, repeat, total int) *reporter {
	return &reporter{
		stdout: stdout, stderr: stderr, json: jsonOut, quiet: quiet, expect: expect,
		repeat: repeat, total: total, start: time.Now(), counts: map[string]int{},
	}
}

// messageJSON is the --json object for one message (documented in README.md).
type messageJSON struct {
	Type         string  `json:"type"` // "message"
	File         string  `json:"file"`
	Index        int     `json:"index"`
	Pass         int     `json:"pass"`
	ControlID    string  `json:"control_id"`
	MessageType  string  `json:"message_type"`
	Result       string  `json:"result"` // "ok", "unexpected", "no_ack"
	Ack          string  `json:"ack,omitempty"`
	AckControlID string  `json:"ack_control_id,omitempty"`
	ErrCode      string  `json:"err_code,omitempty"`
	ErrText      string  `json:"err_text,omitempty"`
	AckText      string  `json:"ack_text,omitempty"`
	Diagnostic   string  `json:"diagnostic,omitempty"`
	Problem      string  `json:"problem,omitempty"`
	LatencyMS    float64 `json:"latency_ms"`
}

// summaryJSON is the --json summary object (documented in README.md).
type summaryJSON struct {
	Type         string         `json:"type"` // "summary"
	Messages     int            `json:"messages"`
	Sent         int            `json:"sent"`
	NotSent      int            `json:"not_sent"`
	OK           int            `json:"ok"`
	Unexpected   int            `json:"unexpected"`
	NoAck        int            `json:"no_ack"`
	Acks         map[string]int `json:"acks"`
	Expect       []string       `json:"expect"`
	Connections  int            `json:"connections"`
	ElapsedS     float64        `json:"elapsed_s"`
	MessagesPerS float64        `json:"messages_per_s"`
	LatencyMS    latencyJSON    `json:"latency_ms"`
	ExitCode     int            `json:"exit_code"`
	Interrupted  bool           `json:"interrupted,omitempty"`
}

type latencyJSON struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func resultName(o outcome) string {
	switch o {
	case outcomeOK:
		return "ok"
	case outcomeUnexpected:
		return "unexpected"
	}
	return "no_ack"
}

func (r *reporter) add(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	switch res.outcome {
	case outcomeOK:
		r.ok++
	case outcomeUnexpected:
		r.unexpect++
	case outcomeNoAck:
		r.noAck++
	}
	if res.hasAck {
		r.counts[res.ack.Code]++
		r.latencies = append(r.latencies, res.latency)
	}
	if r.quiet {
		return
	}
	r.clearBarLocked()
	if r.json {
		o := messageJSON{
			Type: "message", File: res.msg.file, Index: res.msg.index, Pass: res.pass,
			ControlID: res.controlID, MessageType: res.msgType, Result: resultName(res.outcome),
			Problem: res.problem, LatencyMS: ms(res.latency),
		}
		if res.hasAck {
			o.Ack, o.AckControlID, o.AckText = res.ack.Code, res.ack.ControlID, res.ack.Text
			o.ErrCode, o.ErrText, o.Diagnostic = res.ack.ErrCode, res.ack.ErrText, res.ack.Diagnostic
		}
		r.writeJSON(o)
		return
	}
	code := "--"
	if res.hasAck {
		code = res.ack.Code
	}
	var detail []string
	if res.problem != "" {
		detail = append(detail, res.problem)
	}
	if res.hasAck && (res.outcome != outcomeOK || res.ack.Code != "AA" && res.ack.Code != "CA") {
		if d := res.ack.detail(); d != "" {
			detail = append(detail, d)
		}
	}
	src := res.msg.source()
	if r.repeat > 1 {
		src += fmt.Sprintf(" (pass %d)", res.pass)
	}
	line := fmt.Sprintf("%-3s %8s  %-20s %-16s %s", code, fmtDuration(res.latency), orDash(res.controlID), orDash(res.msgType), src)
	if len(detail) > 0 {
		line += "  " + strings.Join(detail, "; ")
	}
	fmt.Fprintln(r.stdout, printable(line))
}

func (r *reporter) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain types above: cannot happen
		fmt.Fprintln(r.stderr, "hl7send: json:", err)
		return
	}
	r.stdout.Write(append(b, '\n'))
}

// summary prints the summary and returns the exit status: 2 if some message got no ACK
// (or was not sent), else 1 if some ACK was not as expected, else 0.
func (r *reporter) summary(notSent, conns int, interrupted bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearBarLocked()
	elapsed := time.Since(r.start)
	exit := 0
	switch {
	case r.noAck > 0 || notSent > 0:
		exit = 2
	case r.unexpect > 0:
		exit = 1
	}
	slices.Sort(r.latencies)
	lat := latencyJSON{
		P50: ms(percentile(r.latencies, 50)), P90: ms(percentile(r.latencies, 90)),
		P99: ms(percentile(r.latencies, 99)), Max: ms(percentile(r.latencies, 100)),
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(r.done) / s
	}
	if r.json {
		r.writeJSON(summaryJSON{
			Type: "summary", Messages: r.total, Sent: r.done, NotSent: notSent,
			OK: r.ok, Unexpected: r.unexpect, NoAck: r.noAck, Acks: r.counts, Expect: r.expect,
			Connections: conns, ElapsedS: round3(elapsed.Seconds()), MessagesPerS: round3(rate),
			LatencyMS: lat, ExitCode: exit, Interrupted: interrupted,
		})
		return exit
	}
	w := r.stdout
	if !r.quiet {
		fmt.Fprintln(w)
	}
	conn := "connections"
	if conns == 1 {
		conn = "connection"
	}
	fmt.Fprintf(w, "sent      %d of %d messages in %s (%.1f msg/s, %d %s)\n", r.done, r.total, fmtDuration(elapsed), rate, conns, conn)
	codes := make([]string, 0, len(r.counts))
	for c := range r.counts {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s %d", c, r.counts[c]))
	}
	if r.noAck > 0 {
		parts = append(parts, fmt.Sprintf("no ACK %d", r.noAck))
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	fmt.Fprintf(w, "ACKs      %s\n", strings.Join(parts, ", "))
	if len(r.latencies) > 0 {
		fmt.Fprintf(w, "latency   p50 %s  p90 %s  p99 %s  max %s\n",
			fmtDuration(percentile(r.latencies, 50)), fmtDuration(percentile(r.latencies, 90)),
			fmtDuration(percentile(r.latencies, 99)), fmtDuration(percentile(r.latencies, 100)))
	}
	expected := strings.Join(r.expect, " or ")
	var verdict string
	switch exit {
	case 0:
		verdict = "OK: every ACK is " + expected
	case 1:
		verdict = fmt.Sprintf("FAIL: %s not %s", plural(r.unexpect, "ACK is", "ACKs are"), expected)
	case 2:
		verdict = fmt.Sprintf("FAIL: %s no ACK", plural(r.noAck+notSent, "message got", "messages got"))
		if r.unexpect > 0 {
			verdict += fmt.Sprintf(", %s not %s", plural(r.unexpect, "ACK is", "ACKs are"), expected)
		}
	}
	if interrupted {
		verdict += fmt.Sprintf(" (interrupted: %d not sent)", notSent)
	}
	fmt.Fprintf(w, "result    %s (exit %d)\n", verdict, exit)
	return exit
}

// progress draws the bar on stderr until stop is closed. It is called only when stderr
// is a terminal; short runs (under a second) never show it.
func (r *reporter) progress(stop <-chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		if time.Since(r.start) >= time.Second {
			r.drawBarLocked()
		}
		r.mu.Unlock()
	}
}

func (r *reporter) drawBarLocked() {
	const width = 30
	frac := 0.0
	if r.total > 0 {
		frac = float64(r.done) / float64(r.total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	elapsed := time.Since(r.start).Seconds()
	rate := float64(r.done) / elapsed
	fmt.Fprintf(r.stderr, "\r\x1b[K[%s] %d/%d %3.0f%%  %.0f msg/s  ok %d  other %d  no ACK %d",
		bar, r.done, r.total, 100*frac, rate, r.ok, r.unexpect, r.noAck)
	r.barShown = true
}

func (r *reporter) clearBarLocked() {
	if r.barShown {
		fmt.Fprint(r.stderr, "\r\x1b[K")
		r.barShown = false
	}
}

// isTerminal reports whether w is a character device (a terminal), without a
// dependency: a pipe or a file is not one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// percentile returns the nearest-rank p-th percentile of sorted values (0 if empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// plural returns "1 one" or "n many".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable replaces control characters (a hostile reply's ESC sequences, CRs) so that
// a report line stays one line and cannot drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '.'
		}
		return r
	}, s)
}
