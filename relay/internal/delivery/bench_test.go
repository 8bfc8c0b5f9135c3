package delivery_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/relay/internal/delivery"
)

// benchPad makes msgRaw about 1 KB.
const benchPad = 900

// BenchmarkDeliverMLLP: one worker drains b.N queued 1 KB messages to a
// loopback MLLP receiver that ACKs at once. "client" is the baseline of the
// same run: the same messages sent by a bare mllp.Client, no store, no
// worker.
func BenchmarkDeliverMLLP(b *testing.B) {
	b.Run("worker", func(b *testing.B) {
		st := openStore(b)
		addr, _ := startMLLP(b, newDownstream(allAA), "")
		for i := 0; i < b.N; i += 1000 {
			appendN(b, st, i+1, min(1000, b.N-i), "adt", benchPad)
		}
		var n atomic.Int64
		done := make(chan struct{})
		w, err := delivery.NewWorker(delivery.WorkerConfig{
			Name: dest, Store: st, Transport: mllpTransport(b, addr), Mapper: anyRoute,
			Metrics: delivery.NewMetrics(prometheus.NewRegistry()),
			OnEvent: func(e delivery.Event) {
				if e.Kind == delivery.EventDelivered && n.Add(1) == int64(b.N) {
					close(done)
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		b.SetBytes(int64(len(msgRaw("C0001", benchPad))))
		b.ResetTimer()
		start := time.Now()
		go func() { ran <- w.Run(ctx) }()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d delivered", n.Load(), b.N)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	})
	b.Run("client", func(b *testing.B) {
		addr, _ := startMLLP(b, newDownstream(allAA), "")
		c := &mllp.Client{Addr: addr}
		defer c.Close()
		msgs := make([][]byte, b.N)
		for i := range msgs {
			msgs[i] = msgRaw(ctrlID(i+1), benchPad)
		}
		b.SetBytes(int64(len(msgs[0])))
		b.ResetTimer()
		start := time.Now()
		for _, m := range msgs {
			if _, err := c.Send(context.Background(), m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	})
}
