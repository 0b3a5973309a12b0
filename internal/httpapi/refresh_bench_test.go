package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/tokendtest"
)

// BenchmarkRefreshHTTP rotates refresh tokens over real HTTP, many clients
// at once, each following its own chain (the load harness measures the
// same from another process; this one runs under -cpuprofile).
func BenchmarkRefreshHTTP(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			s := tokendtest.Start(b, tokendtest.Options{Backend: backend, Log: io.Discard,
				Configure: func(c *config.Config) { c.SigningAlg = keys.EdDSA }})
			ctx := context.Background()
			const sessions = 64
			for i := range sessions {
				if _, err := s.Users.CreateVerified(ctx, fmt.Sprintf("b%d@example.com", i), testPassword, audit.Meta{}); err != nil {
					b.Fatal(err)
				}
			}
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			client := &http.Client{Transport: tr}
			var next atomic.Int64
			post := func(form url.Values) (string, error) {
				resp, err := client.Post(s.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				var body struct {
					RefreshToken string `json:"refresh_token"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
					return "", fmt.Errorf("status %d: %v", resp.StatusCode, err)
				}
				return body.RefreshToken, nil
			}
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1) % sessions
				tok, err := post(url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("b%d@example.com", i)},
					"password": {testPassword}, "client_id": {"mobile"}})
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					if tok, err = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "client_id": {"mobile"}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
