package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A Client calls a running daemon's admin API. Its methods mirror Ops one for
// one (same arguments, same results), so a caller can hold either behind one
// interface: the API while the daemon runs, Ops on the file when it is
// stopped. A refusal by the daemon comes back as *AdminError with the HTTP
// status and the daemon's message.
type Client struct {
	// BaseURL is the admin API's root, e.g. "http://127.0.0.1:8765".
	BaseURL string
	// Token is the bearer token (the contents of admin.token_file).
	Token string
	// HTTPClient is used for requests; nil = a client like NewHTTPClient's
	// without keep-alives, so nothing lingers after a call (NewClient sets a
	// shared one, so its connections are reused).
	HTTPClient *http.Client
}

// NewClient returns a client for the admin API listening at addr (a
// host:port as in admin.listen; an unspecified host such as ":8765" or
// "0.0.0.0:8765" is reached on loopback).
func NewClient(addr, token string) *Client {
	return &Client{BaseURL: "http://" + DialableAddr(addr), Token: token, HTTPClient: NewHTTPClient()}
}

// NewHTTPClient returns the HTTP client the admin Client uses by default: no
// proxy (the admin API is local; the token must not go to a proxy), a 5 s
// dial timeout, and no overall timeout: a backup or a large backfill takes as
// long as it takes, bounded by the caller's ctx.
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}}
}

// DialableAddr turns a listen address into one a local client can dial:
// an empty or unspecified host becomes the loopback address.
func DialableAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	c2 := NewHTTPClient()
	c2.Transport.(*http.Transport).DisableKeepAlives = true
	return c2
}

// Healthy reports whether the daemon's admin API answers /healthz (no
// token needed).
func (c *Client) Healthy(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API %s/healthz answered %s", c.BaseURL, resp.Status)
	}
	return nil
}

// do sends one request and decodes a JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send sends one request; a non-2xx answer is turned into *AdminError (or
// an error naming the status) and the body closed.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return nil, &AdminError{Code: resp.StatusCode, Msg: e.Error}
	}
	text := strings.TrimSpace(string(msg))
	if resp.StatusCode == http.StatusUnauthorized {
		text = "the admin token was refused: the token file does not match the running daemon's (" + text + ")"
	}
	return nil, &AdminError{Code: resp.StatusCode, Msg: fmt.Sprintf("admin API %s %s: %s: %s", method, path, resp.Status, text)}
}

// ListMessages is Ops.ListMessages over the API.
func (c *Client) ListMessages(ctx context.Context, f MessageFilter) (MessageList, error) {
	q := url.Values{}
	setTime(q, "since", f.Since)
	setTime(q, "until", f.Until)
	setStr(q, "type", f.Type)
	setStr(q, "control_id", f.ControlID)
	setStr(q, "patient_id", f.PatientID)
	setStr(q, "sending_facility", f.SendingFacility)
	setStr(q, "state", f.State)
	setPaging(q, f.After, f.Limit)
	var out MessageList
	return out, c.do(ctx, http.MethodGet, "/api/v1/messages", q, nil, &out)
}

// ShowMessage is Ops.ShowMessage over the API.
func (c *Client) ShowMessage(ctx context.Context, seq uint64) (MessageDetail, error) {
	var out MessageDetail
	return out, c.do(ctx, http.MethodGet, "/api/v1/messages/"+strconv.FormatUint(seq, 10), nil, nil, &out)
}

// Resend is Ops.Resend over the API.
func (c *Client) Resend(ctx context.Context, seqs []uint64, to string) (ResendResult, error) {
	var out ResendResult
	return out, c.do(ctx, http.MethodPost, "/api/v1/messages/resend", nil, ResendRequest{Seqs: seqs, To: to}, &out)
}

// ResendRange is Ops.ResendRange over the API.
func (c *Client) ResendRange(ctx context.Context, since, until time.Time, typ, to string) (ResendResult, error) {
	var out ResendResult
	req := ResendRequest{To: to, Since: since, Until: until, Type: typ}
	return out, c.do(ctx, http.MethodPost, "/api/v1/messages/resend", nil, req, &out)
}

// ListRejected is Ops.ListRejected over the API.
func (c *Client) ListRejected(ctx context.Context, after uint64, limit int) (RejectedList, error) {
	q := url.Values{}
	setPaging(q, after, limit)
	var out RejectedList
	return out, c.do(ctx, http.MethodGet, "/api/v1/rejected", q, nil, &out)
}

