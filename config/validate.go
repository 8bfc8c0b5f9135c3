package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxMessageBytesLimit caps max_message_bytes: a frame is held in memory while it is stored.
const maxMessageBytesLimit = 1 << 30

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks a Config built in code (Load and Parse already validate what they
// return). It does not apply defaults; a zero value counts as "not given". It returns nil
// or Errors.
func (c *Config) Validate() error {
	v := &validator{given: func(_ string, nonZero bool) bool { return nonZero }, handBuilt: true}
	v.config(c)
	return v.result()
}

// validator collects every problem of one Config. given reports whether a key was written
// in the file (nonZero is what a hand-built Config can tell); lines places errors.
type validator struct {
	errs  []FieldError
	given func(path string, nonZero bool) bool
	lines map[string]int
	// handBuilt: the Config was not read from a file, so an empty string cannot be told
	// from an absent key (set's value may legitimately be "").
	handBuilt bool
}

func (v *validator) add(path, format string, args ...any) {
	line := 0
	for p := path; p != "" && line == 0; p = parentPath(p) {
		line = v.lines[p]
	}
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Line: line})
}

func (v *validator) result() error {
	if len(v.errs) == 0 {
		return nil
	}
	return sortErrors(v.errs)
}

// sortErrors orders errors by line, keeping discovery order within a line and putting the
// ones without a position (defaults, environment) first.
func sortErrors(errs []FieldError) Errors {
	slices.SortStableFunc(errs, func(a, b FieldError) int { return a.Line - b.Line })
	return Errors(errs)
}

func (v *validator) config(c *Config) {
	if c.DataDir == "" {
		v.add("data_dir", "must not be empty")
	}
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "console")
	if c.Admin.Listen == "" {
		v.add("admin.listen", "required (host:port)")
	} else if msg := checkHostPort(c.Admin.Listen, true, false); msg != "" {
		v.add("admin.listen", "%s", msg)
	}
	v.nonNegative("storage.retention", c.Storage.Retention)
	v.nonNegative("storage.dead_letter_retention", c.Storage.DeadLetterRetention)
	v.nonNegative("storage.rejected_retention", c.Storage.RejectedRetention)
	if c.Storage.RejectedMaxBytes < 0 {
		v.add("storage.rejected_max_bytes", "%d: must not be negative", c.Storage.RejectedMaxBytes)
	}

	listeners := v.listeners(c)
	for i, l := range c.Listeners {
		if c.Admin.Listen != "" && l.Listen != "" && sameAddress(c.Admin.Listen, l.Listen) {
			v.add("admin.listen", "%q: conflicts with listeners[%d] (%q)", c.Admin.Listen, i, l.Listen)
		}
	}
	destinations := v.destinations(c)
	for name := range c.Tables {
		if name == "" {
			v.add(mapPath("tables", name), "a table name must not be empty")
		}
	}
	v.routes(c, listeners, destinations)
}

