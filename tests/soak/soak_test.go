package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestSelfTestCountersFire runs a short soak with one out-of-band delete of a leased key and
// one out-of-band create: both counters must say 1, and the run must count as failed.
// Needs ENGINE_BINARY and ATLAS_SIM_BINARY (absolute paths); skipped otherwise.
func TestSelfTestCountersFire(t *testing.T) {
	engine, simBin := os.Getenv("ENGINE_BINARY"), os.Getenv("ATLAS_SIM_BINARY")
	if engine == "" || simBin == "" {
		t.Skip("ENGINE_BINARY and ATLAS_SIM_BINARY are not both set (scripts/soak.sh sets them)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := run(ctx, config{
		engine: engine, simBin: simBin, seed: 7, ops: 150, duration: 60 * time.Second,
		workers: 2, maxLive: 40, selfTest: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	res.summary(testWriter{t})
	if len(res.leaked) != 1 || len(res.premature) != 1 {
		t.Fatalf("%s: want leaked_keys=1 premature_deletes=1", res.line())
	}
	if res.leaked[0].Desc != "out-of-band key" {
		t.Errorf("the leaked key is %+v, not the out-of-band one", res.leaked[0])
	}
	if !res.failed() {
		t.Error("a run with a leak and a premature delete does not count as failed")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
