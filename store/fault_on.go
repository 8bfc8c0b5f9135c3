//go:build faultinject

package store

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"time"
)

// FaultEnv names the file that drives commit faults from outside the process
// (faultinject builds only). See doc.go.
const FaultEnv = "MLLPD_FAULT_FILE"

// ErrInjected is the error of a commit failed by fault injection.
var ErrInjected = errors.New("store: injected commit fault")

type faultState struct {
	mu   sync.Mutex
	hook func() error
	file string
}

func (f *faultState) init() { f.file = os.Getenv(FaultEnv) }

// SetCommitFault makes every following commit call f just before bbolt's
// Commit: a non-nil error fails the commit (the transaction is rolled back and
// every caller of the batch gets a *CommitError); blocking in f stalls the
// commit. nil removes the hook. Only in builds with the faultinject tag.
func SetCommitFault(s *Store, f func() error) {
	s.fault.mu.Lock()
	s.fault.hook = f
	s.fault.mu.Unlock()
}

func (f *faultState) commitFault() error {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	if f.file == "" {
		return nil
	}
	return fileFault(f.file)
}

// fileFault reads the fault file: "fail" fails the commit, "stall" blocks until
// the content changes; anything else, or no file, lets the commit through.
func fileFault(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	switch string(bytes.TrimSpace(b)) {
	case "fail":
		return ErrInjected
	case "stall":
		for {
			time.Sleep(10 * time.Millisecond)
			nb, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(nb, b) {
				return fileFault(path)
			}
		}
	}
	return nil
}
