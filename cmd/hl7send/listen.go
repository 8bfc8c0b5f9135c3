package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/mllp"
)

// shutdownGrace bounds how long --listen waits for in-flight messages on SIGINT/SIGTERM.
const shutdownGrace = 5 * time.Second

// receiver is the --listen endpoint's handler: it keeps each message (stdout or a
// directory) and answers with a fixed ACK code.
type receiver struct {
	code   hl7.AckCode // "" = no reply
	outDir string      // "" = stdout
	stdout io.Writer
	stderr io.Writer
	quiet  bool
	tag    string // makes the ACKs' MSH-10 unique across runs

	seq     atomic.Uint64 // messages received; names the files in outDir
	writeMu sync.Mutex    // stdout and stderr lines from concurrent connections
}

func (o *options) runListen(ctx context.Context, stdout, stderr io.Writer) (int, error) {
	code := strings.ToUpper(o.ack)
	if code == "NONE" {
		code = ""
	} else if !slices.Contains(strings.Fields(ackCodes), code) {
		return exitUsage, usagef("--ack %q: not an ACK code (%s, none)", o.ack, ackCodes)
	}
	tlsCfg, err := o.serverTLS()
	if err != nil {
		return exitUsage, err
	}
	rc := &receiver{code: hl7.AckCode(code), outDir: o.out, stdout: stdout, stderr: stderr, quiet: o.quiet, tag: runTag()}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return exitUsage, &inputError{err}
		}
		last, err := lastSequence(o.out)
		if err != nil {
			return exitUsage, &inputError{err}
		}
		rc.seq.Store(last) // never overwrite what an earlier run received
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return exitUsage, &inputError{err}
	}
	srv := &mllp.Server{Name: "hl7send", Handler: mllp.HandlerFunc(rc.serve), TLSConfig: tlsCfg}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	where, ack := "stdout", code
	if o.out != "" {
		where = o.out
	}
	if ack == "" {
		ack = "no reply"
	}
	fmt.Fprintf(stderr, "hl7send: listening on %s (answer %s, messages to %s); stop with Ctrl-C\n", ln.Addr(), ack, where)

	select {
	case err := <-served: // the listener failed on its own
		return exitUsage, fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(stderr, "hl7send: shutdown:", err)
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, mllp.ErrServerClosed) {
		fmt.Fprintln(stderr, "hl7send: serve:", err)
	}
	fmt.Fprintf(stderr, "hl7send: stopped after %s\n", plural(int(rc.seq.Load()), "message", "messages"))
	return exitOK, nil
}

