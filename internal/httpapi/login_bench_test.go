package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/tokendtest"
)

// BenchmarkLoginHTTP logs in over real HTTP at production argon2id cost,
// TOKEND_HASH_MAX_CONCURRENT clients at once (run under -cpuprofile to see
// what a login costs besides its hash).
func BenchmarkLoginHTTP(b *testing.B) {
	s := tokendtest.Start(b, tokendtest.Options{Log: io.Discard, Configure: func(c *config.Config) {
		c.SigningAlg = keys.EdDSA
		c.Argon2 = password.DefaultParams
		c.HashMaxConcurrent = 4
	}})
	const users = 32
	for i := range users {
		if _, err := s.Users.Create(context.Background(), fmt.Sprintf("l%d@example.com", i), testPassword, audit.Meta{}); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(2) // 2 × GOMAXPROCS(2) = 4 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"email":"l%d@example.com","password":%q,"client_id":"web"}`, n.Add(1)%users, testPassword)
			resp, err := client.Post(s.URL+"/auth/login", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
