package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The tokens the hub issues itself (GET /events/connection_token and
// /events/subscription_token) are HS256 JWTs with their own key, issuer
// and audiences, and the key id hubKeyID in their header, which is how
// Verify tells them from the identity provider's tokens.
const (
	hubKeyID             = "notifyhub-1"
	hubIssuer            = "notifyhub"
	audienceConnection   = "notifyhub:connection"
	audienceSubscription = "notifyhub:subscription"
)

// hubTokens mints and verifies the tokens the hub issues.
type hubTokens struct {
	key             []byte
	connTTL, subTTL time.Duration
	conn, sub       *jwt.Parser
}

// newHubTokens builds the issuer. The key is HUB_TOKEN_SECRET, or else one
// derived from HUB_JWT_SECRET (so that every node of a deployment shares it
// without another setting), or else — with only a public key configured — a
// random one, which only works for one node.
func newHubTokens(cfg Config, log *slog.Logger) (*hubTokens, error) {
	var key []byte
	switch {
	case cfg.TokenSecret != "":
		if len(cfg.TokenSecret) < 16 {
			return nil, errors.New("HUB_TOKEN_SECRET must be at least 16 bytes")
		}
		key = []byte(cfg.TokenSecret)
	case cfg.JWTSecret != "":
		// A key of its own, so that a hub token is never valid as an
		// identity provider's token or the other way round.
		mac := hmac.New(sha256.New, []byte(cfg.JWTSecret))
		mac.Write([]byte("notifyhub hub-issued tokens v1"))
		key = mac.Sum(nil)
	default:
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		if cfg.RedisURL != "" {
			log.Warn("HUB_TOKEN_SECRET is not set: tokens from /events/connection_token are only accepted by the node that issued them; set it to the same value on every node")
		}
	}
	parser := func(aud string) *jwt.Parser {
		return jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(hubIssuer), jwt.WithAudience(aud), jwt.WithExpirationRequired())
	}
	return &hubTokens{key: key, connTTL: cfg.ConnectionTokenTTL, subTTL: cfg.SubscriptionTokenTTL,
		conn: parser(audienceConnection), sub: parser(audienceSubscription)}, nil
}

// hubClaims are the claims of the hub's tokens.
type hubClaims struct {
	jwt.RegisteredClaims
	TenantID  string              `json:"tenant_id"`
	Scope     scopeClaim          `json:"scope,omitempty"`
	SiteRoles map[string][]string `json:"site_roles,omitempty"`
	Channel   string              `json:"channel,omitempty"`  // subscription tokens
	Channels  []string            `json:"channels,omitempty"` // connection tokens: joined at connect
}

// issued reports whether raw carries the hub's key id, without verifying it.
func (h *hubTokens) issued(raw string) bool {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	return json.Unmarshal(b, &hdr) == nil && hdr.Kid == hubKeyID
}

func (h *hubTokens) sign(c hubClaims) (string, time.Time, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = hubKeyID
	s, err := t.SignedString(h.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, c.ExpiresAt.Time, nil
}

// claimsFor returns the registered claims of a token for p that lives ttl,
// and never beyond p's own token.
func claimsFor(p *Principal, aud string, ttl time.Duration, now time.Time) jwt.RegisteredClaims {
	exp := now.Add(ttl)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(exp) {
		exp = p.ExpiresAt
	}
	return jwt.RegisteredClaims{
		Issuer: hubIssuer, Subject: p.Subject, Audience: jwt.ClaimStrings{aud},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}
}

// connectionToken mints a token to connect as p: p's tenant, user, scopes
// and site roles, and the channels the connection joins at once.
func (h *hubTokens) connectionToken(p *Principal, channels []string, now time.Time) (string, time.Time, error) {
	return h.sign(hubClaims{
		RegisteredClaims: claimsFor(p, audienceConnection, h.connTTL, now),
		TenantID:         p.Tenant, Scope: p.Scopes, SiteRoles: p.SiteRoles, Channels: channels,
	})
}

// subscriptionToken mints a token that lets p's connections join ch.
func (h *hubTokens) subscriptionToken(p *Principal, ch channel, now time.Time) (string, time.Time, error) {
	return h.sign(hubClaims{
		RegisteredClaims: claimsFor(p, audienceSubscription, h.subTTL, now),
		TenantID:         p.Tenant, Channel: ch.String(),
	})
}

// verifyConnection checks a connection token and returns its principal.
func (h *hubTokens) verifyConnection(raw string) (*Principal, error) {
	var c hubClaims
	if _, err := h.conn.ParseWithClaims(raw, &c, h.keyFunc); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, unauthorized("the connection token has expired: get a new one from /events/connection_token")
		}
		return nil, unauthorized("invalid connection token")
	}
	p := &Principal{Subject: c.Subject, Tenant: c.TenantID, Scopes: c.Scope, SiteRoles: c.SiteRoles, Exchanged: true, Channels: c.Channels}
	if c.ExpiresAt != nil {
		p.ExpiresAt = c.ExpiresAt.Time
	}
	return p, nil
}

// verifySubscription checks a subscription token and returns its claims.
func (h *hubTokens) verifySubscription(raw string) (*hubClaims, error) {
	var c hubClaims
	if _, err := h.sub.ParseWithClaims(raw, &c, h.keyFunc); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errors.New("the subscription token has expired")
		}
		return nil, errors.New("invalid subscription token")
	}
	return &c, nil
}

func (h *hubTokens) keyFunc(*jwt.Token) (any, error) { return h.key, nil }
