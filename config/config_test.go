package config_test

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/config"
)

func fullConfig(t *testing.T) string {
	t.Helper()
	t.Setenv("LAB_TOKEN", "s3cret")
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// defaultListener is a listener with every code default and the given name and address.
func defaultListener(name, listen string) config.Listener {
	return config.Listener{
		Name: name, Listen: listen,
		Identity:        config.Identity{App: "MLLPD", Facility: "HUB"},
		AckMode:         "original",
		DefaultVersion:  "2.5.1",
		CharsetFallback: "windows-1252",
		Batches:         true,
		MaxMessageBytes: 4 << 20, MaxConnections: 1000, MaxConnectionsPerIP: 100,
		ReadTimeout: 30 * time.Second, IdleTimeout: 10 * time.Minute,
		CommitTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		DedupeWindow: 24 * time.Hour,
	}
}

func defaultTop() config.Config {
	return config.Config{
		DataDir:         "./data",
		ShutdownTimeout: 30 * time.Second,
		Log:             config.Log{Level: "info", Format: "console"},
		Admin:           config.Admin{Listen: "127.0.0.1:8765"},
		Storage: config.Storage{
			MinFreeBytes: 1 << 30, Retention: 720 * time.Hour, DeadLetterRetention: 2160 * time.Hour,
			RejectedRetention: 168 * time.Hour, RejectedMaxBytes: 256 << 20,
		},
	}
}

func TestEmbeddedDefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		load func() (*config.Config, error)
	}{
		{"Load", func() (*config.Config, error) { return config.Load("") }},
		{"Parse nil", func() (*config.Config, error) { return config.Parse(nil, "") }},
		{"Parse comment only", func() (*config.Config, error) { return config.Parse([]byte("# nothing\n"), "x") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.load()
			if err != nil {
				t.Fatal(err)
			}
			want := defaultTop()
			want.Listeners = []config.Listener{defaultListener("default", "127.0.0.1:2575")}
			if diff := cmp.Diff(&want, c); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if got, want := c.Summary(), "1 listener, 0 destinations, 0 routes, 0 tables"; got != want {
				t.Errorf("Summary = %q, want %q", got, want)
			}
		})
	}
	if !strings.Contains(string(config.DefaultYAML()), "127.0.0.1:2575") {
		t.Errorf("DefaultYAML does not hold the default listener")
	}
}

