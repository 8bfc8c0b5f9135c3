// Package config loads, defaults and validates mllpd's one YAML configuration file.
//
// The file's shape is design.md's "Configuration" section; its keys are a contract with
// deployed files. Load reads a file, Parse reads text (tests, reload from memory); both
// return a *Config that is complete (every default applied) and valid, or Errors listing
// every problem at once, each with its path and a hint, in file order:
//
//	listeners[1].listen: "0.0.0.0:99999": port out of range
//	routes[2].to[0].destination: unknown destination "epx"
//	destinations[0].ack_timout: unknown key (did you mean "ack_timeout"?)
//
// A file that cannot be read at all yields an error wrapping ErrUnreadable instead, so a
// CLI can tell "unreadable" (exit 2) from "invalid" (exit 1).
//
// # Layers
//
// In order, later ones winning:
//  1. the embedded default.yaml: data_dir ./data, console logs, admin on 127.0.0.1:8765,
//     design.md's storage values, and one listener "default" on 127.0.0.1:2575;
//  2. the user's file. Keys it gives replace the default's; mappings of fixed keys (log,
//     admin, storage, a listener's identity, ...) merge key by key, while lists and
//     free-form maps (listeners, destinations, routes, tables, classify, headers, where)
//     are replaced whole. A file without a listeners key keeps the default listener; an
//     explicit "listeners: []" means none, which is an error;
//  3. the environment, for four scalars only: MLLPD_DATA_DIR, MLLPD_LOG_LEVEL,
//     MLLPD_ADMIN_LISTEN, MLLPD_ADMIN_TOKEN_FILE (an empty variable counts as unset);
//  4. per-listener, per-destination and per-rule defaults, applied in code to every key
//     a file did not give (see the Default* constants).
//
// A value may reference ${NAME} (NAME: a capital letter or _, then capitals, digits or
// _), expanded from the environment when the file is read; an unset variable is an error
// naming its path. "$${" writes a literal "${"; other "${...}" forms, such as a Go regexp
// replacement's ${1}, are left alone. A key written with no value ("ack_mode:") counts as
// not given.
//
// YAML anchors, aliases and merge keys work as YAML specifies ("<<: *common"; the
// mapping's own keys win, and of "<<: [*a, *b]" the first). Top-level keys starting with
// "x-" are ignored, as a place to keep anchors. Aliases are charged against a budget
// proportional to the file's size, so a small file cannot expand into a huge tree.
//
// Relative paths (data_dir, TLS files, a file destination's dir) are taken from the
// daemon's working directory, not from the configuration file's.
//
// # Invariants
//
//   - Keys of free-form maps keep their case and dots: `W1` is not `w1`, and
//     `PID-3[1].1` is one key. (This is why the file is decoded with yaml.v3 node by node
//     rather than through viper, which lowercases keys and splits them on dots; viper is
//     used, with "::" as its key delimiter, for the environment layer only.)
//   - Scalars are taken by their literal text: 001 stays "001" in a table, 2.10 stays
//     "2.10" as a version.
//   - Unknown keys and keys repeated within one mapping are errors.
//   - A returned Config holds plain values only (no compiled regexps, no open files), so
//     listeners, destinations and routes of the same name compare with reflect.DeepEqual
//     when a reload looks for changes.
//   - Validation checks the syntax of HL7 paths, regexes, globs (path.Match), CIDRs and
//     addresses, cross-references (route → listener, destination, table), and that TLS
//     files exist and can be opened. It binds nothing and loads no certificate; compiling
//     routes and maps is the runtime's job.
//   - The package imports nothing of this module, yet its checks of HL7 paths, fallback
//     charsets and map rules accept exactly what hl7.ParsePath, hl7.LookupCharset and
//     hl7map.Compile accept: the *_agreement_test.go files (tests only) hold that, so a
//     file that passes here does not fail later when the runtime compiles it.
//   - Error messages quote configuration values, never message content, and never the
//     value of an environment variable.
package config
