package server

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
)

// Principal is who a verified token speaks for.
type Principal struct {
	Subject   string
	Tenant    string // "" when the token names none
	Scopes    []string
	ExpiresAt time.Time // the token's exp
	// SiteRoles maps site ids to the user's roles there (site_admin,
	// site_super_user, site_user), from the HUB_SITE_ROLES_CLAIM claim.
	SiteRoles map[string][]string
	// Exchanged is set for the hub's own connection tokens: they connect,
	// but cannot be exchanged for more tokens or manage the tenant.
	Exchanged bool
	// Channels are the channels a connection token joins at connect.
	Channels []string
}

// HasScope reports whether the token granted scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// authError is an authentication (401) or authorization (403) failure.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string   { return e.msg }
func (e *authError) StatusCode() int { return e.status }

// rejection names the reason a hub connect request was refused, for
// notifyhub_rejected_total; the endpoint counts it once.
type rejection struct {
	reason string
	err    error
}

func (r rejection) Error() string        { return r.err.Error() }
func (r rejection) Unwrap() error        { return r.err }
func (r rejection) RejectReason() string { return r.reason }

func unauthorized(format string, args ...any) error {
	return &authError{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &authError{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

// clockSkew is how far the identity provider's clock may be from ours: exp
// and nbf are checked with this much leeway.
const clockSkew = 30 * time.Second

// Verifier checks JWTs with the configured keys. The accepted algorithms are
// pinned to the key types: HS256 for a secret, RS256 or ES256 for a public key.
type Verifier struct {
	secret     []byte
	public     any // *rsa.PublicKey or *ecdsa.PublicKey
	parser     *jwt.Parser
	methods    []string
	rolesClaim string
	hub        *hubTokens // verifies the connection tokens the hub issued; nil: none
}

// NewVerifier builds a verifier from cfg; it needs a secret or a public key file.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{rolesClaim: cfg.SiteRolesClaim}
	if cfg.JWTSecret != "" {
		if len(cfg.JWTSecret) < 16 {
			return nil, errors.New("HUB_JWT_SECRET must be at least 16 bytes")
		}
		v.secret = []byte(cfg.JWTSecret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWTPublicKeyFile != "" {
		pemBytes, err := os.ReadFile(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read HUB_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		if key, err := jwt.ParseRSAPublicKeyFromPEM(pemBytes); err == nil {
			v.public = key
			v.methods = append(v.methods, jwt.SigningMethodRS256.Alg())
		} else if key, err := jwt.ParseECPublicKeyFromPEM(pemBytes); err == nil {
			v.public = key
			v.methods = append(v.methods, jwt.SigningMethodES256.Alg())
		} else {
			return nil, fmt.Errorf("HUB_JWT_PUBLIC_KEY_FILE %s: not a PEM RSA or ECDSA public key", cfg.JWTPublicKeyFile)
		}
	}
	if len(v.methods) == 0 {
		return nil, errors.New("no JWT key: set HUB_JWT_SECRET or HUB_JWT_PUBLIC_KEY_FILE")
	}
	// A token without exp would be valid for ever (and never close its
	// connection on expiry): exp is required, as on the hub's own tokens.
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithExpirationRequired(), jwt.WithLeeway(clockSkew)}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// claims are the token claims notifyhub reads; raw keeps all of them for
// the claims whose names are configured.
type claims struct {
	jwt.RegisteredClaims
	TenantID string     `json:"tenant_id"`
	Scope    scopeClaim `json:"scope"`
	raw      map[string]json.RawMessage
}

func (c *claims) UnmarshalJSON(b []byte) error {
	type plain claims // without this method
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	return json.Unmarshal(b, &c.raw)
}

// siteRoles reads the site roles claim: {"<site id>": "<role>" or ["<role>", ...]}.
func siteRoles(raw json.RawMessage) (map[string][]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("must be an object of site ids to roles")
	}
	out := make(map[string][]string, len(m))
	for site, v := range m {
		var one string
		if json.Unmarshal(v, &one) == nil {
			out[site] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return nil, fmt.Errorf("site %q: roles must be a string or an array of strings", site)
		}
		out[site] = many
	}
	return out, nil
}

// scopeClaim accepts the OAuth space-delimited string or a JSON array.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scope must be a string or an array of strings")
	}
	*s = list
	return nil
}

func (v *Verifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.secret != nil {
			return v.secret, nil
		}
	case *jwt.SigningMethodRSA:
		if k, ok := v.public.(*rsa.PublicKey); ok {
			return k, nil
		}
	case *jwt.SigningMethodECDSA:
		if k, ok := v.public.(*ecdsa.PublicKey); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no key for algorithm %s", t.Method.Alg())
}

// Verify checks a raw token and returns its principal, or a 401 error that
// says why (never echoing the token).
func (v *Verifier) Verify(raw string) (*Principal, error) {
	p, err := v.verify(raw)
	if err != nil {
		return nil, err
	}
	// The tenant becomes a Redis channel name and store keys: a tenant such
	// as "/control" would subscribe the backplane to the store's control
	// channel. Tenants follow the rule of the URLs' tenantId.
	if p.Tenant != "" && !validTenant(p.Tenant) {
		return nil, unauthorized("invalid tenant_id claim: a tenant id is 1-128 printable ASCII characters without spaces or slashes")
	}
	return p, nil
}

func (v *Verifier) verify(raw string) (*Principal, error) {
	if v.hub != nil && v.hub.issued(raw) {
		return v.hub.verifyConnection(raw)
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(raw, &c, v.key); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && c.ExpiresAt == nil:
			return nil, unauthorized("the access token has no exp claim: tokens must expire")
		case errors.Is(err, jwt.ErrTokenExpired):
			return nil, unauthorized("the access token has expired")
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return nil, unauthorized("the access token is not valid yet")
		case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
			return nil, unauthorized("the access token was issued for another service")
		}
		return nil, unauthorized("invalid access token")
	}
	p := &Principal{Subject: c.Subject, Tenant: c.TenantID, Scopes: c.Scope}
	if raw, ok := c.raw[v.rolesClaim]; ok && v.rolesClaim != "" {
		roles, err := siteRoles(raw)
		if err != nil {
			return nil, unauthorized("invalid %s claim: %v", v.rolesClaim, err)
		}
		p.SiteRoles = roles
	}
	if c.ExpiresAt != nil {
		p.ExpiresAt = c.ExpiresAt.Time
	}
	return p, nil
}

// bearerToken returns the token of a request: the Authorization header, or
// the access_token query parameter that browsers must use for WebSockets and
// SSE when allowQuery is set.
func bearerToken(c *fiber.Ctx, allowQuery bool) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if allowQuery {
		return c.Query("access_token")
	}
	return ""
}

