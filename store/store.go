package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

// SchemaVersion is the layout version this package reads and writes. It is kept
// in the meta bucket; a file with another version is refused at Open, except
// versions 1 to 3, which a read-write Open upgrades in place. Version 2 added
// the staged tail (stage.go: a version 1 file has everything indexed) and
// version 3 its second mark, kQueued (a version 2 file has none: its queue
// entries are written as far as its control-ID entries). A version 2 mllpd
// would take a version 3 file's queue entries after kIndexed for unwritten.
// Version 4 writes queue entries in runs (queuekeys.go), which a version 3
// mllpd would misread; a version 3 file, with single entries only, is
// already a valid version 4 file.
const SchemaVersion = 4

// DefaultLockTimeout is how long Open waits for the file lock when
// Options.LockTimeout is zero.
const DefaultLockTimeout = 2 * time.Second

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrLowDiskSpace means the free-space guard refused the write: the data
	// directory has less free space than Options.MinFreeBytes. Nothing was written.
	ErrLowDiskSpace = errors.New("store: free disk space below the configured minimum")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store: closed")
	// ErrNotFound means the message, queue entry, dead letter or rejected record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked means another process holds the database file.
	ErrLocked = errors.New("store: database file is held by another process; while mllpd runs use its admin API")
	// ErrCorrupt means the file is not a readable mllpd database.
	ErrCorrupt = errors.New("store: database file is corrupted or not an mllpd database")
	// ErrSchema means the file was written by an mllpd with another schema version.
	ErrSchema = errors.New("store: unknown schema version")
	// ErrInvalid means the caller passed an unusable argument (an empty or
	// oversized destination name, an oversized message).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrAlreadyQueued means Requeue found the message still waiting in that queue.
	ErrAlreadyQueued = errors.New("store: message already queued for destination")
	// ErrReadOnly is returned by writes on a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store: opened read-only")
)

// A CommitError reports that the transaction holding the caller's write failed
// to commit or to fsync. Nothing of that batch may be assumed stored: ingest
// answers AR/207. The store closes and reopens the file before its next write,
// because after a failed fsync the kernel may have dropped the dirty pages.
type CommitError struct{ Err error }

func (e *CommitError) Error() string { return "store: commit failed: " + e.Err.Error() }

// Unwrap returns the underlying bbolt or I/O error.
func (e *CommitError) Unwrap() error { return e.Err }

// Options configure Open. The zero value of every field is usable except Path.
type Options struct {
	Path         string           // the bbolt file (data_dir/mllpd.db); its directory is created (0700)
	LockTimeout  time.Duration    // wait for the file lock; 0 = DefaultLockTimeout
	MinFreeBytes uint64           // Append and AddRejected fail with ErrLowDiskSpace below this; 0 = no guard
	ReadOnly     bool             // shared lock, no writes (inspection while no daemon runs)
	Now          func() time.Time // nil = time.Now; used for dedupe expiry, enqueue and prune times

	// FreeSpace reports the bytes available to mllpd in the data directory.
	// nil = statfs(2) of the directory. Tests inject their own.
	FreeSpace func() (uint64, error)
	// FreeSpaceInterval bounds how stale the cached free-space figure may be;
	// 0 = 100ms. The figure is also refreshed after every FreeSpaceBytes written.
	FreeSpaceInterval time.Duration
	// RejectedMaxBytes bounds the rejected log at every AddRejected (oldest
	// dropped first, drops counted); 0 = bounded only by Prune.
	RejectedMaxBytes int64
	// MaxBatch caps the operations in one group commit; 0 = 1024. Callers beyond
	// it wait (bounded by their ctx) for the next batch.
	MaxBatch int
	Logger   *zap.Logger // nil = zap.NewNop()
}

