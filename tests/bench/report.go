package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where the numbers were taken.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mib"`
	Kernel   string `json:"kernel"`
	OS       string `json:"os"`
	Go       string `json:"go"`
	Rustc    string `json:"rustc"`
}

func describeMachine(rustc string) Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), Rustc: rustc}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPU = strings.TrimSpace(value)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				fields := strings.Fields(rest)
				if len(fields) > 0 {
					kb, _ := strconv.ParseInt(fields[0], 10, 64)
					m.MemoryMB = kb / 1024
				}
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	return m
}

// Metric is one compared number.
type Metric struct {
	Ours     float64 `json:"ours"`
	Official float64 `json:"official"`
	Ratio    float64 `json:"ratio"`
	Unit     string  `json:"unit"`
	// OursOnly: the official plugin cannot do this (service accounts); Official and Ratio
	// are NaN, written as null, with "ours_only": true.
	OursOnly bool `json:"ours_only,omitempty"`
}

// oursOnly is a metric of ours alone.
func oursOnly(unit string, v float64) Metric {
	return Metric{Ours: v, Official: math.NaN(), Ratio: math.NaN(), Unit: unit, OursOnly: true}
}

// MarshalJSON writes NaN (a metric that could not be computed) as null.
func (m Metric) MarshalJSON() ([]byte, error) {
	num := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return round(v)
	}
	out := map[string]any{"ours": num(m.Ours), "official": num(m.Official), "ratio": num(m.Ratio), "unit": m.Unit}
	if m.OursOnly {
		out["ours_only"] = true
	}
	return json.Marshal(out)
}

// PerSide is a count for each plugin.
type PerSide struct {
	Ours     int `json:"ours"`
	Official int `json:"official"`
}

