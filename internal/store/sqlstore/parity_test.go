package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// TestMigrationParity: migrations/postgres and migrations/sqlite build the
// same schema. Each engine's catalogue is read back after migrating a fresh
// database and normalized (see schemaOf), and the two must be equal: the
// same tables; columns with the same names, type family, nullability and
// default; the same primary keys, indexes (name, uniqueness, columns,
// partial-index predicate), foreign keys and CHECK constraints.
func TestMigrationParity(t *testing.T) {
	pg := dbtest.Postgres(t) // skips without TOKEND_TEST_POSTGRES_URL
	lite := dbtest.SQLite(t)
	pgSchema, liteSchema := schemaOf(t, pg), schemaOf(t, lite)
	for _, s := range [][]string{pgSchema, liteSchema} {
		if !slices.Contains(s, "table users") || !slices.Contains(s, "column users.id: text not null default -") {
			t.Fatalf("the catalogue reader missed the users table:\n%s", strings.Join(s, "\n"))
		}
	}
	onlyPG, onlyLite := schemaDiff(pgSchema, liteSchema)
	if len(onlyPG)+len(onlyLite) > 0 {
		t.Fatalf("the Postgres and SQLite migrations differ (normalized catalogues):\nonly in Postgres:\n\t%s\nonly in SQLite:\n\t%s",
			strings.Join(onlyPG, "\n\t"), strings.Join(onlyLite, "\n\t"))
	}
}

