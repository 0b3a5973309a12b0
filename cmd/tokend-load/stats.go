package main

import (
	"maps"
	"math"
	"slices"
	"time"
)

// recorder is one worker's private tally; it needs no locking. Only work
// done while measuring is recorded: warm-up and setup are not.
type recorder struct {
	measuring bool
	ok        int64
	lat       []time.Duration // every completed measured request, success or not
	errs      map[string]int64
	notes     map[string]int64 // expected events (e.g. reuse detected)
	// hops are the latencies of requests a step makes besides the one it
	// is measured by (the code exchange's authorize hop), by name.
	hops map[string][]time.Duration
}

func newRecorder(capacity int) *recorder {
	return &recorder{lat: make([]time.Duration, 0, capacity), errs: map[string]int64{}, notes: map[string]int64{},
		hops: map[string][]time.Duration{}}
}

// success records a successful request that took d.
func (r *recorder) success(d time.Duration) {
	if r.measuring {
		r.ok++
		r.lat = append(r.lat, d)
	}
}

// failure records a failed request of the given kind. A d < 0 means the
// failure was not a completed request (a check the harness made), so it
// adds no latency sample.
func (r *recorder) failure(kind string, d time.Duration) {
	if r.measuring {
		r.errs[kind]++
		if d >= 0 {
			r.lat = append(r.lat, d)
		}
	}
}

// note records an expected event; d ≥ 0 adds a latency sample.
func (r *recorder) note(kind string, d time.Duration) {
	if r.measuring {
		r.notes[kind]++
		if d >= 0 {
			r.lat = append(r.lat, d)
		}
	}
}

// hop records the latency of a request that is not the one the step is
// measured by: it adds no success, no failure and no latency sample of the
// scenario.
func (r *recorder) hop(name string, d time.Duration) {
	if r.measuring {
		r.hops[name] = append(r.hops[name], d)
	}
}

// Latency summarises a latency distribution.
type Latency struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, which must be in ascending order: the smallest sample such that
// at least p % of the samples are less than or equal to it. It returns 0
// for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// summarize sorts samples in place and summarises them.
func summarize(samples []time.Duration) Latency {
	slices.Sort(samples)
	l := Latency{N: len(samples), P50: percentile(samples, 50), P90: percentile(samples, 90),
		P99: percentile(samples, 99)}
	if len(samples) > 0 {
		l.Max = samples[len(samples)-1]
	}
	return l
}

// merge adds the maps of src into dst.
func merge(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}

// total is the sum of a count map.
func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// sortedKeys returns m's keys, largest count first, then by name.
func sortedKeys(m map[string]int64) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return keys
}

// median returns the median of xs (the mean of the middle two for an even
// count) and the index in xs of the element at (or just below) the median,
// so callers can report the run that produced it.
func median(xs []float64) (float64, int) {
	if len(xs) == 0 {
		return 0, -1
	}
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case xs[a] < xs[b]:
			return -1
		case xs[a] > xs[b]:
			return 1
		}
		return 0
	})
	n := len(idx)
	if n%2 == 1 {
		return xs[idx[n/2]], idx[n/2]
	}
	return (xs[idx[n/2-1]] + xs[idx[n/2]]) / 2, idx[n/2-1]
}
