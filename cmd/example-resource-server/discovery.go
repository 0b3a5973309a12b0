package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// discoveryTimeout bounds the discovery request at start.
const discoveryTimeout = 5 * time.Second

// discoverJWKSURL reads jwks_uri from the issuer's discovery document
// (OpenID Connect Discovery 1.0 §4). The document's issuer must equal ours
// exactly (§4.3); otherwise tokens would fail the iss check anyway and the
// document is likely someone else's.
func discoverJWKSURL(ctx context.Context, client *http.Client, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown(issuer, "openid-configuration"), nil)
	if err != nil {
		return "", fmt.Errorf("discover JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discover JWKS URL: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discover JWKS URL: unexpected status %s", resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&doc); err != nil {
		return "", fmt.Errorf("discover JWKS URL: decode: %w", err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("discover JWKS URL: document is for issuer %q, not %q", clip(doc.Issuer), issuer)
	}
	if err := checkHTTPURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discover JWKS URL: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

// defaultJWKSURL is where tokend serves its JWKS, used when discovery fails.
func defaultJWKSURL(issuer string) string {
	return wellKnown(issuer, "jwks.json")
}

func wellKnown(issuer, name string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/" + name
}

// checkHTTPURL accepts absolute http and https URLs only.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("parse %q: %w", clip(s), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", clip(s))
	}
	return nil
}
