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
