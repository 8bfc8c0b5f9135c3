// Command loadgen measures mllpd against baselines with one load generator
// and writes BENCHMARKS.md. It is `make bench-load`; it is not part of
// `make test`.
//
// Every target is a separate process listening on 127.0.0.1; the generator
// opens C connections, each sending realistic ~1 KB ADT^A01 messages with a
// unique MSH-10, one in flight per connection (original mode: the next is
// sent when the whole ACK frame has arrived), for a fixed duration. Each cell
// is the median of several runs. Targets:
//
//   - mllpd: the real binary, fsync on, no routes (accept rate and ACK latency)
//   - mllpd-e2e: the real binary with one MLLP destination that ACKs at once
//     (`loadgen serve-count ADDR`, a process of its own): delivered
//     messages/s end to end, and while the senders sent
//   - ack-only: an MLLP server that ACKs without storing (the ceiling)
//   - bbolt-gc: an MLLP server that stores each message with a bare bbolt
//     leader/follower group commit (the durable baseline)
//   - python3-hl7: Debian's python3-hl7 asyncio server (appends to a file, no fsync)
//   - simple-hl7: the npm simple-hl7 3.3.0 listener (appends to a file, no fsync)
//
// Each cell also gives the CPU spent per accepted message, by the whole
// machine and by the server and downstream processes (cpu.go, Linux): with
// everything on one machine, it bounds what the end-to-end rate can reach.
//
// The baselines ack-only and bbolt-gc and the e2e downstream are modes of
// this binary (`loadgen serve-ack ADDR`, `loadgen serve-bbolt ADDR FILE`,
// `loadgen serve-count ADDR`); `loadgen drive
// ADDR CONNS DURATION` loads a server that is already running (for profiling).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve-ack":
			exit(serveAck(os.Args[2]))
		case "serve-count":
			exit(serveCount(os.Args[2]))
		case "serve-bbolt":
			exit(serveBbolt(os.Args[2], os.Args[3]))
		case "drive": // loadgen drive ADDR CONNS DURATION: load a running server (profiling)
			exit(driveOnly(os.Args[2:]))
		}
	}
	var o options
	flag.StringVar(&o.mllpd, "mllpd", "bin/mllpd", "mllpd binary")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "report file")
	flag.DurationVar(&o.duration, "duration", defaultDuration, "length of one measured run")
	flag.IntVar(&o.runs, "runs", 3, "runs per cell (the median is reported)")
	flag.StringVar(&o.conns, "conns", "1,8,64,256", "connection counts")
	flag.StringVar(&o.targets, "targets", "ack-only,bbolt-gc,mllpd,mllpd-e2e,python3-hl7,simple-hl7", "targets to measure")
	flag.StringVar(&o.nodeDir, "node-dir", "bench/node", "directory with simple-hl7 installed (npm install)")
	flag.Parse()
	exit(run(context.Background(), o))
}

func driveOnly(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: loadgen drive ADDR CONNS DURATION")
	}
	c, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	r, err := drive(context.Background(), args[0], c, d, nil)
	if err != nil {
		return err
	}
	fmt.Printf("%.0f msg/s  p50 %.2f ms  p99 %.2f ms  errors %d\n", r.rate, r.p50, r.p99, r.errors)
	return nil
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
