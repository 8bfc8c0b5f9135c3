package config

import (
	"fmt"
	"time"
)

// Per-listener and per-destination defaults (design.md). Top-level defaults live in the
// embedded default.yaml; these are applied in code because every list entry needs them.
const (
	DefaultAckMode             = "original"
	DefaultVersion             = "2.5.1"
	DefaultCharsetFallback     = "windows-1252"
	DefaultMaxMessageBytes     = 4 << 20
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 100
	DefaultReadTimeout         = 30 * time.Second
	DefaultIdleTimeout         = 10 * time.Minute
	DefaultCommitTimeout       = 10 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
	DefaultDedupeWindow        = 24 * time.Hour
	DefaultIdentityApp         = "MLLPD"
	DefaultIdentityFacility    = "HUB"

	DefaultAckTimeout         = 30 * time.Second
	DefaultOutboundAckMode    = "original"
	DefaultRetryInitial       = time.Second
	DefaultRetryMax           = 5 * time.Minute
	DefaultOnPermanentFailure = "dead_letter"
	DefaultHTTPTimeout        = 30 * time.Second
	DefaultFormat             = "er7"
	DefaultTranslateDefault   = "keep"
)

// applyDefaults fills every per-entry key the file did not give. given reports whether a
// path was given; type-specific keys are filled only for their type, so that a key set
// for the wrong type can still be reported.
func applyDefaults(c *Config, given func(path string) bool) {
	for i := range c.Listeners {
		l, p := &c.Listeners[i], fmt.Sprintf("listeners[%d]", i)
		def := func(key string, set func()) {
			if !given(p + "." + key) {
				set()
			}
		}
		def("identity.app", func() { l.Identity.App = DefaultIdentityApp })
		def("identity.facility", func() { l.Identity.Facility = DefaultIdentityFacility })
		def("ack_mode", func() { l.AckMode = DefaultAckMode })
		def("default_version", func() { l.DefaultVersion = DefaultVersion })
		def("charset_fallback", func() { l.CharsetFallback = DefaultCharsetFallback })
		def("batches", func() { l.Batches = true })
		def("max_message_bytes", func() { l.MaxMessageBytes = DefaultMaxMessageBytes })
		def("max_connections", func() { l.MaxConnections = DefaultMaxConnections })
		def("max_connections_per_ip", func() { l.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP })
		def("read_timeout", func() { l.ReadTimeout = DefaultReadTimeout })
		def("idle_timeout", func() { l.IdleTimeout = DefaultIdleTimeout })
		def("commit_timeout", func() { l.CommitTimeout = DefaultCommitTimeout })
		def("write_timeout", func() { l.WriteTimeout = DefaultWriteTimeout })
		def("dedupe_window", func() { l.DedupeWindow = DefaultDedupeWindow })
	}
	for i := range c.Destinations {
		d, p := &c.Destinations[i], fmt.Sprintf("destinations[%d]", i)
		def := func(key string, set func()) {
			if !given(p + "." + key) {
				set()
			}
		}
		def("retry.initial", func() { d.Retry.Initial = DefaultRetryInitial })
		def("retry.max", func() { d.Retry.Max = DefaultRetryMax })
		def("on_permanent_failure", func() { d.OnPermanentFailure = DefaultOnPermanentFailure })
		switch d.Type {
		case "mllp":
			def("ack_timeout", func() { d.AckTimeout = DefaultAckTimeout })
			def("outbound_ack_mode", func() { d.OutboundAckMode = DefaultOutboundAckMode })
		case "http":
			def("timeout", func() { d.Timeout = DefaultHTTPTimeout })
			def("format", func() { d.Format = DefaultFormat })
		}
	}
	for i := range c.Routes {
		for j := range c.Routes[i].To {
			for k := range c.Routes[i].To[j].Map {
				r := &c.Routes[i].To[j].Map[k]
				if r.Translate != "" && !given(fmt.Sprintf("routes[%d].to[%d].map[%d].default", i, j, k)) {
					r.Default = DefaultTranslateDefault
				}
			}
		}
	}
}
