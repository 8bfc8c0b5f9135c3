package mllp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// benchMessage is a realistic ADT^A01 of about 1 KB (the size used in
// docs/performance-limits.md).
var benchMessage = []byte("MSH|^~\\&|PAS|RXH|MLLPD|HUB|20240131123045+0100||ADT^A01^ADT_A01|BENCH0001|P|2.5.1|||AL|NE||8859/1\r" +
	"EVN|A01|20240131123045|||JSMITH^Smith^John^^^Dr\r" +
	"PID|1||12345678^^^RXH^MR~9876543210^^^NHS^NH||DOE^JANE^MARIE^^MRS||19700101|F|||1 HIGH STREET^^LONDON^^N1 1AA^GBR^H||020 7946 0000^PRN^PH|||M|C of E|||||A|||||||||\r" +
	"PD1|||GENERAL PRACTICE^^G12345|G1234567^WELBY^MARCUS^^^DR\r" +
	"NK1|1|DOE^JOHN^^^MR|SPO^Spouse^HL70063|1 HIGH STREET^^LONDON^^N1 1AA^GBR^H|020 7946 0001^PRN^PH\r" +
	"PV1|1|I|WARD7^BED12^ROOM3^RXH^^^^WARD|28b|||C1234567^HOUSE^GREGORY^^^DR|C7654321^CUDDY^LISA^^^DR||GEN|||19|||C1234567^HOUSE^GREGORY^^^DR|IP|V0000123456^^^RXH^VN|||||||||||||||||||||||||20240131120000\r" +
	"PV2|||CHEST PAIN^Chest pain\r" +
	"AL1|1|DA|PENICILLIN^Penicillin^L|SV|Rash\r" +
	"DG1|1||R07.4^Chest pain, unspecified^I10|||A\r" +
	"ZPI|1|Extra site-specific data for the benchmark payload padding padding padding\r")

var benchACK = []byte("MSH|^~\\&|MLLPD|HUB|PAS|RXH|20240131123046||ACK^A01^ACK|ACK0001|P|2.5.1\rMSA|AA|BENCH0001\r")

// BenchmarkRoundTrip measures complete MLLP round trips (Client.Send to a
// Server whose Handler returns a fixed ACK), one message in flight per
// connection, beside a bare net.Conn exchange of the same bytes as baseline.
// Compare msg/s of mllp and echo at the same conns in the same run.
func BenchmarkRoundTrip(b *testing.B) {
	for _, conns := range []int{1, 64} {
		b.Run("mllp/conns="+strconv.Itoa(conns), func(b *testing.B) { benchMLLP(b, conns) })
		b.Run("echo/conns="+strconv.Itoa(conns), func(b *testing.B) { benchEcho(b, conns) })
	}
}

func benchMLLP(b *testing.B, conns int) {
	srv := &Server{Logger: zap.NewNop(), Handler: HandlerFunc(func(context.Context, *Request) ([]byte, error) {
		return benchACK, nil
	})}
	addr := startServer(b, srv)
	clients := make([]*Client, conns)
	for i := range clients {
		clients[i] = &Client{Addr: addr}
		if _, err := clients[i].Send(context.Background(), benchMessage); err != nil { // dial outside the timer
			b.Fatal(err)
		}
		defer clients[i].Close()
	}
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	runConns(b, conns, func(i int) error {
		_, err := clients[i].Send(context.Background(), benchMessage)
		return err
	})
	reportRate(b, cpu)
}

// benchEcho is the baseline: the same request and reply sizes over bare TCP,
// the reply read with io.ReadFull of a known length (no framing, no checks).
func benchEcho(b *testing.B, conns int) {
	req := []byte(frame(string(benchMessage)))
	rep := []byte(frame(string(benchACK)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, len(req))
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(rep); err != nil {
						return
					}
				}
			}()
		}
	}()
	cs := make([]net.Conn, conns)
	bufs := make([][]byte, conns)
	for i := range cs {
		if cs[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer cs[i].Close()
		bufs[i] = make([]byte, len(rep))
	}
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	runConns(b, conns, func(i int) error {
		if _, err := cs[i].Write(req); err != nil {
			return err
		}
		if _, err := io.ReadFull(cs[i], bufs[i]); err != nil {
			return err
		}
		if !bytes.Equal(bufs[i], rep) {
			return errors.New("bad reply")
		}
		return nil
	})
	reportRate(b, cpu)
}

// reportRate reports messages per second and CPU microseconds per message
// (client and server together, measured from cpuStart).
func reportRate(b *testing.B, cpuStart time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if cpu := processCPU() - cpuStart; cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	}
}

// runConns runs b.N round trips spread over conns goroutines, one per
// connection.
func runConns(b *testing.B, conns int, send func(i int) error) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := send(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkReadFrame(b *testing.B) {
	in := bytes.Repeat([]byte(frame(string(benchMessage))), 64)
	src := bytes.NewReader(in)
	r := NewReader(src, 0)
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i%64 == 0 {
			src.Reset(in)
		}
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}
