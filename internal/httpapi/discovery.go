package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/oauth"
)

// JWKSSource serves the precomputed JWKS (keys.Manager).
type JWKSSource interface {
	JWKS() *keys.JWKSDoc
}

// precomputed header values, assigned (never appended to) per response.
var (
	hdrJSON = []string{"application/json"}
)

// routeDiscoveryOAuth is RFC 8414's location of the same document.
const routeDiscoveryOAuth = "/.well-known/oauth-authorization-server"

// discoveryDoc is the provider's metadata: OpenID Connect Discovery 1.0 at
// /.well-known/openid-configuration and RFC 8414 at
// /.well-known/oauth-authorization-server (one document).
type discoveryDoc struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint,omitempty"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	EndSessionEndpoint                string   `json:"end_session_endpoint,omitempty"`
	ResponseTypes                     []string `json:"response_types_supported"`
	ResponseModes                     []string `json:"response_modes_supported,omitempty"`
	GrantTypes                        []string `json:"grant_types_supported"`
	CodeChallengeMethods              []string `json:"code_challenge_methods_supported,omitempty"`
	TokenAuthMethods                  []string `json:"token_endpoint_auth_methods_supported"`
	TokenAuthSigningAlgs              []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	RevocationAuthMethods             []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	RevocationAuthSigningAlgs         []string `json:"revocation_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	IntrospectionAuthMethods          []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	IntrospectionAuthSigningAlgs      []string `json:"introspection_endpoint_auth_signing_alg_values_supported,omitempty"`
	IDTokenSigningAlgs                []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypes                      []string `json:"subject_types_supported"`
	Scopes                            []string `json:"scopes_supported"`
	Claims                            []string `json:"claims_supported"`
	ACRValues                         []string `json:"acr_values_supported,omitempty"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
}

// buildDiscovery assembles the document from what the server serves: the
// grant registry, the vocabularies of package oauth and the registered
// routes, so nothing is advertised that tokend does not do.
func (s *Server) buildDiscovery() []byte {
	iss := s.cfg.Issuer
	doc := discoveryDoc{
		Issuer:             iss,
		TokenEndpoint:      iss + routeToken,
		JWKSURI:            iss + routeJWKS,
		ResponseTypes:      oauth.ResponseTypes,
		TokenAuthMethods:   []string{"none"},
		IDTokenSigningAlgs: oauth.SigningAlgs,
		SubjectTypes:       []string{"public"},
		Scopes:             oauth.Scopes,
		Claims:             oauth.IDTokenClaims,
	}
	if s.cfg.Grants != nil {
		doc.GrantTypes = s.cfg.Grants.Types()
		doc.UserinfoEndpoint = iss + routeUserinfo
		doc.RevocationEndpoint = iss + routeRevoke
		if a := s.cfg.ClientAuth; a != nil {
			doc.TokenAuthMethods = a.MethodNames(true)
			doc.IntrospectionEndpoint = iss + routeIntrospect
			doc.IntrospectionAuthMethods = a.MethodNames(false)
			if slices.Contains(doc.TokenAuthMethods, "private_key_jwt") {
				doc.TokenAuthSigningAlgs = clients.AssertionAlgs
				doc.RevocationAuthSigningAlgs = clients.AssertionAlgs
				doc.IntrospectionAuthSigningAlgs = clients.AssertionAlgs
			}
		}
		doc.RevocationAuthMethods = doc.TokenAuthMethods
		doc.AuthorizationEndpoint = iss + routeAuthorize
		doc.EndSessionEndpoint = iss + routeLogoutEndpoint
		doc.ResponseModes = oauth.ResponseModes
		doc.CodeChallengeMethods = oauth.CodeChallengeMethods
		doc.AuthorizationResponseIssParameter = true
		doc.ACRValues = oauth.ACRValues
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("discovery document: %v", err)) // static data: a programming error
	}
	return append(b, '\n')
}

// discovery serves the precomputed discovery document.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = s.publicCache
	_, _ = w.Write(s.discoveryBody)
	return nil
}

// jwks serves the key set from its precomputed body, answering 304 to a
// matching If-None-Match. It allocates nothing per request.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	doc := s.cfg.Keys.JWKS()
	h := w.Header()
	h["Cache-Control"] = s.publicCache
	h["Etag"] = doc.ETagHeader
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, doc.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = doc.ContentLength
	_, _ = w.Write(doc.Body)
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 §13.1.2)
// without allocating: any listed tag, W/-prefixed or not, or "*".
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for len(v) > 0 {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			end := strings.IndexByte(v, ',')
			tag := v
			if end >= 0 {
				tag, v = v[:end], v[end+1:]
			} else {
				v = ""
			}
			if strings.TrimSpace(tag) == etag {
				return true
			}
		}
	}
	return false
}
