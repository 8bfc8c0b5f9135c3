//go:build linux

package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestParseProcCPU reads the two /proc formats the CPU columns come from.
func TestParseProcCPU(t *testing.T) {
	// /proc/PID/stat after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime ...
	rest := " S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0\n"
	for _, tc := range []struct {
		name  string
		parse func([]byte) (float64, bool)
		in    string
		want  float64
		ok    bool
	}{
		// user nice system idle iowait irq softirq steal: busy is 1+2+3+6+7.
		{"stat summed", machineBusy, "cpu  100 20 30 9000 500 6 7 800 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 1.63, true},
		{"stat without cpu line", machineBusy, "intr 1 2 3\n", 0, false},
		{"stat short", machineBusy, "cpu 1 2 3\n", 0, false},
		{"stat empty", machineBusy, "", 0, false},
		{"pid plain", processCPU, "42 (mllpd)" + rest, 3, true},
		{"pid name with spaces and parentheses", processCPU, "42 (a) b (c d)" + rest, 3, true},
		{"pid without name", processCPU, "42 mllpd" + rest, 0, false},
		{"pid truncated", processCPU, "42 (mllpd) S 1 2 3\n", 0, false},
		{"pid gone", processCPU, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.parse([]byte(tc.in))
			if ok != tc.ok || !near(got, tc.want) {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestSampleCPUSeesWork burns CPU in this process and expects the /proc
// figures, of the process and of the machine, to grow by what getrusage
// says it used.
func TestSampleCPUSeesWork(t *testing.T) {
	before := sampleCPU(os.Getpid())
	if !before.ok {
		t.Fatal("no sample from /proc")
	}
	used := burn(t, 300*time.Millisecond)
	after := sampleCPU(os.Getpid())
	c := cell{n: 1000}
	c.setCPU(before, after)
	// Per message, in µs: used / 1,000. /proc counts in 10 ms ticks.
	want := float64(used.Microseconds()) / 1000
	if c.serverCPU < want-25 || c.serverCPU > want+25 {
		t.Errorf("process CPU = %.0f µs/msg; getrusage says %.0f", c.serverCPU, want)
	}
	if c.machineCPU < c.serverCPU-25 {
		t.Errorf("machine CPU %.0f µs/msg below the process's own %.0f", c.machineCPU, c.serverCPU)
	}
}

// burn spins until this process has used at least d of CPU (user+system,
// all threads) and returns how much it used from start to end.
func burn(t *testing.T, d time.Duration) time.Duration {
	start := rusageCPU(t)
	deadline := time.Now().Add(time.Minute) // the machine is busy, not hung
	x := 0
	for time.Now().Before(deadline) {
		for i := range 100000 {
			x += i
		}
		if used := rusageCPU(t) - start; used >= d {
			_ = x
			return used
		}
	}
	t.Fatalf("did not get %v of CPU in a minute", d)
	return 0
}

func rusageCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
