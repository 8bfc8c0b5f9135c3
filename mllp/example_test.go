package mllp_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mllpd/mllpd/mllp"
)

// A listener that answers every message, and a client that sends one. A
// real handler stores the message durably before it answers AA.
func Example() {
	srv := &mllp.Server{
		Name:          "lab",
		MaxFrameBytes: 16 << 20,
		IdleTimeout:   30 * time.Minute,
		Handler: mllp.HandlerFunc(func(ctx context.Context, req *mllp.Request) ([]byte, error) {
			if req.Oversize > 0 {
				return nil, nil // a real handler NAKs it from req.Frame's MSH (reference §11.1 case 9)
			}
			ctl := bytes.Split(bytes.SplitN(req.Frame, []byte("\r"), 2)[0], []byte("|"))[9]
			return fmt.Appendf(nil, "MSH|^~\\&|MLLPD|HUB|||20240131123046||ACK|A%s|P|2.5.1\rMSA|AA|%s\r", ctl, ctl), nil
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	c := &mllp.Client{Addr: ln.Addr().String(), AckTimeout: 10 * time.Second}
	reply, err := c.Send(context.Background(),
		[]byte("MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045||ORU^R01|CTL0001|P|2.5.1\rPID|1||123\r"))
	if err != nil {
		fmt.Println("send:", err)
	}
	fmt.Printf("%q\n", bytes.SplitN(reply, []byte("\r"), 2)[1])
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx), <-served)
	// Output:
	// "MSA|AA|CTL0001\r"
	// <nil> mllp: server closed
}
