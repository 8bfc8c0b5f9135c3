// Command hl7send replays HL7 v2 fixture files at an MLLP listener and reports every ACK;
// with --listen it is a small receiving endpoint instead. README.md is the user's guide.
//
// Invariants:
//   - Nothing is sent unless every input could be read (exit status 3 otherwise).
//   - Each message is sent as CR-terminated segments, except with --raw, which sends each
//     file's bytes untouched (only MSH-10 changes, and only with --new-control-ids).
//   - A reply counts for a message only if its MSA-2 is that message's MSH-10 (when it has
//     one); otherwise, and after any timeout or error, the connection is dropped, so a late
//     ACK is never taken for the next message's.
//   - With one connection, messages go out in input order, each after the previous ACK.
//   - Exit status: 2 (some message without ACK) wins over 1 (some ACK not expected).
//   - --listen answers positively only after the message was written out.
//
// The core is run(ctx, args, stdin, stdout, stderr), which tests call in-process; main
// only adds the process's signals and exit status. Of this module it imports only hl7
// and mllp.
package main
