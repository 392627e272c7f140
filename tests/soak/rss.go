package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rssSample is the plugin process's resident set size at one moment of the run.
type rssSample struct {
	at  time.Duration // since the operations started
	ops int64         // operations done by then
	kib int64
}

// rssSampler reads the plugin's VmRSS every interval while the operations run, so a long
// run shows whether the plugin's memory grows with the work it has done.
type rssSampler struct {
	pid      int
	mu       sync.Mutex
	samples  []rssSample
	errs     int
	done     chan struct{}
	finished chan struct{}
}

func startRSSSampler(pid int, every time.Duration, ops *atomic.Int64) *rssSampler {
	r := &rssSampler{pid: pid, done: make(chan struct{}), finished: make(chan struct{})}
	start := time.Now()
	take := func() {
		kib, err := readRSSKiB(pid)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.errs++
			return
		}
		r.samples = append(r.samples, rssSample{at: time.Since(start), ops: ops.Load(), kib: kib})
	}
	go func() {
		defer close(r.finished)
		take()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-r.done:
				take()
				return
			case <-tick.C:
				take()
			}
		}
	}()
	return r
}

// stop takes a last sample and returns the series and how many reads failed.
func (r *rssSampler) stop() ([]rssSample, int) {
	close(r.done)
	<-r.finished
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples), r.errs
}

// readRSSKiB reads VmRSS (kB) from /proc/<pid>/status.
func readRSSKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// rssGrowthWindow: how many samples the start and the end of the series are each the median
// of, so one sample taken mid-burst decides nothing.
const rssGrowthWindow = 5

// rssGrowth compares the end of the series with its start after the warm-up (samples taken
// earlier are the allocator and caches filling up, not growth): the median of the last
// rssGrowthWindow samples against the median of the first rssGrowthWindow after warm-up.
// ok is false when there are too few samples after warm-up to tell.
func rssGrowth(samples []rssSample, warmup time.Duration) (startKiB, endKiB int64, pct float64, ok bool) {
	var after []int64
	for _, s := range samples {
		if s.at >= warmup {
			after = append(after, s.kib)
		}
	}
	if len(after) < 2*rssGrowthWindow {
		return 0, 0, 0, false
	}
	startKiB = median(after[:rssGrowthWindow])
	endKiB = median(after[len(after)-rssGrowthWindow:])
	return startKiB, endKiB, 100 * float64(endKiB-startKiB) / float64(startKiB), true
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// rssSeries renders the series for the log: one "at/ops/MiB" point per sample, at most
// maxPoints of them (evenly spaced, the last one always kept).
func rssSeries(samples []rssSample, maxPoints int) string {
	if len(samples) == 0 {
		return "(none)"
	}
	step := (len(samples) + maxPoints - 1) / maxPoints
	var b strings.Builder
	for i := 0; i < len(samples); i += step {
		if i+step >= len(samples) {
			i = len(samples) - 1
		}
		s := samples[i]
		fmt.Fprintf(&b, " %ds/%d/%.1f", int(s.at.Seconds()), s.ops, float64(s.kib)/1024)
	}
	return strings.TrimSpace(b.String())
}