func (v *validator) listeners(c *Config) map[string]bool {
	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	names := map[string]bool{}
	all := namesOf(c.Listeners, func(x Listener) string { return x.Name })
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		v.name(p+".name", "listeners", all, i)
		names[l.Name] = true
		if l.Listen == "" {
			v.add(p+".listen", "required (host:port, e.g. 127.0.0.1:2575)")
		} else if msg := checkHostPort(l.Listen, true, false); msg != "" {
			v.add(p+".listen", "%s", msg)
		} else {
			for j := range i {
				if o := c.Listeners[j].Listen; sameAddress(o, l.Listen) {
					v.add(p+".listen", "%q: conflicts with listeners[%d] (%q)", l.Listen, j, o)
					break
				}
			}
		}
		v.identity(p+".identity.app", l.Identity.App)
		v.identity(p+".identity.facility", l.Identity.Facility)
		v.oneOf(p+".ack_mode", l.AckMode, "original", "enhanced")
		if !isHL7Version(l.DefaultVersion) {
			v.add(p+".default_version", "%q: not an HL7 v2 version (e.g. 2.5.1)", l.DefaultVersion)
		}
		v.globs(p+".accept.versions", l.Accept.Versions)
		v.globs(p+".accept.processing_ids", l.Accept.ProcessingIDs)
		v.messageTypes(p+".accept.message_types", l.Accept.MessageTypes)
		if msg := checkCharset(l.CharsetFallback); msg != "" {
			v.add(p+".charset_fallback", "%s", msg)
		}
		switch {
		case l.MaxMessageBytes <= 0:
			v.add(p+".max_message_bytes", "%d: must be positive", l.MaxMessageBytes)
		case l.MaxMessageBytes > maxMessageBytesLimit:
			v.add(p+".max_message_bytes", "%d: above the limit of %d (1 GiB)", l.MaxMessageBytes, maxMessageBytesLimit)
		}
		if l.MaxConnections < 0 {
			v.add(p+".max_connections", "%d: must not be negative (0 = unlimited)", l.MaxConnections)
		}
		if l.MaxConnectionsPerIP < 0 {
			v.add(p+".max_connections_per_ip", "%d: must not be negative (0 = unlimited)", l.MaxConnectionsPerIP)
		}
		v.positive(p+".read_timeout", l.ReadTimeout)
		v.positive(p+".idle_timeout", l.IdleTimeout)
		v.positive(p+".commit_timeout", l.CommitTimeout)
		v.positive(p+".write_timeout", l.WriteTimeout)
		v.nonNegative(p+".dedupe_window", l.DedupeWindow)
		for k, a := range l.Allow {
			if msg := checkCIDR(a); msg != "" {
				v.add(fmt.Sprintf("%s.allow[%d]", p, k), "%s", msg)
			}
		}
		if t := l.TLS; t != nil {
			v.requiredFile(p+".tls.cert_file", t.CertFile, "with tls")
			v.requiredFile(p+".tls.key_file", t.KeyFile, "with tls")
			v.file(p+".tls.client_ca_file", t.ClientCAFile)
		}
	}
	return names
}

func (v *validator) destinations(c *Config) map[string]bool {
	names := map[string]bool{}
	all := namesOf(c.Destinations, func(x Destination) string { return x.Name })
	for i, d := range c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		v.name(p+".name", "destinations", all, i)
		names[d.Name] = true

		// Keys each type uses; any other type-specific key given is reported.
		uses := map[string]bool{}
		switch d.Type {
		case "":
			v.add(p+".type", "required (mllp, http or file)")
		case "mllp":
			for _, k := range []string{"address", "ack_timeout", "outbound_ack_mode", "tls", "classify"} {
				uses[k] = true
			}
			if d.Address == "" {
				v.add(p+".address", "required for type mllp (host:port)")
			} else if msg := checkHostPort(d.Address, false, true); msg != "" {
				v.add(p+".address", "%s", msg)
			}
			v.positive(p+".ack_timeout", d.AckTimeout)
			v.oneOf(p+".outbound_ack_mode", d.OutboundAckMode, "original", "keep")
			v.classify(p+".classify", d.Classify)
		case "http":
			for _, k := range []string{"url", "format", "timeout", "headers", "tls"} {
				uses[k] = true
			}
			https := false
			if d.URL == "" {
				v.add(p+".url", "required for type http")
			} else if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add(p+".url", "%q: not an http:// or https:// URL", d.URL)
			} else {
				https = u.Scheme == "https"
			}
			if d.TLS != nil && d.URL != "" && !https {
				v.add(p+".tls", "only with an https:// url")
			}
			v.oneOf(p+".format", d.Format, "er7", "json")
			v.positive(p+".timeout", d.Timeout)
			for _, name := range sortedKeys(d.Headers) {
				switch {
				case !isHeaderName(name):
					v.add(mapPath(p+".headers", name), "invalid HTTP header name")
				case strings.ContainsAny(d.Headers[name], "\r\n\x00"):
					// The value is not quoted: headers are where tokens live.
					v.add(mapPath(p+".headers", name), "the value must not contain line breaks or NUL")
				}
			}
		case "file":
			uses["dir"] = true
			if d.Dir == "" {
				v.add(p+".dir", "required for type file")
			}
		default:
			v.add(p+".type", "%q: must be mllp, http or file", d.Type)
		}
		if d.Type == "mllp" || d.Type == "http" || d.Type == "file" {
			for _, k := range []struct {
				key     string
				nonZero bool
			}{
				{"address", d.Address != ""}, {"ack_timeout", d.AckTimeout != 0},
				{"outbound_ack_mode", d.OutboundAckMode != ""}, {"tls", d.TLS != nil},
				{"classify", len(d.Classify) > 0}, {"url", d.URL != ""}, {"format", d.Format != ""},
				{"timeout", d.Timeout != 0}, {"headers", len(d.Headers) > 0}, {"dir", d.Dir != ""},
			} {
				if !uses[k.key] && v.given(p+"."+k.key, k.nonZero) {
					v.add(p+"."+k.key, "not used by type %s", d.Type)
				}
			}
		}
		if t := d.TLS; t != nil && uses["tls"] {
			v.file(p+".tls.ca_file", t.CAFile)
			v.file(p+".tls.cert_file", t.CertFile)
			v.file(p+".tls.key_file", t.KeyFile)
			if t.CertFile != "" && t.KeyFile == "" {
				v.add(p+".tls.key_file", "required with cert_file")
			}
			if t.KeyFile != "" && t.CertFile == "" {
				v.add(p+".tls.cert_file", "required with key_file")
			}
		}
		v.positive(p+".retry.initial", d.Retry.Initial)
		v.positive(p+".retry.max", d.Retry.Max)
		if d.Retry.Initial > 0 && d.Retry.Max > 0 && d.Retry.Max < d.Retry.Initial {
			v.add(p+".retry.max", "%s: less than retry.initial (%s)", d.Retry.Max, d.Retry.Initial)
		}
		if d.Retry.MaxAttempts < 0 {
			v.add(p+".retry.max_attempts", "%d: must not be negative (0 = retry forever)", d.Retry.MaxAttempts)
		}
		v.oneOf(p+".on_permanent_failure", d.OnPermanentFailure, "dead_letter", "block")
	}
	return names
}

