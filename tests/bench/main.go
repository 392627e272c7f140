// Command bench compares two MongoDB Atlas secrets-engine plugins (ours and the official Go
// plugin) hosted exactly as Vault hosts them (the conformance harness's Host: SDK plugin
// client, AutoMTLS, multiplexing, in-memory storage, static system view) against one atlas-sim,
// interleaving the two plugins round by round. Run it through scripts/bench.sh.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/conformance"
	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

// Plan is how much of everything a mode measures.
type Plan struct {
	Mode        string        `json:"mode"`
	ColdRounds  int           `json:"cold_start_rounds"`
	FirstRounds int           `json:"first_request_rounds"`
	LoadRounds  int           `json:"load_rounds"`
	Mounts      int           `json:"mounts"`
	IdleSettle  time.Duration `json:"idle_settle_ns"`
	WarmUp      int           `json:"warm_up_issues"`
	Scenarios   []Scenario    `json:"scenarios"`
	// Timed revocations in each load round (Issues: leases issued beforehand, then revoked).
	Revocations []Scenario `json:"revocations"`
	// One process with this many mounts (config, role, one issuance each), rounds of it.
	ManyMounts       int `json:"many_mounts"`
	ManyMountsRounds int `json:"many_mounts_rounds"`
	// End to end through a real Vault server (ours vs the builtin engine): scenarios, rounds.
	E2E         []Scenario    `json:"e2e"`
	E2ERounds   int           `json:"e2e_rounds"`
	StormLeases int           `json:"storm_leases"`
	StormBound  time.Duration `json:"storm_bound_ns"`
	// Service accounts (ours only): rounds, issuances of each credential type at +50 ms with
	// one caller, the token load (a fresh mount, many callers), and its variant with tokens
	// living ShortTokenLifetime (0: none): as many issuances as the token load's throughput
	// makes in ShortTokenLoadFor (several lifetimes), at most ShortTokenLoad.Issues.
	SARounds           int           `json:"service_account_rounds"`
	SAIssues           int           `json:"service_account_issues"`
	TokenLoad          Scenario      `json:"token_load"`
	ShortTokenLoad     Scenario      `json:"short_token_load"`
	ShortTokenLoadFor  time.Duration `json:"short_token_load_for_ns"`
	ShortTokenLifetime time.Duration `json:"short_token_lifetime_ns"`
}

func planFor(mode string) (Plan, error) {
	switch mode {
	case "full":
		return Plan{
			Mode: mode, ColdRounds: 15, FirstRounds: 7, LoadRounds: 3, Mounts: 10,
			IdleSettle: time.Second, WarmUp: 8,
			Scenarios: []Scenario{
				{0, 1, 40}, {0, 16, 160}, {0, 64, 640},
				{50, 1, 25}, {50, 16, 160}, {50, 64, 640},
			},
			Revocations: []Scenario{{50, 1, 25}, {50, 64, 640}},
			ManyMounts:  1000, ManyMountsRounds: 3,
			E2E: []Scenario{{0, 1, 40}, {50, 1, 25}, {50, 16, 160}}, E2ERounds: 3,
			StormLeases: 1000, StormBound: 8 * time.Minute,
			SARounds: 3, SAIssues: 25, TokenLoad: Scenario{50, 64, 1000},
			ShortTokenLoad: Scenario{50, 64, 4000}, ShortTokenLoadFor: 8 * time.Second, ShortTokenLifetime: 2 * time.Second,
		}, nil
	case "quick":
		return Plan{
			Mode: mode, ColdRounds: 5, FirstRounds: 3, LoadRounds: 1, Mounts: 10,
			IdleSettle: time.Second, WarmUp: 4,
			Scenarios: []Scenario{
				{0, 1, 15}, {0, 16, 64}, {0, 64, 256},
				{50, 1, 10}, {50, 16, 64}, {50, 64, 256},
			},
			Revocations: []Scenario{{50, 1, 10}, {50, 64, 128}},
			ManyMounts:  1000, ManyMountsRounds: 1,
			E2E: []Scenario{{0, 1, 15}, {50, 1, 8}, {50, 16, 64}}, E2ERounds: 1,
			StormLeases: 200, StormBound: 2 * time.Minute,
			SARounds: 1, SAIssues: 10, TokenLoad: Scenario{50, 64, 256},
			ShortTokenLoad: Scenario{50, 64, 2000}, ShortTokenLoadFor: 4 * time.Second, ShortTokenLifetime: 2 * time.Second,
		}, nil
	}
	return Plan{}, fmt.Errorf("mode %q: want full or quick", mode)
}

