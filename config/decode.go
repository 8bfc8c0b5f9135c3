package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The decoding budget bounds work and memory (nodes visited plus list and map elements
// allocated): YAML aliases can make a small file expand into a huge tree (the "billion
// laughs" shape). Each document adds a fixed allowance plus a multiple of its own node
// count, so a file without aliases never runs out, however large.
const (
	budgetBase    = 1 << 14
	budgetPerNode = 4
)

var durationType = reflect.TypeFor[time.Duration]()

// decoder walks a yaml.Node tree into Config's structs by their yaml tags. It is strict
// (unknown and duplicate keys are errors), keeps map keys verbatim (viper would lowercase
// them and split them on dots: "PID-3[1].1" and "W1" must survive), takes scalars by their
// literal text ("001" stays "001", 2.10 stays "2.10"), expands ${NAME} in values, and
// records which keys a file gave and where, for defaults and for error positions.
//
// Decoding a second document over the first merges it: mappings of fixed keys (log,
// admin, storage, ...) merge key by key, while lists and free-form maps (listeners,
// tables, classify, ...) are replaced whole.
type decoder struct {
	lookupEnv func(string) (string, bool)
	errs      []FieldError
	present   map[string]bool // paths of keys given by a file (not by a default)
	lines     map[string]int  // paths given by the user's file -> line
	expanded  map[string]expansion
	fields    map[reflect.Type]map[string]int // fieldIndex cache
	user      bool                            // decoding the user's file: record lines
	visits    int
	budget    int
	exhausted bool
}

func newDecoder(lookupEnv func(string) (string, bool)) *decoder {
	return &decoder{lookupEnv: lookupEnv, present: map[string]bool{}, lines: map[string]int{}, expanded: map[string]expansion{}, fields: map[reflect.Type]map[string]int{}}
}

func (d *decoder) fail(path string, line int, format string, args ...any) {
	if !d.user {
		line = 0
	}
	d.errs = append(d.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Line: line})
}

func (d *decoder) mark(path string, line int) {
	d.present[path] = true
	if d.user {
		d.lines[path] = line
	}
}

// forget drops what an earlier document recorded under path, which is being replaced.
func (d *decoder) forget(path string) {
	for p := range d.present {
		if isUnder(p, path) {
			delete(d.present, p)
		}
	}
	for p := range d.lines {
		if isUnder(p, path) {
			delete(d.lines, p)
		}
	}
	for p := range d.expanded {
		if isUnder(p, path) {
			delete(d.expanded, p)
		}
	}
}

func isUnder(p, path string) bool {
	rest, ok := strings.CutPrefix(p, path)
	return ok && rest != "" && (rest[0] == '.' || rest[0] == '[')
}

// document decodes a whole file (a DocumentNode, or a zero Node for an empty file) into c.
func (d *decoder) document(doc *yaml.Node, c *Config) {
	if doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0) {
		return // empty file: every default stands
	}
	n := doc
	if n.Kind == yaml.DocumentNode {
		n = n.Content[0]
	}
	if isNull(n) {
		return
	}
	d.budget += budgetBase + budgetPerNode*countNodes(n)
	d.decode(n, "", reflect.ValueOf(c).Elem())
}

// countNodes counts the nodes of a tree as written, without following aliases.
func countNodes(n *yaml.Node) int {
	count := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n, stack = stack[len(stack)-1], stack[:len(stack)-1]
		count++
		stack = append(stack, n.Content...)
	}
	return count
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// isScalarType reports whether a YAML null for a field of type t means "not given" (keep
// the default) rather than "empty" (replace with nothing).
func isScalarType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Struct:
		return false
	}
	return true
}

// spend charges cost against the decoding budget (nodes visited plus elements
// allocated), reporting once when it runs out.
func (d *decoder) spend(path string, n *yaml.Node, cost int) bool {
	if d.visits += cost; d.visits <= d.budget {
		return true
	}
	if !d.exhausted {
		d.exhausted = true
		d.fail(path, n.Line, "document too large (too many aliases?)")
	}
	return false
}