// ackCodes are the MSA-1 codes a classify key may name.
var ackCodes = []string{"AA", "AE", "AR", "CA", "CE", "CR"}

func (v *validator) classify(p string, m map[string]string) {
	for _, key := range sortedKeys(m) {
		kp := mapPath(p, key)
		code, errCode, hasErr := strings.Cut(key, "/")
		switch {
		case !slices.Contains(ackCodes, code):
			v.add(kp, "unknown ACK code (AA, AE, AR, CA, CE or CR, optionally with an error code: \"AR/207\")")
		case hasErr && (code == "AA" || code == "CA"):
			v.add(kp, "an error code applies only to AE, AR, CE or CR")
		case hasErr && (errCode == "" || strings.ContainsFunc(errCode, func(r rune) bool { return r <= ' ' || r == '/' })):
			// ERR-3 may hold a local code as well as a table 0357 number.
			v.add(kp, "%q: the error code must be one word (e.g. \"AR/207\", \"AE/E42\")", errCode)
		}
		v.oneOf(kp, m[key], "delivered", "retriable", "permanent", "block")
	}
}

func (v *validator) routes(c *Config, listeners, destinations map[string]bool) {
	all := namesOf(c.Routes, func(x Route) string { return x.Name })
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		v.name(p+".name", "routes", all, i)
		for k, from := range r.From {
			if !listeners[from] {
				v.add(fmt.Sprintf("%s.from[%d]", p, k), "unknown listener %q", from)
			}
		}
		v.messageTypes(p+".match.message_type", r.Match.MessageType)
		v.globs(p+".match.sending_application", r.Match.SendingApplication)
		v.globs(p+".match.sending_facility", r.Match.SendingFacility)
		v.globs(p+".match.version", r.Match.Version)
		v.globs(p+".match.processing_id", r.Match.ProcessingID)
		for _, key := range sortedKeys(r.Match.Where) {
			wp := mapPath(p+".match.where", key)
			if isField, err := checkHL7Path(key); err != nil {
				v.add(wp, "invalid HL7 path: %v", err)
			} else if !isField {
				v.add(wp, "needs a field, not a whole segment (e.g. PV1-2)")
			}
			if re, ok := slashRegex(r.Match.Where[key]); ok {
				if _, err := regexp.Compile(re); err != nil {
					v.add(wp, "regex does not compile: %v", err)
				}
			}
		}
		if len(r.To) == 0 {
			v.add(p+".to", "at least one destination is required")
		}
		for j, to := range r.To {
			tp := fmt.Sprintf("%s.to[%d]", p, j)
			switch {
			case to.Destination == "":
				v.add(tp+".destination", "required")
			case !destinations[to.Destination]:
				v.add(tp+".destination", "unknown destination %q", to.Destination)
			default:
				for k := range j {
					if r.To[k].Destination == to.Destination {
						v.add(tp+".destination", "%q is already to[%d] of this route", to.Destination, k)
						break
					}
				}
			}
			for k, rule := range to.Map {
				v.mapRule(fmt.Sprintf("%s.map[%d]", tp, k), rule, c.Tables)
			}
		}
	}
}

