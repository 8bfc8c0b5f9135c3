package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mllpd/mllpd/relay"
)

func newDestinationsCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "destinations",
		Short: "Show destination queues; unblock a queue or skip its head",
		Long: `destinations shows each configured destination's queue: how many messages
wait, how old the oldest is, and whether the queue is blocked (a permanent
failure with on_permanent_failure: block, or HTTP 401/403). A blocked queue
stays blocked across restarts until an admin unblocks it (after fixing the
cause) or skips its head message to the destination's dead letters.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	configFlag(c, &cfgPath)
	c.AddCommand(newDestinationsListCmd(&cfgPath), newDestinationsUnblockCmd(&cfgPath), newDestinationsSkipCmd(&cfgPath))
	return c
}

func newDestinationsListCmd(cfgPath *string) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List destinations with queue depth, oldest age and blocked state",
		Long: `list prints one line per configured destination:

  NAME  TYPE  TARGET  QUEUE  OLDEST  DEAD  STATE  HEAD

OLDEST is how long the head of the queue has waited; DEAD counts its dead
letters. STATE is "ok" or "blocked: reason". HEAD is the head message's seq,
attempts and last error. A destination a reload removed is listed (type
"removed") while it still has dead letters.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return withSession(c, cfgPath, false, func(ctx context.Context, s *session) error {
				ds, err := s.ops.Destinations(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.OutOrStdout(), ds)
				}
				printDestinations(c.OutOrStdout(), ds)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON instead of a table")
	return c
}

func printDestinations(w io.Writer, ds []relay.DestinationStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tTARGET\tQUEUE\tOLDEST\tDEAD\tSTATE\tHEAD")
	for _, d := range ds {
		typ, target := d.Type, clean(d.Target)
		if !d.Configured {
			typ, target = "removed", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", clean(d.Name), typ, target, d.Queue,
			fmtAge(d.OldestAge), d.DeadLetters, destState(d), headInfo(d.Head))
	}
	tw.Flush()
}

func destState(d relay.DestinationStatus) string {
	if !d.Blocked {
		return "ok"
	}
	if d.BlockedReason == "" {
		return "blocked"
	}
	return "blocked: " + clean(d.BlockedReason)
}

func headInfo(h *relay.QueueHead) string {
	if h == nil {
		return "-"
	}
	s := "seq " + strconv.FormatUint(h.Seq, 10)
	if h.Attempts > 0 {
		s += ", " + plural(h.Attempts, "attempt", "attempts")
	}
	if h.LastError != "" {
		s += ": " + clean(h.LastError)
	}
	return s
}

func newDestinationsUnblockCmd(cfgPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "unblock NAME",
		Short: "Unblock a destination's queue (after fixing the cause)",
		Long: `unblock clears NAME's blocked mark; its worker retries the head message at
once. Fix the cause first (credentials, the downstream's configuration), or the
next permanent failure blocks the queue again.`,
		Args: exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return withSession(c, cfgPath, true, func(ctx context.Context, s *session) error {
				d, err := s.ops.Unblock(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "%s unblocked; %s queued\n", clean(d.Name), plural(d.Queue, "message", "messages"))
				return nil
			})
		},
	}
}

func newDestinationsSkipCmd(cfgPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "skip NAME",
		Short: "Move the head of a blocked queue to its dead letters and unblock it",
		Long: `skip moves the message at the head of NAME's blocked queue to NAME's dead
letters (reason "skipped by admin") and unblocks the queue, so the messages
behind it flow again. The skipped message can be resent later with
mllpd dead-letters resend. A queue that is not blocked is refused.`,
		Args: exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return withSession(c, cfgPath, true, func(ctx context.Context, s *session) error {
				r, err := s.ops.Skip(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "skipped seq %d of %s to its dead letters; queue unblocked, %s queued\n",
					r.Skipped.Seq, clean(r.Destination.Name), plural(r.Destination.Queue, "message", "messages"))
				return nil
			})
		},
	}
}
