package config

import (
	"errors"
	"strings"
)

// ErrUnreadable is wrapped by Load when the file cannot be read at all (missing, a
// directory, no permission): a usage problem, not an invalid configuration. A file that
// was read but is wrong (YAML syntax included) yields Errors instead.
var ErrUnreadable = errors.New("config: file cannot be read")

// FieldError is one problem with the configuration: the key's path in the file
// ("routes[2].to[0].destination", `tables.wards["W1"]`) and what is wrong with it,
// including a hint where one helps. Messages quote config values, never message content.
type FieldError struct {
	Path string
	Msg  string
	// Line is the 1-based line in the user's file the error points at (the key, or its
	// nearest enclosing key); 0 when the value did not come from that file (the embedded
	// default, an environment variable) or the position is unknown.
	Line int
}

// Error returns "path: msg" (just msg when Path is empty).
func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in one configuration, in file order. Load, Parse and
// Validate return it as their error; use errors.As to get at the entries.
type Errors []FieldError

// Error joins the entries' "path: msg" forms with newlines.
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

// Lines returns the entries' "path: msg" forms.
func (es Errors) Lines() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}