func (v *validator) mapRule(p string, r MapRule, tables map[string]map[string]string) {
	var verbs []string
	for _, vp := range r.verbs() {
		if v.given(p+"."+vp.name, vp.path != "") {
			verbs = append(verbs, vp.name)
		}
	}
	switch len(verbs) {
	case 0:
		v.add(p, "needs one of set, copy, delete, translate or replace")
		return
	case 1:
	default:
		v.add(p, "more than one verb (%s): write one rule per verb", strings.Join(verbs, ", "))
		return
	}
	verb, target := r.Verb()
	if target == "" {
		v.add(p+"."+verbs[0], "needs an HL7 path")
		return
	}
	use := pathWrite
	switch verb {
	case "copy":
		use = pathRead
	case "delete":
		use = pathDelete
	}
	v.hl7Path(p+"."+verb, target, use)

	// companion keys: the ones the verb needs, then any the verb does not use.
	need := map[string]string{"set": "value", "copy": "to", "translate": "table", "replace": "regex"}
	allowed := map[string][]string{"set": {"value"}, "copy": {"to"}, "translate": {"table", "default"}, "replace": {"regex", "with"}}
	companions := []struct {
		key     string
		nonZero bool
	}{{"value", r.Value != ""}, {"to", r.To != ""}, {"table", r.Table != ""}, {"default", r.Default != ""}, {"regex", r.Regex != ""}, {"with", r.With != ""}}
	for _, cmp := range companions {
		given := v.given(p+"."+cmp.key, cmp.nonZero)
		switch {
		case need[verb] == cmp.key && !given && !(v.handBuilt && cmp.key == "value"):
			v.add(p+"."+cmp.key, "required with %s", verb)
		case given && !slices.Contains(allowed[verb], cmp.key):
			v.add(p+"."+cmp.key, "not used by %s", verb)
		}
	}
	switch verb {
	case "copy":
		if r.To != "" {
			v.hl7Path(p+".to", r.To, pathWrite)
		}
	case "translate":
		if _, ok := tables[r.Table]; r.Table != "" && !ok {
			v.add(p+".table", "unknown table %q", r.Table)
		}
	case "replace":
		if r.Regex != "" {
			if _, err := regexp.Compile(r.Regex); err != nil {
				v.add(p+".regex", "does not compile: %v", err)
			}
		}
	}
}

// How a map rule uses a path; hl7map refuses the same things when it compiles the rule.
type pathUse int

const (
	pathRead   pathUse = iota // copy's source: a field or part of one
	pathWrite                 // set, copy's to, translate, replace: a field, not the delimiters
	pathDelete                // a field or whole segments, neither the delimiters nor MSH
)

func (v *validator) hl7Path(p, s string, use pathUse) {
	isField, err := checkHL7Path(s)
	if err != nil {
		v.add(p, "%q: invalid HL7 path: %v", s, err)
		return
	}
	seg, rest, _ := strings.Cut(s, "-")
	seg, _, _ = strings.Cut(seg, "[")
	switch {
	case use != pathDelete && !isField:
		v.add(p, "%q: needs a field, not a whole segment (e.g. PID-5)", s)
	case use != pathRead && isField && (seg == "MSH" || seg == "BHS" || seg == "FHS") && isDelimiterField(rest):
		v.add(p, "%q: %s-1 and %s-2 hold the delimiters and cannot be changed", s, seg, seg)
	case use == pathDelete && !isField && seg == "MSH":
		v.add(p, "%q: the MSH segment cannot be deleted", s)
	}
}

