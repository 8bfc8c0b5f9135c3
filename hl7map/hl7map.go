package hl7map

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mllpd/mllpd/hl7"
)

// A Rule is one mapping step as written in the config. Exactly one of Set,
// Copy, Delete, Translate and Replace names the operation and its path; the
// other fields are that operation's arguments. The fields match
// config.MapRule one to one.
type Rule struct {
	Set   string // path to write Value to
	Value string // literal for Set (decoded text; `""` is the HL7 null)

	Copy string // source path for a copy
	To   string // target path for a copy

	Delete string // path to clear, or a segment name to remove (e.g. "ZPI")

	Translate string // path whose value is looked up in Table
	Table     string // code table name (config tables)
	Default   string // for a missing code: "keep" (or ""), "reject", or a literal

	Replace string // path whose value is rewritten
	Regex   string // Go regexp
	With    string // replacement; $1 / ${name} refer to groups
}

// Default values of a translate rule with a meaning of their own.
const (
	DefaultKeep   = "keep"   // a code missing from the table is left as it is
	DefaultReject = "reject" // a code missing from the table fails the mapping
)

// ErrCodeNotInTable is wrapped by the *ApplyError of a translate rule with
// default "reject" whose code is missing from its table.
var ErrCodeNotInTable = errors.New("code not in table")

// A RuleError is a compile error of one rule. Index is the rule's position in
// the list given to [Compile] (the N of routes[i].to[j].map[N]); Op is the
// operation ("set", "copy", ...; "rule" when it could not be determined).
type RuleError struct {
	Index int
	Op    string
	Err   error
}

// Error returns "map[N]: op: reason".
func (e *RuleError) Error() string { return fmt.Sprintf("map[%d]: %s", e.Index, e.Reason()) }

// Reason returns the error without its index ("translate: unknown table
// \"wardz\""), for callers that prefix their own path, e.g.
// "routes[0].to[1].map[2]".
func (e *RuleError) Reason() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *RuleError) Unwrap() error { return e.Err }

// Errors is every compile error of a rule list, in rule order. [Compile]
// returns it (never empty) when any rule is invalid.
type Errors []*RuleError

// Error joins the errors, one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find each *RuleError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// An ApplyError is a rule that failed on a message. It holds the rule's index,
// operation and path, never a field value.
type ApplyError struct {
	Index int
	Op    string
	Path  string
	Err   error
}

