package relay

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/mllpd/mllpd/config"
	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/hl7map"
	"github.com/mllpd/mllpd/store"
)

// A routeTable is the compiled form of config.Routes: what ingest asks "which
// destinations does this message go to?" and what delivery asks "how is this
// route's copy mapped?". It is immutable; a reload swaps in a new one.
type routeTable struct {
	routes []*route
	byName map[string]*route
}

type route struct {
	name    string
	from    []string // listener names; empty = all
	types   []string // "ADT^A*" globs over MSH-9.1^MSH-9.2
	apps    []string
	facs    []string
	vers    []string
	procIDs []string
	where   []condition
	to      []routeTarget
}

type routeTarget struct {
	destination string
	mapping     *hl7map.Mapping
}

// A condition is one `where` entry: a path and an exact value or a /regex/.
type condition struct {
	path  hl7.Path
	exact string
	re    *regexp.Regexp
}

func (c condition) match(m *hl7.Message) bool {
	v := m.Get(c.path)
	if c.re != nil {
		return c.re.MatchString(v)
	}
	return v == c.exact
}

// compileRoutes compiles every route, its conditions and its mappings. Errors
// carry the config path of the offending entry.
func compileRoutes(cfg *config.Config) (*routeTable, error) {
	rt := &routeTable{byName: make(map[string]*route, len(cfg.Routes))}
	var errs config.Errors
	for i, r := range cfg.Routes {
		cr := &route{
			name:    r.Name,
			from:    r.From,
			types:   r.Match.MessageType,
			apps:    r.Match.SendingApplication,
			facs:    r.Match.SendingFacility,
			vers:    r.Match.Version,
			procIDs: r.Match.ProcessingID,
		}
		keys := make([]string, 0, len(r.Match.Where))
		for k := range r.Match.Where {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic evaluation and error order
		for _, k := range keys {
			at := fmt.Sprintf("routes[%d].match.where[%q]", i, k)
			p, err := hl7.ParsePath(k)
			if err != nil {
				errs = append(errs, config.FieldError{Path: at, Msg: err.Error()})
				continue
			}
			c := condition{path: p}
			v := r.Match.Where[k]
			if len(v) >= 2 && strings.HasPrefix(v, "/") && strings.HasSuffix(v, "/") {
				re, err := regexp.Compile(v[1 : len(v)-1])
				if err != nil {
					errs = append(errs, config.FieldError{Path: at, Msg: err.Error()})
					continue
				}
				c.re = re
			} else {
				c.exact = v
			}
			cr.where = append(cr.where, c)
		}
		for j, to := range r.To {
			mp, err := hl7map.Compile(mapRules(to.Map), cfg.Tables)
			if err != nil {
				var rerrs hl7map.Errors
				if !errors.As(err, &rerrs) {
					errs = append(errs, config.FieldError{Path: fmt.Sprintf("routes[%d].to[%d].map", i, j), Msg: err.Error()})
					continue
				}
				for _, re := range rerrs {
					errs = append(errs, config.FieldError{Path: fmt.Sprintf("routes[%d].to[%d].map[%d]", i, j, re.Index), Msg: re.Reason()})
				}
				continue
			}
			cr.to = append(cr.to, routeTarget{destination: to.Destination, mapping: mp})
		}
		rt.routes = append(rt.routes, cr)
		rt.byName[r.Name] = cr
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return rt, nil
}

func mapRules(in []config.MapRule) []hl7map.Rule {
	out := make([]hl7map.Rule, len(in))
	for i, r := range in {
		out[i] = hl7map.Rule{
			Set: r.Set, Value: r.Value, Copy: r.Copy, To: r.To, Delete: r.Delete,
			Translate: r.Translate, Table: r.Table, Default: r.Default,
			Replace: r.Replace, Regex: r.Regex, With: r.With,
		}
	}
	return out
}

// targets returns one store.Target per destination the message is routed to, in
// file order; a destination chosen by two routes is queued once, for the first.
func (rt *routeTable) targets(listener string, h *hl7.Header, m *hl7.Message) []store.Target {
	var out []store.Target
	for _, r := range rt.routes {
		if !r.matches(listener, h, m) {
			continue
		}
		for _, to := range r.to {
			if !slices.ContainsFunc(out, func(t store.Target) bool { return t.Destination == to.destination }) {
				out = append(out, store.Target{Destination: to.destination, Route: r.name})
			}
		}
	}
	return out
}

// mapping returns the mapping the named route applies for dest; ok is false when
// a reload removed the route (or its target), so the entry must not go out unmapped.
func (rt *routeTable) mapping(routeName, dest string) (*hl7map.Mapping, bool) {
	r, ok := rt.byName[routeName]
	if !ok {
		return nil, false
	}
	for _, to := range r.to {
		if to.destination == dest {
			return to.mapping, true
		}
	}
	return nil, false
}

func (r *route) matches(listener string, h *hl7.Header, m *hl7.Message) bool {
	if len(r.from) > 0 && !slices.Contains(r.from, listener) {
		return false
	}
	if len(r.types) > 0 && !matchType(r.types, h.Type, h.Event) {
		return false
	}
	if !matchAny(r.apps, h.SendingApp) || !matchAny(r.facs, h.SendingFacility) ||
		!matchAny(r.vers, h.Version) || !matchAny(r.procIDs, h.ProcessingID) {
		return false
	}
	for _, c := range r.where {
		if !c.match(m) {
			return false
		}
	}
	return true
}

// matchAny reports whether v matches one of the globs; no globs match everything.
func matchAny(globs []string, v string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, v); ok {
			return true
		}
	}
	return false
}

// matchType matches "TYPE^EVENT" globs against MSH-9.1 and MSH-9.2. A glob
// without "^" names the message code only ("ADT" = every ADT event). Routing
// never looks at MSH-9.3, which is often missing or wrong (reference §10).
func matchType(globs []string, typ, event string) bool {
	for _, g := range globs {
		gt, ge, hasEvent := strings.Cut(g, "^")
		if ok, _ := path.Match(gt, typ); !ok {
			continue
		}
		if !hasEvent {
			return true
		}
		if ok, _ := path.Match(ge, event); ok {
			return true
		}
	}
	return false
}
