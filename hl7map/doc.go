// Package hl7map applies the mapping rules of a route to an outbound copy of an
// HL7 v2 message.
//
// Rules come from the config (routes[i].to[j].map) and are compiled once, when
// the config loads, into a [Mapping]: paths are parsed, regular expressions
// compiled and code tables resolved, so a bad rule is a config error with its
// index, never a delivery failure. A Mapping is immutable and safe for
// concurrent use by any number of delivery workers.
//
// Rule kinds, applied in order to a copy of the message:
//
//   - set:       write a literal (decoded text; delimiters in it are escaped).
//     The literal `""` writes the HL7 null. A whole-field path ("MSH-5")
//     replaces every repetition; a missing segment is appended.
//   - copy/to:   copy one path to another as raw bytes, so escapes and the
//     HL7 null `""` travel unchanged (reference §11.4 case 31). Field to
//     field copies every repetition. An absent or empty source clears the
//     target. A source with more structure than the target level can hold
//     (components into a component) is copied as text, its separators
//     escaped.
//   - delete:    clear a field (every repetition), repetition, component or
//     subcomponent, or remove every segment with a name (e.g. a Z segment).
//   - replace:   Go regexp replacement on the decoded value ($1 refers to a
//     group); the result is written escaped, and only when it differs. A
//     null value or an absent segment is left alone.
//   - translate: look the decoded value up in a code table (exact,
//     case-sensitive). A code missing from the table gets the rule's
//     default: "keep" (or empty) leaves it, "reject" fails the mapping,
//     anything else is written as the literal. An empty or absent value is
//     translated only if the table has an entry for "", a null never.
//
// Replace and translate on a whole-field path work on its first repetition
// and keep the others.
//
// Invariants:
//   - Apply never modifies its input: it works on [hl7.Message.Clone]. The
//     message in the store is never touched.
//   - Rules read decoded values and write correctly escaped ones, in the
//     message's own delimiters and charset (hl7's Set does both).
//   - MSH-1 and MSH-2 (the delimiters) can never be written or deleted, nor can
//     the MSH segment be removed: a mapped message always re-parses.
//   - [Outbound] is the one function a delivery worker calls: MSH-15/16 are
//     blanked before the rules run (a rule may set them again); an unmapped
//     message whose MSH-15/16 need no change goes out byte for byte (with CR
//     terminators); otherwise the mapped copy is encoded with CR terminators.
//
// Errors name the rule index, the operation and the path, never a field value
// (values may be patient data).
package hl7map