// TestMigrationParityCatchesDrift shows that TestMigrationParity can fail:
// each case creates the same small schema on both engines, then changes
// one side the way a migration written for one dialect only would, and the
// comparison must report exactly that change. The case without a change
// checks that the normalization equates the engines' spellings of one
// schema (IN lists, casts, partial-index predicates, defaults).
func TestMigrationParityCatchesDrift(t *testing.T) {
	pg := dbtest.Postgres(t)
	lite := dbtest.SQLite(t)
	const base = `CREATE TABLE @_parent (id TEXT PRIMARY KEY);
CREATE TABLE @_t (
    id TEXT PRIMARY KEY,
    parent_id TEXT NOT NULL REFERENCES @_parent (id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'new',
    n BIGINT,
    note TEXT,
    CONSTRAINT @_t_state_check CHECK (state IN ('new', 'old') AND n <> -1)
);
CREATE INDEX @_t_n_idx ON @_t (n, id);
CREATE UNIQUE INDEX @_t_one_new ON @_t (parent_id) WHERE state = 'new' AND n IS NOT NULL`
	tests := []struct {
		name     string
		postgres bool // the change is made on Postgres (else on SQLite)
		old, new string
		want     []string // the lines reported: the changed side's, then the other's
	}{
		{name: "none"},
		{name: "extra column", old: "note TEXT,", new: "note TEXT, extra TEXT,",
			want: []string{"column @_t.extra: text null default -"}},
		{name: "extra table", postgres: true, old: "CREATE INDEX", new: "CREATE TABLE @_x (id TEXT); CREATE INDEX",
			want: []string{"column @_x.id: text null default -", "table @_x"}},
		{name: "nullability", old: "n BIGINT,", new: "n BIGINT NOT NULL,",
			want: []string{"column @_t.n: integer not null default -", "column @_t.n: integer null default -"}},
		{name: "type family", postgres: true, old: "note TEXT,", new: "note BYTEA,",
			want: []string{"column @_t.note: blob null default -", "column @_t.note: text null default -"}},
		{name: "default", postgres: true, old: "DEFAULT 'new'", new: "DEFAULT 'old'",
			want: []string{"column @_t.state: text not null default 'old'", "column @_t.state: text not null default 'new'"}},
		{name: "index columns", old: "(n, id)", new: "(n)",
			want: []string{"index @_t.@_t_n_idx: (n)", "index @_t.@_t_n_idx: (n,id)"}},
		{name: "index name", postgres: true, old: "@_t_n_idx", new: "@_t_n_id",
			want: []string{"index @_t.@_t_n_id: (n,id)", "index @_t.@_t_n_idx: (n,id)"}},
		{name: "uniqueness", old: "CREATE UNIQUE INDEX", new: "CREATE INDEX",
			want: []string{"index @_t.@_t_one_new: (parent_id) where state='new'andnisnotnull",
				"index @_t.@_t_one_new: unique (parent_id) where state='new'andnisnotnull"}},
		{name: "predicate", old: "WHERE state = 'new'", new: "WHERE state = 'old'",
			want: []string{"index @_t.@_t_one_new: unique (parent_id) where state='old'andnisnotnull",
				"index @_t.@_t_one_new: unique (parent_id) where state='new'andnisnotnull"}},
		{name: "foreign key", postgres: true, old: " ON DELETE CASCADE", new: "",
			want: []string{"foreign key @_t (parent_id) references @_parent (id) on delete no action on update no action",
				"foreign key @_t (parent_id) references @_parent (id) on delete cascade on update no action"}},
		{name: "check", postgres: true, old: "('new', 'old')", new: "('new', 'old', 'gone')",
			want: []string{"check @_t: statein'new','old','gone'andn<>-1", "check @_t: statein'new','old'andn<>-1"}},
		{name: "primary key", old: "id TEXT PRIMARY KEY,", new: "id TEXT NOT NULL,",
			want: []string{"primary key @_t (id)"}},
	}
	for i, tc := range tests {
		prefix := fmt.Sprintf("d%02d", i)
		ddl := strings.ReplaceAll(base, "@", prefix)
		changed := strings.ReplaceAll(strings.Replace(base, tc.old, tc.new, 1), "@", prefix)
		if tc.old != "" && changed == ddl {
			t.Fatalf("%s: %q is not in the base schema", tc.name, tc.old)
		}
		pgDDL, liteDDL := ddl, changed
		if tc.postgres {
			pgDDL, liteDDL = changed, ddl
		}
		execAll(t, pg.Writer(), pgDDL)
		execAll(t, lite.Writer(), liteDDL)
	}
	onlyPG, onlyLite := schemaDiff(schemaOf(t, pg), schemaOf(t, lite))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("d%02d_", i)
			mine := func(lines []string) []string {
				var out []string
				for _, l := range lines {
					if strings.Contains(l, prefix) {
						out = append(out, strings.ReplaceAll(l, prefix, "@_"))
					}
				}
				return out
			}
			changed, other := mine(onlyLite), mine(onlyPG)
			if tc.postgres {
				changed, other = other, changed
			}
			if got := append(changed, other...); !slices.Equal(got, tc.want) {
				t.Errorf("reported\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

// execAll runs ;-separated statements one by one.
func execAll(t *testing.T, db *sqlx.DB, stmts string) {
	t.Helper()
	for _, s := range strings.Split(stmts, ";") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// schemaDiff returns the lines only in a and only in b.
func schemaDiff(a, b []string) (onlyA, onlyB []string) {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, l := range a {
		inA[l] = true
	}
	for _, l := range b {
		inB[l] = true
	}
	for _, l := range a {
		if !inB[l] {
			onlyA = append(onlyA, l)
		}
	}
	for _, l := range b {
		if !inA[l] {
			onlyB = append(onlyB, l)
		}
	}
	return onlyA, onlyB
}

// schemaOf reads db's schema from its engine's catalogue as sorted lines
// in a form both engines share:
//
//	table T
//	column T.C: FAMILY null|not null default EXPR|autoincrement|-
//	primary key T (C,...)
//	index T.I: [unique ](C,...)[ where EXPR]
//	unique constraint T (C,...)
//	foreign key T (C,...) references P (C,...) on delete A on update A
//	check T: EXPR
//
// Types become a family (BIGINT and INTEGER are integer, BYTEA and BLOB
// are blob), a BIGSERIAL or identity column and SQLite's INTEGER PRIMARY
// KEY AUTOINCREMENT are "autoincrement", and expressions are normalized by
// normExpr. goose's version table is left out: it is goose's, per dialect.
func schemaOf(t *testing.T, db *sqlstore.DB) []string {
	t.Helper()
	var lines []string
	var err error
	switch db.Dialect() {
	case "postgres":
		lines, err = postgresSchema(db.Writer())
	case "sqlite":
		lines, err = sqliteSchema(db.Writer())
	default:
		t.Fatalf("no catalogue reader for %s", db.Dialect())
	}
	if err != nil {
		t.Fatalf("read the %s catalogue: %v", db.Dialect(), err)
	}
	slices.Sort(lines)
	return lines
}

const versionTable = "goose_db_version"

func columnLine(table, column, family string, notNull bool, def string) string {
	null := "null"
	if notNull {
		null = "not null"
	}
	return fmt.Sprintf("column %s.%s: %s %s default %s", table, column, family, null, def)
}

func indexLine(table, name string, unique bool, cols, pred string) string {
	u := ""
	if unique {
		u = "unique "
	}
	l := fmt.Sprintf("index %s.%s: %s(%s)", table, name, u, cols)
	if pred != "" {
		l += " where " + normExpr(pred)
	}
	return l
}

func postgresSchema(db *sqlx.DB) ([]string, error) {
	ctx := context.Background()
	var lines []string
	// query runs q and hands each row's columns, scanned as text, to fn.
	query := func(q string, fn func(c []string)) error {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			c := make([]string, len(cols))
			for i, v := range vals {
				c[i] = v.String
			}
			fn(c)
		}
		return rows.Err()
	}
	err := query(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '`+versionTable+`'`,
		func(c []string) { lines = append(lines, "table "+c[0]) })
	if err != nil {
		return nil, err
	}
	err = query(`SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> '`+versionTable+`'`,
		func(c []string) {
			def := "-"
			switch {
			case c[5] == "YES" || strings.HasPrefix(c[4], "nextval("):
				def = "autoincrement"
			case c[4] != "":
				def = normExpr(c[4])
			}
			lines = append(lines, columnLine(c[0], c[1], postgresFamily(c[2]), c[3] == "NO", def))
		})
	if err != nil {
		return nil, err
	}
	// Key columns by name, or <expression>; uniqueness; the predicate;
	// whether a UNIQUE constraint (rather than CREATE INDEX) made it.
	err = query(`SELECT t.relname, i.relname, ix.indisprimary, ix.indisunique,
			COALESCE(pg_get_expr(ix.indpred, ix.indrelid), ''),
			array_to_string(ARRAY(
				SELECT COALESCE(a.attname, '<expression>')
				FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
				LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum AND k.attnum <> 0
				WHERE k.ord <= ix.indnkeyatts ORDER BY k.ord), ','),
			EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid AND c.conrelid = ix.indrelid AND c.contype = 'u')
		FROM pg_index ix
		JOIN pg_class i ON i.oid = ix.indexrelid
		JOIN pg_class t ON t.oid = ix.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = current_schema() AND t.relname <> '`+versionTable+`'`,
		func(c []string) {
			switch {
			case c[2] == "true":
				lines = append(lines, fmt.Sprintf("primary key %s (%s)", c[0], c[5]))
			case c[6] == "true":
				lines = append(lines, fmt.Sprintf("unique constraint %s (%s)", c[0], c[5]))
			default:
				lines = append(lines, indexLine(c[0], c[1], c[3] == "true", c[5], c[4]))
			}
		})
	if err != nil {
		return nil, err
	}
	actions := map[string]string{"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}
	err = query(`SELECT t.relname, r.relname,
			array_to_string(ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord), ','),
			array_to_string(ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord), ','),
			c.confdeltype, c.confupdtype
		FROM pg_constraint c
		JOIN pg_class t ON t.oid = c.conrelid
		JOIN pg_class r ON r.oid = c.confrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema()`,
		func(c []string) {
			lines = append(lines, fmt.Sprintf("foreign key %s (%s) references %s (%s) on delete %s on update %s",
				c[0], c[2], c[1], c[3], actions[c[4]], actions[c[5]]))
		})
	if err != nil {
		return nil, err
	}
	err = query(`SELECT t.relname, pg_get_constraintdef(c.oid, true)
		FROM pg_constraint c
		JOIN pg_class t ON t.oid = c.conrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE c.contype = 'c' AND n.nspname = current_schema()`,
		func(c []string) {
			lines = append(lines, fmt.Sprintf("check %s: %s", c[0], normExpr(strings.TrimPrefix(c[1], "CHECK "))))
		})
	return lines, err
}

// sqliteColumn is a row of pragma_table_info.
type sqliteColumn struct {
	CID     int            `db:"cid"`
	Name    string         `db:"name"`
	Type    string         `db:"type"`
	NotNull bool           `db:"notnull"`
	Default sql.NullString `db:"dflt_value"`
	PK      int            `db:"pk"`
}

func sqliteSchema(db *sqlx.DB) ([]string, error) {
	var tables []struct{ Name, SQL string }
	if err := db.Select(&tables, `SELECT name, sql FROM sqlite_master
		WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name <> ?`, versionTable); err != nil {
		return nil, err
	}
	var lines []string
	for _, tb := range tables {
		lines = append(lines, "table "+tb.Name)
		var cols []sqliteColumn
		if err := db.Select(&cols, `SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)`, tb.Name); err != nil {
			return nil, err
		}
		autoincrement := regexp.MustCompile(`(?i)\bAUTOINCREMENT\b`).MatchString(maskLiterals(tb.SQL))
		var pk []string
		slices.SortFunc(cols, func(a, b sqliteColumn) int { return a.PK - b.PK }) // key order
		for _, c := range cols {
			def := "-"
			switch {
			case c.PK > 0 && autoincrement:
				def = "autoincrement"
			case c.Default.Valid:
				def = normExpr(c.Default.String)
			}
			// A primary key column is NOT NULL on Postgres; SQLite lets
			// a non-INTEGER one hold NULL (a legacy quirk) unless told,
			// which tokend never relies on.
			lines = append(lines, columnLine(tb.Name, c.Name, sqliteFamily(c.Type), c.NotNull || c.PK > 0, def))
			if c.PK > 0 {
				pk = append(pk, c.Name)
			}
		}
		if len(pk) > 0 {
			lines = append(lines, fmt.Sprintf("primary key %s (%s)", tb.Name, strings.Join(pk, ",")))
		}

		var indexes []struct {
			Name    string `db:"name"`
			Unique  bool   `db:"unique"`
			Origin  string `db:"origin"`
			Partial bool   `db:"partial"`
		}
		if err := db.Select(&indexes, `SELECT name, "unique", origin, partial FROM pragma_index_list(?)`, tb.Name); err != nil {
			return nil, err
		}
		for _, ix := range indexes {
			var names []sql.NullString
			if err := db.Select(&names, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, ix.Name); err != nil {
				return nil, err
			}
			var keys []string
			for _, n := range names {
				keys = append(keys, orElse(n.Valid, n.String, "<expression>"))
			}
			switch ix.Origin {
			case "pk":
				// Compared as the primary key line above.
			case "u":
				lines = append(lines, fmt.Sprintf("unique constraint %s (%s)", tb.Name, strings.Join(keys, ",")))
			default:
				var pred string
				if ix.Partial {
					var create string
					if err := db.Get(&create, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, ix.Name); err != nil {
						return nil, err
					}
					loc := regexp.MustCompile(`(?i)\bWHERE\b`).FindStringIndex(maskLiterals(create))
					if loc == nil {
						return nil, fmt.Errorf("partial index %s: no WHERE in %q", ix.Name, create)
					}
					pred = create[loc[1]:]
				}
				lines = append(lines, indexLine(tb.Name, ix.Name, ix.Unique, strings.Join(keys, ","), pred))
			}
		}

		var fks []struct {
			ID       int            `db:"id"`
			Table    string         `db:"table"`
			From     string         `db:"from"`
			To       sql.NullString `db:"to"`
			OnUpdate string         `db:"on_update"`
			OnDelete string         `db:"on_delete"`
		}
		if err := db.Select(&fks, `SELECT id, "table", "from", "to", on_update, on_delete
			FROM pragma_foreign_key_list(?) ORDER BY id, seq`, tb.Name); err != nil {
			return nil, err
		}
		for i := 0; i < len(fks); {
			j := i
			var from, to []string
			for ; j < len(fks) && fks[j].ID == fks[i].ID; j++ {
				from = append(from, fks[j].From)
				// A reference to the parent's primary key may omit the
				// column; none of tokend's do.
				to = append(to, orElse(fks[j].To.Valid, fks[j].To.String, "<primary key>"))
			}
			lines = append(lines, fmt.Sprintf("foreign key %s (%s) references %s (%s) on delete %s on update %s",
				tb.Name, strings.Join(from, ","), fks[i].Table, strings.Join(to, ","),
				strings.ToLower(fks[i].OnDelete), strings.ToLower(fks[i].OnUpdate)))
			i = j
		}

		// SQLite keeps CHECK constraints only in the CREATE TABLE text.
		masked := maskLiterals(tb.SQL)
		for _, loc := range regexp.MustCompile(`(?i)\bCHECK\s*\(`).FindAllStringIndex(masked, -1) {
			open := loc[1] - 1
			end := matchingParen(masked, open)
			if end < 0 {
				return nil, fmt.Errorf("table %s: unbalanced CHECK in %q", tb.Name, tb.SQL)
			}
			lines = append(lines, fmt.Sprintf("check %s: %s", tb.Name, normExpr(tb.SQL[open:end+1])))
		}
	}
	return lines, nil
}

// orElse is v if ok, else otherwise.
func orElse(ok bool, v, otherwise string) string {
	if ok {
		return v
	}
	return otherwise
}

// postgresFamily maps information_schema's data_type to a type family.
func postgresFamily(t string) string {
	switch t {
	case "text", "character varying", "character":
		return "text"
	case "bigint", "integer", "smallint":
		return "integer"
	case "bytea":
		return "blob"
	case "boolean":
		return "boolean"
	case "real", "double precision":
		return "real"
	case "numeric":
		return "numeric"
	}
	return "postgres:" + t
}

// sqliteFamily maps a declared SQLite type to a type family, by SQLite's
// own affinity rules (https://sqlite.org/datatype3.html, section 3.1), with
// BOOLEAN apart since Postgres has it.
func sqliteFamily(t string) string {
	u := strings.ToUpper(t)
	switch {
	case strings.Contains(u, "INT"):
		return "integer"
	case strings.Contains(u, "CHAR"), strings.Contains(u, "CLOB"), strings.Contains(u, "TEXT"):
		return "text"
	case u == "" || strings.Contains(u, "BLOB"):
		return "blob"
	case strings.HasPrefix(u, "BOOL"):
		return "boolean"
	case strings.Contains(u, "REAL"), strings.Contains(u, "FLOA"), strings.Contains(u, "DOUB"):
		return "real"
	}
	return "numeric"
}

var (
	castRE     = regexp.MustCompile(`::(character varying|double precision|timestamp with(out)? time zone|[a-z_][a-z0-9_]*)(\[\])?`)
	anyArrayRE = regexp.MustCompile(`=\s*any\s*\(\s*array\[([^\]]*)\]\s*\)`)
	numberRE   = regexp.MustCompile(`'(-?[0-9]+(\.[0-9]+)?)'`)
)

// normExpr puts a default, predicate or CHECK expression as Postgres
// prints it (pg_get_expr, pg_get_constraintdef) and as SQLite keeps it
// (the statement's text) into one form: casts dropped, = ANY (ARRAY[...])
// written IN (...), != as <>, and, outside string literals, lower case with
// no parentheses or white space. Dropping parentheses loses grouping, so
// (a OR b) AND c equals a OR (b AND c): the comparison is a net for drift,
// not a proof of equivalence.
func normExpr(s string) string {
	parts := strings.Split(s, "'") // even indexes are outside literals
	for i := 0; i < len(parts); i += 2 {
		p := strings.ToLower(parts[i])
		p = castRE.ReplaceAllString(p, "")
		parts[i] = strings.ReplaceAll(p, "!=", "<>")
	}
	s = anyArrayRE.ReplaceAllString(strings.Join(parts, "'"), " in ($1)")
	// Postgres quotes negative numbers: n <> '-1'::integer.
	s = numberRE.ReplaceAllString(s, "$1")
	parts = strings.Split(s, "'")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.Map(func(r rune) rune {
			if r == '(' || r == ')' || unicode.IsSpace(r) {
				return -1
			}
			return r
		}, parts[i])
	}
	return strings.Join(parts, "'")
}

// maskLiterals replaces the contents of string literals by x, keeping
// offsets, so that keywords are searched outside them.
func maskLiterals(s string) string {
	b := []byte(s)
	in := false
	for i, c := range b {
		switch {
		case c == '\'':
			in = !in
		case in:
			b[i] = 'x'
		}
	}
	return string(b)
}

// matchingParen returns the index of the parenthesis closing the one at
// open in s (literals masked), or -1.
func matchingParen(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
