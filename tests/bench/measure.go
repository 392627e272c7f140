package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/conformance"
	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
	"github.com/hashicorp/vault/sdk/logical"
	bplugin "github.com/hashicorp/vault/sdk/plugin"
)

// Scenario is one issuance load: added simulator latency and concurrency.
type Scenario struct {
	LatencyMS   int `json:"latency_ms"`
	Concurrency int `json:"concurrency"`
	Issues      int `json:"issues"`
}

// tokenRoute is the simulator's stats key of the OAuth token endpoint.
const tokenRoute = "POST /api/oauth/token"

func (s Scenario) Key() string { return fmt.Sprintf("%dms_c%d", s.LatencyMS, s.Concurrency) }

// ScenarioResult is one run of a scenario by one plugin.
type ScenarioResult struct {
	Scenario
	P50MS          float64 `json:"p50_ms"`
	P90MS          float64 `json:"p90_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	MeanMS         float64 `json:"mean_ms"`
	WallS          float64 `json:"wall_s"`
	Throughput     float64 `json:"throughput_per_s"`
	Failures       int     `json:"failures"`
	FirstError     string  `json:"first_error,omitempty"`
	Requests       uint64  `json:"atlas_requests"`
	Challenges     uint64  `json:"atlas_challenges"`
	TokenRequests  uint64  `json:"token_requests"` // POST /api/oauth/token, counted in Requests
	RoundTrips     float64 `json:"atlas_round_trips_per_issue"`
	RevokeFailures int     `json:"revoke_failures"`
	// CPU time (user+system) spent per issuance by each process during the scenario.
	PluginCPUMS float64 `json:"plugin_cpu_ms_per_issue"`
	SimCPUMS    float64 `json:"sim_cpu_ms_per_issue"`
	HostCPUMS   float64 `json:"host_cpu_ms_per_issue"`
	// Calls the plugin made back into Vault (storage, WAL, system view) while the scenario ran,
	// by kind, and their total per operation; absent where the host did not count them.
	VaultCalls      map[string]int64 `json:"vault_calls,omitempty"`
	VaultCallsPerOp float64          `json:"vault_calls_per_op,omitempty"`
}

// LoadRound is one plugin process hosting 10 mounts and running every scenario.
type LoadRound struct {
	IdleRSS int64 `json:"idle_rss_bytes"`
	// Its anonymous (heap, stacks) and file-backed (the executable's and libraries' touched
	// pages) parts, and the thread count, to explain the total.
	IdleRSSAnon int64 `json:"idle_rss_anon_bytes"`
	IdleRSSFile int64 `json:"idle_rss_file_bytes"`
	IdleThreads int64 `json:"idle_threads"`
	// VmRSS and RssAnon with only the first mount set up.
	IdleRSS1Mount     int64            `json:"idle_rss_1_mount_bytes"`
	IdleRSSAnon1Mount int64            `json:"idle_rss_anon_1_mount_bytes"`
	PeakRSS           int64            `json:"peak_rss_bytes"`
	Scenarios         []ScenarioResult `json:"scenarios"`
	// Timed revocations (Vault's expiration manager revoking a lease), same mount.
	Revocations []ScenarioResult `json:"revocations"`
	// Keys still in the simulator after the round's revocations (cleaned up out of band).
	LeftoverKeys int `json:"leftover_keys"`
}

// pluginBaseEnv is the driver's environment without anything that changes how a plugin
// starts (cookies, go-plugin and Vault variables, TMPDIR), as the conformance harness does.
func pluginBaseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == bplugin.HandshakeConfig.MagicCookieKey, name == "TMPDIR",
			strings.HasPrefix(name, "PLUGIN_"), strings.HasPrefix(name, "VAULT_"),
			strings.EqualFold(name, "HTTPS_PROXY"), strings.EqualFold(name, "HTTP_PROXY"),
			strings.EqualFold(name, "NO_PROXY"), name == "SSL_CERT_FILE", name == "SSL_CERT_DIR":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ColdStart times exec → handshake line on stdout, with Vault's launch environment. The
// client identity is made beforehand: it is Vault's cost, not the plugin's.
func ColdStart(ctx context.Context, side *Side, id *conformance.Identity) (time.Duration, error) {
	tmp, err := os.MkdirTemp("", "bench-cold-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	cmd := exec.Command(side.Binary)
	cmd.Env = append(pluginBaseEnv(), conformance.VaultEnv(id, hostVaultVersion)...)
	cmd.Env = append(cmd.Env, side.Env...)
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer stdoutR.Close()
	cmd.Stdout = stdoutW

	lines := make(chan string, 1)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		stdoutW.Close()
		return 0, err
	}
	stdoutW.Close() // the child holds its own copy
	go func() {
		line, _ := bufio.NewReader(stdoutR).ReadString('\n')
		lines <- line
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}

	select {
	case line := <-lines:
		elapsed := time.Since(started)
		stop()
		if _, err := conformance.ParseHandshake(strings.TrimSuffix(line, "\n")); err != nil {
			return 0, fmt.Errorf("%s cold start: %w", side.Name, err)
		}
		return elapsed, nil
	case <-ctx.Done():
		stop()
		return 0, fmt.Errorf("%s cold start: no handshake line: %w", side.Name, ctx.Err())
	}
}

// FirstRequest times what the first `vault read <mount>/config` after enabling a mount costs:
// the catalog launches the plugin (checksum, handshake, AutoMTLS, gRPC dial), Setup and
// Initialize run, then one read goes through. Storage already holds the config.
func FirstRequest(ctx context.Context, side *Side, sim *atlassim.Info) (time.Duration, error) {
	h, err := side.NewHost()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	entry, err := configEntry(sim.PublicKey, sim.PrivateKey)
	if err != nil {
		return 0, err
	}
	storage := &logical.InmemStorage{}
	if err := storage.Put(ctx, entry); err != nil {
		return 0, err
	}

	started := time.Now()
	m, err := h.Dispense(ctx, "mongodbatlas")
	if err != nil {
		return 0, err
	}
	m.Storage = storage
	if err := m.Backend.Setup(ctx, h.BackendConfig(m)); err != nil {
		return 0, fmt.Errorf("Setup: %w", err)
	}
	if err := m.Backend.Initialize(ctx, &logical.InitializationRequest{Storage: storage}); err != nil {
		return 0, fmt.Errorf("Initialize: %w", err)
	}
	resp, err := m.Do(ctx, logical.ReadOperation, "config", nil)
	elapsed := time.Since(started)
	if err != nil {
		return 0, fmt.Errorf("read config: %w", err)
	}
	if resp == nil || resp.IsError() || resp.Data["public_key"] != sim.PublicKey {
		return 0, fmt.Errorf("read config answered %+v", resp)
	}
	cleanupCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = m.Cleanup(cleanupCtx)
	return elapsed, nil
}

// issueBatch issues n credentials of a role with c concurrent callers.
func issueBatch(ctx context.Context, m *conformance.Mount, role string, n, c int) (lat []float64, leases []*Lease, wall time.Duration, failures int, firstErr error) {
	return sample(n, c, func() (*Lease, error) { return Issue(ctx, m, role) })
}

// sample calls op n times with c concurrent callers: the latency (ms) and result of each
// successful call, in matching order, the wall time, and the failures with the first error.
func sample[T any](n, c int, op func() (T, error)) (lat []float64, results []T, wall time.Duration, failures int, firstErr error) {
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t := time.Now()
				result, err := op()
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					failures++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					lat = append(lat, ms(d))
					results = append(results, result)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, results, time.Since(started), failures, firstErr
}

// revokeBatch revokes leases with c concurrent callers and counts failures.
func revokeBatch(ctx context.Context, m *conformance.Mount, leases []*Lease, c int) (failures int, firstErr error) {
	_, failures, firstErr = timedRevokeBatch(ctx, m, leases, c)
	return failures, firstErr
}

// timedRevokeBatch is revokeBatch with the latency of every successful revocation.
func timedRevokeBatch(ctx context.Context, m *conformance.Mount, leases []*Lease, c int) (lat []float64, failures int, firstErr error) {
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(leases)) {
					return
				}
				t := time.Now()
				err := Revoke(ctx, m, leases[i])
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					failures++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					lat = append(lat, ms(d))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, failures, firstErr
}

// Load runs one load round for a plugin: 10 multiplexed mounts (idle RSS), then every
// scenario on the first mount; peak RSS is the process's high-water mark at the end.
func (b *Bench) Load(ctx context.Context, side *Side) (*LoadRound, error) {
	h, err := side.NewHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	round := &LoadRound{}
	calls := newCallCounter()
	mounts := make([]*conformance.Mount, 0, b.plan.Mounts)
	for i := range b.plan.Mounts {
		m, err := mountCounted(ctx, h, fmt.Sprintf("mongodbatlas%d", i), calls)
		if err != nil {
			return nil, fmt.Errorf("mount %d: %w", i, err)
		}
		mounts = append(mounts, m)
		if i == 0 {
			// The same reading with one mount shows what each further mount costs.
			pid, err := Pid(m)
			if err != nil {
				return nil, err
			}
			time.Sleep(b.plan.IdleSettle)
			if round.IdleRSS1Mount, err = procStatusKB(pid, "VmRSS"); err != nil {
				return nil, err
			}
			if round.IdleRSSAnon1Mount, err = procStatusKB(pid, "RssAnon"); err != nil {
				return nil, err
			}
		}
	}
	if h.Spawned() != 1 || !h.Multiplexed() {
		return nil, fmt.Errorf("%s: %d mounts used %d processes (multiplexed: %v); want one", side.Name, len(mounts), h.Spawned(), h.Multiplexed())
	}
	pid, err := Pid(mounts[0])
	if err != nil {
		return nil, err
	}
	// "Idle" is defined as this long after the last Setup with nothing running.
	time.Sleep(b.plan.IdleSettle)
	if round.IdleRSS, err = procStatusKB(pid, "VmRSS"); err != nil {
		return nil, err
	}
	if round.IdleRSSAnon, err = procStatusKB(pid, "RssAnon"); err != nil {
		return nil, err
	}
	if round.IdleRSSFile, err = procStatusKB(pid, "RssFile"); err != nil {
		return nil, err
	}
	if round.IdleThreads, err = procStatusInt(pid, "Threads"); err != nil {
		return nil, err
	}
	// For memory investigations: where the idle RSS lives, mapping by mapping.
	if dir := os.Getenv("BENCH_SMAPS_DIR"); dir != "" {
		if smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, side.Name+"-idle-smaps.txt"), smaps, 0o644)
		}
	}

	m := mounts[0]
	if err := side.Configure(ctx, m, b.sim.Info.OrgID); err != nil {
		return nil, err
	}
	if err := b.warmUp(ctx, side, m, roleName); err != nil {
		return nil, err
	}

	for _, sc := range b.plan.Scenarios {
		res, err := b.scenario(ctx, side, m, pid, roleName, sc, calls)
		if err != nil {
			return nil, err
		}
		round.Scenarios = append(round.Scenarios, *res)
	}
	for _, sc := range b.plan.Revocations {
		res, err := b.revocations(ctx, side, m, pid, sc, calls)
		if err != nil {
			return nil, err
		}
		round.Revocations = append(round.Revocations, *res)
	}
	if round.PeakRSS, err = procStatusKB(pid, "VmHWM"); err != nil {
		return nil, err
	}
	if round.LeftoverKeys, err = b.sim.PurgeIssuedKeys(ctx); err != nil {
		return nil, err
	}
	cleanupCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, m := range mounts {
		_ = m.Cleanup(cleanupCtx)
	}
	return round, nil
}

// warmUp issues and revokes a few credentials of a role, unmeasured (connections, digest
// nonce or service-account token, lazy client construction).
func (b *Bench) warmUp(ctx context.Context, side *Side, m *conformance.Mount, role string) error {
	if err := b.sim.SetLatency(ctx, 0); err != nil {
		return err
	}
	_, warm, _, failed, werr := issueBatch(ctx, m, role, b.plan.WarmUp, 1)
	if failed > 0 {
		return fmt.Errorf("%s warm-up issuance (%s) failed: %w", side.Name, role, werr)
	}
	if failed, err := revokeBatch(ctx, m, warm, 1); failed > 0 {
		return fmt.Errorf("%s warm-up revocation (%s) failed: %w", side.Name, role, err)
	}
	return nil
}

// scenario issues sc.Issues credentials of a role (measured), then revokes them (not measured).
// calls, when not nil, counts the plugin's calls into Vault (storage, system view).
func (b *Bench) scenario(ctx context.Context, side *Side, m *conformance.Mount, pid int, role string, sc Scenario, calls *callCounter) (*ScenarioResult, error) {
	var leases []*Lease
	res, err := b.measured(ctx, side, pid, sc, calls, func() ([]float64, int, time.Duration, int, error) {
		lat, issued, wall, failures, firstErr := issueBatch(ctx, m, role, sc.Issues, sc.Concurrency)
		leases = issued
		return lat, len(issued), wall, failures, firstErr
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s (%s): %w", side.Name, sc.Key(), role, err)
	}
	// Revocation is not part of the measurement: no added latency, many callers.
	if err := b.sim.SetLatency(ctx, 0); err != nil {
		return nil, err
	}
	var firstErr error
	res.RevokeFailures, firstErr = revokeBatch(ctx, m, leases, 64)
	if firstErr != nil {
		b.logf("%s %s: %d revocations failed, first: %v", side.Name, sc.Key(), res.RevokeFailures, firstErr)
	}
	return res, nil
}

// measured runs op (sc.Issues operations with sc.Concurrency callers; it returns their
// latencies, successes, wall time, failures and first error) at the scenario's added
// latency, with the simulator's request counts, CPU times and, when calls is not nil, the
// plugin's calls into Vault taken around it.
func (b *Bench) measured(ctx context.Context, side *Side, pid int, sc Scenario, calls *callCounter, op func() ([]float64, int, time.Duration, int, error)) (*ScenarioResult, error) {
	if err := b.sim.SetLatency(ctx, time.Duration(sc.LatencyMS)*time.Millisecond); err != nil {
		return nil, err
	}
	before, err := b.sim.Stats(ctx)
	if err != nil {
		return nil, err
	}
	cpuBefore, err := cpuTimes(pid, b.sim.Pid())
	if err != nil {
		return nil, err
	}
	var callsBefore map[string]int64
	if calls != nil {
		callsBefore = calls.snapshot()
	}
	lat, done, wall, failures, firstErr := op()
	var callsAfter map[string]int64
	if calls != nil {
		callsAfter = calls.snapshot()
	}
	cpuAfter, err := cpuTimes(pid, b.sim.Pid())
	if err != nil {
		return nil, err
	}
	after, err := b.sim.Stats(ctx)
	if err != nil {
		return nil, err
	}
	if done == 0 {
		return nil, fmt.Errorf("every operation failed: %v", firstErr)
	}
	res := &ScenarioResult{
		Scenario:   sc,
		P50MS:      percentile(lat, 50),
		P90MS:      percentile(lat, 90),
		P99MS:      percentile(lat, 99),
		MaxMS:      percentile(lat, 100),
		MeanMS:     mean(lat),
		WallS:      wall.Seconds(),
		Throughput: float64(done) / wall.Seconds(),
		Failures:   failures,
		Requests:   after.RequestsTotal - before.RequestsTotal,
		Challenges: after.Challenges - before.Challenges,
	}
	res.TokenRequests = after.Routes[tokenRoute].Total - before.Routes[tokenRoute].Total
	res.RoundTrips = float64(res.Requests) / float64(done)
	perOp := func(i int) float64 { return ms(cpuAfter[i]-cpuBefore[i]) / float64(done) }
	res.PluginCPUMS, res.SimCPUMS, res.HostCPUMS = perOp(0), perOp(1), perOp(2)
	if calls != nil {
		var total int64
		res.VaultCalls, total = callsSince(callsBefore, callsAfter)
		res.VaultCallsPerOp = float64(total) / float64(done)
	}
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	return res, nil
}

// revocations issues sc.Issues credentials (not measured: no added latency, 64 callers),
// then revokes them as Vault's expiration manager does at the scenario's latency and
// concurrency (measured). Round trips and Vault calls are per revocation.
func (b *Bench) revocations(ctx context.Context, side *Side, m *conformance.Mount, pid int, sc Scenario, calls *callCounter) (*ScenarioResult, error) {
	if err := b.sim.SetLatency(ctx, 0); err != nil {
		return nil, err
	}
	_, leases, _, failures, firstErr := issueBatch(ctx, m, roleName, sc.Issues, 64)
	if failures > 0 {
		return nil, fmt.Errorf("%s revoke %s: %d issuances failed: %v", side.Name, sc.Key(), failures, firstErr)
	}
	res, err := b.measured(ctx, side, pid, sc, calls, func() ([]float64, int, time.Duration, int, error) {
		started := time.Now()
		lat, failures, firstErr := timedRevokeBatch(ctx, m, leases, sc.Concurrency)
		return lat, len(lat), time.Since(started), failures, firstErr
	})
	if err != nil {
		return nil, fmt.Errorf("%s revoke %s: %w", side.Name, sc.Key(), err)
	}
	// What a failed revocation left is deleted out of band (the round's leftover count).
	return res, b.sim.SetLatency(ctx, 0)
}

var errBroken = errors.New("benchmark broken")
