package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"notifyhub/payloads"
	"notifyhub/server/signalr"
)

// StreamEndpoint is a hub URL whose query is the subscription, as Salto KS
// Connect's /v1/hub/entries?site_id=… and Clay's /hub/entry?collectionId=…
// serve them: the client connects (usually with skipNegotiation) and listens
// for Method; it cannot subscribe to anything else.
type StreamEndpoint struct {
	Name         string   `json:"name"`         // for HUB_STREAMS and logs
	Path         string   `json:"path"`         // e.g. /v1/hub/entries
	Events       []string `json:"events"`       // the events it carries
	SiteParam    string   `json:"siteParam"`    // query parameter naming the site; "" for none
	SiteRequired bool     `json:"siteRequired"` // 400 when the site parameter is missing
	UserParam    string   `json:"userParam"`    // query parameter naming the user; "" for none
	Scope        string   `json:"scope"`        // scope the token must hold; "" for HUB_CLIENT_SCOPE
	SiteRoles    bool     `json:"siteRoles"`    // authorize by the token's role at the site
	Method       string   `json:"method"`       // client method; default ReceiveMessage
	Argument     string   `json:"argument"`     // "json-string" (default: the notification as a JSON string) or "object"
}

// The events of the access-control products' streams.
const (
	EventAccessEntry    = "access.entry"
	EventAccessIncident = "access.incident"
)

// BuiltinStreams are the stream endpoints of the Salto KS Connect and Clay
// documents. HUB_STREAMS selects which of them (and of HUB_STREAMS_FILE's)
// are served.
func BuiltinStreams() []StreamEndpoint {
	salto := func(name, path, event string) StreamEndpoint {
		return StreamEndpoint{Name: name, Path: path, Events: []string{event}, SiteParam: "site_id", SiteRequired: true,
			UserParam: "user_id", Scope: "user_api.full_access", SiteRoles: true}
	}
	// Clay carries the same events, so it checks the same roles (see
	// eventGate); its "all collections" stream needs them at every site.
	clay := func(name, path, event string) StreamEndpoint {
		return StreamEndpoint{Name: name, Path: path, Events: []string{event}, SiteParam: "collectionId", SiteRoles: true}
	}
	return []StreamEndpoint{
		salto("salto-entries", "/v1/hub/entries", EventAccessEntry),
		salto("salto-incidents", "/v1/hub/incidents", EventAccessIncident),
		clay("clay-entry", "/hub/entry", EventAccessEntry),
		clay("clay-incident", "/hub/incident", EventAccessIncident),
	}
}