func (o *options) serverTLS() (*tls.Config, error) {
	if !o.useTLS && o.cert == "" && o.key == "" && o.ca == "" {
		return nil, nil
	}
	if o.cert == "" || o.key == "" {
		return nil, usagef("--listen with TLS needs --cert and --key (the server certificate)")
	}
	pair, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return nil, &inputError{fmt.Errorf("server certificate: %w", err)}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if o.ca != "" {
		if cfg.ClientCAs, err = loadCertPool(o.ca); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// serve keeps one frame and answers it. The ACK is positive only once the message is
// kept: a failed write is answered AR/207, as mllpd answers a failed commit.
func (rc *receiver) serve(_ context.Context, req *mllp.Request) ([]byte, error) {
	n := rc.seq.Add(1)
	now := time.Now()
	opts := hl7.AckOptions{
		Now: now, ControlID: "HS" + rc.tag + strconv.FormatUint(n, 10),
		App: "HL7SEND", Facility: "HL7SEND",
	}
	h := readHeader(req.Frame)
	var reply []byte
	switch {
	case req.Oversize > 0:
		opts.Error = &hl7.AckError{Code: hl7.ErrCodeInternal, Diagnostic: fmt.Sprintf("frame of %d bytes exceeds the limit", req.Oversize)}
		opts.Text = "message too large"
		reply = hl7.NewNAK(req.Frame, hl7.AE, opts)
	default:
		if err := rc.keep(n, h.ControlID, req.Frame); err != nil {
			fmt.Fprintln(rc.stderr, "hl7send: cannot keep message:", err)
			opts.Error = &hl7.AckError{Code: hl7.ErrCodeInternal, Diagnostic: "receiver could not write the message"}
			opts.Text = "not stored"
			reply = hl7.NewNAK(req.Frame, hl7.AR, opts)
			break
		}
		reply = buildReply(req.Frame, rc.code, opts)
	}
	if !rc.quiet {
		code := "no reply"
		if reply != nil {
			code = readAckCode(reply)
		}
		rc.writeMu.Lock()
		fmt.Fprintf(rc.stderr, "%s  #%d  %-16s %-20s %6d bytes from %s -> %s\n",
			now.Format("15:04:05.000"), n, orDash(h.Type), orDash(h.ControlID), len(req.Frame), req.RemoteAddr, code)
		rc.writeMu.Unlock()
	}
	return reply, nil
}

// buildReply answers a frame with code, or with the negative ACK its defects call for
// (reference §5.7): no MSH 100, unusable delimiters 102, MSH-9/MSH-10 missing 101. A batch
// gets an ack batch. code "" means no reply.
func buildReply(frame []byte, code hl7.AckCode, opts hl7.AckOptions) []byte {
	if code == "" {
		return nil
	}
	nak := func(err error) []byte {
		o := opts
		o.Error = &hl7.AckError{Code: errorCode(err)}
		var he *hl7.HeaderError
		if errors.As(err, &he) {
			o.Error.Location = "MSH^1^" + strconv.Itoa(he.Field)
		}
		return hl7.NewNAK(frame, hl7.AE, o)
	}
	if !code.Positive() {
		opts.Error = &hl7.AckError{Code: hl7.ErrCodeInternal, Diagnostic: "hl7send --ack " + string(code)}
		opts.Text = "answered " + string(code) + " by hl7send --ack"
	}
	b, err := hl7.SplitBatch(frame, hl7.Options{})
	if err != nil {
		return nak(err)
	}
	acks := make([][]byte, 0, len(b.Messages))
	for _, m := range b.Messages {
		if err := m.ValidateHeader(); err != nil {
			if b.Kind == hl7.SingleMessage || b.Kind == hl7.Headerless {
				return nak(err)
			}
			o := opts
			o.Error = &hl7.AckError{Code: errorCode(err)}
			acks = append(acks, hl7.NewACK(m, hl7.AE, o))
			continue
		}
		acks = append(acks, hl7.NewACK(m, code, opts))
	}
	if b.Kind == hl7.BatchBHS || b.Kind == hl7.BatchFHS {
		return hl7.NewBatchACK(b, acks, opts)
	}
	return acks[0] // a headerless run of messages gets one ACK, for the first (reference §7)
}

func errorCode(err error) hl7.ErrorCode {
	var he *hl7.HeaderError
	switch {
	case errors.As(err, &he):
		return he.Code
	case errors.Is(err, hl7.ErrNoMSH), errors.Is(err, hl7.ErrBatchStructure):
		return hl7.ErrCodeSegmentSequence
	case errors.Is(err, hl7.ErrBadDelimiters):
		return hl7.ErrCodeDataType
	}
	return hl7.ErrCodeInternal
}

// readAckCode returns MSA-1 of the first MSA in an ACK we built, for the log line.
func readAckCode(reply []byte) string {
	i := bytes.Index(reply, []byte("\rMSA"))
	if i < 0 || len(reply) < i+8 {
		return "?"
	}
	code, _, _ := bytes.Cut(reply[i+5:], reply[i+4:i+5])
	if j := bytes.IndexByte(code, '\r'); j >= 0 {
		code = code[:j]
	}
	return string(code)
}

// keep writes one message to stdout (segments on their own lines, a blank line after:
// the form hl7send reads back) or to its own file in the output directory.
func (rc *receiver) keep(n uint64, controlID string, frame []byte) error {
	if rc.outDir == "" {
		text := bytes.ReplaceAll(bytes.ReplaceAll(frame, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
		text = append(bytes.TrimRight(text, "\n"), '\n', '\n')
		rc.writeMu.Lock()
		defer rc.writeMu.Unlock()
		_, err := rc.stdout.Write(text)
		return err
	}
	name := fmt.Sprintf("%06d", n)
	if id := safeName(controlID); id != "" {
		name += "-" + id
	}
	return writeFileAtomic(filepath.Join(rc.outDir, name+".hl7"), frame)
}

// writeFileAtomic writes data to a temporary file in the same directory, syncs it and
// renames it into place: a reader never sees a partial message.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".hl7send-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// safeName keeps the characters of a control ID that are safe in a file name everywhere.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
	s = strings.Trim(s, ".")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// lastSequence returns the highest NNNNNN prefix of the *.hl7 files in dir.
func lastSequence(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, e := range entries {
		num, _, _ := strings.Cut(strings.TrimSuffix(e.Name(), ".hl7"), "-")
		if n, err := strconv.ParseUint(num, 10, 64); err == nil && strings.HasSuffix(e.Name(), ".hl7") {
			last = max(last, n)
		}
	}
	return last, nil
}
