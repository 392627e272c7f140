package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/vaultserver"
	"github.com/hashicorp/vault/api"
)

// End to end: `vault read <mount>/creds/bench` through a real Vault server's HTTP API, our
// plugin (external, registered in the catalog with its SHA-256) against Vault's builtin
// mongodbatlas engine (the official plugin compiled into the same Vault binary, no plugin
// hop). The server's environment carries the simulator's proxy and CA, so the builtin engine
// (in Vault's process) and our plugin (Vault's child, which inherits it) reach Atlas alike.

const (
	e2ePluginName = "mongodbatlas-ours"
	e2eOursMount  = "ours"
	// The builtin engine's mount; "official" in summary.json is this engine.
	e2eBuiltinMount = "builtin"
)

// E2EResults are the end-to-end samples: rounds of every scenario, per engine.
type E2EResults struct {
	Vault string `json:"vault"`
	// Scenario results in round order, per engine ("ours", "builtin").
	Ours    []ScenarioResult `json:"ours"`
	Builtin []ScenarioResult `json:"builtin"`
	// `vault read <mount>/roles/bench` (one storage read, nothing else) per round, one
	// caller, no Atlas call: what a request costs through Vault alone, plugin hop included.
	RoleReadOurs    []ScenarioResult `json:"role_read_ours"`
	RoleReadBuiltin []ScenarioResult `json:"role_read_builtin"`
}

// e2eEngine is one mount of the server.
type e2eEngine struct {
	name  string // "ours" or "builtin"
	mount string
}

// E2E starts one Vault server, enables both engines on it and runs the end-to-end
// scenarios, the two engines alternating within each scenario of each round.
func (b *Bench) E2E(ctx context.Context, vaultBin, ours, logDir string, network []string, creds map[string]any) (*E2EResults, error) {
	pluginDir, err := os.MkdirTemp("", "bench-plugins-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(pluginDir)
	sha, err := vaultserver.InstallPlugin(ours, pluginDir, e2ePluginName)
	if err != nil {
		return nil, err
	}
	vaultLogs := filepath.Join(logDir, "vault")
	if err := os.MkdirAll(vaultLogs, 0o755); err != nil {
		return nil, err
	}
	// Log level info: debug would log every request of both engines.
	cluster, stop, err := vaultserver.StartStandalone(ctx, vaultserver.Options{
		Binary: vaultBin, PluginDir: pluginDir, LogDir: vaultLogs, LogLevel: "info", Env: network,
	}, 1, b.log)
	if err != nil {
		return nil, err
	}
	defer stop()
	node := cluster.Active()
	client, err := e2eClient(node.Addr, cluster.RootToken)
	if err != nil {
		return nil, err
	}
	res := &E2EResults{}
	if st, err := client.Sys().HealthWithContext(ctx); err == nil {
		res.Vault = st.Version
	}
	if err := client.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: e2ePluginName, Type: api.PluginTypeSecrets, Command: e2ePluginName, SHA256: sha,
	}); err != nil {
		return nil, fmt.Errorf("register %s: %w", e2ePluginName, err)
	}
	engines := []e2eEngine{{"ours", e2eOursMount}, {"builtin", e2eBuiltinMount}}
	for _, e := range engines {
		typ := e2ePluginName
		if e.name == "builtin" {
			typ = "mongodbatlas"
		}
		if err := client.Sys().MountWithContext(ctx, e.mount, &api.MountInput{Type: typ}); err != nil {
			return nil, fmt.Errorf("enable %s at %s: %w", typ, e.mount, err)
		}
		if _, err := client.Logical().WriteWithContext(ctx, e.mount+"/config", creds); err != nil {
			return nil, fmt.Errorf("%s/config: %w", e.mount, err)
		}
		if _, err := client.Logical().WriteWithContext(ctx, e.mount+"/roles/"+roleName, roleData(b.sim.Info.OrgID)); err != nil {
			return nil, fmt.Errorf("%s/roles/%s: %w", e.mount, roleName, err)
		}
	}
	// Warm-up, not measured: the plugin process, connections, the Digest nonce.
	if err := b.sim.SetLatency(ctx, 0); err != nil {
		return nil, err
	}
	for _, e := range engines {
		_, leases, _, failures, firstErr := e2eIssue(ctx, client, e.mount, b.plan.WarmUp, 1)
		if failures > 0 {
			return nil, fmt.Errorf("e2e warm-up %s: %v", e.name, firstErr)
		}
		if failed, err := e2eRevoke(ctx, client, leases, 16); failed > 0 {
			return nil, fmt.Errorf("e2e warm-up revocation %s: %v", e.name, err)
		}
	}
	for r := range b.plan.E2ERounds {
		rr := Scenario{LatencyMS: 0, Concurrency: 1, Issues: b.plan.E2E[0].Issues}
		for _, e := range engines {
			sr, err := b.measured(ctx, &Side{Name: e.name}, node.Pid(), rr, nil, func() ([]float64, int, time.Duration, int, error) {
				lat, done, wall, failures, firstErr := e2eRead(ctx, client, e.mount+"/roles/"+roleName, rr.Issues, 1, nil)
				return lat, done, wall, failures, firstErr
			})
			if err != nil {
				return nil, fmt.Errorf("e2e %s role read: %w", e.name, err)
			}
			if e.name == "ours" {
				res.RoleReadOurs = append(res.RoleReadOurs, *sr)
			} else {
				res.RoleReadBuiltin = append(res.RoleReadBuiltin, *sr)
			}
			b.logf("e2e %d/%d %-7s read roles/%s p50 %5.2f ms  p99 %5.2f ms", r+1, b.plan.E2ERounds, e.name, roleName, sr.P50MS, sr.P99MS)
		}
		for _, sc := range b.plan.E2E {
			for _, e := range engines {
				var leases []string
				sr, err := b.measured(ctx, &Side{Name: e.name}, node.Pid(), sc, nil, func() ([]float64, int, time.Duration, int, error) {
					lat, issued, wall, failures, firstErr := e2eIssue(ctx, client, e.mount, sc.Issues, sc.Concurrency)
					leases = issued
					return lat, len(issued), wall, failures, firstErr
				})
				if err != nil {
					return nil, fmt.Errorf("e2e %s %s: %w", e.name, sc.Key(), err)
				}
				if err := b.sim.SetLatency(ctx, 0); err != nil {
					return nil, err
				}
				sr.RevokeFailures, _ = e2eRevoke(ctx, client, leases, 16)
				if e.name == "ours" {
					res.Ours = append(res.Ours, *sr)
				} else {
					res.Builtin = append(res.Builtin, *sr)
				}
				b.logf("e2e %d/%d %-7s %-9s p50 %7.1f ms  p99 %7.1f ms  %7.1f/s  %.2f round trips/issue  failures %d",
					r+1, b.plan.E2ERounds, e.name, sc.Key(), sr.P50MS, sr.P99MS, sr.Throughput, sr.RoundTrips, sr.Failures)
			}
		}
	}
	return res, nil
}