// decode stores n into v (addressable). path names v in error messages.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	n = resolve(n)
	if !d.spend(path, n, 1) {
		return
	}
	t := v.Type()
	if t == durationType {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.fail(path, n.Line, "%q: not a duration (e.g. 30s, 10m, 24h)", s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.fail(path, n.Line, "%q: must be true or false", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(path, n.Line, "%q: must be a whole number", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if strings.HasPrefix(s, "-") {
			d.fail(path, n.Line, "%q: must not be negative", s)
			return
		}
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			d.fail(path, n.Line, "%q: must be a whole number", s)
			return
		}
		v.SetUint(u)
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, path, v.Elem())
	case reflect.Struct:
		d.structure(n, path, v)
	case reflect.Slice:
		if v.Len() > 0 {
			d.forget(path) // replacing an earlier document's list (only then: forget is O(n))
		}
		if isNull(n) {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n.Line, "must be a list, not %s", kindName(n))
			return
		}
		if !d.spend(path, n, len(n.Content)) {
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.mark(p, e.Line)
			d.decode(e, p, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Len() > 0 {
			d.forget(path)
		}
		if isNull(n) {
			v.SetZero()
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(path, n.Line, "must be a mapping, not %s", kindName(n))
			return
		}
		if !d.spend(path, n, len(n.Content)/2) {
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		seen := map[string]seenKey{}
		for _, kv := range d.pairs(n, path) {
			k, val := kv.k, kv.v
			key, _, ok := d.key(k, path, seen, kv.merged)
			if !ok {
				continue
			}
			p := mapPath(path, key)
			d.mark(p, k.Line)
			e := reflect.New(t.Elem()).Elem()
			if isNull(val) && isScalarType(t.Elem()) {
				d.fail(p, k.Line, "needs a value (write \"\" for an empty one)")
				continue
			}
			d.decode(val, p, e)
			m.SetMapIndex(reflect.ValueOf(key), e)
		}
		v.Set(m)
	default:
		// Unreachable for Config's types; reported rather than panicking.
		d.fail(path, n.Line, "internal error: unsupported type %s", t)
	}
}

// structure decodes a mapping into the struct v, one yaml-tagged field per key.
func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		return // "admin:" with nothing under it: every default stands
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping, not %s", kindName(n))
		return
	}
	fields := d.fields[v.Type()]
	if fields == nil {
		fields = fieldIndex(v.Type())
		d.fields[v.Type()] = fields
	}
	seen := map[string]seenKey{}
	for _, kv := range d.pairs(n, path) {
		k, val := kv.k, kv.v
		key, override, ok := d.key(k, path, seen, kv.merged)
		if !ok {
			continue
		}
		p := join(path, key)
		fi, ok := fields[key]
		if !ok && path == "" && strings.HasPrefix(key, "x-") {
			continue // a top-level extension key: a place for anchors ("x-common: &common")
		}
		if !ok {
			if !override {
				d.fail(p, k.Line, "%s", unknownKey(key, fields))
			}
			continue
		}
		f := v.Field(fi)
		if override {
			// A key given after a << merge replaces the merged value whole, as in YAML.
			f.SetZero()
			delete(d.present, p)
			if !isScalarType(f.Type()) {
				if !d.spend(p, k, len(d.present)/16+1) { // forget is O(n): bound its total
					return
				}
				d.forget(p)
			}
		}
		if isNull(val) && isScalarType(f.Type()) {
			continue // "key:" with no value: not given, the default stands
		}
		d.mark(p, k.Line)
		d.decode(val, p, f)
	}
}

// seenKey is where a mapping key was first seen, and whether it came from a << merge.
type seenKey struct {
	line   int
	merged bool
}

// key returns a mapping key's text, reporting non-scalar and duplicate keys. A key that
// repeats one merged in with << overrides it (override true); merged keys never clash.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]seenKey, merged bool) (key string, override, ok bool) {
	k = resolve(k)
	if k.Kind != yaml.ScalarNode {
		d.fail(path, k.Line, "a key must be a single value, not %s", kindName(k))
		return "", false, false
	}
	key = k.Value
	if first, dup := seen[key]; dup {
		if first.merged {
			seen[key] = seenKey{k.Line, merged}
			return key, true, true
		}
		d.fail(mapPath(path, key), k.Line, "duplicate key (first at line %d)", first.line)
		return "", false, false
	}
	seen[key] = seenKey{k.Line, merged}
	return key, false, true
}

