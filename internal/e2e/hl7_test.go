package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mllpd/mllpd/mllp"
)

// adt builds a small, fictional ADT^A01 from sending application app with
// control ID ctrl (v2.5.1, CR terminators).
func adt(app, ctrl string) []byte {
	return []byte(fmt.Sprintf("MSH|^~\\&|%s|E2EFAC|MLLPD|HUB|20260101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"+
		"EVN|A01|20260101120000\r"+
		"PID|1||%s^^^E2E^MR||TESTPATIENT^ALPHA||19700101|U\r"+
		"PV1|1|I|W1^101^1\r", app, ctrl, ctrl))
}

// An ack is the part of a reply the suites check.
type ack struct {
	Code    string // MSA-1
	Ctrl    string // MSA-2
	Text    string // MSA-3
	ErrCode string // ERR-3.1 (v2.5+) or ERR-1.4.1 (older)
}

func (a ack) String() string {
	return fmt.Sprintf("%s/%s (MSA-2 %q, %q)", a.Code, a.ErrCode, a.Ctrl, a.Text)
}

// parseACK reads MSA and ERR from a reply; a reply without MSA gives Code "".
func parseACK(reply []byte) ack {
	var a ack
	s := string(reply)
	if len(s) < 4 || !strings.HasPrefix(s, "MSH") {
		return a
	}
	fs := string(s[3])
	comp := "^"
	if len(s) > 4 {
		comp = string(s[4])
	}
	for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
		f := strings.Split(seg, fs)
		get := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		switch f[0] {
		case "MSA":
			a.Code, a.Ctrl, a.Text = get(1), get(2), get(3)
		case "ERR":
			if c := get(3); c != "" {
				a.ErrCode, _, _ = strings.Cut(c, comp)
			} else if c := get(1); c != "" { // ERR-1 form: ^^^207&text&HL70357
				parts := strings.Split(c, comp)
				if len(parts) > 3 {
					a.ErrCode, _, _ = strings.Cut(parts[3], "&")
				}
			}
		}
	}
	return a
}

// sendOnce sends msg on a new connection and returns the parsed reply.
func sendOnce(addr string, msg []byte, timeout time.Duration) (ack, error) {
	c := &mllp.Client{Addr: addr, AckTimeout: timeout, DialTimeout: timeout}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	reply, err := c.Send(ctx, msg)
	if err != nil {
		return ack{}, err
	}
	return parseACK(reply), nil
}

// dialFrom opens a TCP connection to addr from the loopback address src
// (e.g. "127.0.0.2"), so that per-IP limits count it apart from 127.0.0.1.
func dialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp", addr)
}

// frame wraps payload in MLLP's VT ... FS CR.
func frame(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+3)
	out = append(out, 0x0b)
	out = append(out, payload...)
	return append(out, 0x1c, 0x0d)
}

// batchAckCodes returns the MSA-1 of every ACK in a reply batch (BHS..BTS),
// in order.
func batchAckCodes(reply []byte) []string {
	s := string(reply)
	if len(s) < 4 || !(strings.HasPrefix(s, "BHS") || strings.HasPrefix(s, "FHS")) {
		return nil
	}
	fs := string(s[3])
	var codes []string
	for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if f := strings.Split(seg, fs); f[0] == "MSA" && len(f) > 1 {
			codes = append(codes, f[1])
		}
	}
	return codes
}
