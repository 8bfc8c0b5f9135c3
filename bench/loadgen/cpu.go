package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// CPU accounting of a run, read from /proc (Linux; elsewhere the columns stay
// empty). The generator, the server and the e2e downstream share the
// machine, so once it is busy the end-to-end rate is bounded by the machine's
// CPU per message: the report gives it, and the ceiling it implies.

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTicks = 100

// A cpuSample is the machine's busy CPU seconds and the watched processes' own.
type cpuSample struct {
	ok    bool
	busy  float64   // seconds, machineBusy
	procs []float64 // seconds of user+system of each watched process; 0 if gone
}

func sampleCPU(pids ...int) cpuSample {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	busy, ok := machineBusy(b)
	if !ok {
		return cpuSample{}
	}
	s := cpuSample{ok: true, busy: busy}
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			b = nil // gone: counted as 0
		}
		cpu, _ := processCPU(b)
		s.procs = append(s.procs, cpu)
	}
	return s
}

// machineBusy reads the busy seconds of all cores from /proc/stat: user,
// nice, system, irq and softirq; not idle, iowait or steal.
func machineBusy(stat []byte) (float64, bool) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		busy += ticks(f[i])
	}
	return busy, true
}

// processCPU reads user+system seconds from a /proc/PID/stat.
func processCPU(stat []byte) (float64, bool) {
	// The command name, in parentheses, may hold spaces and parentheses:
	// count the fields after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	return ticks(f[11]) + ticks(f[12]), true // utime, stime: fields 14 and 15 of stat
}

func ticks(s string) float64 {
	n, _ := strconv.ParseFloat(s, 64)
	return n / clockTicks
}

// setCPU fills c's CPU columns (µs per accepted message) from samples taken
// before and after its run.
func (c *cell) setCPU(before, after cpuSample) {
	if !before.ok || !after.ok || c.n == 0 {
		return
	}
	per := func(b, a float64) float64 {
		if a < b {
			return 0 // the process ended before the second sample: not measured
		}
		return (a - b) / float64(c.n) * 1e6
	}
	c.machineCPU = per(before.busy, after.busy)
	if len(before.procs) > 0 && len(after.procs) > 0 {
		c.serverCPU = per(before.procs[0], after.procs[0])
	}
	if len(before.procs) > 1 && len(after.procs) > 1 {
		c.downCPU = per(before.procs[1], after.procs[1])
	}
}
