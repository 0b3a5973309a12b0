package prune

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Times relative to a pass at t0: old is past every cutoff of Grace; recent
// expired, but within the grace, so it stays.
var (
	old    = t0.Add(-Grace - time.Hour)
	recent = t0.Add(-time.Hour)
	live   = t0.Add(time.Hour)
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// newRunner returns a runner with no pause between batches.
func newRunner(t *testing.T, db Store, clk *clock.Fake, cfg Config) *Runner {
	t.Helper()
	cfg.Store, cfg.Now, cfg.Pause = db, clk.Now, -1
	if cfg.Pruners == nil {
		cfg.Pruners = Defaults(Options{AuditRetention: 90 * 24 * time.Hour})
	}
	r, err := New(cfg)
	must(t, err)
	return r
}

// row names one row by its table and primary key.
type row struct{ table, key, id string }

// exists reports whether the row is there.
func exists(t *testing.T, db *sqlstore.DB, r row) bool {
	t.Helper()
	var n int
	q := db.Writer().Rebind(fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE %s = ?`, r.table, r.key))
	must(t, db.Writer().GetContext(testCtx(t), &n, q, r.id))
	return n == 1
}

// seed writes, for every kind, a row past its cutoff at t0 (returned in
// gone) and rows that must stay (kept): live ones, and ones expired less
// than Grace ago.
func seed(t *testing.T, db *sqlstore.DB) (gone, kept []row) {
	t.Helper()
	c := testCtx(t)
	must(t, db.CreateUser(c, store.User{ID: "u1", Email: "u1@example.com", PasswordHash: "x", CreatedAt: t0.AddDate(0, 0, -200),
		UpdatedAt: t0.AddDate(0, 0, -200)}, nil))

	// Refresh-token families: one row each, and some of the old form
	// (generation 0, their token a row in refresh_tokens).
	created := t0.AddDate(0, 0, -100)
	family := func(fam string, expires time.Time) {
		idle := t0.AddDate(0, 0, 5)
		if expires.Before(idle) {
			idle = expires
		}
		must(t, db.CreateSession(c, store.NewSession{Family: store.RefreshFamily{ID: fam, UserID: "u1", ClientID: "web",
			ClientKind: store.ClientWeb, CreatedAt: created, ExpiresAt: expires, IdleExpiresAt: idle}}))
	}
	legacy := func(fam, tok string, tokExpires time.Time) {
		must(t, db.CreateSession(c, store.NewSession{
			Family: store.RefreshFamily{ID: fam, UserID: "u1", ClientID: "web", CreatedAt: created, ExpiresAt: t0.AddDate(0, 0, 10)},
			Legacy: &store.RefreshToken{Hash: tok, FamilyID: fam, UserID: "u1", ClientID: "web", ClientKind: store.ClientWeb,
				CreatedAt: created, ExpiresAt: tokExpires},
		}))
	}
	family("f-old", old)                        // expired long ago
	family("f-rev", t0.AddDate(0, 0, 10))       // revoked long ago
	family("f-live", t0.AddDate(0, 0, 10))      // live
	family("f-recentrev", t0.AddDate(0, 0, 10)) // revoked an hour ago
	legacy("l-old", "t-old", old)               // its token expired long ago; the family stays
	legacy("l-rev", "t-rev", live)              // revoked long ago; its live token goes with it
	legacy("l-live", "t-live", live)
	legacy("l-recent", "t-recent", recent) // its token expired an hour ago
	for id, at := range map[string]time.Time{"f-rev": old, "l-rev": old, "f-recentrev": recent} {
		_, err := db.RevokeFamily(c, id, at, "test", nil)
		must(t, err)
	}
	fam := func(id string) row { return row{"refresh_families", "id", id} }
	tok := func(h string) row { return row{"refresh_tokens", "token_hash", h} }
	gone = append(gone, fam("f-old"), fam("f-rev"), fam("l-rev"), tok("t-old"), tok("t-rev"))
	kept = append(kept, fam("f-live"), fam("f-recentrev"), fam("l-old"), fam("l-live"), tok("t-live"), fam("l-recent"),
		tok("t-recent"))

	// Sign-in sessions and authorization codes.
	signIn := func(id string, created, expires time.Time) {
		must(t, db.CreateSignIn(c, store.NewSignIn{SignIn: store.SignIn{ID: id, SecretHash: "h-" + id, UserID: "u1",
			AuthTime: created, CreatedAt: created, LastUsedAt: created, ExpiresAt: expires}}))
	}
	signIn("s-old", t0.AddDate(0, 0, -60), old)
	signIn("s-rev", t0.AddDate(0, 0, -60), live)
	signIn("s-live", t0.AddDate(0, 0, -40), live)
	_, err := db.RevokeSignIn(c, "s-rev", "", old, "test", nil)
	must(t, err)
	codeAt := func(h string, at time.Time) {
		must(t, db.CreateCode(c, store.AuthCode{Hash: h, ClientID: "mobile", RedirectURI: "http://127.0.0.1/cb", SignInID: "s-live",
			UserID: "u1", AuthTime: at, CreatedAt: at, ExpiresAt: at.Add(time.Minute)}))
	}
	codeAt("c-old", t0.AddDate(0, 0, -30))
	codeAt("c-recent", recent)
	si := func(id string) row { return row{"signin_sessions", "id", id} }
	code := func(h string) row { return row{"authorization_codes", "code_hash", h} }
	gone = append(gone, si("s-old"), si("s-rev"), code("c-old"))
	kept = append(kept, si("s-live"), code("c-recent"))

	// One-time tokens, with their mails, and a mail of its own.
	issue := func(h string, p store.OneTimePurpose, expires time.Time) {
		must(t, db.IssueOneTime(c, store.NewOneTime{UserEmail: "u1@example.com",
			Token: store.OneTimeToken{Hash: h, Purpose: p, UserID: "u1", CreatedAt: expires.Add(-time.Hour), ExpiresAt: expires},
			Mail: store.MailJob{ID: "m-" + h, Kind: string(p), UserID: "u1", Payload: []byte("sealed"),
				CreatedAt: expires.Add(-time.Hour), NextAttemptAt: expires.Add(-time.Hour), ExpiresAt: expires}}))
	}
	issue("o-old", store.PurposePasswordReset, old)
	issue("o-live", store.PurposeVerifyEmail, live)
	must(t, db.QueueMail(c, store.MailJob{ID: "m-recent", Kind: "notice", UserID: "u1", Payload: []byte("sealed"),
		CreatedAt: recent.Add(-time.Hour), NextAttemptAt: recent.Add(-time.Hour), ExpiresAt: recent}, nil))
	one := func(h string) row { return row{"onetime_tokens", "token_hash", h} }
	mail := func(id string) row { return row{"mail_outbox", "id", id} }
	gone = append(gone, one("o-old"), mail("m-o-old"))
	kept = append(kept, one("o-live"), mail("m-o-live"), mail("m-recent"))

	// Counters, WebAuthn challenges, client assertions, used forms.
	_, err = db.HitThrottles(c, old, time.Hour, "th-old")
	must(t, err)
	_, err = db.HitThrottles(c, recent, time.Hour, "th-recent")
	must(t, err)
	must(t, db.UseChallenge(c, "ch-old", old))
	must(t, db.UseChallenge(c, "ch-live", live))
	must(t, db.UseClientAssertion(c, "j-old", "svc", old))
	must(t, db.UseClientAssertion(c, "j-live", "svc", live))
	must(t, db.UseForm(c, "f-old", "second_step", old))
	must(t, db.UseForm(c, "f-live", "second_step", live))
	gone = append(gone, row{"throttles", "key", "th-old"}, row{"webauthn_challenges", "challenge_hash", "ch-old"},
		row{"client_assertions", "jti_hash", "j-old"}, row{"used_forms", "id_hash", "f-old"})
	kept = append(kept, row{"throttles", "key", "th-recent"}, row{"webauthn_challenges", "challenge_hash", "ch-live"},
		row{"client_assertions", "jti_hash", "j-live"}, row{"used_forms", "id_hash", "f-live"})

	// Audit events (the seeds above wrote none).
	must(t, db.AppendAudit(c, store.AuditEvent{Type: "test.old", CreatedAt: t0.AddDate(0, 0, -91)}))
	must(t, db.AppendAudit(c, store.AuditEvent{Type: "test.recent", CreatedAt: t0.AddDate(0, 0, -89)}))
	return gone, kept
}

func auditTypes(t *testing.T, db *sqlstore.DB) map[string]bool {
	t.Helper()
	evs, err := db.ListAudit(testCtx(t), store.AuditFilter{Limit: 100})
	must(t, err)
	out := map[string]bool{}
	for _, ev := range evs {
		out[ev.Type] = true
	}
	return out
}

// TestPassDeletesOnlyPastCutoff: each pruner deletes exactly the rows past
// its cutoff — a live session, an unexpired token, data expired less than a
// day ago and a recent audit event stay — and a second pass finds nothing.
func TestPassDeletesOnlyPastCutoff(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		db := b.Open(t)
		gone, kept := seed(t, db)
		clk := clock.NewFake(t0)
		r := newRunner(t, db, clk, Config{})
		res, err := r.Pass(testCtx(t))
		must(t, err)
		if !res.Ran {
			t.Fatal("the pass did not run")
		}
		want := map[string]int{"refresh_tokens": 1, "refresh_families_expired": 1, "refresh_families_revoked": 2,
			"signin_sessions_expired": 1, "signin_sessions_revoked": 1, "authorization_codes": 1, "onetime_tokens": 1,
			"mail_outbox": 1, "throttles": 1, "webauthn_challenges": 1, "client_assertions": 1, "used_forms": 1, "audit_events": 1}
		if len(res.Kinds) != len(want) {
			t.Fatalf("pass reported %d kinds, want %d: %+v", len(res.Kinds), len(want), res.Kinds)
		}
		for _, k := range res.Kinds {
			if k.Rows != want[k.Kind] || k.Batches != 1 {
				t.Errorf("%s: %d rows in %d batches, want %d in 1", k.Kind, k.Rows, k.Batches, want[k.Kind])
			}
		}
		for _, r := range gone {
			if exists(t, db, r) {
				t.Errorf("%s %s survived the pass", r.table, r.id)
			}
		}
		for _, r := range kept {
			if !exists(t, db, r) {
				t.Errorf("%s %s was pruned", r.table, r.id)
			}
		}
		if a := auditTypes(t, db); a["test.old"] || !a["test.recent"] {
			t.Errorf("audit events after a 90-day retention: %v", a)
		}
		res, err = r.Pass(testCtx(t))
		must(t, err)
		if res.Rows() != 0 {
			t.Fatalf("a second pass deleted %d rows", res.Rows())
		}
	})
}

// TestAuditRetentionZeroKeepsEvents: with retention 0 no pruner touches the
// audit log, however old its events.
func TestAuditRetentionZeroKeepsEvents(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		db := b.Open(t)
		c := testCtx(t)
		must(t, db.AppendAudit(c, store.AuditEvent{Type: "test.ancient", CreatedAt: t0.AddDate(-5, 0, 0)}))
		r := newRunner(t, db, clock.NewFake(t0), Config{Pruners: Defaults(Options{AuditRetention: 0})})
		for _, p := range r.Pruners() {
			if p.Target.Table == "audit_events" {
				t.Fatalf("retention 0 registered %q", p.Kind)
			}
		}
		res, err := r.Pass(c)
		must(t, err)
		if !res.Ran || res.Rows() != 0 {
			t.Fatalf("pass: %+v", res)
		}
		if !auditTypes(t, db)["test.ancient"] {
			t.Fatal("retention 0 deleted an audit event")
		}
	})
}

// TestPassBatches: a batch deletes at most BatchSize rows and leaves the
// rest for the next batch; the pass goes on until nothing is left.
func TestPassBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		db := b.Open(t)
		c := testCtx(t)
		for i := range 5 {
			_, err := db.HitThrottles(c, old.Add(-time.Duration(i)*time.Minute), time.Hour, fmt.Sprintf("old-%d", i))
			must(t, err)
		}
		_, err := db.HitThrottles(c, recent, time.Hour, "recent")
		must(t, err)
		target := store.PruneTarget{Table: "throttles", Key: "key", Column: "last_hit"}
		r := newRunner(t, db, clock.NewFake(t0), Config{BatchSize: 2,
			Pruners: []Pruner{{Kind: "throttles", Target: target, Cutoff: func(now time.Time) time.Time { return now.Add(-Grace) }}}})
		var left []int
		r.afterBatch = func(string) {
			var n int
			must(t, db.Writer().GetContext(c, &n, `SELECT COUNT(*) FROM throttles`))
			left = append(left, n)
		}
		res, err := r.Pass(c)
		must(t, err)
		if fmt.Sprint(left) != "[4 2 1]" {
			t.Fatalf("rows left after each batch: %v, want [4 2 1]", left)
		}
		if len(res.Kinds) != 1 || res.Kinds[0].Rows != 5 || res.Kinds[0].Batches != 3 {
			t.Fatalf("result %+v", res.Kinds)
		}
		if th, _ := db.Throttles(c, "recent"); len(th) != 1 {
			t.Fatal("the recent counter was pruned")
		}
	})
}

// instances opens two stores on one database: two tokend instances.
func instances(t *testing.T, b dbtest.Backend) (*sqlstore.DB, *sqlstore.DB) {
	if b.Name == "postgres" {
		u := dbtest.PostgresURL(t)
		return dbtest.OpenPostgresURL(t, u), dbtest.OpenPostgresURL(t, u)
	}
	path := filepath.Join(t.TempDir(), "tokend.db")
	return dbtest.SQLiteAt(t, path), dbtest.SQLiteAt(t, path)
}

// TestLeaseOneInstanceAtATime: while one instance runs a pass, another
// instance's pass does nothing; once it is done, the other may run.
func TestLeaseOneInstanceAtATime(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		dbA, dbB := instances(t, b)
		c := testCtx(t)
		clk := clock.NewFake(t0)
		a := newRunner(t, dbA, clk, Config{Instance: "a"})
		other := newRunner(t, dbB, clk, Config{Instance: "b"})
		var during []Result
		a.afterBatch = func(string) {
			res, err := other.Pass(c)
			must(t, err)
			during = append(during, res)
		}
		res, err := a.Pass(c)
		must(t, err)
		if !res.Ran || len(during) != len(a.Pruners()) {
			t.Fatalf("a ran=%v with %d batches", res.Ran, len(during))
		}
		for _, r := range during {
			if r.Ran {
				t.Fatal("a second instance ran a pass while the first held the lease")
			}
		}
		if res, err := other.Pass(c); err != nil || !res.Ran {
			t.Fatalf("after the first pass ended, the other could not run: %+v %v", res, err)
		}
	})
}

// TestLeaseRenewed: a long pass renews its lease, so another instance never
// takes over, however long it runs; a pass whose lease was taken over stops.
func TestLeaseRenewed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		dbA, dbB := instances(t, b)
		c := testCtx(t)
		for i := range 6 {
			_, err := dbA.HitThrottles(c, old, time.Hour, fmt.Sprintf("old-%d", i))
			must(t, err)
		}
		clk := clock.NewFake(t0)
		a := newRunner(t, dbA, clk, Config{Instance: "a", BatchSize: 1})
		other := newRunner(t, dbB, clk, Config{Instance: "b"})
		a.afterBatch = func(string) {
			clk.Advance(LeaseTTL / 3)
			if res, err := other.Pass(c); err != nil || res.Ran {
				t.Fatalf("another instance ran during a pass (%v after it started): %+v %v", clk.Now().Sub(t0), res, err)
			}
		}
		res, err := a.Pass(c)
		must(t, err)
		if clk.Now().Sub(t0) < 2*LeaseTTL || res.Rows() != 6 {
			t.Fatalf("the pass lasted %v of the lease's %v and deleted %d rows", clk.Now().Sub(t0), LeaseTTL, res.Rows())
		}

		// A pass stalled past its lease finds it taken over and stops.
		for i := range 3 {
			_, err := dbA.HitThrottles(c, clk.Now().Add(-Grace-time.Hour), time.Hour, fmt.Sprintf("again-%d", i))
			must(t, err)
		}
		a.afterBatch = func(string) {
			now := clk.Advance(2 * LeaseTTL)
			got, err := dbB.AcquireLease(c, passLease, "b", now, now.Add(LeaseTTL))
			if err != nil || !got {
				t.Fatalf("the lease of a stalled pass did not expire: %v %v", got, err)
			}
		}
		// The lease is lost after the pass's first batch (of the first
		// kind), before it reaches the counters.
		res, err = a.Pass(c)
		if !errors.Is(err, ErrLeaseLost) || res.Rows() != 0 {
			t.Fatalf("a pass that lost its lease: %d rows, %v; want none and ErrLeaseLost", res.Rows(), err)
		}
		if th, _ := dbA.Throttles(c, "again-0", "again-1", "again-2"); len(th) != 3 {
			t.Fatalf("a pass went on after losing its lease: %d of 3 counters left", len(th))
		}
	})
}

// TestDueOncePerInterval: of the instances asking, one runs the schedule's
// pass per interval.
func TestDueOncePerInterval(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		dbA, dbB := instances(t, b)
		c := testCtx(t)
		clk := clock.NewFake(t0)
		a := newRunner(t, dbA, clk, Config{Instance: "a", Interval: time.Hour})
		other := newRunner(t, dbB, clk, Config{Instance: "b", Interval: time.Hour})
		due := func(r *Runner) bool {
			ok, err := r.Due(c)
			must(t, err)
			return ok
		}
		if !due(a) || due(other) {
			t.Fatal("both or neither instance is due at the start")
		}
		clk.Advance(59 * time.Minute)
		if due(other) {
			t.Fatal("another instance is due within the interval")
		}
		clk.Advance(time.Minute)
		if !due(other) || due(a) {
			t.Fatal("after the interval, the first to ask is not the one due")
		}
	})
}

func TestRegister(t *testing.T) {
	r, err := New(Config{Pruners: Defaults(Options{})})
	must(t, err)
	if err := r.Register(Pruner{Kind: "throttles", Target: store.PruneTarget{Table: "x", Key: "y", Column: "z"},
		Cutoff: func(now time.Time) time.Time { return now }}); err == nil {
		t.Fatal("a kind registered twice")
	}
	if err := r.Register(Pruner{Kind: "incomplete"}); err == nil {
		t.Fatal("an incomplete pruner was registered")
	}
	n := len(r.Pruners())
	must(t, r.Register(Pruner{Kind: "extra", Target: store.PruneTarget{Table: "x", Key: "y", Column: "z"},
		Cutoff: func(now time.Time) time.Time { return now }}))
	if ps := r.Pruners(); len(ps) != n+1 || ps[n].Kind != "extra" {
		t.Fatal("Register did not append the pruner")
	}
}

// scriptedStore prunes one kind from a count of rows, each batch taking the
// next of durations on the runner's batch clock.
type scriptedStore struct {
	rows      int
	durations []time.Duration
	limits    []int
	t         time.Time
}

func (s *scriptedStore) PruneBatch(_ context.Context, _ store.PruneTarget, _ time.Time, limit int) (int, error) {
	s.limits = append(s.limits, limit)
	d := 10 * time.Millisecond
	if len(s.durations) > 0 {
		d, s.durations = s.durations[0], s.durations[1:]
	}
	s.t = s.t.Add(d)
	n := min(limit, s.rows)
	s.rows -= n
	return n, nil
}

func (s *scriptedStore) AcquireLease(context.Context, string, string, time.Time, time.Time) (bool, error) {
	return true, nil
}
func (s *scriptedStore) ReleaseLease(context.Context, string, string) error { return nil }

// TestBatchSizeAdapts: a batch slower than the target halves the next one
// (not below MinBatchSize); quick ones double it back up to the batch size.
func TestBatchSizeAdapts(t *testing.T) {
	ms := time.Millisecond
	st := &scriptedStore{rows: 1000, durations: []time.Duration{300 * ms, 300 * ms, 300 * ms, 300 * ms, 300 * ms, 300 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms}}
	r := newRunner(t, st, clock.NewFake(t0), Config{BatchSize: 100, BatchTarget: 100 * ms,
		Pruners: []Pruner{{Kind: "k", Target: store.PruneTarget{Table: "t", Key: "k", Column: "c"}, Cutoff: func(now time.Time) time.Time { return now }}}})
	r.clock = func() time.Time { return st.t }
	res, err := r.Pass(testCtx(t))
	must(t, err)
	want := "[100 50 25 12 10 10 10 20 40 80 100"
	if got := fmt.Sprint(st.limits); len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("batch sizes %s, want %s …", got, want)
	}
	if k := res.Kinds[0]; k.Rows != 1000 || k.Smallest != MinBatchSize || k.Longest != 300*ms {
		t.Fatalf("result %+v", k)
	}
}
