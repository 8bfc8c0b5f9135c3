// Command mllpd is the HL7 v2 MLLP listener daemon: it acknowledges each
// message only after it is durably stored, then forwards mapped copies, in
// order, to the destinations its routes choose. See `mllpd --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // after the first signal, a second one gets Go's default: exit at once
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	if err != nil {
		var e *exitError
		if !errors.As(err, &e) || !e.quiet {
			fmt.Fprintln(os.Stderr, "mllpd:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries the process exit status a command wants: 1 for an
// invalid config or a runtime failure, 2 for misuse or an unreadable file.
type exitError struct {
	code  int
	quiet bool // the command already printed the details
	err   error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr is a misuse of the CLI or an unreadable input: exit status 2.
func usageErr(err error) error { return &exitError{code: 2, err: err} }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}
