package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
	"rss_1000_mounts", "rss_per_mount",
	"p50_latency_0ms_c1", "p50_latency_50ms_c1", "p99_latency_50ms_c64",
	"atlas_round_trips_per_issue", "vault_calls_per_issue", "throughput_c64",
	"revoke_p50_50ms_c1", "revoke_p99_50ms_c64",
	"e2e_p50_0ms_c1", "e2e_p50_50ms_c1", "e2e_p99_50ms_c16",
	"revocation_storm_s",
}

// binarySizeBaseline is binary_size.ours in the results committed when the end-to-end,
// revocation and many-mounts measurements were added: every feature since may grow the
// binary by at most 15 % over it.
const binarySizeBaseline = 6250000

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
	"rss_1000_mounts":             "RSS, 1,000 mounts (config, role, one issuance each)",
	"rss_per_mount":               "RSS added per mount (of those 1,000)",
	"vault_calls_per_issue":       "Calls into Vault per issuance (storage, WAL, system view)",
	"revoke_p50_50ms_c1":          "revoke p50, sim +50 ms, 1 caller",
	"revoke_p99_50ms_c64":         "revoke p99, sim +50 ms, 64 callers",
	"e2e_p50_0ms_c1":              "vault read creds p50 via Vault, +0 ms, 1 caller (official: builtin engine)",
	"e2e_p50_50ms_c1":             "vault read creds p50 via Vault, +50 ms, 1 caller (official: builtin engine)",
	"e2e_p99_50ms_c16":            "vault read creds p99 via Vault, +50 ms, 16 callers (official: builtin engine)",

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

	rev := func(key string, pick func(ScenarioResult) float64) func(*SideResults) float64 {
		return func(s *SideResults) float64 { return median(revocationValues(s, key, pick)) }
	}
	metrics["revoke_p50_50ms_c1"] = metric("ms", rev("50ms_c1", p50))
	metrics["revoke_p99_50ms_c64"] = metric("ms", rev("50ms_c64", p99))
	metrics["vault_calls_per_issue"] = metric("calls", func(s *SideResults) float64 { return vaultCallsPerOp(s, false) })
	metrics["rss_1000_mounts"] = metric("bytes", func(s *SideResults) float64 {
		return median(manyMountsValues(s, func(r *ManyMountsRound) float64 { return float64(r.RSSAfterIssue) }))
	})
	metrics["rss_per_mount"] = metric("bytes", func(s *SideResults) float64 {
		return median(manyMountsValues(s, func(r *ManyMountsRound) float64 { return r.PerMount() }))
	})
	e2e := func(key string, pick func(ScenarioResult) float64) Metric {
		if res.E2E == nil {
			return Metric{Ours: math.NaN(), Official: math.NaN(), Ratio: math.NaN(), Unit: "ms"}
		}
		a, b := median(e2eValues(res.E2E.creds("ours"), key, pick)), median(e2eValues(res.E2E.creds("builtin"), key, pick))
		return Metric{Ours: a, Official: b, Ratio: ratio(a, b), Unit: "ms"}
	}
	metrics["e2e_p50_0ms_c1"] = e2e("0ms_c1", p50)
	metrics["e2e_p50_50ms_c1"] = e2e("50ms_c1", p50)
	metrics["e2e_p99_50ms_c16"] = e2e("50ms_c16", p99)

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
	revocations := map[string]any{}
	for _, sc := range res.Plan.Revocations {
		k := sc.Key()
		entry := map[string]any{}
		for _, side := range []*SideResults{o, f} {
			v := func(pick func(ScenarioResult) float64) float64 { return round(median(revocationValues(side, k, pick))) }
			entry[side.Name] = dropNaN(map[string]float64{
				"p50_ms": v(p50), "p99_ms": v(p99), "throughput_per_s": v(tput),
				"round_trips":         v(func(sc ScenarioResult) float64 { return sc.RoundTrips }),
				"vault_calls":         v(func(sc ScenarioResult) float64 { return sc.VaultCallsPerOp }),
				"revocation_failures": v(func(sc ScenarioResult) float64 { return float64(sc.Failures) }),
			})
		}
		revocations[k] = entry
	}
	vaultCalls := map[string]any{}
	for _, side := range []*SideResults{o, f} {
		vaultCalls[side.Name] = map[string]any{
			"per_issue": nullable(vaultCallsPerOp(side, false)), "per_issue_by_kind": vaultCallsByKind(side, false),
			"per_revoke": nullable(vaultCallsPerOp(side, true)), "per_revoke_by_kind": vaultCallsByKind(side, true),
		}
	}
	many := map[string]any{}
	for _, side := range []*SideResults{o, f} {
		v := func(pick func(*ManyMountsRound) float64) float64 { return round(median(manyMountsValues(side, pick))) }
		many[side.Name] = dropNaN(map[string]float64{
			"rounds":                     float64(len(side.ManyMounts)),
			"mounts":                     v(func(r *ManyMountsRound) float64 { return float64(r.Mounts) }),
			"rss_1_mount_bytes":          v(func(r *ManyMountsRound) float64 { return float64(r.RSS1Mount) }),
			"rss_after_setup_bytes":      v(func(r *ManyMountsRound) float64 { return float64(r.RSSAfterSetup) }),
			"rss_after_issue_bytes":      v(func(r *ManyMountsRound) float64 { return float64(r.RSSAfterIssue) }),
			"rss_anon_after_issue_bytes": v(func(r *ManyMountsRound) float64 { return float64(r.RSSAnonAfter) }),
			"threads_after_issue":        v(func(r *ManyMountsRound) float64 { return float64(r.Threads) }),
			"setup_s":                    v(func(r *ManyMountsRound) float64 { return r.SetupS }),
			"issue_s":                    v(func(r *ManyMountsRound) float64 { return r.IssueS }),
			"leftover_keys":              v(func(r *ManyMountsRound) float64 { return float64(r.LeftoverKeys) }),
			"sockets_after_setup":        v(func(r *ManyMountsRound) float64 { return float64(r.SocketsAfterSetup) }),
			"sockets_after_issue":        v(func(r *ManyMountsRound) float64 { return float64(r.SocketsAfterIssue) }),
		})
	}
	var e2eDetails map[string]any
	if res.E2E != nil {
		e2eDetails = map[string]any{
			"vault":    res.E2E.Vault,
			"official": "Vault's builtin mongodbatlas engine (in Vault's process), same Vault server",
			"rounds":   res.Plan.E2ERounds,
		}
		rr := func(rs []ScenarioResult, pick func(ScenarioResult) float64) float64 {
			var out []float64
			for _, sc := range rs {
				out = append(out, pick(sc))
			}
			return round(median(out))
		}
		reads, writes := map[string]any{}, map[string]any{}
		for name, eng := range res.E2E.Engines {
			reads[name] = dropNaN(map[string]float64{"p50_ms": rr(eng.RoleRead, p50), "p99_ms": rr(eng.RoleRead, p99)})
			writes[name] = dropNaN(map[string]float64{"p50_ms": rr(eng.RoleWrite, p50), "p99_ms": rr(eng.RoleWrite, p99)})
		}
		e2eDetails["role_read"], e2eDetails["role_write"] = reads, writes
		for _, sc := range res.Plan.E2E {
			entry := map[string]any{}
			for name, eng := range res.E2E.Engines {
				rs := eng.Creds
				v := func(pick func(ScenarioResult) float64) float64 { return round(median(e2eValues(rs, sc.Key(), pick))) }
				entry[name] = dropNaN(map[string]float64{
					"p50_ms": v(p50), "p99_ms": v(p99), "throughput_per_s": v(tput),
					"round_trips":       v(func(sc ScenarioResult) float64 { return sc.RoundTrips }),
					"issuance_failures": v(func(sc ScenarioResult) float64 { return float64(sc.Failures) }),
				})
			}
			e2eDetails[sc.Key()] = entry
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
			"revocations":         revocations,
			"vault_calls":         vaultCalls,
			"many_mounts":         many,
			"e2e":                 e2eDetails,
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
		ratioTarget("revoke_p50_50ms_c1", "<= 0.3", func(r float64) bool { return r <= 0.3 }),
		ratioTarget("revoke_p99_50ms_c64", "<= 0.3", func(r float64) bool { return r <= 0.3 }),
		ratioTarget("e2e_p50_0ms_c1", "<= 1.25", func(r float64) bool { return r <= 1.25 }),
		ratioTarget("e2e_p50_50ms_c1", "<= 0.52", func(r float64) bool { return r <= 0.52 }),
		ratioTarget("rss_1000_mounts", "<= 0.15", func(r float64) bool { return r <= 0.15 }),
		{Metric: "binary_size", Goal: fmt.Sprintf("ours: <= %.0f bytes (+15 %% over %d)", binarySizeBaseline*1.15, binarySizeBaseline),
			Value: fmt.Sprintf("%.0f bytes (%+.1f %%)", metrics["binary_size"].Ours, (metrics["binary_size"].Ours/binarySizeBaseline-1)*100),
			Met:   metrics["binary_size"].Ours <= binarySizeBaseline*1.15},
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

func revocationValues(side *SideResults, key string, pick func(ScenarioResult) float64) []float64 {
	var out []float64
	for _, round := range side.Load {
		for _, sc := range round.Revocations {
			if sc.Key() == key {
				out = append(out, pick(sc))
			}
		}
	}
	return out
}

func e2eValues(rs []ScenarioResult, key string, pick func(ScenarioResult) float64) []float64 {
	var out []float64
	for _, sc := range rs {
		if sc.Key() == key {
			out = append(out, pick(sc))
		}
	}
	return out
}

func manyMountsValues(side *SideResults, pick func(*ManyMountsRound) float64) []float64 {
	var out []float64
	for _, r := range side.ManyMounts {
		out = append(out, pick(r))
	}
	return out
}

// creds is an engine's end-to-end creds samples (none if it was not measured).
func (e *E2EResults) creds(engine string) []ScenarioResult {
	if eng := e.Engines[engine]; eng != nil {
		return eng.Creds
	}
	return nil
}

// vaultCallsPerOp is, per load round, every counted call into Vault over every issuance (or
// timed revocation) of the round; the median round. NaN when nothing was counted.
func vaultCallsPerOp(side *SideResults, revocations bool) float64 {
	var perRound []float64
	for _, round := range side.Load {
		scs := round.Scenarios
		if revocations {
			scs = round.Revocations
		}
		var calls, ops float64
		counted := false
		for _, sc := range scs {
			if sc.VaultCalls == nil {
				continue
			}
			counted = true
			for _, n := range sc.VaultCalls {
				calls += float64(n)
			}
			ops += float64(sc.Issues - sc.Failures)
		}
		if counted && ops > 0 {
			perRound = append(perRound, calls/ops)
		}
	}
	return median(perRound)
}

// vaultCallsByKind is calls of each kind per operation over all load rounds.
func vaultCallsByKind(side *SideResults, revocations bool) map[string]float64 {
	sums := map[string]float64{}
	var ops float64
	for _, round := range side.Load {
		scs := round.Scenarios
		if revocations {
			scs = round.Revocations
		}
		for _, sc := range scs {
			if sc.VaultCalls == nil {
				continue
			}
			for k, n := range sc.VaultCalls {
				sums[k] += float64(n)
			}
			ops += float64(sc.Issues - sc.Failures)
		}
	}
	out := map[string]float64{}
	for k, v := range sums {
		if ops > 0 {
			out[k] = round(v / ops)
		}
	}
	return out
}

// dropNaN leaves out what was not measured (JSON has no NaN).
func dropNaN(m map[string]float64) map[string]float64 {
	maps.DeleteFunc(m, func(_ string, v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	return m
}

// nullable is v, or nil (JSON null) when it was not measured.
func nullable(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return round(v)
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
		if math.Abs(v) < 1<<20 {
			return fmt.Sprintf("%.0f KiB", v/(1<<10))
		}
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
	b.WriteString(roundTwoMarkdown(res, s))
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
		"summary.json":   buf.Bytes(),
		"summary.md":     []byte(markdown(res, s)),
		"ratios.svg":     ratioPlot(s),
		"latency.svg":    latencyPlot(res, s),
		"storm.svg":      stormPlot(res),
		"revoke_e2e.svg": revokeE2EPlot(res, s),
		"mounts.svg":     mountsPlot(s),
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

// roundTwoMarkdown is summary.md's table of timed revocations and end-to-end reads, and the
// lines on calls into Vault and on many mounts.
func roundTwoMarkdown(res *Results, s Summary) string {
	var b strings.Builder
	b.WriteString("\n| revocation / end to end | ours p50 | ours p99 | official p50 | official p99 | HTTP req/op (ours, official) |\n|---|---:|---:|---:|---:|---|\n")
	if rev, _ := s.Details["revocations"].(map[string]any); rev != nil {
		for _, sc := range res.Plan.Revocations {
			e, _ := rev[sc.Key()].(map[string]any)
			if e == nil {
				continue
			}
			so, sf := e["ours"].(map[string]float64), e["official"].(map[string]float64)
			fmt.Fprintf(&b, "| revoke, +%d ms, %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f, %.2f |\n", sc.LatencyMS, callers(sc.Concurrency),
				so["p50_ms"], so["p99_ms"], sf["p50_ms"], sf["p99_ms"], so["round_trips"], sf["round_trips"])
		}
	}
	if e2e, _ := s.Details["e2e"].(map[string]any); e2e != nil {
		for _, sc := range res.Plan.E2E {
			e, _ := e2e[sc.Key()].(map[string]any)
			if e == nil {
				continue
			}
			so, sf := e["ours"].(map[string]float64), e["builtin"].(map[string]float64)
			fmt.Fprintf(&b, "| vault read creds via Vault %v (official: builtin engine), +%d ms, %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f, %.2f |\n",
				e2e["vault"], sc.LatencyMS, callers(sc.Concurrency), so["p50_ms"], so["p99_ms"], sf["p50_ms"], sf["p99_ms"], so["round_trips"], sf["round_trips"])
		}
		var ext []string
		for _, sc := range res.Plan.E2E {
			if e, _ := e2e[sc.Key()].(map[string]any); e != nil {
				if x, ok := e["official_external"].(map[string]float64); ok {
					ext = append(ext, fmt.Sprintf("+%d ms, %s: p50 %.1f ms, p99 %.1f ms", sc.LatencyMS, callers(sc.Concurrency), x["p50_ms"], x["p99_ms"]))
				}
			}
		}
		if len(ext) > 0 {
			fmt.Fprintf(&b, "\nFor reference, the official plugin registered as an external plugin on the same server: %s.\n", strings.Join(ext, "; "))
		}
	}
	if e2e, _ := s.Details["e2e"].(map[string]any); e2e != nil {
		rr, _ := e2e["role_read"].(map[string]any)
		rw, _ := e2e["role_write"].(map[string]any)
		if rr != nil && rw != nil {
			o, f := rr["ours"].(map[string]float64), rr["builtin"].(map[string]float64)
			wo, wf := rw["ours"].(map[string]float64), rw["builtin"].(map[string]float64)
			xo, _ := rr["official_external"].(map[string]float64)
			xw, _ := rw["official_external"].(map[string]float64)
			fmt.Fprintf(&b, "\nThrough Vault, with no Atlas call: `vault read <mount>/roles/bench` (one storage read) takes %.2f ms (p50) with ours, %.2f ms with the builtin engine and %.2f ms with the official plugin as an external plugin (the plugin hop); writing the role (a read and a write: a raft commit) %.2f ms, %.2f ms and %.2f ms.\n",
				o["p50_ms"], f["p50_ms"], xo["p50_ms"], wo["p50_ms"], wf["p50_ms"], xw["p50_ms"])
		}
	}
	if vc, _ := s.Details["vault_calls"].(map[string]any); vc != nil {
		kinds := func(side string, key string) string {
			m, _ := vc[side].(map[string]any)
			byKind, _ := m[key].(map[string]float64)
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(byKind)) {
				parts = append(parts, fmt.Sprintf("%s %.2f", k, byKind[k]))
			}
			if len(parts) == 0 {
				return "none"
			}
			return strings.Join(parts, ", ")
		}
		fmt.Fprintf(&b, "\nCalls into Vault per issuance: ours %.2f (%s); official %.2f (%s). Per revocation: ours %s; official %s.\n",
			s.Metrics["vault_calls_per_issue"].Ours, kinds("ours", "per_issue_by_kind"), s.Metrics["vault_calls_per_issue"].Official,
			kinds("official", "per_issue_by_kind"), kinds("ours", "per_revoke_by_kind"), kinds("official", "per_revoke_by_kind"))
	}
	if many, _ := s.Details["many_mounts"].(map[string]any); many != nil {
		o, f := many["ours"].(map[string]float64), many["official"].(map[string]float64)
		if o["rounds"] > 0 {
			fmt.Fprintf(&b, "\n%.0f multiplexed mounts in one process: ours %s with 1 mount, %s after setting up all, %s after one issuance on each (%.0f, then %.0f open sockets); official %s, %s, %s (%.0f, then %.0f sockets).\n",
				o["mounts"], human(o["rss_1_mount_bytes"], "bytes"), human(o["rss_after_setup_bytes"], "bytes"), human(o["rss_after_issue_bytes"], "bytes"),
				o["sockets_after_setup"], o["sockets_after_issue"],
				human(f["rss_1_mount_bytes"], "bytes"), human(f["rss_after_setup_bytes"], "bytes"), human(f["rss_after_issue_bytes"], "bytes"),
				f["sockets_after_setup"], f["sockets_after_issue"])
		}
	}
	return b.String()
}
