package sqlstore

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type throttleRow struct {
	Key         string `db:"key"`
	Hits        int    `db:"hits"`
	WindowStart int64  `db:"window_start"`
	LastHit     int64  `db:"last_hit"`
}

func (r throttleRow) throttle() store.Throttle {
	return store.Throttle{Key: r.Key, Hits: r.Hits, WindowStart: fromMicros(r.WindowStart), LastHit: fromMicros(r.LastHit)}
}

// Throttles implements store.ThrottleStore.
func (db *DB) Throttles(ctx context.Context, keys ...string) ([]store.Throttle, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var rows []throttleRow
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	q := `SELECT key, hits, window_start, last_hit FROM throttles WHERE key IN (?` + strings.Repeat(", ?", len(keys)-1) + `)`
	if err := db.r.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, db.err("read throttles", err)
	}
	out := make([]store.Throttle, len(rows))
	for i, r := range rows {
		out[i] = r.throttle()
	}
	return out, nil
}

// HitThrottles implements store.ThrottleStore with one portable upsert per
// key. Keys are taken in sorted order so that two transactions hitting the
// same keys cannot deadlock.
func (db *DB) HitThrottles(ctx context.Context, now time.Time, window time.Duration, keys ...string) ([]store.Throttle, error) {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	var out []store.Throttle
	err := db.tx(ctx, "hit throttles", func(tx *sqlx.Tx) error {
		out = out[:0]
		for _, k := range sorted {
			r, err := db.hitThrottle(ctx, tx, k, now, window)
			if err != nil {
				return err
			}
			out = append(out, r.throttle())
		}
		return nil
	})
	return out, err
}

func (db *DB) hitThrottle(ctx context.Context, tx *sqlx.Tx, key string, now time.Time, window time.Duration) (throttleRow, error) {
	cutoff := micros(now.Add(-window))
	var r throttleRow
	err := tx.GetContext(ctx, &r, db.rebind(`INSERT INTO throttles (key, hits, window_start, last_hit) VALUES (?, 1, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			hits = CASE WHEN throttles.window_start <= ? THEN 1 ELSE throttles.hits + 1 END,
			window_start = CASE WHEN throttles.window_start <= ? THEN excluded.window_start ELSE throttles.window_start END,
			last_hit = excluded.last_hit
		RETURNING key, hits, window_start, last_hit`),
		key, micros(now), micros(now), cutoff, cutoff)
	return r, err
}

// UpdateThrottles implements store.ThrottleStore. Absent counters are
// created first (INSERT … ON CONFLICT DO NOTHING, in sorted order so that
// two callers cannot deadlock), then every counter is read under a row lock
// (FOR UPDATE on Postgres; SQLite's one writer already excludes everyone),
// so a concurrent caller waits for this transaction and then sees its result.
func (db *DB) UpdateThrottles(ctx context.Context, keys []string, decide func([]store.Throttle) ([]store.Throttle, error)) error {
	if len(keys) == 0 {
		_, err := decide(nil)
		return err
	}
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	sorted = slices.Compact(sorted)
	args := make([]any, len(sorted))
	for i, k := range sorted {
		args[i] = k
	}
	in := `(?` + strings.Repeat(", ?", len(sorted)-1) + `)`
	values := strings.TrimSuffix(strings.Repeat("(?, 0, 0, 0), ", len(sorted)), ", ")
	return db.tx(ctx, "update throttles", func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO throttles (key, hits, window_start, last_hit)
			VALUES `+values+` ON CONFLICT (key) DO NOTHING`), args...); err != nil {
			return err
		}
		var rows []throttleRow
		if err := tx.SelectContext(ctx, &rows, db.rebind(`SELECT key, hits, window_start, last_hit FROM throttles
			WHERE key IN `+in+` ORDER BY key`+db.d.ForUpdate), args...); err != nil {
			return err
		}
		byKey := make(map[string]store.Throttle, len(rows))
		for _, r := range rows {
			th := r.throttle()
			if r.Hits == 0 && r.WindowStart == 0 {
				th = store.Throttle{Key: r.Key} // a counter that only exists as this lock
			}
			byKey[r.Key] = th
		}
		cur := make([]store.Throttle, len(keys))
		for i, k := range keys {
			cur[i] = byKey[k]
			cur[i].Key = k
		}
		next, err := decide(cur)
		if err != nil {
			return err
		}
		for _, th := range next {
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE throttles SET hits = ?, window_start = ?, last_hit = ?
				WHERE key = ?`), th.Hits, micros(th.WindowStart), micros(th.LastHit), th.Key); err != nil {
				return err
			}
		}
		// Counters decide left at zero are not kept.
		_, err = tx.ExecContext(ctx, db.rebind(`DELETE FROM throttles WHERE key IN `+in+` AND hits = 0`), args...)
		return err
	})
}

// SettleThrottles implements store.ThrottleStore.
func (db *DB) SettleThrottles(ctx context.Context, s store.ThrottleSettlement) error {
	if s.Empty() {
		return nil
	}
	return db.tx(ctx, "settle throttles", func(tx *sqlx.Tx) error {
		return db.settleThrottles(ctx, tx, s)
	})
}

func (db *DB) settleThrottles(ctx context.Context, tx *sqlx.Tx, s store.ThrottleSettlement) error {
	// Rows are locked in key order, as UpdateThrottles locks them: a
	// settlement in another order would deadlock with a concurrent
	// reservation of the same keys (the engine then aborts one of them).
	type op struct {
		key  string
		kind int // 0 clear, 1 release, 2 mark
		mark store.Throttle
	}
	ops := make([]op, 0, len(s.Clear)+len(s.Release)+len(s.Mark))
	for _, k := range s.Clear {
		ops = append(ops, op{key: k})
	}
	for _, k := range s.Release {
		ops = append(ops, op{key: k, kind: 1})
	}
	for _, m := range s.Mark {
		ops = append(ops, op{key: m.Key, kind: 2, mark: m})
	}
	slices.SortStableFunc(ops, func(a, b op) int { return strings.Compare(a.key, b.key) })
	for _, o := range ops {
		var err error
		switch o.kind {
		case 0:
			_, err = tx.ExecContext(ctx, db.rebind(`DELETE FROM throttles WHERE key = ?`), o.key)
		case 1:
			_, err = tx.ExecContext(ctx, db.rebind(`UPDATE throttles SET hits = hits - 1 WHERE key = ? AND hits > 0`), o.key)
		default:
			_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO throttles (key, hits, window_start, last_hit) VALUES (?, 1, ?, ?)
			ON CONFLICT (key) DO UPDATE SET hits = 1, window_start = excluded.window_start, last_hit = excluded.last_hit`),
				o.key, micros(o.mark.WindowStart), micros(o.mark.LastHit))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
