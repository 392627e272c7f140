// Command soak hosts the production plugin binary as Vault does (the conformance harness's
// Host) against a real atlas-sim process and runs a randomized mix of operations with random
// Atlas faults, with roles issuing API keys and service accounts and the config logging in
// with either, then checks that no credential leaked and none was deleted while its lease
// lived.
//
// The last line of output is always
// `operations=N faults=N leaked_credentials=N premature_deletes=N leaked_grants=N` followed by
// the plugin's RSS at the start and the end after warm-up and its growth (once setup
// succeeded; both counters cover API keys and service accounts); the exit status is 1 if a
// credential leaked, one was deleted prematurely, a lease could not be revoked, an unexpected
// error class occurred, or the RSS grew beyond --rss-limit; 2 on a setup failure.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainExit())
}

func mainExit() int {
	var (
		quick    = flag.Bool("quick", false, "short run for CI: 3000 operations, at most 100s")
		seed     = flag.Uint64("seed", 0, "PRNG seed (0: random, printed)")
		ops      = flag.Int("ops", 0, "operation count bound (default 3000 with --quick, else 30000)")
		duration = flag.Duration("duration", 0, "wall-time bound of the operations (default 100s with --quick, else 13m)")
		workers  = flag.Int("workers", 8, "concurrent workers")
		maxLive  = flag.Int("max-live", 120, "live leases above which workers revoke instead of issuing")
		selfTest = flag.Bool("self-test", false, "delete a leased key and a leased service account and create one unleased of each out of band: the counters must show 2 and 2")
		unsafeRb = flag.Bool("unsafe-rollback", false, "run immediate rollbacks while issuances are in flight (expected to cause premature deletes: checks the counter)")
		engine   = flag.String("engine", os.Getenv("ENGINE_BINARY"), "production plugin binary (absolute path)")
		simBin   = flag.String("sim", os.Getenv("ATLAS_SIM_BINARY"), "atlas-sim binary (absolute path)")
		logPath  = flag.String("logs", "", "file for the host, plugin and simulator logs (default: discarded)")
		rssEvery = flag.Duration("rss-every", 0, "interval of the plugin RSS samples (default 10s; 2s with --quick)")
		rssWarm  = flag.Duration("rss-warmup", 0, "samples before this are warm-up, not growth (default: a sixth of --duration)")
		rssLimit = flag.Float64("rss-limit", 0, "fail if the plugin's RSS grows by more than this percent after warm-up (0: report only)")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "soak: unexpected arguments %v\n", flag.Args())
		return 2
	}
	cfg := config{workers: *workers, maxLive: *maxLive, selfTest: *selfTest, unsafeRollback: *unsafeRb, ops: *ops, duration: *duration, progress: os.Stderr,
		rssEvery: *rssEvery, rssWarmup: *rssWarm, rssLimitPct: *rssLimit}
	switch {
	case cfg.ops == 0 && *quick:
		cfg.ops = 3000
	case cfg.ops == 0:
		cfg.ops = 30000
	}
	switch {
	case cfg.duration == 0 && *quick:
		cfg.duration = 100 * time.Second
	case cfg.duration == 0:
		cfg.duration = 13 * time.Minute
	}
	if cfg.rssEvery == 0 && *quick {
		cfg.rssEvery = 2 * time.Second
	}
	if cfg.rssWarmup == 0 {
		cfg.rssWarmup = cfg.duration / 6
	}
	if cfg.ops <= 0 || cfg.duration <= 0 || cfg.workers <= 0 || cfg.maxLive <= 0 {
		fmt.Fprintln(os.Stderr, "soak: --ops, --duration, --workers and --max-live must be positive")
		return 2
	}
	for name, bin := range map[string]string{"--engine": *engine, "--sim": *simBin} {
		if bin == "" || !filepath.IsAbs(bin) {
			fmt.Fprintf(os.Stderr, "soak: %s must be an absolute path (got %q)\n", name, bin)
			return 2
		}
	}
	cfg.engine, cfg.simBin = *engine, *simBin
	cfg.seed = *seed
	if cfg.seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
			return 2
		}
		cfg.seed = binary.LittleEndian.Uint64(b[:]) >> 1
	}
	cfg.logs = io.Discard
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
			return 2
		}
		defer f.Close()
		cfg.logs = f
	}

	fmt.Printf("soak: seed=%d ops=%d duration=%v workers=%d self_test=%v unsafe_rollback=%v\n", cfg.seed, cfg.ops, cfg.duration, cfg.workers, cfg.selfTest, cfg.unsafeRollback)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: setup failed: %v\n", err)
		return 2
	}
	res.summary(os.Stdout)
	fmt.Printf("soak: seed=%d took %v\n", cfg.seed, time.Since(start).Round(time.Second))
	fmt.Println(res.line())
	if res.failed() {
		return 1
	}
	return 0
}