// ShowRejected is Ops.ShowRejected over the API.
func (c *Client) ShowRejected(ctx context.Context, id uint64) (RejectedDetail, error) {
	var out RejectedDetail
	return out, c.do(ctx, http.MethodGet, "/api/v1/rejected/"+strconv.FormatUint(id, 10), nil, nil, &out)
}

// ListDeadLetters is Ops.ListDeadLetters over the API.
func (c *Client) ListDeadLetters(ctx context.Context, dest string, after uint64, limit int) (DeadLetterList, error) {
	q := url.Values{}
	setStr(q, "destination", dest)
	setPaging(q, after, limit)
	var out DeadLetterList
	return out, c.do(ctx, http.MethodGet, "/api/v1/dead-letters", q, nil, &out)
}

// ShowDeadLetter is Ops.ShowDeadLetter over the API.
func (c *Client) ShowDeadLetter(ctx context.Context, dest string, id uint64) (DeadLetterDetail, error) {
	var out DeadLetterDetail
	p := "/api/v1/dead-letters/" + url.PathEscape(dest) + "/" + strconv.FormatUint(id, 10)
	return out, c.do(ctx, http.MethodGet, p, nil, nil, &out)
}

// ResendDeadLetters is Ops.ResendDeadLetters over the API (ids empty = all).
func (c *Client) ResendDeadLetters(ctx context.Context, dest string, ids []uint64) (ResendResult, error) {
	var out ResendResult
	body := DeadLetterResendRequest{IDs: ids, All: len(ids) == 0}
	return out, c.do(ctx, http.MethodPost, "/api/v1/dead-letters/"+url.PathEscape(dest)+"/resend", nil, body, &out)
}

// PurgeDeadLetters is Ops.PurgeDeadLetters over the API; dest "" purges
// every destination's.
func (c *Client) PurgeDeadLetters(ctx context.Context, dest string, olderThan time.Time) (PurgeResult, error) {
	var out PurgeResult
	p := "/api/v1/dead-letters/purge"
	if dest != "" {
		p = "/api/v1/dead-letters/" + url.PathEscape(dest) + "/purge"
	}
	return out, c.do(ctx, http.MethodPost, p, nil, PurgeRequest{OlderThan: olderThan}, &out)
}

// Destinations is Ops.Destinations over the API.
func (c *Client) Destinations(ctx context.Context) ([]DestinationStatus, error) {
	var out []DestinationStatus
	return out, c.do(ctx, http.MethodGet, "/api/v1/destinations", nil, nil, &out)
}

// Unblock is Ops.Unblock over the API.
func (c *Client) Unblock(ctx context.Context, dest string) (DestinationStatus, error) {
	var out DestinationStatus
	return out, c.do(ctx, http.MethodPost, "/api/v1/destinations/"+url.PathEscape(dest)+"/unblock", nil, nil, &out)
}

// Skip is Ops.Skip over the API.
func (c *Client) Skip(ctx context.Context, dest string) (SkipResult, error) {
	var out SkipResult
	return out, c.do(ctx, http.MethodPost, "/api/v1/destinations/"+url.PathEscape(dest)+"/skip", nil, nil, &out)
}

// Info is Ops.Info over the API.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var out Info
	return out, c.do(ctx, http.MethodGet, "/api/v1/info", nil, nil, &out)
}

// ErrBackupTruncated means the backup stream ended early or its length did
// not match what the daemon reported: the copy must not be used.
var ErrBackupTruncated = errors.New("admin: backup stream incomplete")

// Backup streams the daemon's consistent copy of the store to w and returns
// the bytes written. It fails with ErrBackupTruncated unless the daemon
// confirmed the full length.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/backup", nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("%w after %d bytes: %w", ErrBackupTruncated, n, err)
	}
	want := resp.Trailer.Get(BackupBytesTrailer)
	if want != strconv.FormatInt(n, 10) {
		return n, fmt.Errorf("%w: received %d bytes, the daemon reported %q", ErrBackupTruncated, n, want)
	}
	return n, nil
}

func setStr(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func setTime(q url.Values, k string, t time.Time) {
	if !t.IsZero() {
		q.Set(k, t.Format(time.RFC3339Nano))
	}
}

func setPaging(q url.Values, after uint64, limit int) {
	if after != 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
}
