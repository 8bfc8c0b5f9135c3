package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// A Message is one outbound message for one destination.
type Message struct {
	Seq       uint64 // store sequence number (file names)
	ControlID string // MSH-10 as on the wire (file names, logs)
	Body      []byte // the bytes to send (hl7map.Outbound)
}

// A Result is what the downstream answered. The zero Result with a nil error
// means accepted without an answer to report (file written).
type Result struct {
	AckCode      string        // MSA-1 (MLLP)
	AckControlID string        // MSA-2 (MLLP)
	ErrorCode    string        // ERR-3.1, or ERR-1.4.1 / MSA-6.1 before v2.5 (MLLP)
	HTTPStatus   int           // HTTP status code (HTTP)
	RetryAfter   time.Duration // parsed Retry-After header, 0 if none (HTTP)
}

// A ReplyError is a downstream reply that is not a usable ACK (no MSA, not
// HL7 at all). The connection stays usable: the reply was read whole.
type ReplyError struct {
	Reason string // fixed text, no reply content
	Err    error  // the parse error, if any
}

// Error returns "transport: unusable reply: <reason>".
func (e *ReplyError) Error() string {
	if e.Err != nil {
		return "transport: unusable reply: " + e.Reason + ": " + e.Err.Error()
	}
	return "transport: unusable reply: " + e.Reason
}

// Unwrap returns the parse error, if any.
func (e *ReplyError) Unwrap() error { return e.Err }

// Type names of the transports.
const (
	TypeMLLP = "mllp"
	TypeHTTP = "http"
	TypeFile = "file"
)

// Config is one destination's transport settings (config.Destination minus
// the delivery policy). Zero durations mean the defaults documented on each
// field.
type Config struct {
	Name string // destination name, for errors
	Type string // TypeMLLP, TypeHTTP or TypeFile

	// MLLP
	Address       string        // host:port
	AckTimeout    time.Duration // write plus wait for the ACK; 0 = mllp.DefaultAckTimeout (30s)
	DialTimeout   time.Duration // 0 = mllp.DefaultDialTimeout (10s)
	MaxReplyBytes int           // largest ACK accepted; 0 = mllp.DefaultMaxFrameBytes

	// TLS for MLLP and HTTP; nil = plain TCP (MLLP) or Go's defaults (https URLs).
	TLS *tls.Config

	// HTTP
	URL     string
	Format  string            // FormatER7 ("" too) or FormatJSON
	Timeout time.Duration     // whole request; 0 = 30s
	Headers map[string]string // e.g. Authorization: Bearer ...; a Content-Type here replaces the format's

	// File
	Dir string
}

// ClientTLSConfig builds a client TLS config from PEM files: caFile ("" =
// the system roots) verifies the server, certFile/keyFile (both or neither)
// are the client certificate for mTLS.
func ClientTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("transport: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: ca_file %s: %w", caFile, errNoPEM)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("transport: cert_file and key_file go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("transport: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

var errNoPEM = errors.New("no PEM certificates found")
