package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/relay"
)

func TestPrintDestinations(t *testing.T) {
	var b bytes.Buffer
	printDestinations(&b, []relay.DestinationStatus{
		{Name: "epic", Configured: true, Type: "mllp", Target: "10.0.0.5:2575", Queue: 3, OldestAge: 90 * time.Minute,
			Blocked: true, BlockedReason: "downstream 401", DeadLetters: 2,
			Head: &relay.QueueHead{Seq: 41, Attempts: 5, LastError: "http 401"}},
		{Name: "lab", Configured: true, Type: "file", Target: "/var/out", Queue: 0},
		{Name: "old", DeadLetters: 1},
	})
	want := []string{
		"NAME  TYPE     TARGET         QUEUE  OLDEST  DEAD  STATE                    HEAD",
		"epic  mllp     10.0.0.5:2575  3      1h30m   2     blocked: downstream 401  seq 41, 5 attempts: http 401",
		"lab   file     /var/out       0      -       0     ok                       -",
		"old   removed  -              0      -       1     ok                       -",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimRight(b.String(), "\n"), "\n")); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