// Store is the durable message log, its queues and its side logs in one bbolt
// file. All methods are safe for concurrent use.
type Store struct {
	opts   Options
	path   string
	now    func() time.Time
	log    *zap.Logger
	closed atomic.Bool

	// dbMu guards db: readers hold it shared; a reopen after a failed commit
	// holds it exclusively.
	dbMu sync.RWMutex
	db   *bolt.DB

	gc    groupCommit
	space spaceGuard
	fault faultState

	broken bool       // only the group-commit leader reads or writes it
	stage  stageState // the staged tail for writers; only the group-commit leader uses it
	hints  pendingHints

	reopens      atomic.Uint64 // reopens after failed commits since Open
	commits      atomic.Uint64 // transactions committed since Open
	committedOps atomic.Uint64 // ops (Append calls, Records, ...) in them
}

// Bucket names. Keys are big-endian integers wherever order matters so that
// cursors walk in sequence order.
var (
	bMeta     = []byte("meta")     // schema version, counters
	bMsg      = []byte("msg")      // seq -> message record
	bIdx      = []byte("idx")      // control-ID index and queues (queuekeys.go)
	bTime     = []byte("time")     // unix second -> first seq received in it
	bDest     = []byte("dest")     // every destination ever queued or blocked -> blocked state
	bDelivery = []byte("delivery") // seq dest -> delivery record (absent = pending, never tried)
	bDead     = []byte("dead")     // dest (nested) : id -> dead letter
	bRejected = []byte("rejected") // id -> rejected input

	allBuckets = [][]byte{bMeta, bMsg, bIdx, bTime, bDest, bDelivery, bDead, bRejected}

	kSchema          = []byte("schema")
	kRejectedBytes   = []byte("rejected_bytes")
	kRejectedDropped = []byte("rejected_dropped")
)

// Open opens (creating if needed) the database at o.Path. A file locked by
// another process fails with ErrLocked after o.LockTimeout; a damaged file or
// one of another schema version fails with ErrCorrupt or ErrSchema.
func Open(o Options) (*Store, error) {
	if o.Path == "" {
		return nil, fmt.Errorf("store: open: %w: empty path", ErrInvalid)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.FreeSpaceInterval <= 0 {
		o.FreeSpaceInterval = 100 * time.Millisecond
	}
	s := &Store{opts: o, path: o.Path, now: o.Now, log: o.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	dir := filepath.Dir(o.Path)
	if !o.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create data directory: %w", err)
		}
	}
	fs := o.FreeSpace
	if fs == nil {
		fs = func() (uint64, error) { return statfsFree(dir) }
	}
	s.space.init(fs, o.MinFreeBytes, o.FreeSpaceInterval)
	s.gc.init(o.MaxBatch, func() { s.lead(nil) })
	s.fault.init()

	db, err := s.openDB()
	if err != nil {
		return nil, err
	}
	s.db = db
	return s, nil
}

// openDB opens the file and checks (or, on a new file, writes) the schema.
func (s *Store) openDB() (db *bolt.DB, err error) {
	defer func() {
		// bbolt panics on some damaged files instead of returning an error.
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("store: open %s: %w (%v)", s.path, ErrCorrupt, p)
		}
	}()
	db, err = bolt.Open(s.path, 0o600, s.boltOptions())
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("store: open %s: %w", s.path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, fmt.Errorf("store: open %s: %w: %w", s.path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", s.path, err)
	}
	if err := s.initSchema(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !s.opts.ReadOnly {
		if err := s.materializeAll(db); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: open %s: %w", s.path, err)
		}
	}
	return db, nil
}

// boltOptions: fsync stays on (NoSync false): a nil Append error means the
// data and meta pages reached the disk. NoFreelistSync is on, as etcd runs
// it: the freelist is derived data, not written at every commit (one page less
// per fsync); after an unclean stop bbolt rebuilds it by scanning the file at
// Open, which costs time proportional to the file size, never data.
//
// A new file gets 16 KiB pages (an existing one keeps its own): a commit
// writes fewer, shallower B+tree paths for the same fsync (one 16 KiB write
// costs about what one 4 KiB write does on these disks), most messages fit
// one page without overflow, and bbolt's in-memory record of the pages it
// reused since Open (one map entry per page, which grows with the data
// written in the process's lifetime) is a quarter of the size.
func (s *Store) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:        s.opts.LockTimeout,
		ReadOnly:       s.opts.ReadOnly,
		NoSync:         false,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		PageSize:       pageSize,
		// InitialMmapSize reserves address space, not memory: until the
		// file outgrows it, a growing file is never remapped. A remap
		// waits for every read transaction to end and stalls the next
		// ones, and every page must then be faulted in again.
		InitialMmapSize: initialMmapSize,
		Logger:          nil,
	}
}

