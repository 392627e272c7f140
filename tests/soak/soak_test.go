package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestSelfTestCountersFire runs a short soak with out-of-band deletes of a leased key and a
// leased service account, and out-of-band creates of one of each: both counters must say 2,
// one of each kind, and the run must count as failed.
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
	if len(res.leaked) != 2 || len(res.premature) != 2 {
		t.Fatalf("%s: want leaked_credentials=2 premature_deletes=2", res.line())
	}
	leaked := map[string]string{}
	for _, c := range res.leaked {
		leaked[c.Kind] = c.Desc
	}
	if leaked[kindAPIKey] != "out-of-band key" || leaked[kindServiceAccount] != "out-of-band-account" {
		t.Errorf("the leaked credentials are %+v, not the out-of-band key and service account", res.leaked)
	}
	premature := map[string]string{}
	for _, p := range res.premature {
		premature[p.Kind] = p.Path
	}
	if premature[kindAPIKey] != "creds/self-test-key" || premature[kindServiceAccount] != "creds/self-test-sa" {
		t.Errorf("the premature deletes are %+v, not the self-test's key and service account", res.premature)
	}
	if !res.failed() {
		t.Error("a run with leaks and premature deletes does not count as failed")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
