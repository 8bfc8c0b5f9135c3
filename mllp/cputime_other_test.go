//go:build !unix

package mllp

import "time"

func processCPU() time.Duration { return 0 }
