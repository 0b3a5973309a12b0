// Package grants is the token endpoint's grant types, one file each behind
// one interface, and the registry the endpoint dispatches on and discovery
// publishes (grant_types_supported). A new grant joins by registering; the
// others do not change.
//
// The HTTP layer parses the request, authenticates the client, looks the
// grant up, checks that the client may use it, and lets it answer.
package grants

import (
	"context"
	"net/url"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokens"
)

// Request is a token request of an identified client.
type Request struct {
	Client store.Client
	// Authenticated says the client proved itself (a secret or a key);
	// false for a public client that only named itself.
	Authenticated bool
	Form          url.Values // single-valued: repeated parameters are refused before
	Meta          audit.Meta
}

// Response is a token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
type Response struct {
	Access           tokens.Token
	Refresh          secret.String // empty: no refresh token
	RefreshExpiresAt time.Time
	IDToken          string // empty: none
	Scope            string
}

// Grant is one grant type.
type Grant interface {
	// Type is the grant_type value.
	Type() string
	// Handle answers a request. Errors are *oauth.Error for the client's
	// mistakes, or the throttling and availability errors of the services.
	Handle(ctx context.Context, r Request) (*Response, error)
}

// Registry holds the grants tokend serves.
type Registry struct {
	byType map[string]Grant
	types  []string
}

// NewRegistry registers gs, in the order discovery lists them.
func NewRegistry(gs ...Grant) *Registry {
	r := &Registry{byType: map[string]Grant{}}
	for _, g := range gs {
		if _, dup := r.byType[g.Type()]; dup {
			panic("grants: " + g.Type() + " registered twice") // a wiring mistake
		}
		r.byType[g.Type()] = g
		r.types = append(r.types, g.Type())
	}
	return r
}

// Lookup returns the grant of a grant_type.
func (r *Registry) Lookup(typ string) (Grant, bool) {
	g, ok := r.byType[typ]
	return g, ok
}

// Types lists the registered grant types.
func (r *Registry) Types() []string { return append([]string(nil), r.types...) }