// initialMmapSize is the address space mapped at Open (bbolt grows it by
// doubling, then by 1 GiB steps, once the file needs more).
const initialMmapSize = 1 << 30

// pageSize is the page size of new database files.
const pageSize = 16 << 10

func (s *Store) initSchema(db *bolt.DB) error {
	upgrade := false
	check := func(tx *bolt.Tx) (found bool, err error) {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return false, fmt.Errorf("store: open %s: %w: no schema version", s.path, ErrSchema)
			}
			return false, nil
		}
		v := meta.Get(kSchema)
		if len(v) != 4 {
			return false, fmt.Errorf("store: open %s: %w: missing schema version", s.path, ErrSchema)
		}
		n := binary.BigEndian.Uint32(v)
		upgrade = n >= 1 && n < SchemaVersion
		if n != SchemaVersion && !upgrade {
			return false, fmt.Errorf("store: open %s: %w %d (this mllpd reads %d)", s.path, ErrSchema, n, SchemaVersion)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return false, fmt.Errorf("store: open %s: %w: bucket %q missing", s.path, ErrCorrupt, b)
			}
		}
		return true, nil
	}
	if s.opts.ReadOnly {
		return db.View(func(tx *bolt.Tx) error {
			found, err := check(tx)
			if err == nil && !found {
				err = fmt.Errorf("store: open %s read-only: %w: empty database", s.path, ErrNotFound)
			}
			return err
		})
	}
	return db.Update(func(tx *bolt.Tx) error {
		found, err := check(tx)
		if err != nil {
			return err
		}
		if found {
			if !upgrade {
				return nil
			}
			meta := tx.Bucket(bMeta)
			if meta.Get(kIndexed) == nil { // version 1
				if err := meta.Put(kIndexed, u64key(tx.Bucket(bMsg).Sequence())); err != nil {
					return err
				}
			}
			return meta.Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return fmt.Errorf("store: create bucket %q: %w", b, err)
			}
		}
		if err := tx.Bucket(bMeta).Put(kIndexed, u64key(0)); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
}

// Close waits for the batch in flight, then closes the file. Calls after
// Close return ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if !s.gc.close() {
		return nil
	}
	s.closed.Store(true)
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// view runs fn in a read transaction, holding dbMu shared so that a reopen
// cannot pull the file away underneath.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil || s.closed.Load() {
		return ErrClosed
	}
	return s.db.View(fn)
}

// reopen closes and reopens the file after a failed commit: Linux may have
// dropped the dirty pages of the failed fsync, and a later successful fsync
// would hide that. Reading the file afresh shows what is really on disk.
func (s *Store) reopen() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Warn("store: close after failed commit", zap.Error(err))
		}
		s.db = nil
	}
	db, err := s.openDB()
	if err != nil {
		return err
	}
	s.db = db
	s.reopens.Add(1)
	s.log.Info("store: reopened database after a failed commit", zap.String("path", s.path))
	return nil
}

// Check runs bbolt's consistency check over the whole file and returns every
// problem found. It reads every page and holds the write lock meanwhile (a
// read transaction would race with the freelist of concurrent commits), so it
// is for tests and admin tools, not for a busy daemon.
func (s *Store) Check() error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil || s.closed.Load() {
		return ErrClosed
	}
	if s.opts.ReadOnly {
		return s.db.View(checkTx)
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return checkTx(tx)
}

func checkTx(tx *bolt.Tx) error {
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
