package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
)

// ackHandler answers every frame AA after store(frame) returned nil. Both
// baselines build their ACK with the hl7 package, as mllpd does, so what
// differs between them and mllpd is what happens before the ACK.
func ackHandler(store func([]byte) error) mllp.Handler {
	return mllp.HandlerFunc(func(ctx context.Context, req *mllp.Request) ([]byte, error) {
		m, err := hl7.Parse(req.Frame)
		if err != nil {
			return nil, err
		}
		if store != nil {
			if err := store(req.Frame); err != nil {
				return nil, err
			}
		}
		return hl7.NewACK(m, hl7.AA, hl7.AckOptions{Now: time.Now(), ControlID: "BENCH"}), nil
	})
}

func serveOn(addr string, h mllp.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &mllp.Server{Handler: h, MaxConns: 0, IdleTimeout: time.Hour}
	return srv.Serve(ln)
}

// serveCount is the end-to-end benchmark's downstream: it ACKs at once and
// prints "COUNT LAST_ARRIVAL_UNIX_NANOS" every 5 ms while messages arrive.
func serveCount(addr string) error {
	var count, last atomic.Int64
	h := ackHandler(func([]byte) error {
		last.Store(time.Now().UnixNano())
		count.Add(1)
		return nil
	})
	go func() {
		var reported int64
		for range time.Tick(5 * time.Millisecond) {
			if n := count.Load(); n != reported {
				reported = n
				fmt.Printf("%d %d\n", n, last.Load())
			}
		}
	}()
	return serveOn(addr, h)
}

// serveAck is the ceiling: an MLLP server that ACKs without storing.
func serveAck(addr string) error { return serveOn(addr, ackHandler(nil)) }

// serveBbolt stores each message under a sequence key in one bucket with a
// bare leader/follower group commit around bbolt Update: the first arrival
// commits at once, the ones arriving meanwhile form the next batch.
func serveBbolt(addr, file string) error {
	db, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	g := &groupCommit{db: db}
	return serveOn(addr, ackHandler(g.append))
}

type gcReq struct {
	v    []byte
	done chan error
}

type groupCommit struct {
	db      *bolt.DB
	mu      sync.Mutex
	pending []*gcReq
	leading bool
	seq     uint64
}

func (g *groupCommit) append(v []byte) error {
	r := &gcReq{v: append([]byte(nil), v...), done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		return <-r.done
	}
	g.leading = true
	for len(g.pending) > 0 {
		batch := g.pending
		g.pending = nil
		g.mu.Unlock()
		err := g.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("log"))
			if err != nil {
				return err
			}
			for _, r := range batch {
				g.seq++
				if err := b.Put(binary.BigEndian.AppendUint64(nil, g.seq), r.v); err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range batch {
			r.done <- err
		}
		g.mu.Lock()
	}
	g.leading = false
	g.mu.Unlock()
	return <-r.done
}
