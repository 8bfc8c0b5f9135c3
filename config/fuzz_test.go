package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mllpd/mllpd/config"
)

// FuzzParse feeds arbitrary text to Parse. Properties: it returns a Config or Errors,
// never another error type and never both; every FieldError has a message; a Config it
// returns is valid by Validate too, and parsing the same text again gives an equal one.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, file := range append(files, more...) {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add(config.DefaultYAML())
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("listeners: [&a {<<: *a, name: a}]\n"))
	f.Add([]byte("x-c: &c {read_timeout: 5s}\nlisteners: [{<<: *c, name: a, listen: \"127.0.0.1:0\"}]\n"))
	f.Add([]byte("listeners: &l [{name: a, listen: \"127.0.0.1:0\"}]\nroutes: *l\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, "fuzz")
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a Config and an error")
			}
			var errs config.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Parse error %T %v, want non-empty config.Errors", err, err)
			}
			for _, e := range errs {
				if e.Msg == "" {
					t.Fatalf("FieldError without a message: %+v", e)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects:\n%v", err)
		}
		again, err := config.Parse(data, "fuzz")
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
	})
}