// e2eClient is a Vault API client with the root token, no retries, and enough idle
// connections that concurrent callers reuse theirs (the default keeps GOMAXPROCS+1).
func e2eClient(addr, token string) (*api.Client, error) {
	config := api.DefaultConfig()
	if config.Error != nil {
		return nil, config.Error
	}
	config.Address = addr
	config.MaxRetries = 0
	config.Timeout = 0
	if t, ok := config.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 128
	}
	client, err := api.NewClient(config)
	if err != nil {
		return nil, err
	}
	client.ClearNamespace()
	client.SetToken(token)
	return client, nil
}

// e2eIssue reads <mount>/creds/bench n times with c callers; it returns the latencies and
// lease ids of the successful reads.
func e2eIssue(ctx context.Context, client *api.Client, mount string, n, c int) (lat []float64, leases []string, wall time.Duration, failures int, firstErr error) {
	var mu sync.Mutex
	lat, _, wall, failures, firstErr = e2eRead(ctx, client, mount+"/creds/"+roleName, n, c, func(secret *api.Secret) error {
		if secret == nil || secret.LeaseID == "" {
			return errors.New("creds: no lease in the answer")
		}
		mu.Lock()
		leases = append(leases, secret.LeaseID)
		mu.Unlock()
		return nil
	})
	return lat, leases, wall, failures, firstErr
}

// e2eRead reads path n times with c callers; check, when not nil, vets each answer. It
// returns the latencies and the count of the successful reads.
func e2eRead(ctx context.Context, client *api.Client, path string, n, c int, check func(*api.Secret) error) (lat []float64, done int, wall time.Duration, failures int, firstErr error) {
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
				secret, err := client.Logical().ReadWithContext(ctx, path)
				d := time.Since(t)
				if err == nil && secret == nil {
					err = fmt.Errorf("read %s: nothing there", path)
				}
				if err == nil && check != nil {
					err = check(secret)
				}
				mu.Lock()
				if err != nil {
					failures++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					lat = append(lat, ms(d))
					done++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, done, time.Since(started), failures, firstErr
}

// e2eRevoke revokes leases through sys/leases/revoke (synchronous) with c callers.
func e2eRevoke(ctx context.Context, client *api.Client, leases []string, c int) (failures int, firstErr error) {
	var mu sync.Mutex
	err := parallel(ctx, 0, len(leases), c, func(i int) error {
		if err := client.Sys().RevokeWithContext(ctx, leases[i]); err != nil {
			mu.Lock()
			failures++
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
		return nil
	})
	if err != nil && firstErr == nil {
		firstErr = err
	}
	return failures, firstErr
}
