package sessions_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// BenchmarkRefresh measures one refresh-token rotation through the
// service: the conditional UPDATE of the family's row, plus signing the
// access token. Each iteration rotates the
// previous iteration's child, as a client following its chain does.
func BenchmarkRefresh(b *testing.B) {
	for _, backend := range dbtest.Backends() {
		for _, alg := range []string{keys.EdDSA, keys.RS256} {
			b.Run(backend.Name+"/"+alg, func(b *testing.B) {
				s := tokendtest.Start(b, tokendtest.Options{Backend: backend.Name, Log: discard{},
					Configure: func(c *config.Config) { c.SigningAlg = alg }})
				ctx := context.Background()
				if _, err := s.Users.CreateVerified(ctx, "bench@example.com", "correct horse battery", audit.Meta{}); err != nil {
					b.Fatal(err)
				}
				res, err := s.PasswordLogin(ctx, "mobile", "bench@example.com", "correct horse battery", audit.Meta{})
				if err != nil {
					b.Fatal(err)
				}
				tok := res.Refresh.Reveal()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					s.Clock.Advance(time.Millisecond)
					r, err := s.Sessions.Refresh(ctx, sessions.RefreshRequest{Token: tok, Kind: store.ClientNative, ClientID: "mobile"})
					if err != nil {
						b.Fatal(err)
					}
					tok = r.Refresh.Reveal()
				}
			})
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
