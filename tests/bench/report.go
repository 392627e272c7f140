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
}

// MarshalJSON writes NaN (a metric that could not be computed) as null.
func (m Metric) MarshalJSON() ([]byte, error) {
	num := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return round(v)
	}
	return json.Marshal(map[string]any{"ours": num(m.Ours), "official": num(m.Official), "ratio": num(m.Ratio), "unit": m.Unit})
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
	return sum
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
		fmt.Fprintf(&b, "| %s | %s | %s | %.3g | %s |\n", metricLabels[k], human(m.Ours, m.Unit), human(m.Official, m.Unit), m.Ratio, goals[k])
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