// Error returns "hl7map: map[N]: op PATH: reason".
func (e *ApplyError) Error() string {
	return fmt.Sprintf("hl7map: map[%d]: %s %s: %v", e.Index, e.Op, e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *ApplyError) Unwrap() error { return e.Err }

// A Mapping is a compiled rule list. The zero value and a nil *Mapping map
// nothing. A Mapping is immutable and safe for concurrent use.
type Mapping struct {
	steps []step
}

type step struct {
	index int
	op    string
	path  string // as written, for errors
	apply func(m *hl7.Message) error
}

// Len returns the number of rules.
func (mp *Mapping) Len() int {
	if mp == nil {
		return 0
	}
	return len(mp.steps)
}

// Compile checks and compiles rules against the code tables. It reports every
// invalid rule at once, as [Errors]. Tables are copied: later changes to the
// map do not affect the Mapping.
func Compile(rules []Rule, tables map[string]map[string]string) (*Mapping, error) {
	mp := &Mapping{steps: make([]step, 0, len(rules))}
	var errs Errors
	for i, r := range rules {
		s, op, err := compileRule(r, tables)
		if err != nil {
			errs = append(errs, &RuleError{Index: i, Op: op, Err: err})
			continue
		}
		s.index = i
		mp.steps = append(mp.steps, s)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return mp, nil
}

// Apply runs the rules in order on a clone of m and returns the clone. m is
// never modified. On error the partial copy is discarded.
func (mp *Mapping) Apply(m *hl7.Message) (*hl7.Message, error) {
	out := m.Clone()
	if err := mp.applyTo(out); err != nil {
		return nil, err
	}
	return out, nil
}

// applyTo runs the rules on m itself.
func (mp *Mapping) applyTo(m *hl7.Message) error {
	if mp == nil {
		return nil
	}
	for _, s := range mp.steps {
		if err := s.apply(m); err != nil {
			return &ApplyError{Index: s.index, Op: s.op, Path: s.path, Err: err}
		}
	}
	return nil
}

var (
	pathMSH15 = hl7.MustParsePath("MSH-15")
	pathMSH16 = hl7.MustParsePath("MSH-16")
)

// Outbound returns the bytes a destination is sent for m: unless
// keepAckFields (outbound_ack_mode: keep), MSH-15 and MSH-16 blanked so that
// the downstream answers in original mode, then mapped by mp (nil = no
// rules; a rule that sets MSH-15/16 wins over the blanking). The result is
// always CR-terminated; when nothing had to change it is m's own bytes (byte
// for byte for a CR-terminated message). m is never modified.
func Outbound(m *hl7.Message, mp *Mapping, keepAckFields bool) ([]byte, error) {
	blank := !keepAckFields && (len(m.FieldRaw(pathMSH15)) > 0 || len(m.FieldRaw(pathMSH16)) > 0)
	if !blank && mp.Len() == 0 {
		return m.EncodeCR(), nil
	}
	out := m.Clone()
	if blank {
		for _, p := range []hl7.Path{pathMSH15, pathMSH16} {
			if err := out.Delete(p); err != nil {
				return nil, fmt.Errorf("hl7map: blank %s: %w", p, err)
			}
		}
	}
	if err := mp.applyTo(out); err != nil {
		return nil, err
	}
	return out.EncodeCR(), nil
}

func compileRule(r Rule, tables map[string]map[string]string) (step, string, error) {
	ops := make([]string, 0, 1)
	for _, o := range []struct{ name, v string }{
		{"set", r.Set}, {"copy", r.Copy}, {"delete", r.Delete}, {"translate", r.Translate}, {"replace", r.Replace},
	} {
		if o.v != "" {
			ops = append(ops, o.name)
		}
	}
	switch len(ops) {
	case 0:
		return step{}, "rule", errors.New("no operation (want one of set, copy, delete, translate, replace)")
	case 1:
	default:
		return step{}, "rule", fmt.Errorf("more than one operation (%s)", strings.Join(ops, ", "))
	}
	op := ops[0]
	if err := checkArgs(op, r); err != nil {
		return step{}, op, err
	}
	switch op {
	case "set":
		return compileSet(r)
	case "copy":
		return compileCopy(r)
	case "delete":
		return compileDelete(r)
	case "translate":
		return compileTranslate(r, tables)
	default:
		return compileReplace(r)
	}
}

// checkArgs refuses arguments that belong to another operation: they are
// config typos (a set with a table, a copy without to) and silently
// ignoring them would map something other than what the admin wrote.
func checkArgs(op string, r Rule) error {
	used := map[string]bool{
		"value":   op == "set",
		"to":      op == "copy",
		"table":   op == "translate",
		"default": op == "translate",
		"regex":   op == "replace",
		"with":    op == "replace",
	}
	for _, a := range []struct{ name, v string }{
		{"value", r.Value}, {"to", r.To}, {"table", r.Table}, {"default", r.Default}, {"regex", r.Regex}, {"with", r.With},
	} {
		if a.v != "" && !used[a.name] {
			return fmt.Errorf("%s is not used by %s", a.name, op)
		}
	}
	return nil
}

// target is a parsed path plus what the rules need to know about it.
type target struct {
	p        hl7.Path
	s        string   // as written
	seg      hl7.Path // the segment the path is in ("OBX[3]" of "OBX[3]-5")
	segOnly  bool     // "ZPI": the whole segment
	whole    bool     // a whole field, every repetition ("PID-3", not "PID-3[1]" or "PID-3.1")
	first    hl7.Path // for a whole field: its first repetition ("PID-3[1]")
	delimFld bool     // MSH-1 or MSH-2: the delimiters themselves
}

func parseTarget(s string) (target, error) {
	p, err := hl7.ParsePath(s)
	if err != nil {
		return target{}, fmt.Errorf("path %q: %w", s, err)
	}
	segStr, rest, hasField := strings.Cut(s, "-")
	t := target{p: p, s: s, segOnly: !hasField, seg: p}
	if !hasField {
		return t, nil
	}
	if t.seg, err = hl7.ParsePath(segStr); err != nil {
		return target{}, fmt.Errorf("path %q: %w", s, err)
	}
	t.whole = !strings.ContainsAny(rest, "[.")
	if t.whole {
		if t.first, err = hl7.ParsePath(s + "[1]"); err != nil {
			return target{}, fmt.Errorf("path %q: %w", s, err)
		}
	}
	name, _, _ := strings.Cut(segStr, "[")
	if name == "MSH" || name == "BHS" || name == "FHS" {
		n := rest
		if i := strings.IndexAny(n, "[."); i >= 0 {
			n = n[:i]
		}
		if f, err := strconv.Atoi(n); err == nil && f <= 2 {
			t.delimFld = true
		}
	}
	return t, nil
}

// raw returns what t holds on the wire: for a whole field every repetition,
// else the addressed value. nil when absent.
func (t target) raw(m *hl7.Message) []byte {
	if t.whole {
		return m.FieldRaw(t.p)
	}
	return m.GetRaw(t.p)
}

// value returns the path a read-modify-write rule (translate, replace) works
// on: the first repetition of a whole field, so that its other repetitions
// are kept.
func (t target) value() hl7.Path {
	if t.whole {
		return t.first
	}
	return t.p
}

// writable parses a path that a rule writes to: a field, component or
// subcomponent, never MSH-1/MSH-2.
func writable(s, role string) (target, error) {
	if s == "" {
		return target{}, fmt.Errorf("%s path is empty", role)
	}
	t, err := parseTarget(s)
	if err != nil {
		return t, err
	}
	if t.segOnly {
		return t, fmt.Errorf("path %q names a segment; %s needs a field", s, role)
	}
	if t.delimFld {
		return t, fmt.Errorf("path %q: MSH-1 and MSH-2 hold the delimiters and cannot be written", s)
	}
	return t, nil
}

func compileSet(r Rule) (step, string, error) {
	t, err := writable(r.Set, "set")
	if err != nil {
		return step{}, "set", err
	}
	v := r.Value
	return step{op: "set", path: t.s, apply: func(m *hl7.Message) error {
		return m.Set(t.p, v)
	}}, "set", nil
}

func compileCopy(r Rule) (step, string, error) {
	from, err := parseTarget(r.Copy)
	if err != nil {
		return step{}, "copy", err
	}
	if from.segOnly {
		return step{}, "copy", fmt.Errorf("path %q names a segment; copy needs a field", r.Copy)
	}
	if r.To == "" {
		return step{}, "copy", errors.New("to is missing")
	}
	to, err := writable(r.To, "copy target")
	if err != nil {
		return step{}, "copy", err
	}
	return step{op: "copy", path: from.s + " to " + to.s, apply: func(m *hl7.Message) error {
		raw := m.GetRaw(from.p)
		if from.whole && to.whole {
			raw = m.FieldRaw(from.p) // field to field: every repetition
		}
		if len(raw) == 0 {
			// An absent or empty source makes the target empty too: "copy A to
			// B" means B holds what A holds.
			if len(to.raw(m)) == 0 {
				return nil
			}
			return m.Delete(to.p)
		}
		// Raw bytes: the same message, so the same delimiters; escapes and
		// the HL7 null "" travel unchanged. Cloned because GetRaw aliases the
		// message being edited.
		err := m.SetRaw(to.p, bytes.Clone(raw))
		if errors.Is(err, hl7.ErrBadValue) {
			// The source has structure the target level cannot hold (a
			// component with subcomponents copied into a subcomponent):
			// copy its text, with the separators escaped.
			return m.Set(to.p, m.Get(from.p))
		}
		return err
	}}, "copy", nil
}

func compileDelete(r Rule) (step, string, error) {
	t, err := parseTarget(r.Delete)
	if err != nil {
		return step{}, "delete", err
	}
	if t.delimFld {
		return step{}, "delete", fmt.Errorf("path %q: MSH-1 and MSH-2 hold the delimiters and cannot be deleted", r.Delete)
	}
	if t.segOnly && (t.s == "MSH" || strings.HasPrefix(t.s, "MSH[")) {
		return step{}, "delete", errors.New("the MSH segment cannot be deleted")
	}
	return step{op: "delete", path: t.s, apply: func(m *hl7.Message) error {
		if !t.segOnly && len(t.raw(m)) == 0 {
			return nil // nothing to clear; do not grow the segment
		}
		return m.Delete(t.p)
	}}, "delete", nil
}

func compileTranslate(r Rule, tables map[string]map[string]string) (step, string, error) {
	t, err := writable(r.Translate, "translate")
	if err != nil {
		return step{}, "translate", err
	}
	if r.Table == "" {
		return step{}, "translate", errors.New("table is missing")
	}
	src, ok := tables[r.Table]
	if !ok {
		return step{}, "translate", fmt.Errorf("unknown table %q", r.Table)
	}
	table := make(map[string]string, len(src))
	for k, v := range src {
		table[k] = v
	}
	name, def, vp := r.Table, r.Default, t.value()
	return step{op: "translate", path: t.s, apply: func(m *hl7.Message) error {
		if m.GetRaw(t.seg) == nil || m.IsNull(vp) {
			return nil // no segment, or a null: nothing to translate
		}
		code := m.Get(vp)
		if code == "" {
			// Absent or empty: translated only when the table maps the empty
			// code on purpose; the default is for codes the table lacks.
			if v, ok := table[""]; ok {
				return m.Set(vp, v)
			}
			return nil
		}
		if v, ok := table[code]; ok {
			if v == code {
				return nil
			}
			return m.Set(vp, v)
		}
		switch def {
		case "", DefaultKeep:
			return nil
		case DefaultReject:
			return fmt.Errorf("%w %q", ErrCodeNotInTable, name)
		default:
			return m.Set(vp, def)
		}
	}}, "translate", nil
}

func compileReplace(r Rule) (step, string, error) {
	t, err := writable(r.Replace, "replace")
	if err != nil {
		return step{}, "replace", err
	}
	if r.Regex == "" {
		return step{}, "replace", errors.New("regex is missing")
	}
	re, err := regexp.Compile(r.Regex)
	if err != nil {
		return step{}, "replace", fmt.Errorf("regex: %w", err)
	}
	with, vp := r.With, t.value()
	return step{op: "replace", path: t.s, apply: func(m *hl7.Message) error {
		if m.GetRaw(t.seg) == nil || m.IsNull(vp) {
			return nil // no segment to edit; a null is a statement, not text
		}
		v := m.Get(vp)
		nv := re.ReplaceAllString(v, with)
		if nv == v {
			return nil // unchanged: keep the original bytes
		}
		return m.Set(vp, nv)
	}}, "replace", nil
}