// authenticateClient verifies a hub request's token and checks that it may
// subscribe: a tenant and the client scope.
func (v *Verifier) authenticateClient(c *fiber.Ctx, scope string) (*Principal, error) {
	raw := bearerToken(c, true)
	if raw == "" {
		return nil, unauthorized("missing access token: send an Authorization Bearer header or the access_token query parameter")
	}
	p, err := v.Verify(raw)
	if err != nil {
		return nil, err
	}
	if p.Tenant == "" {
		return nil, forbidden("the access token has no tenant_id claim")
	}
	if !p.HasScope(scope) {
		return nil, forbidden("the access token lacks the %q scope", scope)
	}
	return p, nil
}

// authenticatePublisher verifies an internal API request's token: the publish
// scope, and if the token names a tenant, only that tenant.
func (v *Verifier) authenticatePublisher(c *fiber.Ctx, scope, tenant string) (*Principal, error) {
	raw := bearerToken(c, false)
	if raw == "" {
		return nil, unauthorized("missing access token: send an Authorization Bearer header")
	}
	p, err := v.Verify(raw)
	if err != nil {
		return nil, err
	}
	if p.Exchanged {
		return nil, forbidden("a connection token issued by the hub only connects clients")
	}
	if !p.HasScope(scope) {
		return nil, forbidden("the access token lacks the %q scope", scope)
	}
	if p.Tenant != "" && p.Tenant != tenant {
		return nil, forbidden("the access token may only publish to tenant %q", p.Tenant)
	}
	return p, nil
}
