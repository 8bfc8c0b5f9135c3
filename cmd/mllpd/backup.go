package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mllpd/mllpd/store"
)

func newBackupCmd() *cobra.Command {
	var (
		cfgPath string
		force   bool
	)
	c := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the store to FILE",
		Long: `backup writes a consistent copy of the store (the state of one commit) to
FILE. While mllpd runs, the daemon streams it through its admin API and keeps
accepting messages meanwhile; while it is stopped, the store file is copied in
one read transaction. The copy is written next to FILE, checked page by page,
and renamed to FILE only when complete: restore it by stopping mllpd and
putting it in place of data_dir/mllpd.db. FILE "-" writes the copy to stdout
(unchecked; for a pipe such as | gzip > backup.db.gz).`,
		Example: `  mllpd backup /var/backups/mllpd-$(date +%F).db --config /etc/mllpd/mllpd.yaml
  mllpd backup - | gzip > mllpd.db.gz`,
		Args: exactArgs(1, "FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			dst := args[0]
			if dst == "-" {
				return withSession(c, &cfgPath, false, func(ctx context.Context, s *session) error {
					n, err := s.ops.Backup(ctx, c.OutOrStdout())
					if err == nil {
						fmt.Fprintf(c.ErrOrStderr(), "wrote %s to stdout\n", plural(int(n), "byte", "bytes"))
					}
					return err
				})
			}
			if _, err := os.Stat(dst); err == nil && !force {
				return usageErr(fmt.Errorf("%s exists; give --force to replace it", dst))
			}
			return withSession(c, &cfgPath, false, func(ctx context.Context, s *session) error {
				if abs, err := filepath.Abs(dst); err == nil {
					if db, err := filepath.Abs(dbPath(s.cfg)); err == nil && abs == db {
						return usageErr(fmt.Errorf("%s is the store itself; write the backup elsewhere", dst))
					}
				}
				n, err := writeBackup(ctx, s, dst)
				if err != nil {
					return err
				}
				how := "from the stopped store"
				if s.Online() {
					how = "streamed by the running daemon"
				}
				fmt.Fprintf(c.OutOrStdout(), "wrote %s (%s, %s)\n", dst, plural(int(n), "byte", "bytes"), how)
				return nil
			})
		},
	}
	configFlag(c, &cfgPath)
	c.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return c
}

// writeBackup streams the copy into a temporary file beside dst, fsyncs and
// checks it, then renames it to dst: dst is either the old file or a
// complete, checked copy.
func writeBackup(ctx context.Context, s *session, dst string) (n int64, err error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	n, err = s.ops.Backup(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := checkStoreFile(tmp); err != nil {
		return n, fmt.Errorf("backup: the copy does not check out, not kept: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, syncDir(filepath.Dir(dst))
}

// checkStoreFile opens path as a store (schema) and checks every page.
func checkStoreFile(path string) error {
	st, err := store.Open(store.Options{Path: path, ReadOnly: true})
	if err != nil {
		return err
	}
	return errors.Join(st.Check(), st.Close())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
