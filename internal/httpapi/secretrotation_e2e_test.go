package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestSecretRotationAcrossInstances: two instances on one database; one
// rotates a server client's secret while the other holds the client in its
// cache. The new secret works at once on both (the client switches as soon
// as it has it), the previous one keeps working for its grace, and a wrong
// secret still fails.
func TestSecretRotationAcrossInstances(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db, mk := b.Open(t), masterkey.Generate()
		one := tokendtest.Start(t, tokendtest.Options{Store: db, MasterKey: mk, Log: io.Discard})
		two := tokendtest.Start(t, tokendtest.Options{Store: db, MasterKey: mk, Log: io.Discard})
		_, sec, err := one.Clients.Create(ctx, clients.Spec{ID: "svc", Kind: store.ClientServer,
			Grants: []string{"client_credentials"}}, one.Clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		token := func(s *tokendtest.Server, secret string) int {
			t.Helper()
			req := s.NewRequest(t, http.MethodPost, "/oauth/token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("svc", url.QueryEscape(secret))
			return s.Do(t, req).Status
		}
		// Both instances now hold the client in their caches.
		for i, s := range []*tokendtest.Server{one, two} {
			if got := token(s, sec.Reveal()); got != http.StatusOK {
				t.Fatalf("instance %d before the rotation: %d", i+1, got)
			}
		}
		newSec, err := two.Clients.RotateSecret(ctx, "svc", time.Hour, two.Clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			s      *tokendtest.Server
			secret string
			want   int
		}{
			{"new secret on the instance that cached the client before the rotation", one, newSec.Reveal(), http.StatusOK},
			{"new secret on the rotating instance", two, newSec.Reveal(), http.StatusOK},
			{"previous secret within its grace", one, sec.Reveal(), http.StatusOK},
			{"previous secret within its grace, other instance", two, sec.Reveal(), http.StatusOK},
			{"a wrong secret", one, "not-the-secret", http.StatusUnauthorized},
			{"the new secret again", one, newSec.Reveal(), http.StatusOK},
		} {
			if got := token(tc.s, tc.secret); got != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
			}
		}
	})
}
