package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/relay"
	"github.com/mllpd/mllpd/store"
)

// adminOps is what the admin commands call: *relay.Client while the daemon
// runs (bbolt's file lock allows no second open), *relay.Ops on the store file
// while it is stopped. Both have these methods with the same meaning.
type adminOps interface {
	ListMessages(ctx context.Context, f relay.MessageFilter) (relay.MessageList, error)
	ShowMessage(ctx context.Context, seq uint64) (relay.MessageDetail, error)
	Resend(ctx context.Context, seqs []uint64, to string) (relay.ResendResult, error)
	ResendRange(ctx context.Context, since, until time.Time, typ, to string) (relay.ResendResult, error)
	ListRejected(ctx context.Context, after uint64, limit int) (relay.RejectedList, error)
	ShowRejected(ctx context.Context, id uint64) (relay.RejectedDetail, error)
	ListDeadLetters(ctx context.Context, dest string, after uint64, limit int) (relay.DeadLetterList, error)
	ShowDeadLetter(ctx context.Context, dest string, id uint64) (relay.DeadLetterDetail, error)
	ResendDeadLetters(ctx context.Context, dest string, ids []uint64) (relay.ResendResult, error)
	PurgeDeadLetters(ctx context.Context, dest string, olderThan time.Time) (relay.PurgeResult, error)
	Destinations(ctx context.Context) ([]relay.DestinationStatus, error)
	Unblock(ctx context.Context, dest string) (relay.DestinationStatus, error)
	Skip(ctx context.Context, dest string) (relay.SkipResult, error)
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

var (
	_ adminOps = (*relay.Ops)(nil)
	_ adminOps = (*relay.Client)(nil)
)

// healthProbeTimeout bounds the check whether a daemon answers at
// admin.listen; a local API answers in milliseconds.
const healthProbeTimeout = 2 * time.Second

// offlineLockTimeout is how long an offline command waits for the store's
// file lock before concluding that a daemon holds it.
const offlineLockTimeout = 500 * time.Millisecond

// session is an admin command's connection: the API or the open store.
type session struct {
	ops     adminOps
	cfg     *config.Config
	online  bool   // through the running daemon's API
	apiAddr string // admin.listen as dialled
	close   func() error
}

// Online says which way the command went, for messages that differ
// (an offline resend is delivered when the daemon starts).
func (s *session) Online() bool { return s.online }

// dbPath is the store file under data_dir.
func dbPath(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "mllpd.db") }

// daemonRunning reports whether a daemon's admin API answers /healthz at
// cfg's admin.listen.
func daemonRunning(ctx context.Context, cfg *config.Config) bool {
	ctx, cancel := context.WithTimeout(ctx, healthProbeTimeout)
	defer cancel()
	return relay.NewClient(cfg.Admin.Listen, "").Healthy(ctx) == nil
}

// openSession loads the config at path and connects: through the admin API
// when the daemon answers there, else to the store file (read-only unless
// write). The caller closes the session.
func openSession(ctx context.Context, path string, write bool, stderr io.Writer) (*session, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	addr := relay.DialableAddr(cfg.Admin.Listen)
	if daemonRunning(ctx, cfg) {
		token, err := relay.ReadAdminToken(cfg.AdminTokenFile())
		if err != nil {
			return nil, fmt.Errorf("mllpd is running (admin API at %s) but its token cannot be read: %w; run this as the user that runs mllpd, or check admin.token_file", addr, err)
		}
		c := relay.NewClient(cfg.Admin.Listen, token)
		checkSameStore(ctx, c, cfg, addr, stderr)
		return &session{ops: c, cfg: cfg, online: true, apiAddr: addr, close: func() error { return nil }}, nil
	}
	st, err := openStoreOffline(cfg, !write)
	if err != nil {
		return nil, err
	}
	return &session{ops: &relay.Ops{Store: st, Config: cfg}, cfg: cfg, apiAddr: addr, close: st.Close}, nil
}

// checkSameStore warns when the daemon answering at addr serves another
// store than cfg's data_dir names (another mllpd on the host, or a relative
// data_dir read from another working directory).
func checkSameStore(ctx context.Context, c *relay.Client, cfg *config.Config, addr string, stderr io.Writer) {
	info, err := c.Info(ctx)
	if err != nil {
		return // an older daemon, or a refusal the command itself reports
	}
	want, err := filepath.Abs(dbPath(cfg))
	if err == nil && info.Store != want {
		fmt.Fprintf(stderr, "mllpd: note: the mllpd at %s serves %s, but this config's data_dir names %s\n", addr, info.Store, want)
	}
}

