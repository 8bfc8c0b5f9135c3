// Package e2e holds mllpd's resilience suites ("proof under fire"): tests that
// run the real daemon binary as a subprocess and attack it the way the field
// does — SIGKILL under load, failing and stalling commits, a file-size limit,
// a free-space guard, garbage, floods and slow senders — and then check the
// design's promises from the outside: over MLLP, over the admin API, and
// offline in the bbolt file.
//
// The package has no non-test code; this file exists so that it builds and
// documents the suites' rules:
//
//   - TestMain builds cmd/mllpd twice, once plain and once with the
//     faultinject tag (store's MLLPD_FAULT_FILE hook); every test picks the
//     binary it needs, so the suites run the same with or without
//     -tags faultinject on the test itself.
//   - Only loopback is used. Attackers bind 127.0.0.2 and up, so per-IP
//     limits apply to them while a well-behaved sender on 127.0.0.1 must keep
//     getting AA.
//   - No sleep synchronises: tests poll observable state (the admin API, the
//     daemon's log, /proc) with a deadline, or wait on channels. Timers only
//     pace senders and choose random kill moments.
//   - Every load is bounded in count and time; the daemon itself is not built
//     with -race, so the package finishes in about a minute on two cores.
//   - Gaps the suites found in the daemon are kept as reproducers under
//     testdata/gaps (not compiled) until fixed: a committed test passes.
//
// The suites, by promise (design.md):
//
//   - 1, AA means stored: TestCrashKeepsAckedMessages (SIGKILL rounds under
//     load, single messages and BHS batches), TestCommitFaults,
//     TestCommitFaultsUnderLoad, TestStalledCommitThenCrash (faultinject),
//     TestWriteLimitRefusesWithAR207 (RLIMIT_FSIZE).
//   - 2 and 6, nothing dropped, bad input never stops the daemon:
//     TestBadInput, TestFreeSpaceGuard.
//   - 3, duplicates: resends after lost ACKs in the crash and fault suites.
//   - 4 and 5, order and at-least-once delivery: TestDownstreamOutage and the
//     downstream halves of the crash and fault suites.
//   - Reload without dropping connections: TestReloadUnderLoad.
package e2e
