//go:build unix

package httpapi_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestPostgresFailover runs tokend on a PostgreSQL server of the test's
// own and puts it through what a restart or a failover looks like from
// tokend: a fast shutdown (sessions terminated with 57P01, then connection
// refused), a standby that refuses connections (57P03), and a read-only hot
// standby (BEGIN READ WRITE refused with 0A000, writes with 25006), each
// followed by the server coming back or being promoted. Token requests
// answer 503 temporarily_unavailable with Retry-After, never 500, and
// service resumes without restarting tokend.
func TestPostgresFailover(t *testing.T) {
	tests := []struct {
		name  string
		ready int // /readyz while broken
		// breakDB breaks c and waits until the fault is what the row
		// names; heal undoes it.
		breakDB, heal func(t *testing.T, c *dbtest.Cluster)
	}{
		{
			name:    "restart: 57P01 then connection refused",
			ready:   503,
			breakDB: func(t *testing.T, c *dbtest.Cluster) { c.Stop() },
			heal:    func(t *testing.T, c *dbtest.Cluster) { c.Start() },
		},
		{
			name:  "57P03 standby not accepting connections, then promoted",
			ready: 503,
			breakDB: func(t *testing.T, c *dbtest.Cluster) {
				c.Stop()
				c.StartStandby(false)
				pollUntil(t, "the standby to refuse connections with 57P03", func() bool {
					return sqlState(pingOnce(c.URL)) == "57P03"
				})
			},
			heal: func(t *testing.T, c *dbtest.Cluster) { c.Promote() },
		},
		{
			// The database answers, so /readyz says ready; every write
			// fails until the standby is promoted.
			name:  "read-only hot standby (0A000, 25006), then promoted",
			ready: 200,
			breakDB: func(t *testing.T, c *dbtest.Cluster) {
				c.Stop()
				c.StartStandby(true)
				pollUntil(t, "the hot standby to accept read-only sessions", func() bool {
					return inRecovery(c.URL)
				})
			},
			heal: func(t *testing.T, c *dbtest.Cluster) { c.Promote() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dbtest.StartCluster(t)
			u := c.URL + "&connect_timeout=2&read_timeout=5"
			s := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u)})
			expectOutage(t, s, tc.ready, func() { tc.breakDB(t, c) }, func() { tc.heal(t, c) })
		})
	}
}

// pingOnce connects to databaseURL once and returns the error.
func pingOnce(databaseURL string) error {
	db, err := sql.Open("postgres", databaseURL+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// inRecovery reports whether the server at databaseURL answers as a
// standby.
func inRecovery(databaseURL string) bool {
	db, err := sql.Open("postgres", databaseURL+"&connect_timeout=2")
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var in bool
	return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&in) == nil && in
}

func sqlState(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	return ""
}
