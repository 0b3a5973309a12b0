package sqlstore

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

// identifier is what PruneBatch accepts as a table or column name: the
// names are tokend's own, but they are spliced into SQL, so anything else is
// refused.
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// PruneBatchSQL is the statement of one batch for t in the dialect (with
// `?` placeholders for the cutoff and the limit). The inner SELECT walks the
// index on the condition column from its oldest entry and stops after limit
// rows; the outer DELETE finds those rows by primary key.
//
// SQLite takes `pk IN (SELECT …)` and always probes the primary key. Postgres
// plans that form as a hash semi-join over a sequential scan of the whole
// table whenever the table is small enough (a few hundred thousand rows) for
// the scan to look cheaper than a thousand index probes, so on Postgres (and
// CockroachDB, which speaks its dialect) the keys are gathered into an array
// first: `pk = ANY(ARRAY(SELECT …))` is an index scan on the primary key
// whatever the table's size. TestPruneBatchPlans checks both.
func PruneBatchSQL(dialect string, t store.PruneTarget) (string, error) {
	for _, id := range []string{t.Table, t.Key, t.Column} {
		if !identifier.MatchString(id) {
			return "", fmt.Errorf("prune: %q is not a plain SQL identifier: %w", id, store.ErrInvalid)
		}
	}
	inner := fmt.Sprintf(`SELECT %[2]s FROM %[1]s WHERE %[3]s < ? ORDER BY %[3]s LIMIT ?`, t.Table, t.Key, t.Column)
	if dialect == "postgres" {
		return fmt.Sprintf(`DELETE FROM %s WHERE %s = ANY(ARRAY(%s))`, t.Table, t.Key, inner), nil
	}
	return fmt.Sprintf(`DELETE FROM %s WHERE %s IN (%s)`, t.Table, t.Key, inner), nil
}

// PruneBatch implements store.PruneStore.
func (db *DB) PruneBatch(ctx context.Context, t store.PruneTarget, before time.Time, limit int) (int, error) {
	q, err := PruneBatchSQL(db.d.Name, t)
	if err != nil {
		return 0, err
	}
	if limit < 1 {
		return 0, fmt.Errorf("prune %s: limit %d: %w", t.Table, limit, store.ErrInvalid)
	}
	q = db.rebind(q)
	var n int64
	err = db.tx(ctx, "prune "+t.Table, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, q, micros(before), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
