package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mllpd/mllpd/relay"
	"github.com/mllpd/mllpd/store"
)

func newCompactCmd() *cobra.Command {
	var (
		cfgPath    string
		keepBackup bool
	)
	c := &cobra.Command{
		Use:   "compact",
		Short: "Rewrite the store without its free pages (mllpd must be stopped)",
		Long: `compact copies data_dir/mllpd.db into a new file without the free pages left
by pruned messages, checks the copy, and swaps it in atomically. The old file
stays as mllpd.db.bak until the swap succeeded (--keep-backup keeps it after).
It needs the store to itself: stop mllpd first.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			addr := relay.DialableAddr(cfg.Admin.Listen)
			if daemonRunning(c.Context(), cfg) {
				return fmt.Errorf("mllpd is running (its admin API answers at %s); stop it first: compact needs the store to itself", addr)
			}
			before, after, err := compactStore(dbPath(cfg), keepBackup)
			if errors.Is(err, store.ErrLocked) {
				return lockedError(cfg)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "compacted %s: %d -> %d bytes\n", dbPath(cfg), before, after)
			return nil
		},
	}
	configFlag(c, &cfgPath)
	c.Flags().BoolVar(&keepBackup, "keep-backup", false, "keep the old file as mllpd.db.bak")
	return c
}

// compactStore compacts db in place. The old file is held open read-only
// (a shared lock) throughout, so a daemon started meanwhile fails to lock it
// instead of writing to a file about to be replaced. db is never absent: the
// .bak is a hard link (or a copy) made before the new file is renamed over db.
func compactStore(db string, keepBackup bool) (before, after int64, err error) {
	fi, err := os.Stat(db)
	if err != nil {
		return 0, 0, fmt.Errorf("compact: no store at %s (check data_dir): %w", db, err)
	}
	before = fi.Size()
	hold, err := store.Open(store.Options{Path: db, ReadOnly: true, LockTimeout: offlineLockTimeout})
	if err != nil {
		return 0, 0, err
	}
	defer hold.Close()
	tmp, bak := db+".compact", db+".bak"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("compact: remove a stale %s: %w", tmp, err)
	}
	if err := store.Compact(db, tmp); err != nil {
		return 0, 0, err
	}
	if err := checkStoreFile(tmp); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact: the new file does not check out; %s is unchanged: %w", db, err)
	}
	if err := os.Remove(bak); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact: remove the old %s: %w", bak, err)
	}
	if err := os.Link(db, bak); err != nil {
		if err := copyFile(db, bak); err != nil {
			os.Remove(tmp)
			return 0, 0, fmt.Errorf("compact: keep the old file as %s: %w", bak, err)
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact: swap in the new file (the old one is unchanged): %w", err)
	}
	if err := syncDir(filepath.Dir(db)); err != nil {
		return 0, 0, fmt.Errorf("compact: %w (the old file is kept as %s)", err, bak)
	}
	if !keepBackup {
		if err := os.Remove(bak); err != nil {
			return 0, 0, fmt.Errorf("compact: done, but removing %s failed: %w", bak, err)
		}
	}
	fi, err = os.Stat(db)
	if err != nil {
		return before, 0, err
	}
	return before, fi.Size(), nil
}

// copyFile copies src to dst (fsynced), for a filesystem without hard links.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	return errors.Join(err, out.Close())
}
