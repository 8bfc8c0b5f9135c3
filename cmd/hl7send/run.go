package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit statuses (README.md, design.md "CLI surface").
const (
	exitOK         = 0 // every ACK as expected
	exitUnexpected = 1 // some ACK differed from --expect
	exitNoAck      = 2 // some message got no ACK (timeout, refused, reset)
	exitUsage      = 3 // usage error or unreadable input
)

// ackCodes are the MSA-1 codes of table 0008.
const ackCodes = "AA AE AR CA CE CR"

// options are the command line's flags.
type options struct {
	addr          string
	useTLS        bool
	ca, cert, key string
	insecure      bool
	serverName    string
	timeout       time.Duration
	concurrency   int
	rate          float64
	repeat        int
	newControlIDs bool
	raw           bool
	expect        string
	json, quiet   bool

	listen string
	ack    string
	out    string
}

// usageError is a command line mistake: exit status 3.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func newCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hl7send [flags] FILE|DIR|GLOB|- ...",
		Short: "Send HL7 v2 fixture files over MLLP and report every ACK",
		Long: `hl7send sends HL7 v2 messages to an MLLP listener, waits for each ACK (original
mode) and prints one line per message and a summary.

Inputs are files, directories (walked recursively in name order; *.hl7, *.hl7v2, *.er7,
*.txt, *.msg, *.dat, *.mllp), globs, or - for stdin. A file may hold one message or
several (a new one starts at each MSH line; blank lines are skipped), with LF, CRLF or
CR terminators (sent as CR), MLLP framing (VT ... FS CR), or an FHS/BHS batch (sent
message by message). --raw sends each file's bytes untouched as one frame.

Exit status: 0 every ACK as expected (AA or CA, or --expect), 1 some ACK differed,
2 some message got no ACK (timeout, refused, reset), 3 usage or unreadable input.

With --listen, hl7send is instead a small receiving endpoint: it ACKs every message
(AA, or --ack) and writes it to stdout or to --out DIR, until SIGINT or SIGTERM.`,
		Example: `  hl7send fixtures/adt
  hl7send --addr mllp.test:2575 --tls --ca ca.pem fixtures/story
  hl7send --expect AE fixtures/invalid
  hl7send --concurrency 8 --repeat 100 --new-control-ids --quiet fixtures/adt
  hl7send --json --rate 20 'dumps/*.mllp' > acks.jsonl
  hl7send --raw fixtures/batch/fhs-bhs-3-adt-v2.5.1.hl7
  hl7send --listen :2576 --out received/`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&o.addr, "addr", "localhost:2575", "listener to send to, host:port")
	f.BoolVar(&o.useTLS, "tls", false, "use TLS (implied by --ca, --cert, --insecure-skip-verify)")
	f.StringVar(&o.ca, "ca", "", "PEM file of CA certificates to verify the server with (--listen: client CAs, requires client certificates)")
	f.StringVar(&o.cert, "cert", "", "PEM client certificate for mutual TLS (--listen: the server certificate)")
	f.StringVar(&o.key, "key", "", "PEM private key of --cert")
	f.BoolVar(&o.insecure, "insecure-skip-verify", false, "do not verify the server certificate (tests only)")
	f.StringVar(&o.serverName, "server-name", "", "TLS server name to verify (default: the host of --addr)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "longest wait for each ACK (and for each connection)")
	f.IntVarP(&o.concurrency, "concurrency", "c", 1, "connections sending in parallel (1 keeps the input order)")
	f.Float64Var(&o.rate, "rate", 0, "messages per second over all connections (0: as fast as ACKs come back)")
	f.IntVar(&o.repeat, "repeat", 1, "send the whole input this many times")
	f.BoolVar(&o.newControlIDs, "new-control-ids", false, "append a unique suffix to every MSH-10, so no send is a resend")
	f.BoolVar(&o.raw, "raw", false, "send each file's bytes untouched as one frame (no splitting, no terminator changes)")
	f.StringVar(&o.expect, "expect", "AA,CA", "ACK codes that count as success, comma-separated")
	f.BoolVar(&o.json, "json", false, "print one JSON object per message and a summary object")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the summary")
	f.StringVar(&o.listen, "listen", "", "run a receiving endpoint on this address instead of sending, e.g. :2576")
	f.StringVar(&o.ack, "ack", "AA", "--listen: ACK code to answer with ("+strings.ReplaceAll(ackCodes, " ", ", ")+", or none for no reply)")
	f.StringVar(&o.out, "out", "", "--listen: write each message to its own file in this directory instead of stdout")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	return cmd
}

