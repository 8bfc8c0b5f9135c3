package store

import (
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the database to w while the store keeps
// running: one read transaction, so appends go on and the copy is the state of
// one commit. The copy is a valid database file that Open accepts.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// compactTxMax bounds one compaction transaction's size.
const compactTxMax = 64 << 20

// Compact copies the database at src into a new file dst, leaving out the free
// pages, for use while no daemon runs (src is opened read-only; dst must not
// exist). The schema version is checked first.
func Compact(src, dst string) (err error) {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("store: compact: %s exists", dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: compact: %w", err)
	}
	in, err := Open(Options{Path: src, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	defer in.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: DefaultLockTimeout})
	if err != nil {
		return fmt.Errorf("store: compact: create %s: %w", dst, err)
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("store: compact: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	in.dbMu.RLock()
	defer in.dbMu.RUnlock()
	if err := bolt.Compact(out, in.db, compactTxMax); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	return nil
}
