package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/relay/internal/delivery"
	"github.com/mllpd/mllpd/relay/internal/transport"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	ackR := func(code, errCode string) transport.Result {
		return transport.Result{AckCode: code, AckControlID: "C1", ErrorCode: errCode}
	}
	httpR := func(s int) transport.Result { return transport.Result{HTTPStatus: s} }
	tests := []struct {
		name     string
		override map[string]string
		res      transport.Result
		err      error
		class    delivery.Class
		kind     string
	}{
		{"AA", nil, ackR("AA", ""), nil, delivery.Delivered, delivery.KindDelivered},
		{"AA_with_warning", nil, ackR("AA", "207"), nil, delivery.Delivered, delivery.KindDelivered},
		{"CA", nil, ackR("CA", ""), nil, delivery.Delivered, delivery.KindDelivered},
		{"AE", nil, ackR("AE", ""), nil, delivery.Permanent, delivery.KindAckAE},
		{"AE_207", nil, ackR("AE", "207"), nil, delivery.Permanent, delivery.KindAckAE},
		{"CR", nil, ackR("CR", ""), nil, delivery.Permanent, delivery.KindAckCR},
		{"AR_none", nil, ackR("AR", ""), nil, delivery.Retriable, delivery.KindAckAR},
		{"AR_local", nil, ackR("AR", "X1"), nil, delivery.Retriable, delivery.KindAckAR},
		{"AR_206", nil, ackR("AR", "206"), nil, delivery.Retriable, delivery.KindAckAR},
		{"AR_207", nil, ackR("AR", "207"), nil, delivery.Retriable, delivery.KindAckAR},
		{"AR_198", nil, ackR("AR", "198"), nil, delivery.Retriable, delivery.KindAckAR},
		{"CE_none", nil, ackR("CE", ""), nil, delivery.Retriable, delivery.KindAckCE},
		{"unknown_code", nil, ackR("XX", ""), nil, delivery.Retriable, delivery.KindAckUnknown},
		{"override_AE", map[string]string{"AE": "retriable"}, ackR("AE", "101"), nil, delivery.Retriable, delivery.KindAckAE},
		{"override_specific_first", map[string]string{"AR/207": "block", "AR": "permanent"}, ackR("AR", "207"), nil, delivery.Block, delivery.KindAckAR},
		{"override_general", map[string]string{"AR/207": "block", "AR": "permanent"}, ackR("AR", "206"), nil, delivery.Permanent, delivery.KindAckAR},
		{"http_200", nil, httpR(200), nil, delivery.Delivered, delivery.KindDelivered},
		{"http_299", nil, httpR(299), nil, delivery.Delivered, delivery.KindDelivered},
		{"http_101", nil, httpR(101), nil, delivery.Permanent, delivery.KindHTTPOther},
		{"http_302", nil, httpR(302), nil, delivery.Permanent, delivery.KindHTTPOther},
		{"http_400", nil, httpR(400), nil, delivery.Permanent, delivery.KindHTTP4xx},
		{"http_401", nil, httpR(401), nil, delivery.Block, delivery.KindHTTPAuth},
		{"http_403", nil, httpR(403), nil, delivery.Block, delivery.KindHTTPAuth},
		{"http_408", nil, httpR(408), nil, delivery.Retriable, delivery.KindHTTP4xx},
		{"http_425", nil, httpR(425), nil, delivery.Retriable, delivery.KindHTTP4xx},
		{"http_429", nil, httpR(429), nil, delivery.Retriable, delivery.KindHTTP4xx},
		{"http_500", nil, httpR(500), nil, delivery.Retriable, delivery.KindHTTP5xx},
		{"http_599", nil, httpR(599), nil, delivery.Retriable, delivery.KindHTTP5xx},
		{"file_written", nil, transport.Result{}, nil, delivery.Delivered, delivery.KindDelivered},
		{"mismatch", nil, transport.Result{}, &mllp.SendError{Op: "check", Err: &mllp.AckMismatchError{Sent: "C1", Got: "C0"}}, delivery.Retriable, delivery.KindAckMismatch},
		{"deadline", nil, transport.Result{}, &mllp.SendError{Op: "read", Err: os.ErrDeadlineExceeded}, delivery.Retriable, delivery.KindTimeout},
		{"ctx_deadline", nil, transport.Result{}, fmt.Errorf("post: %w", context.DeadlineExceeded), delivery.Retriable, delivery.KindTimeout},
		{"net_timeout", nil, transport.Result{}, timeoutErr{}, delivery.Retriable, delivery.KindTimeout},
		{"eof", nil, transport.Result{}, &mllp.SendError{Op: "read", Err: io.EOF}, delivery.Retriable, delivery.KindConnection},
		{"bad_reply", nil, transport.Result{}, &transport.ReplyError{Reason: "no MSA-1"}, delivery.Retriable, delivery.KindBadReply},
		{"io", nil, transport.Result{}, fmt.Errorf("file: %w", &os.PathError{Op: "open", Path: "/x", Err: errors.New("no space")}), delivery.Retriable, delivery.KindIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := delivery.NewClassifier(tt.override)
			if err != nil {
				t.Fatal(err)
			}
			class, kind := c.Classify(tt.res, tt.err)
			if class != tt.class || kind != tt.kind {
				t.Errorf("Classify = %v, %q; want %v, %q", class, kind, tt.class, tt.kind)
			}
		})
	}
}

func TestNewClassifierErrors(t *testing.T) {
	for _, o := range []map[string]string{
		{"XX": "retriable"},
		{"ar": "retriable"}, // keys keep their case, as config validates them
		{"AR/": "retriable"},
		{"AE": "sometimes"},
	} {
		if _, err := delivery.NewClassifier(o); err == nil {
			t.Errorf("NewClassifier(%v) = nil error", o)
		}
	}
	for _, s := range []string{"delivered", "retriable", "permanent", "block"} {
		c, err := delivery.ParseClass(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseClass(%q) = %v, %v", s, c, err)
		}
	}
}
