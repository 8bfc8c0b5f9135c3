package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newDeadLettersCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "dead-letters",
		Short: "List, show, resend and purge messages given up on per destination",
		Long: `dead-letters manages each destination's dead letters: messages that failed
permanently (or were skipped by an admin, or whose route or destination a
reload removed). They are kept for storage.dead_letter_retention; an admin can
resend them (to the tail of the queue) or purge them.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	configFlag(c, &cfgPath)
	c.AddCommand(newDeadListCmd(&cfgPath), newDeadShowCmd(&cfgPath), newDeadResendCmd(&cfgPath), newDeadPurgeCmd(&cfgPath))
	return c
}

func newDeadListCmd(cfgPath *string) *cobra.Command {
	var (
		dest   string
		after  uint64
		limit  int
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list [--destination DEST]",
		Short: "List dead letters, oldest first (every destination's without --destination)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErr(fmt.Errorf("--limit must be positive"))
			}
			if after != 0 && dest == "" {
				return usageErr(fmt.Errorf("--after pages one destination's dead letters: give --destination too"))
			}
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				res, err := s.ops.ListDeadLetters(ctx, dest, after, limit)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.OutOrStdout(), res)
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DESTINATION\tID\tSEQ\tDEAD SINCE\tROUTE\tREASON")
				for _, d := range res.DeadLetters {
					route := d.Route
					if route == "" {
						route = "-"
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", clean(d.Destination), d.ID, d.Seq, fmtTime(d.Time), clean(route), clean(d.Reason))
				}
				tw.Flush()
				if res.Next != 0 {
					fmt.Fprintf(c.ErrOrStderr(), "more: add --after %d for the next page\n", res.Next)
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&dest, "destination", "", "only this destination's dead letters")
	c.Flags().Uint64Var(&after, "after", 0, "paging (with --destination): dead letters after this id")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many (per destination without --destination)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON instead of a table")
	return c
}

func newDeadShowCmd(cfgPath *string) *cobra.Command {
	var (
		dest        string
		raw, asJSON bool
	)
	c := &cobra.Command{
		Use:   "show --destination DEST ID",
		Short: "Show one dead letter and its message",
		Long: `show prints why and when the message was given up on for DEST, then the
message as mllpd messages show prints it. --raw writes the exact bytes.`,
		Args: exactArgs(1, "--destination DEST ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if dest == "" {
				return usageErr(fmt.Errorf("--destination is required (dead-letter ids are per destination)"))
			}
			ids, err := parseIDs(args, "a dead-letter id")
			if err != nil {
				return err
			}
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				d, err := s.ops.ShowDeadLetter(ctx, dest, ids[0])
				if err != nil {
					return err
				}
				w := c.OutOrStdout()
				switch {
				case raw:
					_, err = w.Write(d.Message.Raw)
					return err
				case asJSON:
					return writeJSON(w, d)
				}
				fmt.Fprintf(w, "Dead letter %d of %s: %s (since %s, route %s)\n\n", d.ID, clean(d.Destination), clean(d.Reason), fmtTime(d.Time), clean(d.Route))
				printMessage(w, d.Message)
				return nil
			})
		},
	}
	c.Flags().StringVar(&dest, "destination", "", "the destination (required)")
	c.Flags().BoolVar(&raw, "raw", false, "write the message's exact raw bytes to stdout")
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return c
}

func newDeadResendCmd(cfgPath *string) *cobra.Command {
	var (
		dest string
		all  bool
	)
	c := &cobra.Command{
		Use:   "resend --destination DEST (ID... | --all)",
		Short: "Queue dead letters again at the tail of their destination's queue",
		Long: `resend queues the given dead letters of DEST (or --all of them) again, in
order, at the tail of DEST's queue under their original route; they leave the
dead letters. Fix the cause of the failure first.`,
		RunE: func(c *cobra.Command, args []string) error {
			if dest == "" {
				return usageErr(fmt.Errorf("--destination is required"))
			}
			ids, err := parseIDs(args, "a dead-letter id")
			if err != nil {
				return err
			}
			if len(ids) == 0 && !all {
				return usageErr(fmt.Errorf("name the dead letters to resend by id, or give --all"))
			}
			if len(ids) > 0 && all {
				return usageErr(fmt.Errorf("give either ids or --all, not both"))
			}
			return withSession(c, cfgPath, true, func(ctx context.Context, s *session) error {
				res, err := s.ops.ResendDeadLetters(ctx, dest, ids)
				if err != nil {
					return err
				}
				printResend(c.OutOrStdout(), s, res)
				return nil
			})
		},
	}
	c.Flags().StringVar(&dest, "destination", "", "the destination (required)")
	c.Flags().BoolVar(&all, "all", false, "resend every dead letter of the destination")
	return c
}

func newDeadPurgeCmd(cfgPath *string) *cobra.Command {
	var dest, olderThan string
	c := &cobra.Command{
		Use:   "purge --older-than AGE|TIME [--destination DEST]",
		Short: "Delete dead letters older than a given age",
		Long: `purge deletes the dead letters (of DEST, or of every destination) that were
given up on before --older-than: an age such as 7d or 72h, or a time.
--older-than now purges them all. The messages themselves then follow the
message retention.

` + timeHelp,
		Example: `  mllpd dead-letters purge --destination epic --older-than 30d
  mllpd dead-letters purge --older-than now`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if olderThan == "" {
				return usageErr(fmt.Errorf("--older-than is required (e.g. 30d, or now for all)"))
			}
			before, err := parseAge(olderThan, time.Now())
			if err != nil {
				return usageErr(fmt.Errorf("--older-than: %w", err))
			}
			return withSession(c, cfgPath, true, func(ctx context.Context, s *session) error {
				res, err := s.ops.PurgeDeadLetters(ctx, dest, before)
				if err != nil {
					return err
				}
				of := "every destination"
				if dest != "" {
					of = clean(dest)
				}
				fmt.Fprintf(c.OutOrStdout(), "purged %s of %s (dead before %s)\n", plural(res.Purged, "dead letter", "dead letters"), of, fmtTime(before))
				return nil
			})
		},
	}
	c.Flags().StringVar(&dest, "destination", "", "only this destination (default: every destination)")
	c.Flags().StringVar(&olderThan, "older-than", "", "age (7d, 72h) or time; required")
	return c
}