// isDelimiterField reports whether the part of a path after "-" names field 1 or 2.
func isDelimiterField(rest string) bool {
	n, _, _ := strings.Cut(rest, "[")
	n, _, _ = strings.Cut(n, ".")
	f, err := strconv.Atoi(n)
	return err == nil && f <= 2
}

// name checks that names[i] is present, well formed and unique in its list.
func (v *validator) name(p, list string, names []string, i int) {
	switch n := names[i]; {
	case n == "":
		v.add(p, "required")
	case !nameRE.MatchString(n):
		v.add(p, "%q: use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)", n)
	default:
		if j := slices.Index(names[:i], n); j >= 0 {
			v.add(p, "duplicate name %q (also %s[%d])", n, list, j)
		}
	}
}

func namesOf[T any](all []T, nameOf func(T) string) []string {
	out := make([]string, len(all))
	for i, x := range all {
		out[i] = nameOf(x)
	}
	return out
}

func (v *validator) oneOf(p, s string, allowed ...string) {
	if slices.Contains(allowed, s) {
		return
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	if len(allowed) == 2 {
		list = allowed[0] + " or " + allowed[1]
	}
	v.add(p, "%q: must be %s", s, list)
}

func (v *validator) positive(p string, d time.Duration) {
	if d <= 0 {
		v.add(p, "%s: must be positive", d)
	}
}

func (v *validator) nonNegative(p string, d time.Duration) {
	if d < 0 {
		v.add(p, "%s: must not be negative (0 = off)", d)
	}
}

func (v *validator) identity(p, s string) {
	switch {
	case s == "":
		v.add(p, "must not be empty")
	case strings.ContainsAny(s, "|^~\\&#") || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r > '~' }):
		// It is written into every ACK's MSH-3/MSH-4, which must read in any charset.
		v.add(p, "%q: use printable ASCII without HL7 delimiters (| ^ ~ \\ & #)", s)
	}
}

func (v *validator) globs(p string, globs []string) {
	for k, g := range globs {
		if msg := checkGlob(g); msg != "" {
			v.add(fmt.Sprintf("%s[%d]", p, k), "%s", msg)
		}
	}
}

func (v *validator) messageTypes(p string, globs []string) {
	for k, g := range globs {
		kp := fmt.Sprintf("%s[%d]", p, k)
		if msg := checkGlob(g); msg != "" {
			v.add(kp, "%s", msg)
			continue
		}
		parts := strings.Split(g, "^")
		if len(parts) > 2 || slices.Contains(parts, "") {
			v.add(kp, "%q: must be TYPE or TYPE^EVENT (e.g. \"ADT^A*\"; MSH-9.3 is not compared)", g)
			continue
		}
		for _, part := range parts { // matched separately, against MSH-9.1 and MSH-9.2
			if _, err := path.Match(part, ""); err != nil {
				v.add(kp, "%q: malformed glob in %q (path.Match syntax: * ? [a-z] \\x)", g, part)
				break
			}
		}
	}
}

// requiredFile checks a file path that must be given and readable.
func (v *validator) requiredFile(p, file, when string) {
	if file == "" {
		v.add(p, "required %s", when)
		return
	}
	v.file(p, file)
}

// file checks that a given path names a readable regular file. Relative paths are taken
// from the daemon's working directory, as data_dir is.
func (v *validator) file(p, file string) {
	if file == "" {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			v.add(p, "%q: no such file", file)
		case errors.Is(err, fs.ErrPermission):
			v.add(p, "%q: permission denied", file)
		default:
			v.add(p, "%q: cannot open: %v", file, errors.Unwrap(err))
		}
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		v.add(p, "%q: not a regular file", file)
	}
}

