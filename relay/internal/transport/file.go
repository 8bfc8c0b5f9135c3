package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxIDInName bounds the control ID part of a file name.
const maxIDInName = 64

// tempPattern names a file while it is written: a dot file without the .hl7
// extension, so that a system picking up "*.hl7" never reads a partial one.
const tempPattern = ".tmp-*"

// File writes one file per message into a directory:
// <seq, 12 digits>-<control ID sanitized>.hl7, so that a directory listing is
// in accept order.
type File struct {
	dir string
}

// NewFile returns a file transport for c.Dir, creating the directory.
func NewFile(c Config) (*File, error) {
	if c.Dir == "" {
		return nil, fmt.Errorf("transport: destination %q: dir is empty", c.Name)
	}
	if err := os.MkdirAll(c.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("transport: destination %q: %w", c.Name, err)
	}
	return &File{dir: c.Dir}, nil
}

// FileName returns the name msg is written under.
func FileName(msg Message) string {
	return fmt.Sprintf("%012d-%s.hl7", msg.Seq, sanitize(msg.ControlID))
}

// sanitize keeps a control ID's letters, digits, '.', '_' and '-' and turns
// anything else into '_', so that no ID can name another directory, a hidden
// file or a device.
func sanitize(id string) string {
	var b strings.Builder
	for i := 0; i < len(id) && b.Len() < maxIDInName; i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		case c == '.' && b.Len() > 0:
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "noid"
	}
	return b.String()
}

// Send writes msg.Body to a temp file, fsyncs it, renames it to its final
// name and fsyncs the directory: after a nil error the file survives a crash.
// A file of the same name (a replay after a crash) is replaced.
func (t *File) Send(ctx context.Context, msg Message) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	final := filepath.Join(t.dir, FileName(msg))
	f, err := os.CreateTemp(t.dir, tempPattern)
	if err != nil {
		return Result{}, fmt.Errorf("transport: file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(msg.Body); err != nil {
		return Result{}, fmt.Errorf("transport: file: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Result{}, fmt.Errorf("transport: file: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return Result{}, fmt.Errorf("transport: file: close: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Result{}, fmt.Errorf("transport: file: rename: %w", err)
	}
	ok = true
	if err := syncDir(t.dir); err != nil {
		return Result{}, fmt.Errorf("transport: file: fsync dir: %w", err)
	}
	return Result{}, nil
}

// Close does nothing: no file stays open between messages.
func (t *File) Close() error { return nil }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, os.ErrInvalid) {
		return nil // platforms that cannot fsync a directory
	}
	return err
}
