package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tokend/tokend/internal/keys"
)

// JWKSSource serves the precomputed JWKS (keys.Manager).
type JWKSSource interface {
	JWKS() *keys.JWKSDoc
}

// precomputed header values, assigned (never appended to) per response.
var (
	hdrJSON = []string{"application/json"}
)

// discoveryDoc is /.well-known/openid-configuration.
type discoveryDoc struct {
	Issuer                       string   `json:"issuer"`
	JWKSURI                      string   `json:"jwks_uri"`
	TokenEndpoint                string   `json:"token_endpoint"`
	RevocationEndpoint           string   `json:"revocation_endpoint"`
	UserinfoEndpoint             string   `json:"userinfo_endpoint"`
	GrantTypes                   []string `json:"grant_types_supported"`
	TokenAuthMethods             []string `json:"token_endpoint_auth_methods_supported"`
	RevocationAuthMethods        []string `json:"revocation_endpoint_auth_methods_supported"`
	IDTokenSigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ResponseTypes                []string `json:"response_types_supported"`
	SubjectTypes                 []string `json:"subject_types_supported"`
	Scopes                       []string `json:"scopes_supported"`
	Claims                       []string `json:"claims_supported"`
}

// Scopes a client may request.
var supportedScopes = []string{"openid", "profile", "email"}

func buildDiscovery(issuer string) []byte {
	doc := discoveryDoc{
		Issuer:                       issuer,
		JWKSURI:                      issuer + routeJWKS,
		TokenEndpoint:                issuer + routeToken,
		RevocationEndpoint:           issuer + routeRevoke,
		UserinfoEndpoint:             issuer + routeUserinfo,
		GrantTypes:                   []string{"password", "refresh_token"},
		TokenAuthMethods:             []string{"none"},
		RevocationAuthMethods:        []string{"none"},
		IDTokenSigningAlgs:           []string{keys.RS256, keys.EdDSA},
		TokenEndpointAuthSigningAlgs: []string{keys.RS256, keys.EdDSA},
		ResponseTypes:                []string{"token"},
		SubjectTypes:                 []string{"public"},
		Scopes:                       supportedScopes,
		Claims:                       []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid", "scope", "email"},
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
