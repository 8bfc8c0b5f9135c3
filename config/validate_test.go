package config_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/config"
)

// TestInvalid loads every testdata/invalid/*.yaml and compares the errors with the file's
// "# want: path: message" lines, in order: one file per validation message.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			want := wantLines(t, file)
			c, err := config.Load(file)
			if err == nil {
				t.Fatalf("Load succeeded (%s), want errors:\n%s", c.Summary(), strings.Join(want, "\n"))
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load error %T (%v), want config.Errors", err, err)
			}
			if errors.Is(err, config.ErrUnreadable) {
				t.Errorf("an invalid file must not be ErrUnreadable")
			}
			if diff := cmp.Diff(want, errs.Lines()); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("Error() = %q, want the lines joined", got)
			}
			for _, e := range errs {
				if e.Line == 0 && !strings.Contains(e.Msg, "(from MLLPD_") {
					t.Errorf("%v: no line", e)
				}
			}
		})
	}
}

func wantLines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		if w, ok := strings.CutPrefix(s.Text(), "# want: "); ok {
			want = append(want, w)
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s has no # want: lines", file)
	}
	return want
}

func TestErrorLines(t *testing.T) {
	_, err := config.Parse([]byte("listeners:\n  - name: a\n    listen: \"x\"\n\n  - name: b\n    listen: \"127.0.0.1:1\"\n    ack_mod: 1\n"), "")
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	want := config.Errors{
		{Path: "listeners[0].listen", Msg: `"x": not host:port (e.g. 127.0.0.1:2575)`, Line: 3},
		{Path: "listeners[1].ack_mod", Msg: `unknown key (did you mean "ack_mode"?)`, Line: 7},
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestValidateHandBuilt(t *testing.T) {
	c, err := config.Parse([]byte(fullConfig(t)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate of a parsed config: %v", err)
	}
	c.Routes[0].To[0].Destination = "nowhere"
	c.Listeners[0].ReadTimeout = 0
	err = c.Validate()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Validate = %v, want Errors", err)
	}
	want := []string{
		"listeners[0].read_timeout: 0s: must be positive",
		`routes[0].to[0].destination: unknown destination "nowhere"`,
	}
	if diff := cmp.Diff(want, errs.Lines()); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
