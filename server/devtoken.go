package server

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenRequest describes a token to mint with the HS256 secret.
type TokenRequest struct {
	Subject string
	Tenant  string        // "" for none
	Scopes  []string      // written as the space-delimited "scope" claim
	TTL     time.Duration // lifetime; negative makes an expired token, 0 one without exp (which the hub refuses)
}

// MintToken signs an HS256 token for the dev mode banner and for tests.
// Production tokens come from the identity provider.
func MintToken(secret string, r TokenRequest) (string, error) {
	now := time.Now()
	c := jwt.MapClaims{"sub": r.Subject, "iat": now.Unix()}
	if r.TTL != 0 {
		c["exp"] = now.Add(r.TTL).Unix()
	}
	if r.Tenant != "" {
		c["tenant_id"] = r.Tenant
	}
	if len(r.Scopes) > 0 {
		scope := r.Scopes[0]
		for _, s := range r.Scopes[1:] {
			scope += " " + s
		}
		c["scope"] = scope
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}