// Target is a goal on the ours/official ratio (or an absolute requirement).
type Target struct {
	Metric string `json:"metric"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Met    bool   `json:"met"`
}

// metricOrder is the summary's metric keys, in report order.
var metricOrder = []string{
	"binary_size", "cold_start_ms", "first_request_ms", "idle_rss_10_mounts", "peak_rss",
	"p50_latency_0ms_c1", "p50_latency_50ms_c1", "p99_latency_50ms_c64",
	"atlas_round_trips_per_issue", "throughput_c64", "revocation_storm_s",
}

var metricLabels = map[string]string{
	"binary_size":                 "Binary size",
	"cold_start_ms":               "Cold start (exec → handshake)",
	"first_request_ms":            "First request (launch → Setup → config read)",
	"idle_rss_10_mounts":          "Idle RSS, 10 multiplexed mounts",
	"peak_rss":                    "Peak RSS during the load test",
	"p50_latency_0ms_c1":          "creds p50, sim +0 ms, 1 caller",
	"p50_latency_50ms_c1":         "creds p50, sim +50 ms, 1 caller",
	"p99_latency_50ms_c64":        "creds p99, sim +50 ms, 64 callers",
	"atlas_round_trips_per_issue": "Atlas HTTP requests per issuance",
	"throughput_c64":              "Issuances/s, 64 callers, sim +50 ms",
	"revocation_storm_s":          "Revocation storm: time to drain",

	// Ours only (service accounts), in their own table.
	"sa_issue_p50_50ms_c1":           "creds p50, service-account role, sim +50 ms, 1 caller, warm token",
	"sa_atlas_requests_per_issue":    "Atlas HTTP requests per issuance: service account, warm token",
	"key_atlas_requests_per_issue":   "Atlas HTTP requests per issuance: API key, API-key login",
	"token_requests_per_1000_issues": "Token requests per 1,000 issuances",
}

// Summary is target/bench/summary.json.
type Summary struct {
	Mode      string
	Metrics   map[string]Metric
	Failures  PerSide
	Unrevoked PerSide
	Leaks     PerSide
	Drained   map[string]bool
	Targets   []Target
	Machine   Machine
	Details   map[string]any
}

// MarshalJSON puts every metric at the top level, so `.cold_start_ms.ratio` works.
func (s Summary) MarshalJSON() ([]byte, error) {
	out := map[string]any{
		"mode":                       s.Mode,
		"machine":                    s.Machine,
		"revocation_storm_failures":  map[string]any{"ours": s.Failures.Ours, "official": s.Failures.Official, "unit": "revocations whose first attempt failed"},
		"revocation_storm_unrevoked": map[string]any{"ours": s.Unrevoked.Ours, "official": s.Unrevoked.Official, "unit": "leases not revoked after Vault-style retries"},
		"revocation_storm_leaks":     map[string]any{"ours": s.Leaks.Ours, "official": s.Leaks.Official, "unit": "issued keys left in Atlas"},
		"revocation_storm_drained":   s.Drained,
		"targets":                    s.Targets,
		"details":                    s.Details,
	}
	for k, m := range s.Metrics {
		out[k] = m
	}
	return json.Marshal(out)
}

func scenarioValues(side *SideResults, key string, pick func(ScenarioResult) float64) []float64 {
	var out []float64
	for _, round := range side.Load {
		for _, sc := range round.Scenarios {
			if sc.Key() == key {
				out = append(out, pick(sc))
			}
		}
	}
	return out
}

// roundTrips is, per load round, all Atlas requests over all issuances; the median round.
func roundTrips(side *SideResults) float64 {
	var perRound []float64
	for _, round := range side.Load {
		var reqs, issues float64
		for _, sc := range round.Scenarios {
			reqs += float64(sc.Requests)
			issues += float64(sc.Issues - sc.Failures)
		}
		if issues > 0 {
			perRound = append(perRound, reqs/issues)
		}
	}
	return median(perRound)
}

func loadValues(side *SideResults, pick func(*LoadRound) int64) []float64 {
	var out []float64
	for _, r := range side.Load {
		out = append(out, float64(pick(r)))
	}
	return out
}

// Summarize reduces the samples: medians over rounds of each round's statistic.
func Summarize(res *Results) Summary {
	o, f := res.Sides["ours"], res.Sides["official"]
	metric := func(unit string, value func(*SideResults) float64) Metric {
		a, b := value(o), value(f)
		return Metric{Ours: a, Official: b, Ratio: ratio(a, b), Unit: unit}
	}
	scen := func(key string, pick func(ScenarioResult) float64) func(*SideResults) float64 {
		return func(s *SideResults) float64 { return median(scenarioValues(s, key, pick)) }
	}
	p50 := func(sc ScenarioResult) float64 { return sc.P50MS }
	p99 := func(sc ScenarioResult) float64 { return sc.P99MS }
	tput := func(sc ScenarioResult) float64 { return sc.Throughput }
	metrics := map[string]Metric{
		"binary_size":      metric("bytes", func(s *SideResults) float64 { return float64(s.BinarySize) }),
		"cold_start_ms":    metric("ms", func(s *SideResults) float64 { return median(s.ColdStartMS) }),
		"first_request_ms": metric("ms", func(s *SideResults) float64 { return median(s.FirstRequestMS) }),
		"idle_rss_10_mounts": metric("bytes", func(s *SideResults) float64 {
			return median(loadValues(s, func(r *LoadRound) int64 { return r.IdleRSS }))
		}),
		"peak_rss": metric("bytes", func(s *SideResults) float64 {
			return median(loadValues(s, func(r *LoadRound) int64 { return r.PeakRSS }))
		}),
		"p50_latency_0ms_c1":          metric("ms", scen("0ms_c1", p50)),
		"p50_latency_50ms_c1":         metric("ms", scen("50ms_c1", p50)),
		"p99_latency_50ms_c64":        metric("ms", scen("50ms_c64", p99)),
		"atlas_round_trips_per_issue": metric("HTTP requests", roundTrips),
		"throughput_c64":              metric("issuances/s", scen("50ms_c64", tput)),
		"revocation_storm_s":          metric("s", func(s *SideResults) float64 { return s.Storm.DrainS }),
	}

	// Every scenario's medians, for the table and the plots.
	scenarios := map[string]any{}
	for _, sc := range res.Plan.Scenarios {
		k := sc.Key()
		entry := map[string]any{}
		for _, side := range []*SideResults{o, f} {
			entry[side.Name] = map[string]float64{
				"p50_ms":                  round(median(scenarioValues(side, k, p50))),
				"p99_ms":                  round(median(scenarioValues(side, k, p99))),
				"throughput_per_s":        round(median(scenarioValues(side, k, tput))),
				"round_trips":             round(median(scenarioValues(side, k, func(sc ScenarioResult) float64 { return sc.RoundTrips }))),
				"issuance_failures":       median(scenarioValues(side, k, func(sc ScenarioResult) float64 { return float64(sc.Failures) })),
				"revocation_failures":     median(scenarioValues(side, k, func(sc ScenarioResult) float64 { return float64(sc.RevokeFailures) })),
				"plugin_cpu_ms_per_issue": round(median(scenarioValues(side, k, func(sc ScenarioResult) float64 { return sc.PluginCPUMS }))),
				"sim_cpu_ms_per_issue":    round(median(scenarioValues(side, k, func(sc ScenarioResult) float64 { return sc.SimCPUMS }))),
				"host_cpu_ms_per_issue":   round(median(scenarioValues(side, k, func(sc ScenarioResult) float64 { return sc.HostCPUMS }))),
			}
		}
		scenarios[k] = entry
	}
	idle := map[string]any{}
	for _, side := range []*SideResults{o, f} {
		idle[side.Name] = map[string]float64{
			"rss_bytes":              median(loadValues(side, func(r *LoadRound) int64 { return r.IdleRSS })),
			"rss_anon_bytes":         median(loadValues(side, func(r *LoadRound) int64 { return r.IdleRSSAnon })),
			"rss_file_bytes":         median(loadValues(side, func(r *LoadRound) int64 { return r.IdleRSSFile })),
			"threads":                median(loadValues(side, func(r *LoadRound) int64 { return r.IdleThreads })),
			"rss_1_mount_bytes":      median(loadValues(side, func(r *LoadRound) int64 { return r.IdleRSS1Mount })),
			"rss_anon_1_mount_bytes": median(loadValues(side, func(r *LoadRound) int64 { return r.IdleRSSAnon1Mount })),
		}
	}
	storms := map[string]any{}
	for _, side := range []*SideResults{o, f} {
		s := side.Storm
		storms[side.Name] = map[string]any{
			"leases": s.Leases, "drained": s.Drained, "drain_s": round(s.DrainS), "bound_s": s.BoundS,
			"first_attempt_failures": s.FirstAttemptFailures, "failed_attempts": s.FailedAttempts,
			"unrevoked": s.Unrevoked, "irrevocable": s.Irrevocable, "max_attempts_used": s.MaxTry,
			"atlas_requests": s.Atlas, "atlas_rate_limited": s.Limited, "leaked_keys": s.Leaks,
		}
	}

	var saDetails map[string]any
	sa := o.ServiceAccounts
	metrics["sa_issue_p50_50ms_c1"] = oursOnly("ms", saMedian(sa, func(r *SARound) float64 { return r.ServiceAccount.P50MS }))
	metrics["sa_atlas_requests_per_issue"] = oursOnly("HTTP requests", saMedian(sa, func(r *SARound) float64 { return r.ServiceAccount.RoundTrips }))
	metrics["key_atlas_requests_per_issue"] = oursOnly("HTTP requests", saMedian(sa, func(r *SARound) float64 { return r.APIKey.RoundTrips }))
	metrics["token_requests_per_1000_issues"] = oursOnly("token requests", saMedian(sa, func(r *SARound) float64 { return tokensPer1000(r.TokenLoad) }))
	if len(sa) > 0 {
		saDetails = serviceAccountDetails(res.Plan, sa)
	}

	sum := Summary{
		Mode:      res.Plan.Mode,
		Metrics:   metrics,
		Failures:  PerSide{o.Storm.FirstAttemptFailures, f.Storm.FirstAttemptFailures},
		Unrevoked: PerSide{o.Storm.Unrevoked, f.Storm.Unrevoked},
		Leaks:     PerSide{o.Storm.Leaks, f.Storm.Leaks},
		Drained:   map[string]bool{"ours": o.Storm.Drained, "official": f.Storm.Drained},
		Machine:   res.Machine,
		Details: map[string]any{
			"network":             res.Network,
			"simulator_args":      res.SimArgs,
			"extra_plugin_env":    res.ExtraEnv,
			"storm_rate_limits":   res.DefaultLimits,
			"plan":                res.Plan,
			"duration_s":          round(res.DurationS),
			"scenarios":           scenarios,
			"idle_rss_10_mounts":  idle,
			"storms":              storms,
			"throughput_c64_0ms":  metric("issuances/s", scen("0ms_c64", tput)),
			"p99_latency_0ms_c64": metric("ms", scen("0ms_c64", p99)),
			"service_accounts":    saDetails,
			"samples": map[string]any{
				"cold_start_ms":    map[string][]float64{"ours": o.ColdStartMS, "official": f.ColdStartMS},
				"first_request_ms": map[string][]float64{"ours": o.FirstRequestMS, "official": f.FirstRequestMS},
			},
		},
	}
	ratioTarget := func(key, goal string, ok func(float64) bool) Target {
		r := metrics[key].Ratio
		return Target{Metric: key, Goal: "ours/official " + goal, Value: fmt.Sprintf("%.3g", r), Met: !math.IsNaN(r) && ok(r)}
	}
	sum.Targets = []Target{
		ratioTarget("cold_start_ms", "<= 0.2", func(r float64) bool { return r <= 0.2 }),
		ratioTarget("idle_rss_10_mounts", "<= 0.25", func(r float64) bool { return r <= 0.25 }),
		ratioTarget("p50_latency_50ms_c1", "<= 0.6", func(r float64) bool { return r <= 0.6 }),
		ratioTarget("throughput_c64", ">= 2", func(r float64) bool { return r >= 2 }),
		{Metric: "revocation_storm", Goal: "ours: 0 unrevoked after retries, 0 leaked keys",
			Value: fmt.Sprintf("%d unrevoked, %d leaked", o.Storm.Unrevoked, o.Storm.Leaks),
			Met:   o.Storm.Unrevoked == 0 && o.Storm.Leaks == 0},
	}
	if len(sa) > 0 {
		saReqs, keyReqs := metrics["sa_atlas_requests_per_issue"].Ours, metrics["key_atlas_requests_per_issue"].Ours
		left := saMedian(sa, func(r *SARound) float64 { return float64(r.LeftoverAccounts + r.LeftoverKeys) })
		tokens := saMedian(sa, func(r *SARound) float64 { return float64(r.TokenLoad.TokenRequests) })
		sum.Targets = append(sum.Targets,
			Target{Metric: "sa_atlas_requests_per_issue", Goal: "ours: <= key_atlas_requests_per_issue (warm token: no more round trips than an API key)",
				Value: fmt.Sprintf("%.2f vs %.2f", saReqs, keyReqs), Met: saReqs <= keyReqs+0.005},
			Target{Metric: "token_requests_per_1000_issues", Goal: "ours: at most 1 token request per fresh mount under load",
				Value: fmt.Sprintf("%.0f per mount", tokens), Met: tokens <= 1},
			Target{Metric: "service_account_cleanup", Goal: "ours: nothing issued left after revocation",
				Value: fmt.Sprintf("%.0f left", left), Met: left == 0})
	}
	return sum
}

// saMedian is the median over the service-account rounds of a round's statistic.
func saMedian(rounds []*SARound, pick func(*SARound) float64) float64 {
	var out []float64
	for _, r := range rounds {
		out = append(out, pick(r))
	}
	return median(out)
}

// serviceAccountDetails is summary.json's details.service_accounts: every service-account
// measurement, medians over the rounds.
func serviceAccountDetails(plan Plan, rounds []*SARound) map[string]any {
	sc := func(pick func(*SARound) *ScenarioResult) map[string]any {
		// NaN (nothing measured) is written as null.
		v := func(f func(*ScenarioResult) float64) any {
			m := saMedian(rounds, func(r *SARound) float64 {
				if s := pick(r); s != nil {
					return f(s)
				}
				return math.NaN()
			})
			if math.IsNaN(m) {
				return nil
			}
			return round(m)
		}
		return map[string]any{
			"p50_ms":                         v(func(s *ScenarioResult) float64 { return s.P50MS }),
			"p99_ms":                         v(func(s *ScenarioResult) float64 { return s.P99MS }),
			"throughput_per_s":               v(func(s *ScenarioResult) float64 { return s.Throughput }),
			"requests_per_issue":             v(func(s *ScenarioResult) float64 { return s.RoundTrips }),
			"challenges":                     v(func(s *ScenarioResult) float64 { return float64(s.Challenges) }),
			"token_requests":                 v(func(s *ScenarioResult) float64 { return float64(s.TokenRequests) }),
			"token_requests_per_1000_issues": v(func(s *ScenarioResult) float64 { return tokensPer1000(*s) }),
			"wall_s":                         v(func(s *ScenarioResult) float64 { return s.WallS }),
			"issuance_failures":              v(func(s *ScenarioResult) float64 { return float64(s.Failures) }),
			"revocation_failures":            v(func(s *ScenarioResult) float64 { return float64(s.RevokeFailures) }),
			"plugin_cpu_ms_per_issue":        v(func(s *ScenarioResult) float64 { return s.PluginCPUMS }),
		}
	}
	out := map[string]any{
		"rounds":                    len(rounds),
		"token_lifetime_s":          saMedian(rounds, func(r *SARound) float64 { return r.TokenLifetimeS }),
		"issues_per_round":          plan.SAIssues,
		"token_load_plan":           plan.TokenLoad,
		"service_account":           sc(func(r *SARound) *ScenarioResult { return &r.ServiceAccount }),
		"api_key":                   sc(func(r *SARound) *ScenarioResult { return &r.APIKey }),
		"token_load":                sc(func(r *SARound) *ScenarioResult { return &r.TokenLoad }),
		"leftover_service_accounts": saMedian(rounds, func(r *SARound) float64 { return float64(r.LeftoverAccounts) }),
		"leftover_keys":             saMedian(rounds, func(r *SARound) float64 { return float64(r.LeftoverKeys) }),
	}
	if rounds[0].ShortTokenLoad != nil {
		short := sc(func(r *SARound) *ScenarioResult { return r.ShortTokenLoad })
		short["token_lifetime_s"] = rounds[0].ShortTokenLifetimeS
		short["issues"] = saMedian(rounds, func(r *SARound) float64 {
			if r.ShortTokenLoad == nil {
				return math.NaN()
			}
			return float64(r.ShortTokenLoad.Issues)
		})
		out["short_token_load"] = short
	}
	return out
}

// human formats a value with its unit for the markdown table.
func human(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case "bytes":
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "s":
		return fmt.Sprintf("%.1f s", v)
	case "issuances/s":
		return fmt.Sprintf("%.0f /s", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func markdown(res *Results, s Summary) string {
	var b strings.Builder
	goals := map[string]string{}
	for _, t := range s.Targets {
		mark := "missed"
		if t.Met {
			mark = "met"
		}
		goals[t.Metric] = fmt.Sprintf("%s (%s)", strings.TrimPrefix(t.Goal, "ours/official "), mark)
	}
	fmt.Fprintf(&b, "### Benchmark: ours vs the official plugin v0.16.0 (%s mode)\n\n", s.Mode)
	b.WriteString("| metric | ours | official | ours/official | target |\n|---|---:|---:|---:|---|\n")
	for _, k := range metricOrder {
		m := s.Metrics[k]
		ours, official, r := human(m.Ours, m.Unit), human(m.Official, m.Unit), fmt.Sprintf("%.3g", m.Ratio)
		if k == "revocation_storm_s" {
			// A storm cut off by the bound only gives a lower bound on its time.
			if !s.Drained["ours"] {
				ours, r = "≥ "+ours, "≥ "+r
			}
			if !s.Drained["official"] {
				official, r = "≥ "+official+" (not drained)", "≤ "+r
			}
			if !s.Drained["ours"] && !s.Drained["official"] {
				r = "n/a"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", metricLabels[k], ours, official, r, goals[k])
	}
	o, f := res.Sides["ours"].Storm, res.Sides["official"].Storm
	drained := func(st *StormResult) string {
		if st.Drained {
			return "drained"
		}
		return fmt.Sprintf("NOT drained within %.0f s", st.BoundS)
	}
	fmt.Fprintf(&b, "| Storm: first-attempt failures | %d | %d | | |\n", o.FirstAttemptFailures, f.FirstAttemptFailures)
	fmt.Fprintf(&b, "| Storm: unrevoked after retries | %d (%s) | %d (%s) | | %s |\n", o.Unrevoked, drained(o), f.Unrevoked, drained(f), goals["revocation_storm"])
	fmt.Fprintf(&b, "| Storm: leaked keys | %d | %d | | 0 for ours |\n", o.Leaks, f.Leaks)

	b.WriteString("\n| creds scenario | ours p50 | ours p99 | ours /s | official p50 | official p99 | official /s | HTTP req/issue (ours, official) | plugin CPU ms/issue (ours, official) |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	scen := s.Details["scenarios"].(map[string]any)
	for _, sc := range res.Plan.Scenarios {
		e := scen[sc.Key()].(map[string]any)
		so, sf := e["ours"].(map[string]float64), e["official"].(map[string]float64)
		fmt.Fprintf(&b, "| +%d ms, %s | %.1f ms | %.1f ms | %.0f | %.1f ms | %.1f ms | %.0f | %.2f, %.2f | %.2f, %.2f |\n",
			sc.LatencyMS, callers(sc.Concurrency), so["p50_ms"], so["p99_ms"], so["throughput_per_s"],
			sf["p50_ms"], sf["p99_ms"], sf["throughput_per_s"], so["round_trips"], sf["round_trips"],
			so["plugin_cpu_ms_per_issue"], sf["plugin_cpu_ms_per_issue"])
	}
	b.WriteString(serviceAccountMarkdown(s, goals))
	for side, env := range res.ExtraEnv {
		if len(env) > 0 {
			fmt.Fprintf(&b, "\nNote: %s plugin run with extra environment %s (an experiment, not the default setup).\n", side, strings.Join(env, " "))
		}
	}
	m := s.Machine
	fmt.Fprintf(&b, "\nMachine: %s, %d cores, %d MiB, Linux %s, %s, %s. Medians over %d cold starts, %d first requests, %d load rounds per plugin (interleaved); storm of %d leases under Atlas's default org limit (%d tokens, +%d every %d s). %s.\n",
		m.CPU, m.Cores, m.MemoryMB, m.Kernel, m.Go, m.Rustc, res.Plan.ColdRounds, res.Plan.FirstRounds, res.Plan.LoadRounds,
		res.Plan.StormLeases, res.DefaultLimits.Org.Capacity, res.DefaultLimits.Org.Refill, res.DefaultLimits.Org.PeriodMS/1000, strings.ToUpper(res.Network[:1])+res.Network[1:])
	return b.String()
}

// WriteReport writes summary.json, summary.md and the SVG plots.
func WriteReport(dir string, res *Results, s Summary) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	// MarshalIndent re-indents the custom marshaller's compact output.
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	files := map[string][]byte{
		"summary.json": buf.Bytes(),
		"summary.md":   []byte(markdown(res, s)),
		"ratios.svg":   ratioPlot(s),
		"latency.svg":  latencyPlot(res, s),
		"storm.svg":    stormPlot(res),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// serviceAccountMarkdown is summary.md's service-account table (ours only) and the line
// comparing its round trips with an API key's; empty when the run measured none.
func serviceAccountMarkdown(s Summary, goals map[string]string) string {
	d, _ := s.Details["service_accounts"].(map[string]any)
	if d == nil {
		return ""
	}
	var b strings.Builder
	m := func(k string) float64 { return s.Metrics[k].Ours }
	part := func(k string) map[string]any { p, _ := d[k].(map[string]any); return p }
	num := func(p map[string]any, k string) float64 {
		if v, ok := p[k].(float64); ok {
			return v
		}
		return math.NaN()
	}
	saPart, keyPart, load := part("service_account"), part("api_key"), part("token_load")
	plan, _ := d["token_load_plan"].(Scenario)
	b.WriteString("\n| service accounts (ours only: the official plugin has none) | ours | note |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| %s | %s | API-key role in the same run: %s |\n", metricLabels["sa_issue_p50_50ms_c1"],
		human(m("sa_issue_p50_50ms_c1"), "ms"), human(num(keyPart, "p50_ms"), "ms"))
	fmt.Fprintf(&b, "| %s | %s | %s |\n", metricLabels["sa_atlas_requests_per_issue"],
		human(m("sa_atlas_requests_per_issue"), ""), goals["sa_atlas_requests_per_issue"])
	fmt.Fprintf(&b, "| %s | %s | %.0f digest challenges in %v issuances |\n", metricLabels["key_atlas_requests_per_issue"],
		human(m("key_atlas_requests_per_issue"), ""), num(keyPart, "challenges"), d["issues_per_round"])
	fmt.Fprintf(&b, "| %s, %s, sim +%d ms, tokens live %.0f s | %s | %.0f token requests for %d issuances on a fresh mount; %.0f /s, %.0f failures; %s |\n",
		metricLabels["token_requests_per_1000_issues"], callers(plan.Concurrency), plan.LatencyMS, num(d, "token_lifetime_s"),
		human(m("token_requests_per_1000_issues"), ""), num(load, "token_requests"), plan.Issues,
		num(load, "throughput_per_s"), num(load, "issuance_failures"), goals["token_requests_per_1000_issues"])
	if short := part("short_token_load"); short != nil {
		life, wall := num(short, "token_lifetime_s"), num(short, "wall_s")
		// The plugin replaces a token after 80 % of its lifetime (for lifetimes under 25 min).
		fmt.Fprintf(&b, "| The same, %v issuances, tokens living %.0f s | %s | %.0f token requests in %.1f s (≈ %.0f expected: one, then one every %.1f s); %.0f failures |\n",
			short["issues"], life, human(num(short, "token_requests_per_1000_issues"), ""), num(short, "token_requests"), wall,
			1+math.Floor(wall/(0.8*life)), 0.8*life, num(short, "issuance_failures"))
	}
	fmt.Fprintf(&b, "| Left after revocation (service accounts, keys) | %.0f, %.0f | %s |\n",
		num(d, "leftover_service_accounts"), num(d, "leftover_keys"), goals["service_account_cleanup"])
	saReqs, keyReqs := m("sa_atlas_requests_per_issue"), m("key_atlas_requests_per_issue")
	verdict := "the same number of Atlas round trips as"
	switch {
	case math.IsNaN(saReqs) || math.IsNaN(keyReqs):
		verdict = "an unknown number of round trips compared with"
	case saReqs > keyReqs+0.005:
		verdict = "MORE Atlas round trips than"
	case saReqs < keyReqs-0.005:
		verdict = "fewer Atlas round trips than"
	}
	fmt.Fprintf(&b, "\nWith a warm token, a service-account issuance costs %s an API-key issuance: %.2f vs %.2f HTTP requests (%.0f token requests while measuring).\n",
		verdict, saReqs, keyReqs, num(saPart, "token_requests"))
	return b.String()
}
