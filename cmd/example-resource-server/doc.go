// Command example-resource-server is a small API that accepts tokend access
// tokens. It is the reference for Go resource servers: it verifies tokens
// offline, from tokend's JWKS alone, and never calls tokend per request.
// Copy verifier.go into your service; the rest is a demo around it.
//
// # Running it against a local tokend
//
// Start tokend in dev mode (issuer http://127.0.0.1:8080, which is also the
// default audience of its tokens) and create a user:
//
//	make run
//	printf 'a long password\n' | go run ./cmd/tokend users create --email me@example.com --password-stdin
//
// Start this server and ask it who you are:
//
//	go run ./cmd/example-resource-server --issuer http://127.0.0.1:8080 --audience http://127.0.0.1:8080
//	TOKEN=$(curl -s http://127.0.0.1:8080/oauth/token -d grant_type=password \
//	    -d username=me@example.com -d 'password=a long password' -d client_id=mobile | jq -r .access_token)
//	curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9090/api/me
//
// # Configuration
//
// Every flag has an environment variable; a flag on the command line wins.
//
//	--issuer     RS_ISSUER     required; must equal the tokens' iss exactly
//	--audience   RS_AUDIENCE   required; tokens must list it in aud
//	--jwks-url   RS_JWKS_URL   default: jwks_uri from {issuer}/.well-known/openid-configuration,
//	                           or {issuer}/.well-known/jwks.json when discovery fails
//	--listen     RS_LISTEN     default 127.0.0.1:9090
//	--leeway     RS_LEEWAY     default 30s of clock skew on exp, nbf and iat
//	--log-level  RS_LOG_LEVEL  default info; debug also shows JWKS keys that were skipped
//
// A usage error exits 2 with one line. SIGINT or SIGTERM stops accepting
// connections and lets requests in flight finish (at most 10s).
//
// # Endpoints
//
//	GET /api/me   200 {"sub","client_id","scope","aud"} for a valid bearer token
//	GET /healthz  200 {"status":"ok"}
//
// A missing token gets 401 with "WWW-Authenticate: Bearer"; an invalid one gets
// 401 with `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`
// (RFC 6750 §3) and the same error as JSON. While no JWKS could ever be loaded,
// /api/me answers 503 temporarily_unavailable instead of blaming the token.
//
// # What a token must be
//
// A JWS in compact form, at most 16 KiB, whose header has alg RS256 or EdDSA
// (never none or HS*), typ "at+jwt" or "application/at+jwt" (RFC 9068 §4,
// any case), a kid found in the JWKS with a key of the type the alg needs
// (RSA of at least 2048 bits, or Ed25519), and no crit. Its payload must have
// iss equal to --issuer, aud containing --audience, exp in the future and iat
// not in the future (both within --leeway), nbf if present not in the
// future, and non-empty sub, jti and client_id. sid and scope (a
// space-separated string) are passed through when present.
//
// # The key cache
//
// Keys are held in memory for the JWKS's Cache-Control max-age (at least 30s,
// at most 24h, 5m without one), then revalidated with If-None-Match. A token
// whose kid is unknown triggers one refetch, unless the keys were fetched less
// than 30s ago. Callers that need a fetch while one is running share it. If the JWKS endpoint fails or
// answers garbage, the cached keys stay in use. A key removed from the JWKS
// stops verifying after the next successful fetch.
package main
