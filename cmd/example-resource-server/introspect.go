package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Introspector checks tokens by asking tokend (RFC 7662 introspection)
// instead of verifying them offline: every request costs a round trip to
// tokend, and in exchange a token stops working the moment its session is
// revoked, its user disabled or its key revoked. It authenticates as a
// tokend server client with client_secret_basic.
type Introspector struct {
	endpoint     string
	clientID     string
	clientSecret string
	audience     string
	http         *http.Client
}

// IntrospectorConfig configures an Introspector.
type IntrospectorConfig struct {
	Endpoint     string // tokend's introspection_endpoint
	ClientID     string // this API's client at tokend (a server client)
	ClientSecret string
	Audience     string // tokens must list it in aud, as offline
	HTTPClient   *http.Client
}

// NewIntrospector returns an Introspector.
func NewIntrospector(c IntrospectorConfig) (*Introspector, error) {
	if c.Endpoint == "" || c.ClientID == "" || c.ClientSecret == "" || c.Audience == "" {
		return nil, errors.New("new introspector: endpoint, client id, client secret and audience are required")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	return &Introspector{endpoint: c.Endpoint, clientID: c.ClientID, clientSecret: c.ClientSecret, audience: c.Audience,
		http: c.HTTPClient}, nil
}

// ErrInactive: tokend says the token is not active (revoked, expired,
// disabled, unknown, or not for this API).
var ErrInactive = fmt.Errorf("%w: not active", ErrInvalid)

type introspection struct {
	Active    bool     `json:"active"`
	Sub       string   `json:"sub"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	Exp       int64    `json:"exp"`
	Iat       int64    `json:"iat"`
	Aud       []string `json:"aud"`
	Sid       string   `json:"sid"`
	TokenType string   `json:"token_type"`
}

// Verify asks tokend about rawToken. Only an active access token for this
// API passes; tokend being unreachable is ErrKeysUnavailable's sibling for
// this mode: the server's problem, answered 503.
func (in *Introspector) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if rawToken == "" || len(rawToken) > maxTokenBytes {
		return nil, fmt.Errorf("introspect: %w", ErrMalformed)
	}
	form := url.Values{"token": {rawToken}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.clientSecret))
	resp, err := in.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspect: %w: %v", ErrKeysUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspect: %w: tokend answered %d", ErrKeysUnavailable, resp.StatusCode)
	}
	var r introspection
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("introspect: %w: %v", ErrKeysUnavailable, err)
	}
	switch {
	case !r.Active:
		return nil, ErrInactive
	case r.TokenType != "Bearer":
		return nil, fmt.Errorf("%w: not an access token", ErrInvalid)
	case !slices.Contains(r.Aud, in.audience):
		return nil, fmt.Errorf("%w: aud does not contain %q", ErrInvalid, in.audience)
	}
	return &Claims{Subject: r.Sub, ClientID: r.ClientID, SessionID: r.Sid, Scope: r.Scope, Audience: r.Aud,
		IssuedAt: time.Unix(r.Iat, 0), ExpiresAt: time.Unix(r.Exp, 0)}, nil
}
