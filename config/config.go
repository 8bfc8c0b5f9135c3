package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// Config is one loaded, defaulted and validated mllpd configuration. The yaml tags spell the
// keys of design.md's "Configuration" section; they are a contract with deployed files.
//
// Every field is a plain value (no compiled regexps, no open files), so two Configs, or two
// Listeners, Destinations or Routes of the same name, compare with reflect.DeepEqual: that
// is how a reload tells what changed.
type Config struct {
	DataDir         string        `yaml:"data_dir"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	Log             Log           `yaml:"log"`
	Admin           Admin         `yaml:"admin"`
	Storage         Storage       `yaml:"storage"`
	Listeners       []Listener    `yaml:"listeners"`
	Destinations    []Destination `yaml:"destinations"`
	Routes          []Route       `yaml:"routes"`
	// Tables maps a table name to its code → code entries. Keys keep their case and dots.
	Tables map[string]map[string]string `yaml:"tables"`
}

// Log configures the daemon's logger.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
	Bodies bool   `yaml:"bodies"` // log message bodies at debug level (PHI: off by default)
}

// Admin configures the admin HTTP API.
type Admin struct {
	Listen    string `yaml:"listen"`     // host:port
	TokenFile string `yaml:"token_file"` // "" = DataDir/admin.token; see Config.AdminTokenFile
}

// Storage configures the bbolt store's guards and retention. A retention of 0 keeps
// entries forever.
type Storage struct {
	MinFreeBytes        uint64        `yaml:"min_free_bytes"`
	Retention           time.Duration `yaml:"retention"`
	DeadLetterRetention time.Duration `yaml:"dead_letter_retention"`
	RejectedRetention   time.Duration `yaml:"rejected_retention"`
	RejectedMaxBytes    int64         `yaml:"rejected_max_bytes"`
}

// Listener is one MLLP listening socket and its acceptance policy.
type Listener struct {
	Name            string   `yaml:"name"`
	Listen          string   `yaml:"listen"` // host:port; port 0 picks a free port (tests)
	Identity        Identity `yaml:"identity"`
	AckMode         string   `yaml:"ack_mode"`        // original | enhanced
	DefaultVersion  string   `yaml:"default_version"` // ACK MSH-12 when the inbound one is unreadable
	Accept          Accept   `yaml:"accept"`
	CharsetFallback string   `yaml:"charset_fallback"`
	Batches         bool     `yaml:"batches"`
	RejectUnrouted  bool     `yaml:"reject_unrouted"`
	MaxMessageBytes int      `yaml:"max_message_bytes"`
	// MaxConnections and MaxConnectionsPerIP bound concurrent connections; 0 = unlimited.
	MaxConnections      int           `yaml:"max_connections"`
	MaxConnectionsPerIP int           `yaml:"max_connections_per_ip"`
	ReadTimeout         time.Duration `yaml:"read_timeout"`
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	CommitTimeout       time.Duration `yaml:"commit_timeout"`
	WriteTimeout        time.Duration `yaml:"write_timeout"`
	Allow               []string      `yaml:"allow"`         // CIDRs; empty = everyone. See AllowPrefixes.
	TLS                 *ServerTLS    `yaml:"tls"`           // nil = plain TCP
	DedupeWindow        time.Duration `yaml:"dedupe_window"` // 0 = no dedupe
}

// Identity is the MSH-3/MSH-4 a listener's ACKs use when the inbound MSH-5/MSH-6 are empty.
type Identity struct {
	App      string `yaml:"app"`
	Facility string `yaml:"facility"`
}

// Accept restricts what a listener takes; each list holds path.Match globs, empty = all.
type Accept struct {
	Versions      []string `yaml:"versions"`
	ProcessingIDs []string `yaml:"processing_ids"`
	MessageTypes  []string `yaml:"message_types"` // "ADT^A*", "ORU^R01", "ADT"
}

// ServerTLS is a listener's certificate; ClientCAFile turns on mutual TLS.
type ServerTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// ClientTLS is a destination's TLS trust and optional client certificate.
type ClientTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Destination is one downstream endpoint with its own queue. Which keys apply depends on
// Type: mllp (Address, AckTimeout, OutboundAckMode, Classify, TLS), http (URL, Format,
// Timeout, Headers, TLS) or file (Dir); Retry and OnPermanentFailure apply to all.
type Destination struct {
	Name            string        `yaml:"name"`
	Type            string        `yaml:"type"` // mllp | http | file
	Address         string        `yaml:"address"`
	AckTimeout      time.Duration `yaml:"ack_timeout"`
	OutboundAckMode string        `yaml:"outbound_ack_mode"` // original | keep
	TLS             *ClientTLS    `yaml:"tls"`
	// Classify overrides the downstream ACK classification: keys are ACK codes (AA AE AR
	// CA CE CR) or code/error-code forms ("AR/207"), values delivered | retriable |
	// permanent | block. Keys keep their case.
	Classify           map[string]string `yaml:"classify"`
	Retry              Retry             `yaml:"retry"`
	OnPermanentFailure string            `yaml:"on_permanent_failure"` // dead_letter | block
	URL                string            `yaml:"url"`
	Format             string            `yaml:"format"` // er7 | json
	Timeout            time.Duration     `yaml:"timeout"`
	Headers            map[string]string `yaml:"headers"` // keys keep their case
	Dir                string            `yaml:"dir"`
}

// Retry is a destination's backoff: Initial doubling up to Max; MaxAttempts 0 = forever.
type Retry struct {
	Initial     time.Duration `yaml:"initial"`
	Max         time.Duration `yaml:"max"`
	MaxAttempts int           `yaml:"max_attempts"`
}

// Route sends the messages it matches to its targets.
type Route struct {
	Name  string        `yaml:"name"`
	From  []string      `yaml:"from"` // listener names; empty = all
	Match Match         `yaml:"match"`
	To    []RouteTarget `yaml:"to"`
}

// Match selects messages; every non-empty condition must hold. The lists hold path.Match
// globs compared with the header field (MessageType with "MSH-9.1^MSH-9.2").
type Match struct {
	MessageType        []string `yaml:"message_type"`
	SendingApplication []string `yaml:"sending_application"`
	SendingFacility    []string `yaml:"sending_facility"`
	Version            []string `yaml:"version"`
	ProcessingID       []string `yaml:"processing_id"`
	// Where maps an HL7 path (kept verbatim: "PID-3[1].1") to an exact value or a /regex/.
	Where map[string]string `yaml:"where"`
}

// RouteTarget is one destination of a route and the mapping applied to its copies.
type RouteTarget struct {
	Destination string    `yaml:"destination"`
	Map         []MapRule `yaml:"map"`
}

// MapRule is one mapping step. Exactly one verb is set (Set, Copy, Delete, Translate,
// Replace), each naming an HL7 path, with its companions: Set+Value, Copy+To,
// Translate+Table(+Default: keep | reject | a literal; absent = keep),
// Replace+Regex(+With, absent = "").
type MapRule struct {
	Set       string `yaml:"set"`
	Value     string `yaml:"value"`
	Copy      string `yaml:"copy"`
	To        string `yaml:"to"`
	Delete    string `yaml:"delete"`
	Translate string `yaml:"translate"`
	Table     string `yaml:"table"`
	Default   string `yaml:"default"`
	Replace   string `yaml:"replace"`
	Regex     string `yaml:"regex"`
	With      string `yaml:"with"`
}

// Verb returns the rule's verb ("set", "copy", "delete", "translate", "replace") and the
// path it names; "" for a rule without one. A validated rule has exactly one.
func (r MapRule) Verb() (verb, path string) {
	for _, v := range r.verbs() {
		if v.path != "" {
			return v.name, v.path
		}
	}
	return "", ""
}

type verbPath struct{ name, path string }

func (r MapRule) verbs() []verbPath {
	return []verbPath{{"set", r.Set}, {"copy", r.Copy}, {"delete", r.Delete}, {"translate", r.Translate}, {"replace", r.Replace}}
}

// AdminTokenFile is the admin token's path: Admin.TokenFile, or DataDir/admin.token.
func (c *Config) AdminTokenFile() string {
	if c.Admin.TokenFile != "" {
		return c.Admin.TokenFile
	}
	return filepath.Join(c.DataDir, "admin.token")
}

// Listener returns the listener named name.
func (c *Config) Listener(name string) (Listener, bool) {
	for _, l := range c.Listeners {
		if l.Name == name {
			return l, true
		}
	}
	return Listener{}, false
}

// Destination returns the destination named name.
func (c *Config) Destination(name string) (Destination, bool) {
	for _, d := range c.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

// Route returns the route named name.
func (c *Config) Route(name string) (Route, bool) {
	for _, r := range c.Routes {
		if r.Name == name {
			return r, true
		}
	}
	return Route{}, false
}

// Summary is a one-line description for `mllpd check-config`:
// "3 listeners, 2 destinations, 4 routes, 1 table".
func (c *Config) Summary() string {
	return strings.Join([]string{
		plural(len(c.Listeners), "listener"),
		plural(len(c.Destinations), "destination"),
		plural(len(c.Routes), "route"),
		plural(len(c.Tables), "table"),
	}, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// AllowPrefixes returns Allow parsed. On a validated Listener it never fails; a bad entry
// (only possible on a hand-built value) is skipped.
func (l Listener) AllowPrefixes() []netip.Prefix {
	if len(l.Allow) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(l.Allow))
	for _, s := range l.Allow {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}
