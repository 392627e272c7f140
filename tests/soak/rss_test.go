package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	kib, err := parseVmRSS(strings.NewReader("Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t   4242 kB\nThreads:\t3\n"))
	if err != nil || kib != 4242 {
		t.Fatalf("parseVmRSS = %d, %v; want 4242", kib, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseVmRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("parseVmRSS(%q) accepted it", bad)
		}
	}
	if kib, err := readRSSKiB(os.Getpid()); err != nil || kib <= 0 {
		t.Errorf("readRSSKiB(self) = %d, %v", kib, err)
	}
}

func series(kibs ...int64) []rssSample {
	s := make([]rssSample, len(kibs))
	for i, k := range kibs {
		s[i] = rssSample{at: time.Duration(i) * time.Second, ops: int64(i * 10), kib: k}
	}
	return s
}

func TestRSSGrowth(t *testing.T) {
	// Warm-up (the first 3 s) climbs from 1000 to 5000 and is ignored; then 10 samples,
	// the first five around 10000 (one spike), the last five around 10500 (one dip).
	s := series(1000, 3000, 5000, 10000, 9900, 30000, 10100, 10000, 10400, 10500, 2000, 10600, 10500)
	start, end, pct, ok := rssGrowth(s, 3*time.Second)
	if !ok || start != 10000 || end != 10500 || pct != 5 {
		t.Fatalf("rssGrowth = %d, %d, %.2f%%, %v; want 10000, 10500, 5%%, true", start, end, pct, ok)
	}
	if _, _, _, ok := rssGrowth(s, 5*time.Second); ok {
		t.Error("rssGrowth judged 8 samples after warm-up; want at least 10")
	}
	r := result{rssLimitPct: 4, rssMeasured: true, rssGrowthPct: pct}
	if !r.failed() {
		t.Error("5% growth over a 4% limit does not fail the run")
	}
	r.rssLimitPct = 10
	if r.failed() {
		t.Error("5% growth under a 10% limit fails the run")
	}
	r.rssMeasured = false
	if !r.failed() {
		t.Error("an unmeasured RSS under a limit does not fail the run")
	}
}

func TestRSSSeries(t *testing.T) {
	s := series(1024, 2048, 3072, 4096, 5120)
	if got, want := rssSeries(s, 3), "0s/0/1.0 2s/20/3.0 4s/40/5.0"; got != want {
		t.Errorf("rssSeries(3 points) = %q, want %q", got, want)
	}
	// The last sample is always shown.
	if got, want := rssSeries(s, 2), "0s/0/1.0 4s/40/5.0"; got != want {
		t.Errorf("rssSeries(2 points) = %q, want %q", got, want)
	}
}
