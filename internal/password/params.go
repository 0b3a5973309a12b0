package password

import (
	"fmt"
	"strconv"
	"strings"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// DefaultParams is the OWASP baseline: 19 MiB, 2 passes, 1 lane.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1}

// Bounds on parameters, for configuration and for hashes read from the
// database, so that a hostile or corrupt hash cannot make a verification
// allocate gigabytes or run for minutes.
const (
	maxMemory  = 1 << 20 // 1 GiB in KiB, 50× the OWASP baseline
	maxTime    = 32
	maxThreads = 64
)

// String formats p as in TOKEND_ARGON2_PARAMS and PHC strings.
func (p Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// ParseParams parses "m=19456,t=2,p=1" (any order, each exactly once).
func ParseParams(s string) (Params, error) {
	var p Params
	seen := map[string]bool{}
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return p, fmt.Errorf("%q: want m=KiB,t=passes,p=lanes such as m=19456,t=2,p=1", trunc(s))
	}
	for _, part := range parts {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return p, fmt.Errorf("%q: want m=KiB,t=passes,p=lanes such as m=19456,t=2,p=1", trunc(s))
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, fmt.Errorf("%q: %s must be a positive integer", trunc(s), k)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return p, fmt.Errorf("%q: p must be at most %d", trunc(s), maxThreads)
			}
			p.Threads = uint8(n)
		default:
			return p, fmt.Errorf("%q: unknown parameter %q (want m, t and p)", trunc(s), k)
		}
	}
	return p, p.validate()
}

func (p Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("p=%d: lanes must be 1 to %d", p.Threads, maxThreads)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("t=%d: passes must be 1 to %d", p.Time, maxTime)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("m=%d: memory must be %d to %d KiB", p.Memory, 8*uint32(p.Threads), maxMemory)
	}
	return nil
}

// weakerThan reports whether p is cheaper than q in any dimension that
// matters for an attacker (memory or passes).
func (p Params) weakerThan(q Params) bool {
	return p.Memory < q.Memory || p.Time < q.Time
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
