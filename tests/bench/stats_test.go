package main

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	values := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	cases := map[float64]float64{50: 5, 90: 9, 99: 10, 100: 10, 1: 1}
	for p, want := range cases {
		if got := percentile(values, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing must be NaN")
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd median = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("even median = %v", got)
	}
}

func TestRatioAndRound(t *testing.T) {
	if got := ratio(1, 4); got != 0.25 {
		t.Errorf("ratio = %v", got)
	}
	if !math.IsNaN(ratio(1, 0)) {
		t.Error("ratio over zero must be NaN")
	}
	if got := round(123456); got != 123500 {
		t.Errorf("round = %v", got)
	}
	if got := round(0.0012345); got != 0.001235 && got != 0.001234 {
		t.Errorf("round small = %v", got)
	}
}

func TestVaultBackoffStaysInVaultsWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for attempt := 1; attempt < maxRevokeAttempts; attempt++ {
		base := time.Duration(1<<attempt) * revokeRetryBase
		for range 100 {
			d := vaultBackoff(attempt, rng)
			if d < base/2 || d > base*3/2 {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, base/2, base*3/2)
			}
		}
	}
}
