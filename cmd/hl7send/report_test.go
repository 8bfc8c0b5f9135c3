package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 100, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond}, // nearest rank: ceil(0.5*4) = 2nd
		{ms(1, 2, 3, 4), 90, 4 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 90, 90 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
		}
	}
}

func TestProgressBarIsClearedBeforeLines(t *testing.T) {
	var stdout, stderr bytes.Buffer
	r := newReporter(&stdout, &stderr, false, false, []string{"AA"}, 1, 4)
	r.drawBarLocked()
	if got := stderr.String(); !strings.Contains(got, "[") || !strings.Contains(got, "0/4") {
		t.Fatalf("bar = %q, want a bar at 0/4", got)
	}
	m := &message{file: "a.hl7", index: 1, count: 1}
	r.add(result{msg: m, pass: 1, outcome: outcomeOK, hasAck: true, ack: ackInfo{Code: "AA"}, controlID: "A1"})
	if !strings.HasSuffix(stderr.String(), "\r\x1b[K") {
		t.Errorf("a report line was written without clearing the bar first: %q", stderr.String())
	}
	r.drawBarLocked()
	if !strings.Contains(stderr.String(), "1/4  25%") {
		t.Errorf("bar after one result = %q, want 1/4 25%%", stderr.String())
	}
	if isTerminal(&stderr) {
		t.Error("a buffer is not a terminal")
	}
}

func TestReportLineIsOneSafeLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	r := newReporter(&stdout, &stderr, false, false, []string{"AA"}, 1, 1)
	m := &message{file: "a.hl7", index: 1, count: 1}
	r.add(result{msg: m, pass: 1, outcome: outcomeUnexpected, hasAck: true,
		ack: ackInfo{Code: "AE", Text: "bad\r\x1b[2Jthing", ErrCode: "101"}, controlID: "A1"})
	out := stdout.String()
	if strings.Count(out, "\n") != 1 || strings.ContainsAny(out, "\r\x1b") {
		t.Errorf("line = %q, want one line without control characters", out)
	}
}
