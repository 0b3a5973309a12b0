package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
		if _, err := s.Users.CreateVerified(context.Background(), fmt.Sprintf("l%d@example.com", i), testPassword, audit.Meta{}); err != nil {
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

// BenchmarkLoginTiming measures what TestLoginTiming checks by counting: a
// login for an unknown email takes as long as a wrong password for a real
// account, at production argon2id cost. Each iteration is one pair of
// failed logins, sent back to back in alternating order so that a slow phase
// of the machine weighs on both sides alike. It reports the median of each
// side and the median paired difference, (wrong − unknown) / mean, in
// percent (near 0; the sign says which side is slower). Run it with enough
// pairs to mean something, e.g. -bench LoginTiming -benchtime 100x.
func BenchmarkLoginTiming(b *testing.B) {
	s := tokendtest.Start(b, tokendtest.Options{Log: io.Discard, Configure: func(c *config.Config) {
		c.Argon2 = password.DefaultParams
		c.HashMaxConcurrent = 2
	}})
	// Each account fails once per round, and the fake clock moves past
	// every throttle window between rounds, so no lock ever engages.
	const accounts = 20
	for i := range accounts {
		if _, err := s.Users.CreateVerified(context.Background(), fmt.Sprintf("t%d@example.com", i), testPassword, audit.Meta{}); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{}
	login := func(email string) time.Duration {
		body := fmt.Sprintf(`{"email":%q,"password":"not the password","client_id":"web"}`, email)
		start := time.Now()
		resp, err := client.Post(s.URL+"/auth/login", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 400 {
			b.Fatalf("login of %s: status %d, want 400", email, resp.StatusCode)
		}
		return d
	}
	login("warmup@example.com")
	var known, unknown []time.Duration
	var rel []float64
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%accounts == 0 {
			s.Clock.Advance(2 * time.Hour)
		}
		account, nobody := fmt.Sprintf("t%d@example.com", i%accounts), fmt.Sprintf("nobody%d@example.com", i)
		var k, u time.Duration
		if i%2 == 0 {
			k, u = login(account), login(nobody)
		} else {
			u, k = login(nobody), login(account)
		}
		known, unknown = append(known, k), append(unknown, u)
		rel = append(rel, float64(k-u)/float64(k+u)*2)
	}
	slices.Sort(known)
	slices.Sort(unknown)
	slices.Sort(rel)
	n := len(rel)
	b.ReportMetric(float64(known[n/2])/1e6, "ms/wrong-password")
	b.ReportMetric(float64(unknown[n/2])/1e6, "ms/unknown-email")
	b.ReportMetric(100*rel[n/2], "%diff/median-pair")
}
