package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/mllpd/mllpd/relay"
)

func newMessagesCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "messages",
		Short: "List, show and resend stored messages",
		Long: `messages inspects the message log: what arrived, when, from whom, and what
happened to it per destination. While mllpd runs these commands go through its
admin API (admin.listen, with the token from admin.token_file); while it is
stopped they open the store under data_dir directly.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	configFlag(c, &cfgPath)
	c.AddCommand(newMessagesListCmd(&cfgPath), newMessagesShowCmd(&cfgPath), newMessagesResendCmd(&cfgPath))
	return c
}

func newMessagesListCmd(cfgPath *string) *cobra.Command {
	var (
		f                       relay.MessageFilter
		since, until            string
		asJSON                  bool
		limit                   int
		after                   uint64
		typ, ctrl, pid, fac, st string
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List stored messages, oldest first",
		Long: `list prints one line per stored message, oldest first:

  SEQ  RECEIVED  LISTENER  TYPE  CONTROL ID  SENDER  SIZE  DELIVERY

SENDER is MSH-3/MSH-4. DELIVERY is destination:state per destination
(pending, delivered, dead, requeued), with the attempts so far in parentheses
while not delivered, or "unrouted" when no route matched.
When more messages match than --limit, the last line (on stderr) gives the
--after value of the next page.

` + timeHelp,
		Example: `  mllpd messages list --since -2h --type ADT^A01
  mllpd messages list --control-id CTL0001
  mllpd messages list --state dead --limit 20`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			now := time.Now()
			var err error
			if f.Since, err = timeFlag("since", since, now); err != nil {
				return err
			}
			if f.Until, err = timeFlag("until", until, now); err != nil {
				return err
			}
			if limit < 0 {
				return usageErr(fmt.Errorf("--limit must be positive"))
			}
			f.Type, f.ControlID, f.PatientID, f.SendingFacility, f.State = typ, ctrl, pid, fac, st
			f.After, f.Limit = after, limit
			if err := f.Validate(); err != nil {
				return usageErr(err)
			}
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				res, err := s.ops.ListMessages(ctx, f)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.OutOrStdout(), res)
				}
				printMessageList(c.OutOrStdout(), res)
				if res.Next != 0 {
					fmt.Fprintf(c.ErrOrStderr(), "more: add --after %d for the next page\n", res.Next)
				}
				return nil
			})
		},
	}
	fl := c.Flags()
	fl.StringVar(&since, "since", "", "received at or after this time (e.g. -2h, 2024-01-31)")
	fl.StringVar(&until, "until", "", "received before this time")
	fl.StringVar(&typ, "type", "", "message type MSH-9: ADT or ADT^A01")
	fl.StringVar(&ctrl, "control-id", "", "exact MSH-10")
	fl.StringVar(&pid, "patient-id", "", "exact patient ID (first PID-3 identifier)")
	fl.StringVar(&fac, "facility", "", "exact sending facility MSH-4")
	fl.StringVar(&st, "state", "", "a delivery in this state: pending, delivered, dead, requeued; or unrouted")
	fl.Uint64Var(&after, "after", 0, "paging: messages after this sequence number")
	fl.IntVar(&limit, "limit", 100, "at most this many messages")
	fl.BoolVar(&asJSON, "json", false, "print the API's JSON instead of a table")
	return c
}

func printMessageList(w io.Writer, res relay.MessageList) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tRECEIVED\tLISTENER\tTYPE\tCONTROL ID\tSENDER\tSIZE\tDELIVERY")
	for _, m := range res.Messages {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Seq, fmtTime(m.Received), clean(m.Listener),
			clean(msgType(m.Type, m.Event)), clean(m.ControlID), clean(m.SendingApp+"/"+m.SendingFacility), m.Size, deliverySummary(m))
	}
	tw.Flush()
}

func msgType(typ, event string) string {
	if event == "" {
		return typ
	}
	return typ + "^" + event
}

// deliverySummary is the DELIVERY column: "lab:delivered epic:pending(3)".
func deliverySummary(m relay.MessageSummary) string {
	if m.Unrouted && len(m.Deliveries) == 0 {
		return "unrouted"
	}
	parts := make([]string, 0, len(m.Deliveries))
	for _, d := range m.Deliveries {
		p := clean(d.Destination) + ":" + d.State
		if d.State != "delivered" && d.Attempts > 0 {
			p += "(" + strconv.Itoa(d.Attempts) + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func newMessagesShowCmd(cfgPath *string) *cobra.Command {
	var raw, asJSON bool
	c := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one message: header, fields and delivery per destination",
		Long: `show prints a message's summary, then every non-empty field one per line,
