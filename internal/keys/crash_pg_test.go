package keys

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

// TestRotationKilledInTransaction: instance B takes the rotation lease and
// is killed inside its rotation transaction, between the lease and the
// commit: the test holds a lock on the current keys so that B's UPDATE
// waits, then terminates B's database session as a crash would. Nothing of
// B's rotation is written, there is never a second current key nor none,
// and instance A completes the rotation once B's lease has expired.
func TestRotationKilledInTransaction(t *testing.T) {
	base := dbtest.PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	app := "tokend_rotate_b_" + hex.EncodeToString(b[:])
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()

	c := clock.NewFake(t0)
	mk := masterkey.Generate()
	mgr := func(db Store) *Manager {
		return NewManager(Config{Store: db, Sealer: mk.Sealer(masterkey.PurposeSigningKeys), Now: c.Now, Log: dbtest.Logger(t),
			JWKSMaxAge: maxAge, AccessTokenTTL: accessTTL, RotationPeriod: time.Hour})
	}
	dbA := dbtest.OpenPostgresURL(t, base)
	a := mgr(dbA)
	if err := a.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: dbA, clock: c, mk: mk, m: a}
	dbB := dbtest.OpenPostgresURL(t, u.String())
	bInst := mgr(dbB)
	before, _ := a.Signer(RS256)

	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	lock, err := dbA.Writer().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, `SELECT kid FROM signing_keys WHERE state = 'current' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	c.Advance(time.Hour)
	done := make(chan error, 1)
	go func() { _, err := bInst.RotateDue(ctx); done <- err }()
	// Wait until B is inside its rotation transaction, blocked on the lock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1
			AND wait_event_type = 'Lock' AND query LIKE 'UPDATE signing_keys%'`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("instance B never reached its rotation transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The process dies: its pool can reach nothing any more (so it cannot
	// release its lease either), and its session ends with it.
	dbB.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the killed instance reported success")
	} else if !errors.Is(err, store.ErrUnavailable) {
		t.Logf("the killed instance's error: %v", err)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, f)
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.Signer(RS256); s.KID != before.KID {
		t.Fatal("part of the killed rotation was written")
	}
	// B's lease is still held (it died without releasing it).
	if got, err := a.RotateDue(ctx); err != nil || len(got) != 0 {
		t.Fatalf("rotated under the dead instance's lease: %v %v", got, err)
	}
	checkInvariants(t, f)
	c.Advance(leaseTTL)
	got, err := a.RotateDue(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("the next scheduled run: %v %v", got, err)
	}
	checkInvariants(t, f)
	if s, _ := a.Signer(RS256); s.KID == before.KID {
		t.Fatal("the rotation was not completed")
	}
}
