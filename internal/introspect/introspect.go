// Package introspect answers RFC 7662 token introspection: whether an access
// or refresh token tokend issued is active now — its signature under a
// published key, its expiry, its session not revoked, its user not
// disabled, its client still registered — and what it says, for a caller
// allowed to know (the client it was issued to, or a client named in its
// aud). Resource servers that must notice a revocation at once use it
// instead of verifying offline.
package introspect

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokens"
)

// Result is an introspection response; only Active is set for an inactive
// token.
type Result struct {
	Active    bool     `json:"active"`
	Sub       string   `json:"sub,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Scope     string   `json:"scope,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Sid       string   `json:"sid,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
}

// Token types of the response: "Bearer" for access tokens (RFC 6749 §5.1),
// "refresh_token" for refresh tokens.
const (
	TypeAccess  = "Bearer"
	TypeRefresh = "refresh_token"
)

// Store is what introspection reads.
type Store interface {
	SessionState(ctx context.Context, familyID string) (store.SessionState, error)
	UserByID(ctx context.Context, id string) (store.User, error)
}

// Verifier verifies access tokens (tokens.Verifier).
type Verifier interface {
	Verify(raw, audience string) (*tokens.Claims, error)
}

// RefreshTokens finds refresh tokens of either format (sessions.Service).
type RefreshTokens interface {
	Lookup(ctx context.Context, token string) (store.RefreshToken, store.RefreshFamily, error)
}

// Clients reads clients (clients.Service).
type Clients interface {
	Get(ctx context.Context, id string) (store.Client, error)
}

// Service introspects tokens.
type Service struct {
	Verifier Verifier
	Store    Store
	Refresh  RefreshTokens
	Clients  Clients
	Issuer   string
	Now      func() time.Time
}

var inactive = Result{}

// Introspect answers for caller. hint ("access_token", "refresh_token" or
// empty) says which kind to try first.
func (s *Service) Introspect(ctx context.Context, caller store.Client, token, hint string) (Result, error) {
	// Refresh tokens (of either format) are base64url: never a dot, which
	// every JWT has.
	isRefresh := token != "" && !strings.Contains(token, ".")
	if hint == "refresh_token" || isRefresh {
		if r, err := s.refresh(ctx, caller, token); err != nil || r.Active {
			return r, err
		}
		if isRefresh {
			return inactive, nil
		}
	}
	return s.access(ctx, caller, token)
}

// mayRead reports whether caller may see the details of the token c: it
// was issued to caller, or its aud names caller — by client id or, for a
// resource server's client (a server client with no grant, which only
// authenticates), by the audience it was registered with: --audience then
// names the API the client stands for. A client with grants registers
// --audience for its own tokens, which does not let it read other clients'.
func mayRead(caller store.Client, c *tokens.Claims) bool {
	if caller.ID == c.ClientID || slices.Contains(c.Audience, caller.ID) {
		return true
	}
	if len(caller.Grants) > 0 {
		return false
	}
	for _, a := range caller.Audience {
		if slices.Contains(c.Audience, a) {
			return true
		}
	}
	return false
}

func (s *Service) access(ctx context.Context, caller store.Client, raw string) (Result, error) {
	c, err := s.Verifier.Verify(raw, "")
	if err != nil {
		return inactive, nil // bad signature, unpublished (revoked) key, expired, not ours
	}
	if !mayRead(caller, c) {
		return inactive, nil
	}
	if c.SessionID != "" {
		st, err := s.Store.SessionState(ctx, c.SessionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return inactive, nil
		case err != nil:
			return inactive, err
		case st.Family.Revoked() || !s.Now().Before(st.Family.ExpiresAt) || st.UserDisabled || st.Family.UserID != c.Subject:
			return inactive, nil
		}
	} else if _, err := s.Clients.Get(ctx, c.ClientID); err != nil {
		// A client's own token (client credentials) dies with the client.
		return inactive, nil
	}
	return Result{Active: true, Sub: c.Subject, ClientID: c.ClientID, Scope: c.Scope, Exp: unix(c.ExpiresAt),
		Iat: unix(c.IssuedAt), Iss: c.Issuer, Aud: c.Audience, Sid: c.SessionID, TokenType: TypeAccess}, nil
}

func (s *Service) refresh(ctx context.Context, caller store.Client, raw string) (Result, error) {
	tok, fam, err := s.Refresh.Lookup(ctx, raw)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return inactive, nil
	case err != nil:
		return inactive, err
	}
	now := s.Now()
	if tok.ClientID != caller.ID || !tok.UsedAt.IsZero() || !now.Before(tok.ExpiresAt) || fam.Revoked() || !now.Before(fam.ExpiresAt) {
		return inactive, nil
	}
	u, err := s.Store.UserByID(ctx, tok.UserID)
	if err != nil || u.Disabled() {
		return inactive, nil
	}
	return Result{Active: true, Sub: tok.UserID, ClientID: tok.ClientID, Scope: tok.Scope, Exp: tok.ExpiresAt.Unix(),
		Iat: tok.CreatedAt.Unix(), Iss: s.Issuer, Sid: tok.FamilyID, TokenType: TypeRefresh}, nil
}

func unix(d *jwt.NumericDate) int64 {
	if d == nil {
		return 0
	}
	return d.Unix()
}
