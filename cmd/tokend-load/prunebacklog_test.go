package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestPruneBacklogUsage(t *testing.T) {
	for _, args := range [][]string{
		{"prune-backlog"},
		{"prune-backlog", "--postgres", "postgres://127.0.0.1/x", "--families", "0"},
		{"prune-backlog", "--postgres", "postgres://127.0.0.1/x", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := dispatch(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d (%s), want 2", args, code, errb.String())
		}
	}
}

// TestPruneTotalLine: the mode reads the rows and the longest batch from
// tokend prune's total line.
func TestPruneTotalLine(t *testing.T) {
	out := strings.Join([]string{
		"KIND                      ROWS     BATCHES  LONGEST BATCH  SMALLEST SIZE",
		"refresh_tokens            2000000  2023     178.796ms      250",
		"audit_events              0        1        1.946ms        1000",
		"total                     2000000           178.796ms",
	}, "\n") + "\n"
	m := pruneTotalLine.FindStringSubmatch(out)
	if m == nil || m[1] != "2000000" || m[2] != "178.796ms" {
		t.Fatalf("total line: %q", m)
	}
}
