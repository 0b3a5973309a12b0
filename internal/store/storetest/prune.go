package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

var throttleTarget = store.PruneTarget{Table: "throttles", Key: "key", Column: "last_hit"}

// hitEach writes n counters k0…k(n-1), counter i last hit at t0+i minutes.
func hitEach(t *testing.T, s store.Store, t0 time.Time, n int) {
	t.Helper()
	for i := range n {
		_, err := s.HitThrottles(ctx(t), t0.Add(time.Duration(i)*time.Minute), time.Hour, fmt.Sprintf("k%d", i))
		must(t, err)
	}
}

// testPruneBatch: a batch deletes at most its limit of the rows before the
// cutoff, oldest first, and never a row at or after it; the rest is left
// for the next batch. Names that are not plain identifiers are refused.
func testPruneBatch(t *testing.T, s store.Store) {
	c := ctx(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hitEach(t, s, t0, 10)
	cutoff := t0.Add(7 * time.Minute) // k0…k6 are before it
	for i, want := range []int{3, 3, 1, 0} {
		n, err := s.PruneBatch(c, throttleTarget, cutoff, 3)
		must(t, err)
		if n != want {
			t.Fatalf("batch %d deleted %d rows, want %d", i, n, want)
		}
		// The oldest go first: after batch i, k0…k(3(i+1)-1) are gone.
		gone := min(3*(i+1), 7)
		for k := range 10 {
			th, err := s.Throttles(c, fmt.Sprintf("k%d", k))
			must(t, err)
			if (len(th) == 0) != (k < gone) {
				t.Fatalf("after batch %d: k%d present=%v, want the %d oldest gone", i, k, len(th) == 1, gone)
			}
		}
	}
	for _, bad := range []store.PruneTarget{
		{Table: "throttles; DROP TABLE users", Key: "key", Column: "last_hit"},
		{Table: "throttles", Key: "key", Column: "last_hit < 0 OR 1=1 --"},
		{Table: "throttles", Key: `"key"`, Column: "last_hit"},
		{Table: "", Key: "key", Column: "last_hit"},
	} {
		if _, err := s.PruneBatch(c, bad, cutoff, 3); !mustBeInvalid(err) {
			t.Fatalf("PruneBatch(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.PruneBatch(c, throttleTarget, cutoff, 0); !mustBeInvalid(err) {
		t.Fatalf("limit 0: %v, want ErrInvalid", err)
	}
	if th, _ := s.Throttles(c, "k7", "k8", "k9"); len(th) != 3 {
		t.Fatalf("rows at or after the cutoff were deleted: %d left of 3", len(th))
	}
}

func mustBeInvalid(err error) bool { return err != nil && errors.Is(err, store.ErrInvalid) }

// testPruneBatchConcurrent: instances pruning the same rows at once delete
// each row once between them, and none fails.
func testPruneBatchConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const rows = 40
	hitEach(t, s, t0, rows)
	counts := make([]int, 4)
	errs := race(len(counts), func(i int) error {
		for {
			n, err := s.PruneBatch(c, throttleTarget, t0.Add(time.Hour), 5)
			if err != nil {
				return err
			}
			counts[i] += n
			if n == 0 {
				return nil
			}
		}
	})
	total := 0
	for i, err := range errs {
		must(t, err)
		total += counts[i]
	}
	if total != rows {
		t.Fatalf("concurrent batches deleted %d rows between them, want %d", total, rows)
	}
}
