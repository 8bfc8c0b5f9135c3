package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// maxInputBytes bounds one input file (or stdin): far above any real HL7 file (tens of MB
// with embedded documents), low enough that a wrong argument (a disk image) fails early.
const maxInputBytes = 1 << 30

// dirExtensions are the file name extensions read when walking a directory. Named files
// are read whatever their name; in a directory, README.md, Go files and the like are not
// messages.
const dirExtensions = ".hl7 .hl7v2 .er7 .txt .msg .dat .mllp"

const (
	startBlock = 0x0b // MLLP VT
	endBlock   = 0x1c // MLLP FS
)

// A message is one payload to send and where it came from.
type message struct {
	file  string // the input file as named ("-" for stdin)
	index int    // 1-based position in the file
	count int    // messages in the file
	data  []byte // the payload: CR-terminated segments, or the file's bytes with --raw
}

// source names the message for output: the file, and its position when the file holds
// several messages.
func (m *message) source() string {
	if m.count > 1 {
		return fmt.Sprintf("%s#%d", m.file, m.index)
	}
	return m.file
}

// An inputError is a problem with the command line's inputs: exit status 3.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// readInputs expands args (files, directories, globs, "-") into the messages to send, in
// order. Directories are walked recursively in name order. An input that cannot be read
// fails the whole call: nothing should be sent when the command line is wrong.
func readInputs(args []string, stdin io.Reader, raw bool) ([]*message, []string, error) {
	var (
		msgs     []*message
		warnings []string
	)
	add := func(name string, data []byte) {
		var payloads [][]byte
		if raw {
			if len(data) > 0 {
				payloads = [][]byte{data}
			}
		} else {
			payloads = splitMessages(data)
		}
		if len(payloads) == 0 {
			warnings = append(warnings, fmt.Sprintf("%s: no message in it, skipped", name))
			return
		}
		for i, p := range payloads {
			msgs = append(msgs, &message{file: name, index: i + 1, count: len(payloads), data: p})
		}
	}
	for _, arg := range args {
		if arg == "-" {
			data, err := readAll(stdin)
			if err != nil {
				return nil, nil, &inputError{fmt.Errorf("stdin: %w", err)}
			}
			add("-", data)
			continue
		}
		files, err := expand(arg)
		if err != nil {
			return nil, nil, &inputError{err}
		}
		for _, name := range files {
			data, err := readFile(name)
			if err != nil {
				return nil, nil, &inputError{err}
			}
			add(name, data)
		}
	}
	if len(msgs) == 0 {
		return nil, warnings, &inputError{errors.New("no message to send in the input")}
	}
	return msgs, warnings, nil
}

// expand turns one argument into file names: the file itself, a directory's message
// files (recursively, in name order), or a glob's matches.
func expand(arg string) ([]string, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) || !strings.ContainsAny(arg, "*?[") {
			return nil, err
		}
		matches, gerr := filepath.Glob(arg)
		if gerr != nil {
			return nil, fmt.Errorf("%s: %w", arg, gerr)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no file matches", arg)
		}
		sort.Strings(matches)
		var out []string
		for _, m := range matches {
			files, err := expand(m)
			if err != nil {
				return nil, err
			}
			out = append(out, files...)
		}
		return out, nil
	}
	if !fi.IsDir() {
		return []string{arg}, nil
	}
	var out []string
	err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		hidden := p != arg && strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden || d.Name() == "testdata" && p != arg {
				return fs.SkipDir
			}
			return nil
		}
		if hidden || !hasMessageExtension(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// A link to a file is read (fixture sets are often assembled from links);
			// links to directories are not followed (no loops), and a dangling one is
			// an unreadable input.
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no message file in directory (looked for %s)", arg, dirExtensions)
	}
	return out, nil
}

func hasMessageExtension(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext != "" && slices.Contains(strings.Fields(dirExtensions), ext)
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

func readAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxInputBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxInputBytes)
	}
	return data, nil
}

// splitMessages finds the messages in one file's bytes. It accepts what people keep in
// fixture files:
//   - MLLP-framed dumps (the first byte that is not white space is VT): each frame's
//     payload is taken, and then split like a file's text;
//   - one or several messages, a new one starting at each MSH line; blank lines between
//     messages are dropped (so blank-line-separated files split too);
//   - LF, CRLF or CR segment terminators, all sent as CR, the last segment included;
//   - FHS/BHS batch files: the envelope segments (FHS, BHS, BTS, FTS) are dropped and the
//     messages inside sent one by one;
//   - a UTF-8 byte order mark at the start.
//
// Lines before the first MSH form a message of their own, and an envelope without any
// message is sent as it is, so a broken file is still sent and gets its negative ACK.
func splitMessages(data []byte) [][]byte {
	if first := bytes.TrimLeft(data, " \t\r\n\x00"); len(first) > 0 && first[0] == startBlock {
		var out [][]byte
		for _, frame := range mllpFrames(first) {
			out = append(out, splitText(frame)...)
		}
		return out
	}
	return splitText(data)
}

// mllpFrames returns the payloads of the VT ... FS frames in data. Bytes outside frames
// are skipped. As on the wire, a VT inside a frame restarts it (the partial frame before
// it is dropped); a last frame missing its FS at the end of the file is taken as it is.
func mllpFrames(data []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.IndexByte(data, startBlock)
		if i < 0 {
			return out
		}
		data = data[i+1:]
		end := bytes.IndexAny(data, "\x0b\x1c")
		if end < 0 {
			return append(out, data)
		}
		if data[end] == startBlock {
			data = data[end:]
			continue
		}
		out = append(out, data[:end])
		data = data[end+1:]
	}
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

func splitText(data []byte) [][]byte {
	data = bytes.TrimPrefix(data, utf8BOM)
	var (
		out, envelope [][]byte
		cur           []byte
	)
	flush := func() {
		if cur != nil {
			out = append(out, cur)
			cur = nil
		}
	}
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			line = data[:i]
			data = data[i+1:]
		} else {
			line, data = data, nil
		}
		switch {
		case len(bytes.TrimSpace(bytes.Trim(line, "\x00"))) == 0:
			// Blank line (or the LF of a CRLF pair): a separator, never a segment.
		case isEnvelopeSegment(line):
			flush()
			envelope = append(envelope, line)
		case isSegment(line, "MSH"):
			flush()
			cur = appendSegment(nil, line)
		default:
			cur = appendSegment(cur, line)
		}
	}
	flush()
	if len(out) == 0 && len(envelope) > 0 {
		var msg []byte
		for _, line := range envelope {
			msg = appendSegment(msg, line)
		}
		return [][]byte{msg}
	}
	return out
}

func appendSegment(msg, line []byte) []byte {
	if msg == nil {
		msg = make([]byte, 0, len(line)+256)
	}
	msg = append(msg, line...)
	return append(msg, '\r')
}

// isSegment reports whether line is a segment named id: the name followed by the field
// separator (any byte that is not a letter or digit), or the name alone.
func isSegment(line []byte, id string) bool {
	if !bytes.HasPrefix(line, []byte(id)) {
		return false
	}
	return len(line) == len(id) || !isAlphanumeric(line[len(id)])
}

func isEnvelopeSegment(line []byte) bool {
	return isSegment(line, "FHS") || isSegment(line, "BHS") || isSegment(line, "BTS") || isSegment(line, "FTS")
}

func isAlphanumeric(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