// SideResults is every sample taken of one plugin.
type SideResults struct {
	Name           string             `json:"name"`
	Binary         string             `json:"binary"`
	Version        string             `json:"version"`
	BinarySize     int64              `json:"binary_size_bytes"`
	ColdStartMS    []float64          `json:"cold_start_ms"`
	FirstRequestMS []float64          `json:"first_request_ms"`
	Load           []*LoadRound       `json:"load_rounds"`
	ManyMounts     []*ManyMountsRound `json:"many_mounts_rounds"`
	// Service-account rounds (ours only).
	ServiceAccounts []*SARound   `json:"service_account_rounds,omitempty"`
	Storm           *StormResult `json:"storm"`
}

// Results is the raw outcome of a run (target/bench/raw.json).
type Results struct {
	Plan          Plan                    `json:"plan"`
	Started       time.Time               `json:"started"`
	DurationS     float64                 `json:"duration_s"`
	Machine       Machine                 `json:"machine"`
	Network       string                  `json:"network"`
	SimArgs       []string                `json:"sim_args"`
	DefaultLimits atlassim.RateLimit      `json:"default_rate_limits"`
	Sides         map[string]*SideResults `json:"sides"`
	// End to end through Vault: ours against the builtin engine (nil without -vault).
	E2E *E2EResults `json:"e2e,omitempty"`
	// Extra plugin environment given with -ours-env/-official-env (experiments only).
	ExtraEnv map[string][]string `json:"extra_env,omitempty"`
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// Bench holds what every phase needs.
type Bench struct {
	plan          Plan
	sim           *atlassim.Sim
	defaultLimits atlassim.RateLimit
	log           io.Writer
	vault         string // the vault binary of the end-to-end phase ("": skipped)
	network       []string
	logDir        string
}

func (b *Bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

func main() {
	mode := flag.String("mode", "full", "full or quick")
	ours := flag.String("ours", "", "our plugin binary")
	official := flag.String("official", "", "the official plugin binary (v0.16.0)")
	oursVersion := flag.String("ours-version", "v0.1.0", "our plugin's version")
	simBinary := flag.String("sim", "", "the atlas-sim binary")
	vaultBin := flag.String("vault", "", "a vault binary for the end-to-end phase (none: the phase is skipped)")
	out := flag.String("out", "target/bench", "output directory")
	rustc := flag.String("rustc", "", "rustc --version of the toolchain that built our plugin")
	timeout := flag.Duration("timeout", 25*time.Minute, "give up after this long")
	var oursEnv, officialEnv envList
	flag.Var(&oursEnv, "ours-env", "KEY=VALUE added to our plugin's environment (repeatable; for experiments)")
	flag.Var(&officialEnv, "official-env", "KEY=VALUE added to the official plugin's environment (repeatable)")
	only := flag.String("only", "", "comma-separated phases to run (cold,first,load,mounts,e2e,sa,storm), for experiments: writes raw.json only")
	fromRaw := flag.String("from-raw", "", "only rewrite the reports in -out from this raw.json of an earlier run")
	flag.Parse()

	if *fromRaw != "" {
		if err := rewriteReports(*fromRaw, *out); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	code, err := run(*mode, *only, *ours, *official, *oursVersion, *simBinary, *vaultBin, *out, *rustc, *timeout, oursEnv, officialEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	os.Exit(code)
}

// run returns the exit code: 0 done, 1 the benchmark broke, 2 our plugin leaked keys.
func run(mode, only, ours, official, oursVersion, simBinary, vaultBin, out, rustc string, timeout time.Duration, oursEnv, officialEnv []string) (int, error) {
	plan, err := planFor(mode)
	if err != nil {
		return 1, err
	}
	if only != "" {
		if plan, err = onlyPhases(plan, only); err != nil {
			return 1, err
		}
	}
	for name, path := range map[string]string{"-ours": ours, "-official": official, "-sim": simBinary} {
		if !filepath.IsAbs(path) {
			return 1, fmt.Errorf("%s needs an absolute path (got %q)", name, path)
		}
	}
	logDir := filepath.Join(out, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return 1, err
	}
	// SIGTERM (bench.sh's timeout) or an interrupt cancels every phase, so the deferred
	// cleanups still stop the simulator and the plugin processes.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, timeout)
	defer cancel()

	simLog, err := os.Create(filepath.Join(logDir, "atlas-sim.log"))
	if err != nil {
		return 1, err
	}
	defer simLog.Close()
	caPath, err := filepath.Abs(filepath.Join(out, "sim-ca.pem"))
	if err != nil {
		return 1, err
	}
	// TLS and the CONNECT proxy so both plugins reach "https://cloud.mongodb.com" the same way;
	// rate limits start off (re-enabled for the storm); no journal, so the simulator spends
	// nothing on bookkeeping the benchmark does not read; Atlas's token lifetime (3600 s).
	simArgs := []string{"--tls", "--proxy", "--ca-out", caPath, "--no-rate-limit",
		"--max-keys-per-org", "5000", "--max-service-accounts-per-org", "5000",
		"--token-lifetime-secs", "3600", "--journal-capacity", "0"}
	startCtx, startCancel := context.WithTimeout(ctx, 30*time.Second)
	sim, err := atlassim.Launch(startCtx, simBinary, atlassim.Config{Flags: simArgs, Stderr: simLog, AdminTimeout: 30 * time.Second})
	startCancel()
	if err != nil {
		return 1, err
	}
	defer func() { _ = sim.Stop() }()
	if sim.Info.ProxyURL == "" || sim.Info.CAPath == "" {
		return 1, errors.New("atlas-sim reported no proxy_url or ca_path")
	}
	limits, err := sim.RateLimit(ctx)
	if err != nil {
		return 1, err
	}
	limits.Enabled = true // the simulator's defaults are Atlas's documented limits

	b := &Bench{plan: plan, sim: sim, defaultLimits: limits, log: os.Stderr, vault: vaultBin, logDir: logDir}
	network := []string{"HTTPS_PROXY=" + sim.Info.ProxyURL, "SSL_CERT_FILE=" + sim.Info.CAPath}
	b.network = network
	creds := map[string]any{"public_key": sim.Info.PublicKey, "private_key": sim.Info.PrivateKey}
	sides := []*Side{
		{Name: "ours", Binary: ours, Version: oursVersion, Env: append(slices.Clone(network), oursEnv...), Config: creds},
		{Name: "official", Binary: official, Version: "v0.16.0", Env: append(slices.Clone(network), officialEnv...), Config: creds},
	}
	res := &Results{
		Plan: plan, Started: time.Now().UTC(), Machine: describeMachine(rustc), SimArgs: simArgs,
		DefaultLimits: limits, Sides: map[string]*SideResults{},
		ExtraEnv: map[string][]string{"ours": oursEnv, "official": officialEnv},
		Network: "both plugins keep the default Atlas URL https://cloud.mongodb.com and reach atlas-sim " +
			"through its CONNECT proxy (HTTPS_PROXY) over TLS, trusting its CA via SSL_CERT_FILE",
	}
	for _, s := range sides {
		st, err := os.Stat(s.Binary)
		if err != nil {
			return 1, err
		}
		logFile, err := os.Create(filepath.Join(logDir, s.Name+".log"))
		if err != nil {
			return 1, err
		}
		defer logFile.Close()
		s.logs = logFile
		res.Sides[s.Name] = &SideResults{Name: s.Name, Binary: s.Binary, Version: s.Version, BinarySize: st.Size()}
	}

	if err := b.measure(ctx, sides, res); err != nil {
		return 1, fmt.Errorf("%w: %v", errBroken, err)
	}
	res.DurationS = time.Since(res.Started).Seconds()

	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return 1, err
	}
	if err := os.WriteFile(filepath.Join(out, "raw.json"), raw, 0o644); err != nil {
		return 1, err
	}
	if only != "" {
		fmt.Fprintf(os.Stderr, "bench: -only %s: raw.json written, no reports\n", only)
		return 0, nil
	}
	summary := Summarize(res)
	if err := WriteReport(out, res, summary); err != nil {
		return 1, err
	}
	md, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err == nil {
		fmt.Print(string(md))
	}
	if leaks := res.Sides["ours"].Storm.Leaks; leaks > 0 {
		return 2, fmt.Errorf("our plugin leaked %d Atlas keys in the revocation storm", leaks)
	}
	return 0, nil
}

// measure runs every phase, the two plugins alternating within each round.
func (b *Bench) measure(ctx context.Context, sides []*Side, res *Results) error {
	id, err := conformance.NewIdentity()
	if err != nil {
		return err
	}
	for _, s := range sides { // warm the page cache; not recorded
		if _, err := ColdStart(ctx, s, id); err != nil {
			return err
		}
	}
	for r := range b.plan.ColdRounds {
		for _, s := range sides {
			d, err := ColdStart(ctx, s, id)
			if err != nil {
				return err
			}
			res.Sides[s.Name].ColdStartMS = append(res.Sides[s.Name].ColdStartMS, ms(d))
			b.logf("cold start %d/%d %s: %.1f ms", r+1, b.plan.ColdRounds, s.Name, ms(d))
		}
	}
	for r := range b.plan.FirstRounds {
		for _, s := range sides {
			d, err := FirstRequest(ctx, s, &b.sim.Info)
			if err != nil {
				return fmt.Errorf("%s first request: %w", s.Name, err)
			}
			res.Sides[s.Name].FirstRequestMS = append(res.Sides[s.Name].FirstRequestMS, ms(d))
			b.logf("first request %d/%d %s: %.1f ms", r+1, b.plan.FirstRounds, s.Name, ms(d))
		}
	}
	for r := range b.plan.LoadRounds {
		for _, s := range sides {
			round, err := b.Load(ctx, s)
			if err != nil {
				return fmt.Errorf("%s load round %d: %w", s.Name, r+1, err)
			}
			res.Sides[s.Name].Load = append(res.Sides[s.Name].Load, round)
			b.logf("load %d/%d %s: idle RSS %.1f MiB, peak RSS %.1f MiB", r+1, b.plan.LoadRounds, s.Name,
				float64(round.IdleRSS)/(1<<20), float64(round.PeakRSS)/(1<<20))
			for _, sc := range append(slices.Clone(round.Scenarios), round.Revocations...) {
				b.logf("  %-9s p50 %7.1f ms  p99 %7.1f ms  %7.1f/s  %.2f round trips/op  %.2f Vault calls/op %v  failures %d",
					sc.Key(), sc.P50MS, sc.P99MS, sc.Throughput, sc.RoundTrips, sc.VaultCallsPerOp, sc.VaultCalls, sc.Failures)
			}
		}
	}
	for r := range b.plan.ManyMountsRounds {
		for _, s := range sides {
			round, err := b.ManyMounts(ctx, s)
			if err != nil {
				return fmt.Errorf("%s %d mounts, round %d: %w", s.Name, b.plan.ManyMounts, r+1, err)
			}
			res.Sides[s.Name].ManyMounts = append(res.Sides[s.Name].ManyMounts, round)
			b.logf("%d mounts %d/%d %s: RSS %.1f MiB with 1, %.1f MiB after setup, %.1f MiB after an issuance on each (%.1f KiB per mount); setup %.1f s, issuance %.1f s",
				round.Mounts, r+1, b.plan.ManyMountsRounds, s.Name, mib(round.RSS1Mount), mib(round.RSSAfterSetup), mib(round.RSSAfterIssue),
				round.PerMount()/1024, round.SetupS, round.IssueS)
		}
	}
	if b.vault != "" && b.plan.E2ERounds > 0 {
		ours := sides[slices.IndexFunc(sides, func(s *Side) bool { return s.Name == "ours" })]
		official := sides[slices.IndexFunc(sides, func(s *Side) bool { return s.Name == "official" })]
		e2e, err := b.E2E(ctx, b.vault, ours.Binary, official.Binary, b.logDir, b.network, ours.Config)
		if err != nil {
			return fmt.Errorf("end to end through Vault: %w", err)
		}
		res.E2E = e2e
	}
	// Service accounts: ours only, the official plugin has none.
	ours := sides[slices.IndexFunc(sides, func(s *Side) bool { return s.Name == "ours" })]
	for r := range b.plan.SARounds {
		s := ours
		started := time.Now()
		round, err := b.ServiceAccounts(ctx, s)
		if err != nil {
			return fmt.Errorf("%s service-account round %d: %w", s.Name, r+1, err)
		}
		res.Sides[s.Name].ServiceAccounts = append(res.Sides[s.Name].ServiceAccounts, round)
		b.logf("service accounts %d/%d %s (tokens live %.0f s):", r+1, b.plan.SARounds, s.Name, round.TokenLifetimeS)
		for _, sc := range []struct {
			what string
			res  *ScenarioResult
		}{{"service account", &round.ServiceAccount}, {"API key", &round.APIKey}, {"token load", &round.TokenLoad}, {"short tokens", round.ShortTokenLoad}} {
			if sc.res != nil {
				b.logf("  %-15s %-9s p50 %7.1f ms  p99 %7.1f ms  %7.1f/s  %.2f requests/issue  %d token requests  failures %d",
					sc.what, sc.res.Key(), sc.res.P50MS, sc.res.P99MS, sc.res.Throughput, sc.res.RoundTrips, sc.res.TokenRequests, sc.res.Failures)
			}
		}
		b.logf("  left after revocation: %d service accounts, %d keys; round took %.1f s",
			round.LeftoverAccounts, round.LeftoverKeys, time.Since(started).Seconds())
	}
	for i, s := range sides {
		if b.plan.StormLeases == 0 {
			break
		}
		b.logf("revocation storm %s: %d leases", s.Name, b.plan.StormLeases)
		storm, err := b.Storm(ctx, s, uint64(i+1))
		if err != nil {
			return fmt.Errorf("%s storm: %w", s.Name, err)
		}
		res.Sides[s.Name].Storm = storm
		b.logf("storm %s: drained %v in %.1f s, first-attempt failures %d, unrevoked %d, leaks %d",
			s.Name, storm.Drained, storm.DrainS, storm.FirstAttemptFailures, storm.Unrevoked, storm.Leaks)
	}
	return nil
}

// rewriteReports recomputes summary.json, summary.md and the plots from recorded samples.
func rewriteReports(rawPath, out string) error {
	raw, err := os.ReadFile(rawPath)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("%s: %w", rawPath, err)
	}
	for _, name := range []string{"ours", "official"} {
		if s := res.Sides[name]; s == nil || s.Storm == nil {
			return fmt.Errorf("%s holds no complete %s results", rawPath, name)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return WriteReport(out, &res, Summarize(&res))
}

// onlyPhases keeps the phases named in a comma-separated list and zeroes the others.
func onlyPhases(p Plan, only string) (Plan, error) {
	keep := map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		switch name {
		case "cold", "first", "load", "mounts", "e2e", "sa", "storm":
			keep[name] = true
		default:
			return p, fmt.Errorf("-only: unknown phase %q", name)
		}
	}
	for name, n := range map[string]*int{"cold": &p.ColdRounds, "first": &p.FirstRounds, "load": &p.LoadRounds,
		"mounts": &p.ManyMountsRounds, "e2e": &p.E2ERounds, "sa": &p.SARounds, "storm": &p.StormLeases} {
		if !keep[name] {
			*n = 0
		}
	}
	return p, nil
}
