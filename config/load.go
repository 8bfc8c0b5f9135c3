package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration's text (for `mllpd
// check-config --print-default` or documentation).
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// maxFileBytes bounds what Load reads; a configuration is a few KiB.
const maxFileBytes = 16 << 20

// envOverrides are the only scalars the environment may override (design.md), by path.
var envOverrides = []struct{ path, env string }{
	{"data_dir", "MLLPD_DATA_DIR"},
	{"log.level", "MLLPD_LOG_LEVEL"},
	{"admin.listen", "MLLPD_ADMIN_LISTEN"},
	{"admin.token_file", "MLLPD_ADMIN_TOKEN_FILE"},
}

// Load reads the YAML file at path over the embedded default configuration, applies the
// environment and the defaults, and validates the result. path "" loads the embedded
// default alone. An unreadable file yields an error wrapping ErrUnreadable (and the
// os error); anything wrong with the content yields Errors.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(nil, "")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &readError{err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, &readError{err}
	}
	if len(data) > maxFileBytes {
		return nil, Errors{{Msg: fmt.Sprintf("%s: larger than %d bytes", path, maxFileBytes)}}
	}
	return Parse(data, path)
}

// readError is Load's error for a file it cannot read; it wraps ErrUnreadable and the
// cause, whose text already names the file.
type readError struct{ err error }

func (e *readError) Error() string   { return "config: " + e.err.Error() }
func (e *readError) Unwrap() []error { return []error{ErrUnreadable, e.err} }

// Parse is Load for configuration text already in memory; source names it in messages
// ("" for none). It reads the text over the embedded default, expands ${NAME} references,
// applies the environment overrides (MLLPD_DATA_DIR, MLLPD_LOG_LEVEL, MLLPD_ADMIN_LISTEN,
// MLLPD_ADMIN_TOKEN_FILE) and the per-entry defaults, then validates. Every problem is
// reported at once, as Errors in file order.
func Parse(data []byte, source string) (*Config, error) {
	dec := newDecoder(os.LookupEnv)
	var c Config
	def, err := parseYAML(defaultYAML)
	if err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	dec.document(def, &c)
	if len(dec.errs) > 0 {
		return nil, fmt.Errorf("config: embedded default: %w", Errors(dec.errs))
	}

	doc, err := parseYAML(data)
	if err != nil {
		return nil, Errors{yamlError(source, err)}
	}
	dec.user = true
	dec.document(doc, &c)

	if dec.exhausted {
		return nil, sortErrors(dec.errs) // a partial tree is not worth validating
	}
	overridden := applyEnv(&c, dec)
	applyDefaults(&c, func(p string) bool { return dec.present[p] })

	v := &validator{
		given: func(p string, _ bool) bool { return dec.present[p] },
		lines: dec.lines,
	}
	v.config(&c)
	errs := make([]FieldError, 0, len(dec.errs)+len(v.errs))
	for _, e := range dec.errs {
		errs = append(errs, dec.maskExpanded(e))
	}
	for _, e := range v.errs {
		e = dec.maskExpanded(e)
		if !coveredBy(e.Path, dec.errs) {
			if env, ok := overridden[e.Path]; ok {
				e.Msg += " (from " + env + ")"
				e.Line = 0 // not from the file, whatever encloses the key there
			}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	return &c, nil
}

// coveredBy reports whether a decode error already explains a validation error at path:
// a value that could not be read would otherwise also be reported as missing or zero.
func coveredBy(path string, decodeErrs []FieldError) bool {
	for _, e := range decodeErrs {
		if e.Path == path || isUnder(path, e.Path) {
			return true
		}
	}
	return false
}

// applyEnv applies the environment overrides through a private viper instance (never the
// global one; "::" as key delimiter so that no key is split on dots). An empty variable
// counts as unset. It returns the overridden paths and their variables.
func applyEnv(c *Config, dec *decoder) map[string]string {
	v := viper.NewWithOptions(viper.KeyDelimiter("::"))
	out := map[string]string{}
	for _, o := range envOverrides {
		key := o.path
		if err := v.BindEnv(key, o.env); err != nil {
			continue // only fails for an empty key
		}
		if !v.IsSet(key) {
			continue
		}
		val := v.GetString(key)
		switch o.path {
		case "data_dir":
			c.DataDir = val
		case "log.level":
			c.Log.Level = val
		case "admin.listen":
			c.Admin.Listen = val
		case "admin.token_file":
			c.Admin.TokenFile = val
		}
		dec.present[o.path] = true
		delete(dec.lines, o.path) // the value did not come from the file
		out[o.path] = o.env
	}
	return out
}

// parseYAML parses one YAML document into a node tree; a second document is an error.
func parseYAML(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	d := yaml.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var next yaml.Node
	if err := d.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: a second document (---): the configuration is one document", next.Line)
	}
	return &doc, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError turns a YAML syntax error into a FieldError placed at its line.
func yamlError(source string, err error) FieldError {
	fe := FieldError{Msg: err.Error()}
	if strings.Contains(fe.Msg, "did not find expected ',' or") {
		// The usual cause: an HL7 path such as PID-3[1].1 unquoted inside {...} or [...],
		// where [ ] { } and , are YAML syntax.
		fe.Msg += ` (inside {...} or [...], quote values that contain [ ] { } or ",": "PID-3[1].1")`
	}
	if m := yamlLineRE.FindStringSubmatch(fe.Msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
	}
	if source != "" {
		fe.Msg = source + ": " + fe.Msg
	}
	return fe
}