// streamsFromConfig returns the endpoints to serve: the built-ins and those of
// HUB_STREAMS_FILE (a JSON array of StreamEndpoint), filtered by HUB_STREAMS.
func streamsFromConfig(cfg Config, cat *payloads.Catalogue) ([]StreamEndpoint, error) {
	all := BuiltinStreams()
	if cfg.StreamsFile != "" {
		b, err := os.ReadFile(cfg.StreamsFile)
		if err != nil {
			return nil, fmt.Errorf("HUB_STREAMS_FILE: %w", err)
		}
		var more []StreamEndpoint
		if err := json.Unmarshal(b, &more); err != nil {
			return nil, fmt.Errorf("HUB_STREAMS_FILE %s: %w", cfg.StreamsFile, err)
		}
		all = append(all, more...)
	}
	var out []StreamEndpoint
	for _, name := range cfg.Streams {
		i := slices.IndexFunc(all, func(s StreamEndpoint) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("HUB_STREAMS: no stream endpoint named %q", name)
		}
		s := all[i]
		if err := s.validate(cat); err != nil {
			return nil, fmt.Errorf("stream endpoint %q: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (s *StreamEndpoint) validate(cat *payloads.Catalogue) error {
	if !strings.HasPrefix(s.Path, "/") || s.Path == HubPath {
		return fmt.Errorf("path %q must start with / and differ from the main hub", s.Path)
	}
	if len(s.Events) == 0 {
		return fmt.Errorf("no events")
	}
	for _, e := range s.Events {
		if !cat.Known(e) {
			return fmt.Errorf("event %q is not in HUB_EVENTS (%s)", e, cat.Events())
		}
	}
	if s.SiteRequired && s.SiteParam == "" {
		return fmt.Errorf("siteRequired without siteParam")
	}
	if s.SiteRoles && s.SiteParam == "" {
		return fmt.Errorf("siteRoles without siteParam")
	}
	if s.Method == "" {
		s.Method = "ReceiveMessage"
	}
	switch s.Argument {
	case "", "json-string":
		s.Argument = "json-string"
	case "object":
	default:
		return fmt.Errorf("argument %q: want json-string or object", s.Argument)
	}
	return nil
}

func (s *StreamEndpoint) shape() argShape {
	if s.Argument == "object" {
		return argObject
	}
	return argJSONString
}

// Site roles as the token's site roles claim names them.
const (
	RoleSiteAdmin     = "site_admin"
	RoleSiteSuperUser = "site_super_user"
	RoleSiteUser      = "site_user"
)

// AllSites is the site-roles key whose roles hold at every site of the
// tenant; a stream of all sites needs site_admin or site_super_user there.
const AllSites = "*"

// eventGate keeps events that stream endpoints serve by site role from
// being received any other way: a Subscribe, channel or role-less stream
// that named the event tenant-wide would hand every site's entries to
// anyone with the client scope. It maps each gated event to the paths that
// serve it.
type eventGate map[string][]string

// newEventGate gates the events of the endpoints that check site roles, and
// refuses a configuration in which another endpoint serves one without.
func newEventGate(streams []StreamEndpoint) (eventGate, error) {
	g := eventGate{}
	for _, s := range streams {
		if s.SiteRoles {
			for _, e := range s.Events {
				g[e] = append(g[e], s.Path)
			}
		}
	}
	for _, s := range streams {
		for _, e := range s.Events {
			if paths, gated := g[e]; gated && !s.SiteRoles {
				return nil, fmt.Errorf("stream endpoint %q serves %q without site roles, which %s check: set siteRoles", s.Name, e, strings.Join(paths, ", "))
			}
		}
	}
	return g, nil
}

// check refuses a subscription to event outside its stream endpoints.
func (g eventGate) check(event string) error {
	if paths, gated := g[event]; gated {
		return fmt.Errorf("event %q is served only by %s, which check the caller's site roles", event, strings.Join(paths, ", "))
	}
	return nil
}

// authorize checks a connect request against the endpoint's rules and returns
// the filters the connection is subscribed to. Errors carry 400 or 403.
func (s *StreamEndpoint) authorize(c *fiber.Ctx, p *Principal) ([]payloads.Filter, error) {
	var site, user string
	if s.SiteParam != "" {
		site = c.Query(s.SiteParam)
		if site == "" && s.SiteRequired {
			return nil, &authError{http.StatusBadRequest, fmt.Sprintf("the %s query parameter is required", s.SiteParam)}
		}
	}
	if s.UserParam != "" {
		user = c.Query(s.UserParam)
	}
	if site == AllSites {
		return nil, &authError{http.StatusBadRequest, fmt.Sprintf("the %s query parameter names one site; leave it out for all", s.SiteParam)}
	}
	for name, v := range map[string]string{s.SiteParam: site, s.UserParam: user} {
		if v == "" {
			continue
		}
		if err := payloads.ValidName(v); err != nil {
			return nil, &authError{http.StatusBadRequest, fmt.Sprintf("the %s query parameter %v", name, err)}
		}
	}
	if s.SiteRoles {
		roles := p.SiteRoles[AllSites]
		if site != "" {
			roles = slices.Concat(p.SiteRoles[site], roles)
		}
		full := slices.Contains(roles, RoleSiteAdmin) || slices.Contains(roles, RoleSiteSuperUser)
		own := user != "" && user == p.Subject && slices.Contains(roles, RoleSiteUser)
		if !full && !own {
			switch {
			case site == "" && user == "":
				return nil, forbidden("the stream of all sites needs the site_admin or site_super_user role at every site (%q in the site roles)", AllSites)
			case user == "":
				return nil, forbidden("the site stream of %q needs the site_admin or site_super_user role at that site", site)
			}
			return nil, forbidden("the user stream of %q at site %q needs the site_admin or site_super_user role, or site_user as that user", user, site)
		}
	}
	filters := make([]payloads.Filter, len(s.Events))
	for i, e := range s.Events {
		filters[i] = payloads.Filter{Event: e, Site: site, User: user}
	}
	return filters, nil
}

// streamHub serves one stream endpoint: no hub methods, the subscription
// comes from the connect URL.
type streamHub struct {
	*clients
	def StreamEndpoint
}

func (h *streamHub) OnConnected(c *signalr.Conn) error {
	return h.attach(c, h.def.Method, h.def.shape())
}

func (h *streamHub) OnDisconnected(c *signalr.Conn) { h.detach(c) }

func (h *streamHub) Invoke(_ *signalr.Conn, target string, _ []any) (any, error) {
	return nil, fmt.Errorf("Failed to invoke '%s': the method does not exist. This stream's subscription is set by its URL.", target)
}
