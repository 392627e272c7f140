package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// results is a minimal run: both plugins, one load round, a storm, and the given
// service-account rounds of ours.
func results(sa []*SARound) *Results {
	plan, _ := planFor("quick")
	side := func(name string) *SideResults {
		load := &LoadRound{}
		for _, sc := range plan.Scenarios {
			load.Scenarios = append(load.Scenarios, ScenarioResult{Scenario: sc, P50MS: 100, P99MS: 110, Throughput: 9, Requests: uint64(2 * sc.Issues), RoundTrips: 2})
		}
		return &SideResults{
			Name: name, BinarySize: 1 << 20, ColdStartMS: []float64{2}, FirstRequestMS: []float64{20},
			Load:  []*LoadRound{load},
			Storm: &StormResult{Leases: 200, Drained: true, DrainS: 3, RevokedAtS: []float64{3}},
		}
	}
	res := &Results{Plan: plan, Network: "n", Sides: map[string]*SideResults{"ours": side("ours"), "official": side("official")}}
	res.Sides["ours"].ServiceAccounts = sa
	return res
}

func saRound(saRequests uint64) *SARound {
	one := Scenario{LatencyMS: 50, Concurrency: 1, Issues: 10}
	return &SARound{
		TokenLifetimeS: 3600,
		ServiceAccount: ScenarioResult{Scenario: one, P50MS: 104, Requests: saRequests, RoundTrips: float64(saRequests) / 10},
		APIKey:         ScenarioResult{Scenario: one, P50MS: 103, Requests: 20, RoundTrips: 2},
		TokenLoad:      ScenarioResult{Scenario: Scenario{50, 64, 250}, Failures: 0, TokenRequests: 1},
	}
}

func TestServiceAccountMetricsAreOursOnly(t *testing.T) {
	res := results([]*SARound{saRound(20)})
	s := Summarize(res)
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]map[string]any
	_ = json.Unmarshal(raw, &out)
	want := map[string]float64{
		"sa_issue_p50_50ms_c1": 104, "sa_atlas_requests_per_issue": 2, "key_atlas_requests_per_issue": 2,
		"token_requests_per_1000_issues": 4,
	}
	for k, v := range want {
		m := out[k]
		if m["ours"] != v || m["official"] != nil || m["ratio"] != nil || m["ours_only"] != true {
			t.Errorf("%s = %v, want ours %v, official and ratio null, ours_only", k, m, v)
		}
	}
	if m := out["p50_latency_50ms_c1"]; m["official"] != 100.0 || m["ours_only"] != nil {
		t.Errorf("a compared metric changed: %v", m)
	}
	md := markdown(res, s)
	for _, line := range []string{
		"With a warm token, a service-account issuance costs the same number of Atlas round trips as an API-key issuance: 2.00 vs 2.00",
		"| Token requests per 1,000 issuances, 64 callers, sim +50 ms, tokens live 3600 s | 4.00 |",
	} {
		if !strings.Contains(md, line) {
			t.Errorf("summary.md lacks %q:\n%s", line, md)
		}
	}
	met := map[string]bool{}
	for _, target := range s.Targets {
		met[target.Metric] = target.Met
	}
	for _, k := range []string{"sa_atlas_requests_per_issue", "token_requests_per_1000_issues", "service_account_cleanup"} {
		if !met[k] {
			t.Errorf("target %s missed or absent: %+v", k, s.Targets)
		}
	}

	// More requests than an API key: reported, never fatal.
	s = Summarize(results([]*SARound{saRound(30)}))
	if md := markdown(res, s); !strings.Contains(md, "costs MORE Atlas round trips than an API-key issuance: 3.00 vs 2.00") {
		t.Errorf("summary.md does not say so:\n%s", md)
	}
}

func TestARunWithoutServiceAccountsStillReports(t *testing.T) {
	res := results(nil) // e.g. -from-raw of a run made before service accounts
	s := Summarize(res)
	if md := markdown(res, s); strings.Contains(md, "service accounts (ours only") {
		t.Errorf("service-account section without service-account rounds:\n%s", md)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"sa_issue_p50_50ms_c1":{"official":null,"ours":null,"ours_only":true,"ratio":null`) {
		t.Errorf("unmeasured service-account metric: %s", raw)
	}
}
