package main

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on every Linux
// architecture Go supports).
const clockTick = 100

// statusKB reads a "Name:  N kB" field of /proc/PID/status, in bytes.
func statusKB(pid int, field string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	return parseStatusKB(b, field)
}

func parseStatusKB(b []byte, field string) (int64, bool) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte(field+":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return n * 1024, true
	}
	return 0, false
}

// resetPeakRSS resets VmHWM of pid to its current RSS (Linux ≥ 4.0,
// "5" > /proc/PID/clear_refs), so that VmHWM afterwards is the peak of the
// run alone. It reports whether that worked.
func resetPeakRSS(pid int) bool {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}

// rssSampler tracks the peak RSS of some processes: VmRSS sampled every
// 100 ms, and VmHWM (reset at the start when possible) read at the end.
type rssSampler struct {
	pids  []int
	hwmOK []bool
	mu    sync.Mutex
	peak  []int64
	// trace is the first process's VmRSS at each sample.
	trace   []rssPoint
	stop    chan struct{}
	stopped chan struct{}
}

func startRSSSampler(pids []int) *rssSampler {
	s := &rssSampler{pids: pids, hwmOK: make([]bool, len(pids)), peak: make([]int64, len(pids)),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	for i, pid := range pids {
		s.hwmOK[i] = resetPeakRSS(pid)
	}
	s.sample()
	go func() {
		defer close(s.stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for i, pid := range s.pids {
		v, ok := statusKB(pid, "VmRSS")
		if !ok {
			continue
		}
		if i == 0 {
			s.trace = append(s.trace, rssPoint{at: now, rss: v})
		}
		if v > s.peak[i] {
			s.peak[i] = v
		}
	}
}

// rssPoint is one sample of a process's RSS.
type rssPoint struct {
	at  time.Time
	rss int64
}

// points returns the first process's samples so far.
func (s *rssSampler) points() []rssPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.trace)
}

// finish stops sampling and returns each process's peak RSS in bytes: the
// larger of the sampled maximum and VmHWM (when VmHWM could be reset, it
// covers exactly the sampled period).
func (s *rssSampler) finish() []int64 {
	close(s.stop)
	<-s.stopped
	s.sample()
	for i, pid := range s.pids {
		if !s.hwmOK[i] {
			continue
		}
		if v, ok := statusKB(pid, "VmHWM"); ok && v > s.peak[i] {
			s.peak[i] = v
		}
	}
	return s.peak
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid string) (int64, string, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, "", false
	}
	return parseStat(b)
}

// parseStat extracts utime+stime (fields 14 and 15) and the command name
// from a /proc/PID/stat line. The name is in parentheses and may hold
// spaces, so fields are counted after the last ')'.
func parseStat(b []byte) (int64, string, bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, "", false
	}
	comm := string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, "", false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, "", false
	}
	return u + s, comm, true
}

// cpuSnapshot is the CPU time used so far by the harness, the servers, all
// postgres processes, and the whole machine (busy and total ticks).
type cpuSnapshot struct {
	at       time.Time
	self     int64
	servers  int64
	postgres int64
	busy     int64
	all      int64
}

func takeCPU(servers []int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	s.self, _, _ = cpuTicks("self")
	for _, pid := range servers {
		if t, _, ok := cpuTicks(strconv.Itoa(pid)); ok {
			s.servers += t
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			name := e.Name()
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			if t, comm, ok := cpuTicks(name); ok && (comm == "postgres" || strings.HasPrefix(comm, "postgres:")) {
				s.postgres += t
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(b, []byte{'\n'})
		f := strings.Fields(string(line))
		for i := 1; i < len(f); i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			// user nice system idle iowait irq softirq steal (guest counted in user)
			if i > 8 {
				break
			}
			s.all += v
			if i != 4 && i != 5 {
				s.busy += v
			}
		}
	}
	return s
}

// CPU is where CPU time went during a measurement, in % of one core.
type CPU struct {
	Load, Server, Postgres, Machine float64
}

func cpuBetween(a, b cpuSnapshot) CPU {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return CPU{}
	}
	pct := func(ticks int64) float64 { return float64(ticks) / clockTick / secs * 100 }
	c := CPU{Load: pct(b.self - a.self), Server: pct(b.servers - a.servers), Postgres: pct(b.postgres - a.postgres)}
	if all := b.all - a.all; all > 0 {
		c.Machine = float64(b.busy-a.busy) / float64(all) * 100 * float64(numCPU())
	}
	return c
}