named as mapping rules name them (PID-5, OBX[2]-5 for the second OBX), with
escapes as on the wire, then its delivery record per destination: state,
attempts, times, the downstream answer (MSA-1, MSA-2, ERR-3 or HTTP status)
and the last error.
--raw writes the exact bytes as received to stdout and nothing else.`,
		Example: `  mllpd messages show 42
  mllpd messages show 42 --raw > msg42.hl7`,
		Args: exactArgs(1, "SEQ"),
		RunE: func(c *cobra.Command, args []string) error {
			seqs, err := parseIDs(args, "a message sequence number")
			if err != nil {
				return err
			}
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				m, err := s.ops.ShowMessage(ctx, seqs[0])
				if err != nil {
					return err
				}
				switch {
				case raw:
					_, err = c.OutOrStdout().Write(m.Raw)
					return err
				case asJSON:
					return writeJSON(c.OutOrStdout(), m)
				}
				printMessage(c.OutOrStdout(), m)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&raw, "raw", false, "write the exact raw bytes to stdout")
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return c
}

// printMessage prints a message detail for a human.
func printMessage(w io.Writer, m relay.MessageDetail) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Seq", strconv.FormatUint(m.Seq, 10))
	recv := fmtTime(m.Received) + "  listener " + clean(m.Listener)
	if m.Peer != "" {
		recv += "  peer " + clean(m.Peer)
	}
	row("Received", recv)
	row("Type", clean(msgType(m.Type, m.Event)))
	row("Control ID", clean(m.ControlID))
	row("Sender", clean(m.SendingApp+" / "+m.SendingFacility))
	row("Patient ID", clean(m.PatientID))
	row("Charset", clean(m.Charset))
	row("Size", plural(m.Size, "byte", "bytes"))
	row("Content hash", m.ContentHash)
	if m.Unrouted {
		row("Routing", "unrouted (no route matched)")
	}
	tw.Flush()

	fmt.Fprintln(w, "\nFields:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range segmentFields(displayText(m.Raw, m.Charset)) {
		fmt.Fprintf(tw, "%s\t%s\n", f.name, clean(f.value))
	}
	tw.Flush()

	if len(m.Deliveries) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDeliveries:")
	for _, d := range m.Deliveries {
		route := d.Route
		if route == "" {
			route = "none: admin resend"
		}
		fmt.Fprintf(w, "  %s (route %s): %s\n", clean(d.Destination), clean(route), d.State)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		drow := func(k, v string) {
			if v != "" && v != "-" {
				fmt.Fprintf(tw, "    %s:\t%s\n", k, v)
			}
		}
		if d.Attempts > 0 {
			drow("Attempts", fmt.Sprintf("%d (first %s, last %s)", d.Attempts, fmtTime(d.FirstAttempt), fmtTime(d.LastAttempt)))
		}
		drow("Delivered", fmtTime(d.DeliveredAt))
		drow("Downstream", downstream(d))
		drow("Last error", clean(d.LastError))
		drow("Dead letter", deadInfo(d))
		tw.Flush()
	}
}

func downstream(d relay.DeliveryInfo) string {
	var parts []string
	if d.AckCode != "" {
		parts = append(parts, "MSA-1 "+clean(d.AckCode))
	}
	if d.AckControlID != "" {
		parts = append(parts, "MSA-2 "+clean(d.AckControlID))
	}
	if d.ErrorCode != "" {
		parts = append(parts, "ERR-3 "+clean(d.ErrorCode))
	}
	if d.HTTPStatus != 0 {
		parts = append(parts, "HTTP "+strconv.Itoa(d.HTTPStatus))
	}
	return strings.Join(parts, ", ")
}

func deadInfo(d relay.DeliveryInfo) string {
	if d.State != "dead" && d.DeadReason == "" {
		return ""
	}
	s := clean(d.DeadReason)
	if d.DeadLetterID != 0 {
		s += fmt.Sprintf(" (dead letter %d: mllpd dead-letters show --destination %s %d)", d.DeadLetterID, clean(d.Destination), d.DeadLetterID)
	}
	return s
}

// displayText decodes raw to UTF-8 for display when its charset is a
// known single-byte or legacy one; UTF-8 and unknown charsets stay as they
// are (clean escapes what is not printable).
func displayText(raw []byte, charset string) string {
	switch strings.ToUpper(charset) {
	case "", "UTF-8", "US-ASCII", "ASCII":
		return string(raw)
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return string(raw)
	}
	out, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return string(raw)
	}
	return string(out)
}

type field struct{ name, value string }

// segmentFields splits an ER7 message into its non-empty fields, named as
// HL7 numbers them (MSH-1 is the field separator itself). Segments end at CR,
// LF or CRLF, as senders write them. A segment that repeats is numbered:
// OBX[1]-5, OBX[2]-5.
func segmentFields(text string) []field {
	segs := strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' })
	sep := "|"
	if len(segs) > 0 && len(segs[0]) >= 4 && (strings.HasPrefix(segs[0], "MSH") || strings.HasPrefix(segs[0], "FHS") || strings.HasPrefix(segs[0], "BHS")) {
		sep = segs[0][3:4]
	}
	count := map[string]int{}
	for _, s := range segs {
		count[segName(s, sep)]++
	}
	seen := map[string]int{}
	var out []field
	for _, s := range segs {
		name := segName(s, sep)
		seen[name]++
		label := name
		if count[name] > 1 {
			label = fmt.Sprintf("%s[%d]", name, seen[name])
		}
		parts := strings.Split(s, sep)
		header := name == "MSH" || name == "FHS" || name == "BHS"
		for i := 1; i < len(parts); i++ {
			n := i
			if header {
				n = i + 1
				if i == 1 {
					out = append(out, field{label + "-1", sep})
				}
			}
			if parts[i] == "" {
				continue
			}
			out = append(out, field{label + "-" + strconv.Itoa(n), parts[i]})
		}
		if len(parts) == 1 {
			out = append(out, field{label, ""})
		}
	}
	return out
}

func segName(s, sep string) string {
	name, _, _ := strings.Cut(s, sep)
	if len(name) > 8 {
		name = name[:8]
	}
	return clean(name)
}

func newMessagesResendCmd(cfgPath *string) *cobra.Command {
	var to, since, until, typ string
	c := &cobra.Command{
		Use:   "resend (SEQ... | --since T [--until T] [--type T]) --to DEST",
		Short: "Queue messages again for a destination (also backfill a new one)",
		Long: `resend appends a new queue entry for each message at the tail of DEST's
