package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/postgres"
	"github.com/tokend/tokend/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) store.Store { return dbtest.Postgres(t) })
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name, url, want string
	}{
		{"unreachable", "postgres://u:s3cret-pass@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "cannot reach"},
		{"bad pool size", "postgres://127.0.0.1/db?pool_max_conns=zero", "pool_max_conns"},
		{"bad read timeout", "postgres://127.0.0.1/db?read_timeout=5s", "read_timeout"},
		{"not postgres", "mysql://127.0.0.1/db", "not a postgres"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := postgres.Open(ctx, tc.url, nil)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "s3cret-pass") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line mentioning %q and no password", msg, tc.want)
			}
		})
	}
}