// openStoreOffline opens the store file of a stopped daemon, with errors that
// say what to check.
func openStoreOffline(cfg *config.Config, readOnly bool) (*store.Store, error) {
	p := dbPath(cfg)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no mllpd answers at %s (admin.listen) and there is no store at %s (data_dir); check --config", relay.DialableAddr(cfg.Admin.Listen), p)
	}
	st, err := store.Open(store.Options{Path: p, ReadOnly: readOnly, LockTimeout: offlineLockTimeout})
	if errors.Is(err, store.ErrLocked) {
		return nil, lockedError(cfg)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// lockedError says that a daemon holds the store but its API is not where
// the config says.
func lockedError(cfg *config.Config) error {
	addr := relay.DialableAddr(cfg.Admin.Listen)
	err := fmt.Errorf("the store is locked by a running mllpd whose admin API at %s does not answer; check admin.listen", addr)
	if _, port, perr := net.SplitHostPort(addr); perr == nil && port == "0" {
		err = fmt.Errorf("%w (port 0 lets the daemon pick a random port the CLI cannot find: give admin.listen a fixed port)", err)
	}
	return err
}

// configFlag adds --config to c (persistent: its subcommands inherit it).
func configFlag(c *cobra.Command, path *string) {
	c.PersistentFlags().StringVar(path, "config", "", "config file: gives admin.listen, the admin token file and data_dir (default: the embedded default config)")
}

// withSession runs fn with a session for the config at *path and closes it.
func withSession(c *cobra.Command, path *string, write bool, fn func(ctx context.Context, s *session) error) error {
	ctx := c.Context()
	s, err := openSession(ctx, *path, write, c.ErrOrStderr())
	if err != nil {
		return err
	}
	err = fn(ctx, s)
	if cerr := s.close(); err == nil && cerr != nil {
		err = cerr
	}
	return cliError(err)
}

// cliError maps an admin refusal to the CLI's exit statuses: a bad parameter
// is a usage error (2), everything else a failure (1).
func cliError(err error) error {
	var ae *relay.AdminError
	if errors.As(err, &ae) && ae.Code == 400 {
		return usageErr(err)
	}
	return err
}

// timeHelp documents the time forms every --since/--until/--older-than takes.
const timeHelp = `Times are RFC 3339 (2024-01-31T12:00:00Z, 2024-01-31T13:00:00+01:00),
a local date or date-time (2024-01-31, 2024-01-31T12:00:00), "now", or
relative to now as a negative duration: -2h, -90m, -7d, -1d12h (units d, h,
m, s).`

// parseTime reads a time in one of the forms of timeHelp.
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if strings.HasPrefix(s, "-") {
		d, err := parseDays(s[1:])
		if err != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("%q is not a relative time: use a negative duration such as -2h, -90m or -7d", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2024-01-31T12:00:00Z), a local date (2024-01-31) or a relative time (-2h, -7d)", s)
}

// parseDays parses a Go duration with an optional leading day count ("7d",
// "1d12h", "90m").
func parseDays(s string) (time.Duration, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	var d time.Duration
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		d = time.Duration(n) * 24 * time.Hour
		s = rest
	}
	if s != "" {
		if s[0] < '0' || s[0] > '9' {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		x, err := time.ParseDuration(s)
		if err != nil {
			return 0, err
		}
		d += x
	}
	return d, nil
}

// parseAge reads --older-than: a duration (7d, 72h: older than that long
// ago) or a time in one of the forms of timeHelp.
func parseAge(s string, now time.Time) (time.Time, error) {
	if d, err := parseDays(strings.TrimSpace(s)); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	t, err := parseTime(s, now)
	if err != nil {
		return t, fmt.Errorf("%q is neither an age (7d, 72h) nor a time (RFC 3339, 2024-01-31, -7d)", s)
	}
	return t, nil
}

// timeFlag parses a time flag's value, "" staying zero.
func timeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(v, now)
	if err != nil {
		return t, usageErr(fmt.Errorf("--%s: %w", name, err))
	}
	return t, nil
}

// parseIDs reads sequence numbers or ids given as arguments.
func parseIDs(args []string, what string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, usageErr(fmt.Errorf("%q is not %s (a positive number)", a, what))
		}
		out = append(out, n)
	}
	return out, nil
}

// exactArgs is cobra.ExactArgs with a usage error (exit 2) that names the
// expected form.
func exactArgs(n int, form string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr(fmt.Errorf("usage: %s %s", c.CommandPath(), form))
		}
		return nil
	}
}

// groupRun is the RunE of a command that only groups subcommands: help
// without arguments, a usage error (exit 2) for an unknown subcommand.
func groupRun(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(fmt.Errorf("unknown command %q for %q; run '%s --help' for its subcommands", args[0], c.CommandPath(), c.CommandPath()))
	}
	return c.Help()
}

// noArgs refuses positional arguments with a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(fmt.Errorf("%s takes no arguments (got %q); see --help", c.CommandPath(), args))
	}
	return nil
}

// clean makes text from a message printable on a terminal: control
// characters (a sender's ESC sequences, NULs) and invalid UTF-8 are shown as
// \xNN escapes, so nothing a sender wrote can drive the admin's terminal.
func clean(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02X`, s[i])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			for j := 0; j < size; j++ {
				fmt.Fprintf(&b, `\x%02X`, s[i+j])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// fmtTime formats t for tables, in local time; "-" for zero.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// fmtAge formats a duration for a human: 3d4h, 2h5m, 40s.
func fmtAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Minute:
		return d.Truncate(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// printResend reports what a resend queued and skipped.
func printResend(w io.Writer, s *session, res relay.ResendResult) {
	fmt.Fprintf(w, "queued %s for %s", plural(len(res.Queued), "message", "messages"), res.To)
	if len(res.Queued) > 0 && !s.Online() {
		fmt.Fprint(w, " (mllpd is not running: delivered when it starts)")
	}
	fmt.Fprintln(w)
	const maxLines = 20
	for i, q := range res.Queued {
		if i == maxLines {
			fmt.Fprintf(w, "  ... and %d more (seq %d to %d)\n", len(res.Queued)-maxLines, res.Queued[maxLines].Seq, res.Queued[len(res.Queued)-1].Seq)
			break
		}
		route := q.Route
		if route == "" {
			route = "(none: mapped by the first route to " + res.To + ")"
		}
		fmt.Fprintf(w, "  seq %d  queue id %d  route %s\n", q.Seq, q.QueueID, route)
	}
	for _, sk := range res.Skipped {
		fmt.Fprintf(w, "skipped seq %d: %s\n", sk.Seq, sk.Reason)
	}
}
