//go:build !faultinject

package store

// faultState is empty in release builds: no hook exists to make a commit fail.
type faultState struct{}

func (faultState) init()              {}
func (faultState) commitFault() error { return nil }