// keyValue is one entry of a mapping; merged: it came in through a << merge key.
type keyValue struct {
	k, v   *yaml.Node
	merged bool
}

// pairs lists a mapping's entries with YAML merge keys ("<<: *defaults") resolved: the
// merged entries come first, so that the mapping's own keys override them, and of several
// merged mappings ("<<: [*a, *b]") the earlier wins, as YAML specifies.
func (d *decoder) pairs(n *yaml.Node, path string) []keyValue {
	return d.mergePairs(n, path, nil)
}

// mergePairs is pairs; active holds the mappings being merged, to refuse merge cycles.
func (d *decoder) mergePairs(n *yaml.Node, path string, active []*yaml.Node) []keyValue {
	var merged, own []keyValue
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			own = append(own, keyValue{k: k, v: v})
			continue
		}
		srcs := []*yaml.Node{v}
		if r := resolve(v); r.Kind == yaml.SequenceNode {
			srcs = r.Content
		}
		for j := len(srcs) - 1; j >= 0; j-- {
			src := resolve(srcs[j])
			switch {
			case src.Kind != yaml.MappingNode:
				d.fail(path, k.Line, "<< must merge a mapping, not %s", kindName(src))
				continue
			case src == n || slices.Contains(active, src):
				d.fail(path, k.Line, "<< merges a mapping into itself")
				continue
			}
			for _, kv := range d.mergePairs(src, path, append(active, n)) {
				kv.merged = true
				merged = append(merged, kv)
			}
		}
	}
	if len(merged) > 0 && !d.spend(path, n, len(merged)) { // chains of merges copy entries
		return nil
	}
	return append(merged, own...)
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// scalar returns a single value's text with ${NAME} references expanded.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "must be a single value, not %s", kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	s, ok := d.expand(path, n.Line, n.Value)
	if ok && s != n.Value {
		d.expanded[path] = expansion{written: n.Value, value: s}
	}
	return s, ok
}

// expansion is a value that had ${NAME} references: error messages quote it as written,
// since variables are how secrets are kept out of the file (and so out of logs).
type expansion struct{ written, value string }

// maskExpanded rewrites a message about an expanded value to quote the value as written.
func (d *decoder) maskExpanded(e FieldError) FieldError {
	if x, ok := d.expanded[e.Path]; ok {
		e.Msg = strings.ReplaceAll(e.Msg, strconv.Quote(x.value), strconv.Quote(x.written))
	}
	return e
}

// expand replaces ${NAME} (NAME: a capital letter or _, then capitals, digits or _) with
// the environment variable's value; an unset variable is an error. "$${" is a literal
// "${". Other "${...}" forms are kept as written: Go regexp replacements use ${1}.
func (d *decoder) expand(path string, line int, s string) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 || !isEnvName(s[i+2:i+2+end]) {
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		name := s[i+2 : i+2+end]
		val, set := d.lookupEnv(name)
		if !set {
			d.fail(path, line, "${%s}: environment variable not set", name)
			ok = false
		}
		b.WriteString(val)
		s = s[i+3+end:]
	}
	return b.String(), ok
}

func isEnvName(s string) bool {
	if s == "" || !(s[0] == '_' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// parseDuration is time.ParseDuration plus a bare "0" (YAML's integer zero).
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// fieldIndex maps a struct type's yaml tag names to field indexes.
func fieldIndex(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// unknownKey is the message for a key the schema lacks, with the closest known key as a
// hint when it is a likely typo.
func unknownKey(key string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	best, bestDist := "", len(key)/3+1 // a hint only for a likely typo, not for any short key
	for _, name := range names {
		if dist := editDistance(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key (did you mean %q?)", best)
	}
	return "unknown key"
}

// editDistance is the Levenshtein distance between a and b (short ASCII keys).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// join appends a struct key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapPath appends a free-form map key: as ".key" when it is a plain word, else as
// ["key"] so that HL7 paths and codes read unambiguously (where["PID-3[1].1"]).
func mapPath(path, key string) string {
	if isPlainKey(key) {
		return join(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func isPlainKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// parentPath strips the last element of a path: ".key", "[3]" or `["key"]`.
func parentPath(p string) string {
	if strings.HasSuffix(p, `"]`) {
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	}
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
