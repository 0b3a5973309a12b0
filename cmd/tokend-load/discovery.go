package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// discoverIssuer reads the issuer from base's discovery document.
func discoverIssuer(ctx context.Context, hc *http.Client, base string) (string, error) {
	b, err := fetch(ctx, hc, newEndpoints(base).base+"/.well-known/openid-configuration")
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Issuer == "" {
		return "", errors.New("discovery document without issuer")
	}
	return doc.Issuer, nil
}
