package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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

// E2EResults are the end-to-end samples, per engine: "ours", "builtin" and, for reference,
// "official_external" (the official plugin v0.16.0 registered as an external plugin, so the
// plugin hop of a Go plugin is measured beside ours).
type E2EResults struct {
	Vault   string                `json:"vault"`
	Engines map[string]*E2EEngine `json:"engines"`
}

// E2EEngine is one engine's samples, in round order.
type E2EEngine struct {
	Creds []ScenarioResult `json:"creds"`
	// `vault read <mount>/roles/bench` (one storage read) and `vault write` of the same role
	// (a storage read and a write: a raft commit), one caller, no Atlas call: what a request
	// costs through Vault alone, plugin hop included.
	RoleRead  []ScenarioResult `json:"role_read"`
	RoleWrite []ScenarioResult `json:"role_write"`
}

// e2eEngine is one mount of the server.
type e2eEngine struct {
	name   string // "ours", "builtin", "official_external"
	mount  string
	plugin string // the catalog name (type) the mount is enabled with
}

// E2E starts one Vault server, enables both engines on it and runs the end-to-end
// scenarios, the two engines alternating within each scenario of each round.
func (b *Bench) E2E(ctx context.Context, vaultBin, ours, official, logDir string, network []string, creds map[string]any) (*E2EResults, error) {
	pluginDir, err := os.MkdirTemp("", "bench-plugins-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(pluginDir)
	engines := []e2eEngine{{"ours", e2eOursMount, e2ePluginName}, {"builtin", e2eBuiltinMount, "mongodbatlas"},
		{"official_external", "official-external", "mongodbatlas-official"}}
	shas := map[string]string{}
	for name, bin := range map[string]string{e2ePluginName: ours, "mongodbatlas-official": official} {
		if shas[name], err = vaultserver.InstallPlugin(bin, pluginDir, name); err != nil {
			return nil, err
		}
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
	res := &E2EResults{Engines: map[string]*E2EEngine{}}
	for _, e := range engines {
		res.Engines[e.name] = &E2EEngine{}
	}
	if st, err := client.Sys().HealthWithContext(ctx); err == nil {
		res.Vault = st.Version
	}
	for name, sha := range shas {
		if err := client.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
			Name: name, Type: api.PluginTypeSecrets, Command: name, SHA256: sha,
		}); err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	for _, e := range engines {
		typ := e.plugin
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
		// The plugin hop and a storage write alone: no Atlas call.
		rr := Scenario{LatencyMS: 0, Concurrency: 1, Issues: b.plan.E2E[0].Issues}
		for _, e := range engines {
			path := e.mount + "/roles/" + roleName
			for _, write := range []bool{false, true} {
				sr, err := b.measured(ctx, &Side{Name: e.name}, node.Pid(), rr, nil, func() ([]float64, int, time.Duration, int, error) {
					if write {
						return e2eWrite(ctx, client, path, roleData(b.sim.Info.OrgID), rr.Issues)
					}
					return e2eRead(ctx, client, path, rr.Issues, 1, nil)
				})
				if err != nil {
					return nil, fmt.Errorf("e2e %s %s (write %v): %w", e.name, path, write, err)
				}
				if write {
					res.Engines[e.name].RoleWrite = append(res.Engines[e.name].RoleWrite, *sr)
				} else {
					res.Engines[e.name].RoleRead = append(res.Engines[e.name].RoleRead, *sr)
				}
				b.logf("e2e %d/%d %-17s %s roles/%s p50 %5.2f ms  p99 %5.2f ms", r+1, b.plan.E2ERounds, e.name,
					map[bool]string{false: "read", true: "write"}[write], roleName, sr.P50MS, sr.P99MS)
			}
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
				res.Engines[e.name].Creds = append(res.Engines[e.name].Creds, *sr)
				b.logf("e2e %d/%d %-17s %-9s p50 %7.1f ms  p99 %7.1f ms  %7.1f/s  %.2f round trips/issue  failures %d",
					r+1, b.plan.E2ERounds, e.name, sc.Key(), sr.P50MS, sr.P99MS, sr.Throughput, sr.RoundTrips, sr.Failures)
			}
		}
	}
	return res, nil
}

// e2eClient is a Vault API client with the root token, no retries, and enough idle
// connections that concurrent callers reuse theirs (the default keeps GOMAXPROCS+1).
func e2eClient(addr, token string) (*api.Client, error) {
	client, err := vaultserver.NewClient(addr, token)
	if err != nil {
		return nil, err
	}
	// The client's transport is its own, and unused so far.
	if t, ok := client.CloneConfig().HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 128
	}
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
	lat, reads, wall, failures, firstErr := sample(n, c, func() (struct{}, error) {
		secret, err := client.Logical().ReadWithContext(ctx, path)
		if err == nil && secret == nil {
			err = fmt.Errorf("read %s: nothing there", path)
		}
		if err == nil && check != nil {
			err = check(secret)
		}
		return struct{}{}, err
	})
	return lat, len(reads), wall, failures, firstErr
}

// e2eWrite writes data to path n times, one caller.
func e2eWrite(ctx context.Context, client *api.Client, path string, data map[string]any, n int) (lat []float64, done int, wall time.Duration, failures int, firstErr error) {
	lat, writes, wall, failures, firstErr := sample(n, 1, func() (struct{}, error) {
		_, err := client.Logical().WriteWithContext(ctx, path, data)
		return struct{}{}, err
	})
	return lat, len(writes), wall, failures, firstErr
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
