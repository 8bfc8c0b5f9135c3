package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mllpd/mllpd/relay"
)

func newRejectedCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "rejected",
		Short: "Inspect input that was not accepted (the rejected log)",
		Long: `rejected shows the input mllpd refused with a negative ACK (or could not
frame): the reason, the peer, the size and hash of the whole input, and its
first 64 KiB. The log is bounded by storage.rejected_retention and
storage.rejected_max_bytes.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	configFlag(c, &cfgPath)
	c.AddCommand(newRejectedListCmd(&cfgPath), newRejectedShowCmd(&cfgPath))
	return c
}

func newRejectedListCmd(cfgPath *string) *cobra.Command {
	var (
		after  uint64
		limit  int
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List rejected input, oldest first",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErr(fmt.Errorf("--limit must be positive"))
			}
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				res, err := s.ops.ListRejected(ctx, after, limit)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.OutOrStdout(), res)
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tLISTENER\tPEER\tREASON\tSIZE")
				for _, r := range res.Rejected {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\n", r.ID, fmtTime(r.Time), clean(r.Listener), clean(r.Peer), clean(r.Reason), r.Size)
				}
				tw.Flush()
				if res.Next != 0 {
					fmt.Fprintf(c.ErrOrStderr(), "more: add --after %d for the next page\n", res.Next)
				}
				return nil
			})
		},
	}
	c.Flags().Uint64Var(&after, "after", 0, "paging: entries after this id")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many entries")
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON instead of a table")
	return c
}

func newRejectedShowCmd(cfgPath *string) *cobra.Command {
	var raw, asJSON bool
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show one rejected input: reason, size, hash and the bytes kept",
		Long: `show prints the reason, peer, size and sha256 of the whole input, then the
bytes kept with each CR (and LF) as a line break and other control characters
as \xNN. --raw writes the exact bytes kept to stdout and nothing else.`,
		Args: exactArgs(1, "ID"),
		RunE: func(c *cobra.Command, args []string) error {
			ids, err := parseIDs(args, "a rejected-input id")
			if err != nil {
				return err
			}
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				r, err := s.ops.ShowRejected(ctx, ids[0])
				if err != nil {
					return err
				}
				switch {
				case raw:
					_, err = c.OutOrStdout().Write(r.Raw)
					return err
				case asJSON:
					return writeJSON(c.OutOrStdout(), r)
				}
				printRejected(c.OutOrStdout(), r)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&raw, "raw", false, "write the exact bytes kept to stdout")
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return c
}

func printRejected(w io.Writer, r relay.RejectedDetail) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%d\n", r.ID)
	fmt.Fprintf(tw, "Time:\t%s\n", fmtTime(r.Time))
	fmt.Fprintf(tw, "Listener:\t%s\n", clean(r.Listener))
	if r.Peer != "" {
		fmt.Fprintf(tw, "Peer:\t%s\n", clean(r.Peer))
	}
	fmt.Fprintf(tw, "Reason:\t%s\n", clean(r.Reason))
	fmt.Fprintf(tw, "Size:\t%s\n", plural(int(r.Size), "byte", "bytes"))
	fmt.Fprintf(tw, "SHA-256:\t%s\n", r.Hash)
	tw.Flush()
	if r.Truncated {
		fmt.Fprintf(w, "\nFirst %d bytes kept:\n", len(r.Raw))
	} else {
		fmt.Fprintln(w, "\nBytes:")
	}
	fmt.Fprintln(w, crLines(r.Raw))
}

// crLines shows raw with CR, LF and CRLF as line breaks and everything else
// unprintable escaped.
func crLines(raw []byte) string {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' })
	for i, l := range lines {
		lines[i] = clean(l)
	}
	return strings.Join(lines, "\n")
}
