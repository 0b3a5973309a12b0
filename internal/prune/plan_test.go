package prune

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// planRows is how many rows each table gets: enough that Postgres, with
// real statistics, prefers a sequential scan of the whole table over a
// thousand index probes for the portable `pk IN (SELECT …)` form (it does
// below a few hundred thousand rows), so the test shows that the statement
// tokend runs avoids that scan rather than that the table was too small to
// bother.
const planRows = 20000

// fillTable inserts planRows rows into table with generate_series: every
// column without a default gets a value from the row number i — text 'v'||i
// (so the foreign keys to users and refresh_families, seeded first, hold),
// numbers i (so 10% of the rows are before a cutoff of planRows/10) — and
// nullable columns are filled too, so the revoked_at indexes hold rows.
func fillTable(t *testing.T, db *sqlx.DB, table string) {
	t.Helper()
	var cols []struct {
		Name string `db:"column_name"`
		Type string `db:"data_type"`
	}
	must(t, db.SelectContext(testCtx(t), &cols, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND column_default IS NULL ORDER BY ordinal_position`, table))
	if len(cols) == 0 {
		t.Fatalf("table %s has no columns to fill", table)
	}
	var names, values []string
	for _, c := range cols {
		names = append(names, c.Name)
		switch c.Type {
		case "text":
			values = append(values, "'v'||i")
		case "bigint", "integer":
			values = append(values, "i")
		case "bytea":
			values = append(values, "'\\x00'::bytea")
		default:
			t.Fatalf("%s.%s: no generator for type %s", table, c.Name, c.Type)
		}
	}
	q := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM generate_series(1, %d) AS i`,
		table, strings.Join(names, ", "), strings.Join(values, ", "), planRows)
	if _, err := db.ExecContext(testCtx(t), q); err != nil {
		t.Fatalf("fill %s: %v", table, err)
	}
}

// explain returns Postgres's plan of one batch for p in the dialect's form,
// with a cutoff before 10% of the rows (more than a batch) and the default
// batch size.
func explain(t *testing.T, q sqlx.ExtContext, dialect string, p Pruner) string {
	t.Helper()
	stmt, err := sqlstore.PruneBatchSQL(dialect, p.Target)
	must(t, err)
	rows, err := q.QueryContext(testCtx(t), sqlx.Rebind(sqlx.DOLLAR, "EXPLAIN "+stmt), int64(planRows/10), DefaultBatchSize)
	must(t, err)
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		must(t, rows.Scan(&l))
		lines = append(lines, l)
	}
	must(t, rows.Err())
	return strings.Join(lines, "\n")
}

func seqScanOf(plan, table string) bool {
	return regexp.MustCompile(`Seq Scan on ` + regexp.QuoteMeta(table) + `\b`).MatchString(plan)
}

// TestPruneBatchPlans runs EXPLAIN on Postgres for every pruner's batch
// statement over tables of planRows rows with fresh statistics (and the
// planner's default settings: no enable_seqscan = off, which would hide a
// plan production would choose) and fails on a sequential scan of the
// pruned table: every batch reads through an index, however large the
// table. A control drops one of the indexes and checks that the test sees
// the scan that follows.
func TestPruneBatchPlans(t *testing.T) {
	db := dbtest.Postgres(t)
	w := db.Writer()
	pruners := Defaults(Options{AuditRetention: 90 * 24 * time.Hour})
	filled := map[string]bool{}
	// Parents first: users, then refresh_families (refresh_tokens points to
	// them).
	for _, table := range []string{"users", "refresh_families"} {
		fillTable(t, w, table)
		filled[table] = true
	}
	for _, p := range pruners {
		if !filled[p.Target.Table] {
			fillTable(t, w, p.Target.Table)
			filled[p.Target.Table] = true
		}
	}
	if _, err := w.ExecContext(testCtx(t), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	for _, p := range pruners {
		plan := explain(t, w, "postgres", p)
		if seqScanOf(plan, p.Target.Table) || !strings.Contains(plan, "Index") {
			t.Errorf("%s: a batch scans %s without an index:\n%s", p.Kind, p.Target.Table, plan)
		} else {
			t.Logf("%s:\n%s", p.Kind, plan)
		}
	}

	// For the record: the portable form, which SQLite runs, as Postgres
	// would plan it here.
	t.Logf("pk IN (SELECT …) on Postgres:\n%s", explain(t, w, "sqlite", pruners[0]))

	// Control: without the index on mail_outbox.expires_at the batch must
	// scan, and the check above must see it.
	tx, err := w.BeginTxx(testCtx(t), nil)
	must(t, err)
	defer tx.Rollback()
	if _, err := tx.ExecContext(testCtx(t), `DROP INDEX mail_outbox_expires_idx`); err != nil {
		t.Fatal(err)
	}
	for _, p := range pruners {
		if p.Target.Table == "mail_outbox" {
			if plan := explain(t, tx, "postgres", p); !seqScanOf(plan, "mail_outbox") {
				t.Fatalf("control: without its index the batch does not scan mail_outbox, so the check is blind:\n%s", plan)
			}
		}
	}
}

// TestPruneBatchPlansSQLite: on SQLite too, no batch scans the pruned table
// (EXPLAIN QUERY PLAN says SEARCH … USING INDEX on the condition's column,
// never SCAN).
func TestPruneBatchPlansSQLite(t *testing.T) {
	db := dbtest.SQLite(t)
	for _, p := range Defaults(Options{AuditRetention: 90 * 24 * time.Hour}) {
		stmt, err := sqlstore.PruneBatchSQL("sqlite", p.Target)
		must(t, err)
		var plan []struct {
			ID      int    `db:"id"`
			Parent  int    `db:"parent"`
			NotUsed int    `db:"notused"`
			Detail  string `db:"detail"`
		}
		must(t, db.Writer().SelectContext(testCtx(t), &plan, "EXPLAIN QUERY PLAN "+stmt, 1, DefaultBatchSize))
		var lines []string
		for _, l := range plan {
			lines = append(lines, l.Detail)
		}
		text := strings.Join(lines, "\n")
		if regexp.MustCompile(`(?m)^SCAN `+p.Target.Table+`\b`).MatchString(text) ||
			!strings.Contains(text, "USING INDEX "+p.Target.Table) && !strings.Contains(text, "USING COVERING INDEX") {
			t.Errorf("%s: a batch scans %s:\n%s", p.Kind, p.Target.Table, text)
		}
	}
}
