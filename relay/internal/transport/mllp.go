package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
)

// MLLP sends over one kept-alive MLLP connection (mllp.Client: dialled on
// first use, closed on any error, MSA-2 checked).
type MLLP struct {
	c *mllp.Client
}

// NewMLLP returns an MLLP transport for c.Address.
func NewMLLP(c Config) (*MLLP, error) {
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return nil, fmt.Errorf("transport: destination %q: address: %w", c.Name, err)
	}
	return &MLLP{c: &mllp.Client{
		Addr:          c.Address,
		TLSConfig:     c.TLS,
		DialTimeout:   c.DialTimeout,
		AckTimeout:    c.AckTimeout,
		MaxFrameBytes: c.MaxReplyBytes,
	}}, nil
}

// Send sends msg.Body and returns the downstream ACK's codes. Transport
// failures are the mllp.Client's *mllp.SendError; a reply without MSA is a
// *ReplyError.
func (t *MLLP) Send(ctx context.Context, msg Message) (Result, error) {
	reply, err := t.c.Send(ctx, msg.Body)
	if err != nil {
		return Result{}, err
	}
	return ParseACK(reply)
}

// Close closes the connection.
func (t *MLLP) Close() error {
	if err := t.c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

var (
	pathMSA1 = hl7.MustParsePath("MSA-1")
	pathMSA2 = hl7.MustParsePath("MSA-2")
	pathMSA6 = hl7.MustParsePath("MSA-6.1")
	pathERR3 = hl7.MustParsePath("ERR-3.1")
	pathERR1 = hl7.MustParsePath("ERR-1.4.1")
)

// ParseACK reads MSA-1, MSA-2 and the error code of an ACK. The error code is
// ERR-3.1 (v2.5+), else ERR-1.4.1 (the ELD of earlier versions), else MSA-6.1:
// tried in that order so a receiver that mixes versions is still read.
func ParseACK(reply []byte) (Result, error) {
	m, err := hl7.Parse(reply)
	if err != nil {
		return Result{}, &ReplyError{Reason: "not an HL7 message", Err: err}
	}
	code := strings.ToUpper(strings.TrimSpace(m.Get(pathMSA1)))
	if code == "" {
		return Result{}, &ReplyError{Reason: "no MSA-1"}
	}
	r := Result{AckCode: code, AckControlID: string(m.GetRaw(pathMSA2))}
	for _, p := range []hl7.Path{pathERR3, pathERR1, pathMSA6} {
		if v := strings.TrimSpace(m.Get(p)); v != "" {
			r.ErrorCode = v
			break
		}
	}
	return r, nil
}