queue; the worker delivers it after what is already queued. Each entry keeps
the route that chose DEST for that message (and so its mapping); a message no
route sent to DEST is mapped by the first route that sends to DEST, or sent
unmapped. A message still waiting in DEST's queue is skipped.

The backfill form queues every message received since T (until --until, of
--type when given), oldest first: use it for a destination added by a reload.

` + timeHelp,
		Example: `  mllpd messages resend 41 42 --to epic
  mllpd messages resend --since 2024-01-31 --until 2024-02-01 --type ADT --to newlab`,
		RunE: func(c *cobra.Command, args []string) error {
			if to == "" {
				return usageErr(fmt.Errorf("--to DEST is required (mllpd destinations list shows the configured ones)"))
			}
			seqs, err := parseIDs(args, "a message sequence number")
			if err != nil {
				return err
			}
			now := time.Now()
			from, err := timeFlag("since", since, now)
			if err != nil {
				return err
			}
			till, err := timeFlag("until", until, now)
			if err != nil {
				return err
			}
			switch {
			case len(seqs) > 0 && (since != "" || until != "" || typ != ""):
				return usageErr(fmt.Errorf("give either sequence numbers or --since/--until/--type, not both"))
			case len(seqs) == 0 && since == "":
				return usageErr(fmt.Errorf("name the messages: sequence numbers, or --since T for a backfill"))
			}
			return withSession(c, cfgPath, true, func(ctx context.Context, s *session) error {
				var res relay.ResendResult
				var err error
				if len(seqs) > 0 {
					res, err = s.ops.Resend(ctx, seqs, to)
				} else {
					res, err = s.ops.ResendRange(ctx, from, till, typ, to)
				}
				if err != nil {
					return err
				}
				printResend(c.OutOrStdout(), s, res)
				return nil
			})
		},
	}
	fl := c.Flags()
	fl.StringVar(&to, "to", "", "destination to queue for (required)")
	fl.StringVar(&since, "since", "", "backfill: messages received at or after this time")
	fl.StringVar(&until, "until", "", "backfill: received before this time (default now)")
	fl.StringVar(&typ, "type", "", "backfill: only this message type (ADT or ADT^A01)")
	return c
}

// writeJSON prints v as indented JSON, as the API sends it.
func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}