// TestSmoke is the integrator's smoke configuration: it must load as written.
func TestSmoke(t *testing.T) {
	c, err := config.Load("testdata/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := defaultTop()
	want.DataDir = "/tmp/x/data"
	want.Admin.Listen = "127.0.0.1:18765"
	want.Listeners = []config.Listener{defaultListener("smoke", "127.0.0.1:12575")}
	if diff := cmp.Diff(&want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if got, want := c.AdminTokenFile(), "/tmp/x/data/admin.token"; got != want {
		t.Errorf("AdminTokenFile = %q, want %q", got, want)
	}
}

func TestFull(t *testing.T) {
	c, err := config.Parse([]byte(fullConfig(t)), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pas := defaultListener("pas", ":2575")
	pas.Accept = config.Accept{Versions: []string{"2.*"}, ProcessingIDs: []string{"P"}, MessageTypes: []string{"ADT^*", "ORU^R01"}}
	pas.Allow = []string{"127.0.0.0/8"}
	pas.TLS = &config.ServerTLS{CertFile: "testdata/tls/server-cert.pem", KeyFile: "testdata/tls/server-key.pem", ClientCAFile: "testdata/tls/client-ca.pem"}
	lab := defaultListener("lab", "127.0.0.1:2577")
	lab.AckMode = "enhanced"
	lab.DefaultVersion = "2.3"
	lab.Batches = false
	retry := config.Retry{Initial: time.Second, Max: 5 * time.Minute}
	want := defaultTop()
	want.Log.Format = "json"
	want.Listeners = []config.Listener{pas, lab}
	want.Destinations = []config.Destination{
		{
			Name: "epr", Type: "mllp", Address: "127.0.0.1:2576", AckTimeout: 30 * time.Second, OutboundAckMode: "original",
			TLS:      &config.ClientTLS{CAFile: "testdata/tls/ca.pem", CertFile: "testdata/tls/client-cert.pem", KeyFile: "testdata/tls/client-key.pem"},
			Classify: map[string]string{"AE": "retriable", "AR/207": "permanent"},
			Retry:    retry, OnPermanentFailure: "dead_letter",
		},
		{
			Name: "lab-api", Type: "http", URL: "https://lab.example/hl7", Format: "er7", Timeout: 30 * time.Second,
			Headers: map[string]string{"Authorization": "Bearer s3cret", "X-Site.Id": "RXH"},
			Retry:   retry, OnPermanentFailure: "dead_letter",
		},
		{Name: "archive", Type: "file", Dir: "./data/out", Retry: retry, OnPermanentFailure: "dead_letter"},
	}
	want.Routes = []config.Route{
		{
			Name: "adt-to-epr", From: []string{"pas"},
			Match: config.Match{
				MessageType: []string{"ADT^A*"}, SendingFacility: []string{"RXH"},
				Where: map[string]string{"PV1-2": "I", "PID-3[1].1": "/^[0-9]+$/"},
			},
			To: []config.RouteTarget{
				{Destination: "epr", Map: []config.MapRule{
					{Set: "MSH-5", Value: "EPR"},
					{Copy: "PID-3[1].1", To: "PID-2"},
					{Delete: "ZPI"},
					{Translate: "PV1-3.1", Table: "wards", Default: "keep"},
					{Replace: "PID-5.1", Regex: `^DR\.? *`, With: ""},
					{Translate: "PV1-3.2", Table: "wards", Default: "keep"},
					{Set: "PID-8", Value: ""},
					{Replace: "PID-5.2", Regex: "(a)(b)", With: "${1}-${2}"},
				}},
				{Destination: "archive"},
			},
		},
		{Name: "everything-to-lab", To: []config.RouteTarget{{Destination: "lab-api"}}},
	}
	want.Tables = map[string]map[string]string{
		"wards": {"W1": "WARD-ONE", "w1": "ward-one-lower", "W2": "WARD-TWO", "001": "002", "2.10": "x"},
	}
	if diff := cmp.Diff(&want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if got, want := c.Summary(), "2 listeners, 3 destinations, 2 routes, 1 table"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got, want := c.Listeners[0].AllowPrefixes(), []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}; !reflect.DeepEqual(got, want) {
		t.Errorf("AllowPrefixes = %v, want %v", got, want)
	}
	verbs := []string{}
	for _, r := range c.Routes[0].To[0].Map {
		v, p := r.Verb()
		verbs = append(verbs, v+" "+p)
	}
	wantVerbs := []string{"set MSH-5", "copy PID-3[1].1", "delete ZPI", "translate PV1-3.1", "replace PID-5.1", "translate PV1-3.2", "set PID-8", "replace PID-5.2"}
	if diff := cmp.Diff(wantVerbs, verbs); diff != "" {
		t.Errorf("Verb (-want +got):\n%s", diff)
	}
}

// TestMerge: a user file replaces the default's lists and keeps the scalars and mapping
// keys it does not give.
func TestMerge(t *testing.T) {
	tests := []struct {
		name, yaml string
		edit       func(c *config.Config)
	}{
		{"storage key merges", "storage: {retention: 48h}\n", func(c *config.Config) {
			c.Storage.Retention = 48 * time.Hour
			c.Listeners = []config.Listener{defaultListener("default", "127.0.0.1:2575")}
		}},
		{"log level keeps format", "log: {level: debug}\n", func(c *config.Config) {
			c.Log.Level = "debug"
			c.Listeners = []config.Listener{defaultListener("default", "127.0.0.1:2575")}
		}},
		{"listeners replace the default listener", "listeners: [{name: a, listen: \"127.0.0.1:3000\"}]\n", func(c *config.Config) {
			c.Listeners = []config.Listener{defaultListener("a", "127.0.0.1:3000")}
		}},
		{"empty value keeps the default", "data_dir:\nlisteners: [{name: a, listen: \"127.0.0.1:3000\", ack_mode: }]\n", func(c *config.Config) {
			c.Listeners = []config.Listener{defaultListener("a", "127.0.0.1:3000")}
		}},
		{"explicit zero and false are kept", "listeners: [{name: a, listen: \"127.0.0.1:0\", batches: false, max_connections: 0, dedupe_window: 0}]\n", func(c *config.Config) {
			l := defaultListener("a", "127.0.0.1:0")
			l.Batches, l.MaxConnections, l.DedupeWindow = false, 0, 0
			c.Listeners = []config.Listener{l}
		}},
		{"identity key merges with its default", "listeners: [{name: a, listen: \"127.0.0.1:3000\", identity: {facility: RXH}}]\n", func(c *config.Config) {
			l := defaultListener("a", "127.0.0.1:3000")
			l.Identity.Facility = "RXH"
			c.Listeners = []config.Listener{l}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml), "")
			if err != nil {
				t.Fatal(err)
			}
			want := defaultTop()
			tt.edit(&want)
			if diff := cmp.Diff(&want, c); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDestinationDefaults(t *testing.T) {
	c, err := config.Parse([]byte(`
destinations:
  - {name: m, type: mllp, address: "127.0.0.1:2576"}
  - {name: h, type: http, url: "http://127.0.0.1:8080/hl7"}
  - {name: f, type: file, dir: ./out, retry: {max_attempts: 3}}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	retry := config.Retry{Initial: time.Second, Max: 5 * time.Minute}
	want := []config.Destination{
		{Name: "m", Type: "mllp", Address: "127.0.0.1:2576", AckTimeout: 30 * time.Second, OutboundAckMode: "original", Retry: retry, OnPermanentFailure: "dead_letter"},
		{Name: "h", Type: "http", URL: "http://127.0.0.1:8080/hl7", Format: "er7", Timeout: 30 * time.Second, Retry: retry, OnPermanentFailure: "dead_letter"},
		{Name: "f", Type: "file", Dir: "./out", Retry: config.Retry{Initial: time.Second, Max: 5 * time.Minute, MaxAttempts: 3}, OnPermanentFailure: "dead_letter"},
	}
	if diff := cmp.Diff(want, c.Destinations); diff != "" {
		t.Errorf("destinations (-want +got):\n%s", diff)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("MLLPD_DATA_DIR", "/var/lib/mllpd")
	t.Setenv("MLLPD_LOG_LEVEL", "debug")
	t.Setenv("MLLPD_ADMIN_LISTEN", "127.0.0.1:9999")
	t.Setenv("MLLPD_ADMIN_TOKEN_FILE", "/etc/mllpd/token")
	t.Setenv("MLLPD_SHUTDOWN_TIMEOUT", "1s") // not an override: only the four listed scalars are
	t.Setenv("MLLPD_LOG_FORMAT", "json")
	c, err := config.Parse([]byte("data_dir: ./file\nlog: {level: warn}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	want := defaultTop()
	want.DataDir = "/var/lib/mllpd"
	want.Log.Level = "debug"
	want.Admin = config.Admin{Listen: "127.0.0.1:9999", TokenFile: "/etc/mllpd/token"}
	want.Listeners = []config.Listener{defaultListener("default", "127.0.0.1:2575")}
	if diff := cmp.Diff(&want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if got := c.AdminTokenFile(); got != "/etc/mllpd/token" {
		t.Errorf("AdminTokenFile = %q", got)
	}
}

func TestEnvOverrideEmptyIsUnset(t *testing.T) {
	t.Setenv("MLLPD_DATA_DIR", "")
	c, err := config.Parse([]byte("data_dir: ./file\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./file" {
		t.Errorf("DataDir = %q, want the file's ./file", c.DataDir)
	}
}

func TestEnvOverrideInvalid(t *testing.T) {
	t.Setenv("MLLPD_LOG_LEVEL", "loud")
	t.Setenv("MLLPD_ADMIN_LISTEN", "127.0.0.1:70000")
	_, err := config.Parse([]byte("log: {level: info}\n"), "")
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	want := config.Errors{
		{Path: "log.level", Msg: `"loud": must be debug, info, warn or error (from MLLPD_LOG_LEVEL)`},
		{Path: "admin.listen", Msg: `"127.0.0.1:70000": port out of range (from MLLPD_ADMIN_LISTEN)`},
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestExpand(t *testing.T) {
	t.Setenv("MLLPD_T_DIR", "/srv/mllpd")
	t.Setenv("MLLPD_T_PORT", "2600")
	t.Setenv("MLLPD_T_EMPTY", "")
	t.Setenv("_MLLPD_T2", "x")
	tests := []struct{ in, want string }{
		{"${MLLPD_T_DIR}/data", "/srv/mllpd/data"},
		{"a${MLLPD_T_DIR}b${MLLPD_T_DIR}", "a/srv/mllpdb/srv/mllpd"},
		{"${MLLPD_T_EMPTY}x", "x"},
		{"${_MLLPD_T2}", "x"},
		{"$${MLLPD_T_DIR}", "${MLLPD_T_DIR}"}, // escaped
		{"${1}", "${1}"},                      // a regexp group, not a variable
		{"${lower}", "${lower}"},              // not the NAME syntax: kept
		{"${MLLPD_T_DIR", "${MLLPD_T_DIR"},    // unterminated: kept
		{"$MLLPD_T_DIR", "$MLLPD_T_DIR"},      // only the braced form is expanded
		{"100$", "100$"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := config.Parse([]byte("data_dir: '"+tt.in+"'\n"), "")
			if err != nil {
				t.Fatal(err)
			}
			if c.DataDir != tt.want {
				t.Errorf("data_dir = %q, want %q", c.DataDir, tt.want)
			}
		})
	}
	t.Run("non-string values", func(t *testing.T) {
		c, err := config.Parse([]byte("listeners: [{name: a, listen: \"127.0.0.1:${MLLPD_T_PORT}\", max_connections: \"${MLLPD_T_PORT}\"}]\n"), "")
		if err != nil {
			t.Fatal(err)
		}
		if l := c.Listeners[0]; l.Listen != "127.0.0.1:2600" || l.MaxConnections != 2600 {
			t.Errorf("listen %q, max_connections %d; want expanded", l.Listen, l.MaxConnections)
		}
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		c, err := config.Parse([]byte("tables: {t: {\"${MLLPD_T_DIR}\": v}}\n"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Tables["t"]["${MLLPD_T_DIR}"]; !ok {
			t.Errorf("tables = %v, want the key as written", c.Tables)
		}
	})
}

// TestCaseAndDots: keys of free-form maps keep case and dots; viper would fold W1 into w1
// and split PID-3[1].1 into nested keys.
func TestCaseAndDots(t *testing.T) {
	c, err := config.Parse([]byte(`
destinations:
  - name: d
    type: mllp
    address: "127.0.0.1:2576"
    classify: {AE: retriable, "AR/207": permanent, CE: block}
routes:
  - name: r
    match:
      where: {"PID-3[1].1": "123", "OBX[2]-5.1.2": "/x/", "MSH-9.2": A01}
    to: [{destination: d}]
tables:
  Wards: {W1: WARD-ONE, w1: lower, "a.b.c": dotted, "PID-3[1].1": path}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	wantTables := map[string]map[string]string{"Wards": {"W1": "WARD-ONE", "w1": "lower", "a.b.c": "dotted", "PID-3[1].1": "path"}}
	if diff := cmp.Diff(wantTables, c.Tables); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	wantWhere := map[string]string{"PID-3[1].1": "123", "OBX[2]-5.1.2": "/x/", "MSH-9.2": "A01"}
	if diff := cmp.Diff(wantWhere, c.Routes[0].Match.Where); diff != "" {
		t.Errorf("where (-want +got):\n%s", diff)
	}
	wantClassify := map[string]string{"AE": "retriable", "AR/207": "permanent", "CE": "block"}
	if diff := cmp.Diff(wantClassify, c.Destinations[0].Classify); diff != "" {
		t.Errorf("classify (-want +got):\n%s", diff)
	}
}

func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
		is         error
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), fs.ErrNotExist},
		{"directory", dir, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.path)
			if !errors.Is(err, config.ErrUnreadable) {
				t.Fatalf("Load = %v, want ErrUnreadable", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Load = %v, want it to wrap %v", err, tt.is)
			}
			var errs config.Errors
			if errors.As(err, &errs) {
				t.Errorf("an unreadable file must not be config.Errors")
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestDiffByName: a reload compares entries of the same name with reflect.DeepEqual;
// reading the same file twice gives equal entries, and one edit changes only its entry.
func TestDiffByName(t *testing.T) {
	src := fullConfig(t)
	a, err := config.Parse([]byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.Parse([]byte(strings.Replace(src, `address: "127.0.0.1:2576"`, `address: "127.0.0.1:2586"`, 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Listeners, b.Listeners) || !reflect.DeepEqual(a.Routes, b.Routes) || !reflect.DeepEqual(a.Tables, b.Tables) {
		t.Errorf("untouched sections differ")
	}
	for _, d := range a.Destinations {
		other, ok := b.Destination(d.Name)
		if !ok {
			t.Fatalf("destination %s missing", d.Name)
		}
		if changed := !reflect.DeepEqual(d, other); changed != (d.Name == "epr") {
			t.Errorf("destination %s: changed = %v", d.Name, changed)
		}
	}
	if _, ok := a.Listener("pas"); !ok {
		t.Errorf("Listener(pas) not found")
	}
	if _, ok := a.Route("nope"); ok {
		t.Errorf("Route(nope) found")
	}
}

func TestSummary(t *testing.T) {
	c := &config.Config{
		Listeners:    make([]config.Listener, 3),
		Destinations: make([]config.Destination, 2),
		Routes:       make([]config.Route, 4),
		Tables:       map[string]map[string]string{"t": nil},
	}
	if got, want := c.Summary(), "3 listeners, 2 destinations, 4 routes, 1 table"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

// TestExpandedValuesNotInErrors: a variable is how a secret stays out of the file, so an
// error about an expanded value quotes it as written, not as expanded.
func TestExpandedValuesNotInErrors(t *testing.T) {
	t.Setenv("MLLPD_T_URL", "ftp://user:hunter2@lab.example/")
	t.Setenv("MLLPD_T_TIMEOUT", "hunter2")
	_, err := config.Parse([]byte(`
destinations:
  - name: lab
    type: http
    url: "${MLLPD_T_URL}"
    timeout: "${MLLPD_T_TIMEOUT}"
`), "")
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	want := []string{
		`destinations[0].url: "${MLLPD_T_URL}": not an http:// or https:// URL`,
		`destinations[0].timeout: "${MLLPD_T_TIMEOUT}": not a duration (e.g. 30s, 10m, 24h)`,
	}
	if diff := cmp.Diff(want, errs.Lines()); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestAliasBomb: aliases that expand a small file into a huge tree stop at a budget with
// one error instead of exhausting memory or time.
func TestAliasBomb(t *testing.T) {
	rules := "m: &m [" + strings.TrimSuffix(strings.Repeat(`{delete: ZPI}, `, 1000), ", ") + "]\n"
	targets := "t: &t [" + strings.TrimSuffix(strings.Repeat(`{destination: d, map: *m}, `, 1000), ", ") + "]\n"
	routes := "routes: [" + strings.TrimSuffix(strings.Repeat(`{name: r, to: *t}, `, 1000), ", ") + "]\n"
	doc := "x:\n  " + strings.ReplaceAll(rules+targets, "\n", "\n  ") + "\n" + routes
	start := time.Now()
	_, err := config.Parse([]byte(doc), "")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Parse took %v", d)
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	if len(errs) != 2 || errs[0].Error() != "x: unknown key" || errs[1].Msg != "document too large (too many aliases?)" {
		t.Errorf("errors:\n%v\nwant x: unknown key, then one \"document too large\"", err)
	}
}

// TestMergeKeys: YAML anchors and << merge keys work as YAML specifies, with x- top-level
// keys as a place to keep anchors.
func TestMergeKeys(t *testing.T) {
	c, err := config.Parse([]byte(`
x-common: &common
  max_connections: 10
  identity: {app: HUBAPP, facility: RXH}
  read_timeout: 5s
x-lab: &lab
  read_timeout: 7s
  ack_mode: enhanced
listeners:
  - name: a
    listen: "127.0.0.1:3001"
    <<: *common
  - <<: [*lab, *common]
    name: b
    listen: "127.0.0.1:3002"
    identity: {facility: LAB}
tables:
  base: &base {W1: ONE, W2: TWO}
  more: {<<: *base, W2: deux, W3: THREE}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	a := defaultListener("a", "127.0.0.1:3001")
	a.MaxConnections, a.ReadTimeout = 10, 5*time.Second
	a.Identity = config.Identity{App: "HUBAPP", Facility: "RXH"}
	b := defaultListener("b", "127.0.0.1:3002")
	b.MaxConnections, b.ReadTimeout, b.AckMode = 10, 7*time.Second, "enhanced" // *lab wins over *common
	b.Identity = config.Identity{App: "MLLPD", Facility: "LAB"}                // own key replaces the merged mapping whole
	if diff := cmp.Diff([]config.Listener{a, b}, c.Listeners); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	wantTables := map[string]map[string]string{
		"base": {"W1": "ONE", "W2": "TWO"},
		"more": {"W1": "ONE", "W2": "deux", "W3": "THREE"},
	}
	if diff := cmp.Diff(wantTables, c.Tables); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ yaml, want string }{
		{"listeners:\n  - <<: [a]\n    name: a\n    listen: \"127.0.0.1:1\"\n", "listeners[0]: << must merge a mapping, not a single value"},
		{"listeners:\n  - &l\n    name: a\n    listen: \"127.0.0.1:1\"\n    <<: *l\n", "listeners[0]: << merges a mapping into itself"},
		{"listeners: [&a {<<: *a, name: a, listen: \"127.0.0.1:1\"}]\n", "listeners[0]: << merges a mapping into itself"},
		{"listeners: [{name: a, listen: \"127.0.0.1:1\", name: b}]\n", "listeners[0].name: duplicate key (first at line 1)"},
	} {
		_, err = config.Parse([]byte(tt.yaml), "")
		var errs config.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("Parse = %v, want Errors", err)
		}
		if diff := cmp.Diff([]string{tt.want}, errs.Lines()); diff != "" {
			t.Errorf("%q: errors (-want +got):\n%s", tt.yaml, diff)
		}
	}
}
