package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Body formats of the HTTP transport.
const (
	FormatER7  = "er7"  // the message as is, Content-Type ContentTypeER7
	FormatJSON = "json" // RenderJSON, Content-Type application/json
)

// ContentTypeER7 is the media type of a raw ER7 body.
const ContentTypeER7 = "x-application/hl7-v2+er7"

// DefaultHTTPTimeout bounds a whole request when Config.Timeout is 0.
const DefaultHTTPTimeout = 30 * time.Second

// maxResponseBytes is read of a response body (then discarded) so that the
// connection can be reused; a larger body closes it instead.
const maxResponseBytes = 64 << 10

// HTTP POSTs each message to one URL.
type HTTP struct {
	url     string
	display string // for errors: no credentials, no query (it may hold an API key)
	json    bool
	timeout time.Duration
	header  http.Header
	client  *http.Client
	tr      *http.Transport
	now     func() time.Time
}

// NewHTTP returns an HTTP transport for c.URL.
func NewHTTP(c Config) (*HTTP, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("transport: destination %q: url: %w", c.Name, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("transport: destination %q: url %s: want http:// or https://host", c.Name, u.Redacted())
	}
	h := &HTTP{url: c.URL, display: u.Scheme + "://" + u.Host + u.Path, timeout: c.Timeout, header: http.Header{}, now: time.Now}
	switch c.Format {
	case "", FormatER7:
		h.header.Set("Content-Type", ContentTypeER7)
	case FormatJSON:
		h.json = true
		h.header.Set("Content-Type", "application/json")
	default:
		return nil, fmt.Errorf("transport: destination %q: unknown format %q (er7 or json)", c.Name, c.Format)
	}
	if h.timeout <= 0 {
		h.timeout = DefaultHTTPTimeout
	}
	for k, v := range c.Headers {
		h.header.Set(k, v)
	}
	h.tr = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     c.TLS,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 1, // one worker, one request at a time
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	h.client = &http.Client{
		Transport: h.tr,
		// A redirect is reported as its status, not followed: re-POSTing
		// patient data to another URL is a decision for the admin.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h, nil
}

// Send POSTs msg and returns the status and Retry-After. Any status is a
// Result (the worker classifies it); errors are transport failures, with
// context.DeadlineExceeded for the timeout.
func (t *HTTP) Send(ctx context.Context, msg Message) (Result, error) {
	body := msg.Body
	if t.json {
		var err error
		if body, err = RenderJSON(msg.Body); err != nil {
			return Result{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("transport: http request: %w", err)
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query included
		}
		return Result{}, fmt.Errorf("transport: post %s: %w", t.display, err)
	}
	// Drain a bounded part so the keep-alive connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	return Result{HTTPStatus: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), t.now())}, nil
}

// Close closes idle connections.
func (t *HTTP) Close() error {
	t.tr.CloseIdleConnections()
	return nil
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
// Unparsable or past values give 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