// run is hl7send: main only adds the process's signals, stdio and exit.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	cmd := newCommand(&o)
	cmd.SetArgs(args)
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	code := exitOK
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var err error
		code, err = o.execute(cmd.Context(), cmd.Flags(), args, stdin, stdout, stderr)
		return err
	}
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "hl7send: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "Run 'hl7send --help' for usage.")
		}
		return exitUsage
	}
	return code
}

// execute runs the command; an error return is a usage or input error (exit 3).
func (o *options) execute(ctx context.Context, flags *pflag.FlagSet, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	// The flags that make sense in one mode only.
	sendOnly := []string{"addr", "insecure-skip-verify", "server-name", "timeout", "concurrency", "rate", "repeat", "new-control-ids", "raw", "expect", "json"}
	listenOnly := []string{"ack", "out"}
	if o.listen != "" {
		for _, name := range sendOnly {
			if flags.Changed(name) {
				return exitUsage, usagef("--%s is not used with --listen", name)
			}
		}
		if len(args) > 0 {
			return exitUsage, usagef("--listen takes no input files (got %q)", args[0])
		}
		return o.runListen(ctx, stdout, stderr)
	}
	for _, name := range listenOnly {
		if flags.Changed(name) {
			return exitUsage, usagef("--%s is only used with --listen", name)
		}
	}
	cfg, err := o.sendConfig()
	if err != nil {
		return exitUsage, err
	}
	if len(args) == 0 {
		return exitUsage, usagef("no input: name files, directories, globs or - for stdin")
	}
	msgs, warnings, err := readInputs(args, stdin, o.raw)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "hl7send: warning:", w)
	}
	if err != nil {
		return exitUsage, err
	}
	paths, err := newAckPaths()
	if err != nil {
		return exitUsage, err
	}
	rep := newReporter(stdout, stderr, o.json, o.quiet, cfg.expect, cfg.repeat, len(msgs)*cfg.repeat)
	var bar sync.WaitGroup
	stop := make(chan struct{})
	if isTerminal(stderr) {
		bar.Go(func() { rep.progress(stop) })
	}
	notSent := (&sender{cfg: cfg, paths: paths}).run(ctx, msgs, rep.add)
	close(stop)
	bar.Wait()
	return rep.summary(notSent, cfg.concurrency, ctx.Err() != nil), nil
}

func (o *options) sendConfig() (sendConfig, error) {
	cfg := sendConfig{
		addr: o.addr, timeout: o.timeout, concurrency: o.concurrency, rate: o.rate,
		repeat: o.repeat, newControlIDs: o.newControlIDs,
	}
	switch {
	case o.timeout <= 0:
		return cfg, usagef("--timeout must be positive")
	case o.concurrency < 1 || o.concurrency > 4096:
		return cfg, usagef("--concurrency must be between 1 and 4096")
	case o.rate < 0:
		return cfg, usagef("--rate must not be negative")
	case o.repeat < 1:
		return cfg, usagef("--repeat must be at least 1")
	}
	for _, c := range strings.Split(o.expect, ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !slices.Contains(strings.Fields(ackCodes), c) {
			return cfg, usagef("--expect %q: not an ACK code (%s)", c, ackCodes)
		}
		if !slices.Contains(cfg.expect, c) {
			cfg.expect = append(cfg.expect, c)
		}
	}
	var err error
	cfg.tls, err = o.clientTLS()
	return cfg, err
}

func (o *options) clientTLS() (*tls.Config, error) {
	if !o.useTLS && o.ca == "" && o.cert == "" && o.key == "" && !o.insecure && o.serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecure, ServerName: o.serverName}
	if o.ca != "" {
		pool, err := loadCertPool(o.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.cert != "" || o.key != "" {
		if o.cert == "" || o.key == "" {
			return nil, usagef("--cert and --key go together")
		}
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, &inputError{fmt.Errorf("client certificate: %w", err)}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, &inputError{err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &inputError{fmt.Errorf("%s: no PEM certificate in it", file)}
	}
	return pool, nil
}
