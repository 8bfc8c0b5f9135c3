package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/relay/internal/transport"
)

// A Class is what a delivery attempt's outcome means for its queue entry.
type Class int

// The classes, in the vocabulary of the classify config key.
const (
	Delivered Class = iota // the downstream has it: the entry leaves the queue
	Retriable              // try again after a backoff; the queue waits
	Permanent              // will fail again: the destination's on_permanent_failure applies
	Block                  // a config problem (HTTP 401/403): block the queue and alert
)

var classNames = [...]string{"delivered", "retriable", "permanent", "block"}

// String returns the class's config name.
func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// ParseClass parses a class's config name.
func ParseClass(s string) (Class, error) {
	for i, n := range classNames {
		if s == n {
			return Class(i), nil
		}
	}
	return 0, fmt.Errorf("unknown class %q (delivered, retriable, permanent or block)", s)
}

// Kinds of outcome: a closed set, used as the last_error_class metric label
// and in the recorded error text.
const (
	KindDelivered    = "delivered"
	KindTimeout      = "timeout"
	KindConnection   = "connection"
	KindAckMismatch  = "ack_mismatch"
	KindBadReply     = "bad_reply"
	KindAckAE        = "ack_ae"
	KindAckAR        = "ack_ar"
	KindAckCE        = "ack_ce"
	KindAckCR        = "ack_cr"
	KindAckUnknown   = "ack_unknown"
	KindHTTPAuth     = "http_auth"
	KindHTTP4xx      = "http_4xx"
	KindHTTP5xx      = "http_5xx"
	KindHTTPOther    = "http_other"
	KindIO           = "io"
	KindMapping      = "mapping"
	KindRouteRemoved = "route_removed"
	KindMissing      = "message_missing"
)

var ackCodes = []string{"AA", "AE", "AR", "CA", "CE", "CR"}

// A Classifier turns a transport's Result and error into a Class, by
// design.md's table and a destination's overrides. It is immutable and safe
// for concurrent use.
type Classifier struct {
	overrides map[string]Class
}

// NewClassifier validates overrides (the destination's classify map: keys
// "AE" or "AR/207", values delivered|retriable|permanent|block) and returns
// the Classifier.
func NewClassifier(overrides map[string]string) (*Classifier, error) {
	c := &Classifier{overrides: make(map[string]Class, len(overrides))}
	var errs []error
	for k, v := range overrides {
		code, num, hasNum := strings.Cut(k, "/")
		switch {
		case !contains(ackCodes, code):
			errs = append(errs, fmt.Errorf("classify %q: unknown ACK code", k))
			continue
		case hasNum && (num == "" || strings.ContainsAny(num, " \t")):
			errs = append(errs, fmt.Errorf("classify %q: empty error code", k))
			continue
		}
		cl, err := ParseClass(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("classify %q: %w", k, err))
			continue
		}
		c.overrides[k] = cl
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Classify returns the class of one attempt and its kind (a closed set).
//
// Table (design.md): AA/CA delivered; AE and CR permanent; AR and CE by their
// error code: 100–104 and 200–205 permanent, 206, 207, local codes or none
// retriable. No ACK, a timeout, a connection error, an unreadable reply or an
// MSA-2 that is not the sent MSH-10: retriable. HTTP 2xx delivered; 408, 425,
// 429, 5xx retriable; 401/403 block; other statuses permanent. A nil error
// with no ACK and no status (file written) is delivered. Overrides apply to
// ACK codes: "AR/207" before "AR" before the table.
func (c *Classifier) Classify(res transport.Result, err error) (Class, string) {
	if err != nil {
		return Retriable, errorKind(err)
	}
	if res.AckCode != "" {
		kind := ackKind(res.AckCode)
		if res.ErrorCode != "" {
			if cl, ok := c.overrides[res.AckCode+"/"+res.ErrorCode]; ok {
				return cl, kind
			}
		}
		if cl, ok := c.overrides[res.AckCode]; ok {
			return cl, kind
		}
		switch res.AckCode {
		case "AA", "CA":
			return Delivered, kind
		case "AE", "CR":
			return Permanent, kind
		case "AR", "CE":
			if permanentErrorCode(res.ErrorCode) {
				return Permanent, kind
			}
			return Retriable, kind
		default:
			return Retriable, kind // not an ACK code: hold the queue rather than guess
		}
	}
	if s := res.HTTPStatus; s != 0 {
		switch {
		case s >= 200 && s < 300:
			return Delivered, KindDelivered
		case s == 401 || s == 403:
			return Block, KindHTTPAuth
		case s == 408 || s == 425 || s == 429:
			return Retriable, KindHTTP4xx
		case s >= 500 && s < 600:
			return Retriable, KindHTTP5xx
		case s >= 400 && s < 500:
			return Permanent, KindHTTP4xx
		default:
			return Permanent, KindHTTPOther // 1xx, 3xx (redirects are not followed)
		}
	}
	return Delivered, KindDelivered
}

func ackKind(code string) string {
	switch code {
	case "AA", "CA":
		return KindDelivered
	case "AE":
		return KindAckAE
	case "AR":
		return KindAckAR
	case "CE":
		return KindAckCE
	case "CR":
		return KindAckCR
	}
	return KindAckUnknown
}

// permanentErrorCode reports whether a table 0357 code says the message
// itself is wrong (100–104) or will never be accepted (200–205).
func permanentErrorCode(code string) bool {
	switch code {
	case "100", "101", "102", "103", "104", "200", "201", "202", "203", "204", "205":
		return true
	}
	return false
}

func errorKind(err error) string {
	var re *transport.ReplyError
	var ne net.Error
	switch {
	case errors.Is(err, mllp.ErrAckMismatch):
		return KindAckMismatch
	case errors.As(err, &re):
		return KindBadReply
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.As(err, new(*os.PathError)), errors.As(err, new(*os.LinkError)):
		return KindIO
	}
	return KindConnection
}
