package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/relay"
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "mllpd",
		Short: "HL7 v2 MLLP listener: ACK only after a durable store, forward in order",
		Long: `mllpd accepts HL7 v2 over MLLP, acknowledges each message only after it is
durably stored, and forwards mapped copies, in order, to downstream endpoints
chosen by the routes of one YAML file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath()))
	})
	root.AddCommand(
		newServeCmd(),
		newCheckConfigCmd(),
		newMessagesCmd(),
		newRejectedCmd(),
		newDeadLettersCmd(),
		newDestinationsCmd(),
		newBackupCmd(),
		newCompactCmd(),
	)
	return root
}

// loadConfig loads path ("" = the embedded default) and maps its errors to
// exit statuses: 2 when the file cannot be read, 1 when it is invalid.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		if errors.Is(err, config.ErrUnreadable) {
			return nil, usageErr(err)
		}
		return nil, &exitError{code: 1, err: err}
	}
	return cfg, nil
}

func newCheckConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check-config FILE",
		Short: "Validate a config file (routes, maps, TLS files) without binding anything",
		Long: `check-config loads FILE, validates every key and compiles routes, mappings and
TLS files without binding a port, so it is safe while the daemon runs.
Exit status: 0 valid (one-line summary), 1 invalid (every error, with its
path), 2 unreadable file or wrong usage.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr(errors.New("check-config needs exactly one FILE argument, e.g. mllpd check-config /etc/mllpd/mllpd.yaml"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0])
			if err == nil {
				_, err = relay.Prepare(cfg)
				if err != nil {
					err = &exitError{code: 1, err: err}
				}
			}
			if err != nil {
				what := "invalid"
				if exitCode(err) == 2 {
					what = "cannot be read"
				}
				fmt.Fprintf(c.ErrOrStderr(), "%s: %s\n%v\n", args[0], what, err)
				return &exitError{code: exitCode(err), quiet: true, err: err}
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: ok: %s\n", args[0], cfg.Summary())
			return nil
		},
	}
}
