package metrics

import (
	"fmt"
	"testing"
	"time"
)

// TestLabelsBounded: odd methods and status codes from clients cannot grow
// the number of series.
func TestLabelsBounded(t *testing.T) {
	m := New(Options{Version: "test"})
	for i := range 100 {
		m.ObserveRequest("unmatched", fmt.Sprintf("M%d", i), 400, time.Millisecond)
		m.ObserveRequest("unmatched", "GET", 1000+i, time.Millisecond)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "tokend_http_requests_total" && len(f.GetMetric()) != 2 {
			t.Fatalf("%d request series after 200 odd requests, want 2 (other/400 and GET/other)", len(f.GetMetric()))
		}
	}
}

// TestPruned: a pass adds its rows per kind and sets the longest batch.
func TestPruned(t *testing.T) {
	m := New(Options{Version: "test"})
	m.Pruned(map[string]int{"throttles": 3, "audit_events": 0}, 20*time.Millisecond)
	m.Pruned(map[string]int{"throttles": 2}, 5*time.Millisecond)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			switch f.GetName() {
			case "tokend_pruned_rows_total":
				got[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
			case "tokend_prune_longest_batch_seconds":
				got["longest"] = mt.GetGauge().GetValue()
			}
		}
	}
	if got["throttles"] != 5 || got["audit_events"] != 0 || got["longest"] != 0.005 {
		t.Fatalf("prune metrics: %v", got)
	}
}