// checkHostPort checks "host:port" with a numeric port; zeroPort allows port 0 (a listener
// on a free port, for tests); needHost requires a host (an address to dial).
func checkHostPort(s string, zeroPort, needHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q: not host:port (e.g. 127.0.0.1:2575)", s)
	}
	n, err := strconv.Atoi(port)
	switch {
	case err != nil || !isDigits(port):
		return fmt.Sprintf("%q: the port must be a number", s)
	case n > 65535 || n == 0 && !zeroPort:
		return fmt.Sprintf("%q: port out of range", s)
	case needHost && host == "":
		return fmt.Sprintf("%q: missing host", s)
	}
	return ""
}

// sameAddress reports whether two listen addresses would collide: the same port on the
// same host, or on a wildcard host. Port 0 never collides (each bind picks its own).
func sameAddress(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || strings.TrimLeft(pa, "0") == "" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

func checkCIDR(s string) string {
	ip, _, err := net.ParseCIDR(s)
	if err == nil && ip != nil {
		return ""
	}
	if net.ParseIP(s) != nil {
		suffix := "/32"
		if strings.Contains(s, ":") {
			suffix = "/128"
		}
		return fmt.Sprintf("%q: not a CIDR (write %q for one address)", s, s+suffix)
	}
	return fmt.Sprintf("%q: not a CIDR (e.g. 10.0.0.0/8)", s)
}

func checkGlob(g string) string {
	if g == "" {
		return "an empty pattern matches nothing (leave the list empty to match all)"
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Sprintf("%q: malformed glob (path.Match syntax: * ? [a-z] \\x)", g)
	}
	return ""
}

// checkCharset accepts the charset names the hl7 package decodes (its LookupCharset:
// case, spaces and - _ / ignored), except the two that make no sense as a fallback: the
// fallback is used exactly when the bytes are not UTF-8, and such bytes are not ASCII.
// An unknown name must be refused here: hl7 would quietly read it as windows-1252.
func checkCharset(s string) string {
	if s == "" {
		return "must not be empty (e.g. windows-1252)"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '_' || c == '/' || c == '\t':
		default:
			b.WriteByte('?') // matches nothing below
		}
	}
	switch key := b.String(); {
	case slices.Contains(fallbackCharsets, key) || isISO8859Key(key):
		return ""
	case slices.Contains([]string{"ASCII", "USASCII", "ISOIR6", "UNICODE", "UNICODEUTF8", "UTF8"}, key):
		return fmt.Sprintf("%q: not usable as a fallback (it applies to bytes that are not UTF-8; e.g. windows-1252)", s)
	}
	return fmt.Sprintf("%q: unknown charset (e.g. windows-1252, ISO-8859-1, ISO-8859-15)", s)
}

// fallbackCharsets are the normalised names hl7.LookupCharset knows, other than ASCII,
// UTF-8 and the ISO-8859 parts.
var fallbackCharsets = []string{
	"88591", "ISO88591", "LATIN1", "ISOIR100", "L1",
	"WINDOWS1252", "CP1252", "WIN1252",
	"ISOIR87", "ISOIR159", "ISO2022JP",
	"ISOIR14", "SHIFTJIS", "SJIS",
	"GB180302000", "GB18030",
	"KSX1001", "EUCKR",
	"BIG5",
}

// isISO8859Key reports whether a normalised name is an ISO-8859 part hl7 decodes.
func isISO8859Key(key string) bool {
	rest, ok := strings.CutPrefix(strings.TrimPrefix(key, "ISO"), "8859")
	return ok && slices.Contains([]string{"2", "3", "4", "5", "6", "7", "8", "9", "10", "13", "14", "15", "16"}, rest)
}

func isHL7Version(s string) bool {
	major, rest, ok := strings.Cut(s, ".")
	if !ok || major != "2" {
		return false
	}
	for part := range strings.SplitSeq(rest, ".") {
		if !isDigits(part) {
			return false
		}
	}
	return strings.Count(rest, ".") <= 1
}

// slashRegex returns the pattern of a "/regex/" value.
func slashRegex(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' {
		return s[1 : len(s)-1], true
	}
	return "", false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
