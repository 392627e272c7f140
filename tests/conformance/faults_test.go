package conformance

// Atlas failing at every step of issuance and revocation, and the config changing while
// requests are in flight: the production engine binary, hosted as Vault hosts it, against a
// real atlas-sim with fault rules. After every case the simulator must hold exactly the keys
// of the leases still live (no leaked key, no key deleted under a live lease).
//
// The plugin runs with a 1 s attempt timeout and a 5 s call timeout (MONGODBATLAS_*), so a
// persistent fault exhausts the client's retries in about 5 s and the whole matrix stays short.

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	faultAttemptTimeout = time.Second
	faultCallTimeout    = 5 * time.Second
	// Beyond the attempt timeout: the client gives up on the exchange.
	faultLatency = 1500 * time.Millisecond
)

// faultEnv is the plugin environment of the fault tests.
func faultEnv() []string {
	return []string{
		"MONGODBATLAS_ATTEMPT_TIMEOUT=" + faultAttemptTimeout.String(),
		"MONGODBATLAS_CALL_TIMEOUT=" + faultCallTimeout.String(),
	}
}

// faultKind is what Atlas does wrong.
type faultKind struct {
	name string
	rule map[string]any
	// executed: Atlas acts on the request although the client sees a failure.
	executed bool
	// delayed: the request is held past the client's attempt timeout. The simulator drops
	// a held request when the client disconnects, so it never takes effect afterwards
	// (the README's known limits say what that leaves untested).
	delayed bool
}

func faultKinds() []faultKind {
	return []faultKind{
		{name: "429 retry-after 1s", rule: map[string]any{"action": "status", "status": 429, "retry_after": 1}},
		{name: "500", rule: map[string]any{"action": "status", "status": 500}},
		{name: "503", rule: map[string]any{"action": "status", "status": 503}},
		{name: "connection reset", rule: map[string]any{"action": "reset"}},
		{name: "reset after executing", rule: map[string]any{"action": "reset_after"}, executed: true},
		{name: "timeout", rule: map[string]any{"action": "latency", "latency_ms": faultLatency.Milliseconds()}, delayed: true},
	}
}

// faultStep is one Atlas call of issuance or revocation and a role whose issuance makes it.
type faultStep struct {
	name   string
	role   string
	data   func(sim *atlasSim) map[string]any
	method string
	path   string // regex of the call's path; revocation narrows it to the lease's key
	revoke bool
}

const (
	orgKeysPath     = `^/api/atlas/v2/orgs/[^/]+/apiKeys$`
	projectKeysPath = `^/api/atlas/v2/groups/[^/]+/apiKeys$`
	accessListPath  = `^/api/atlas/v2/orgs/[^/]+/apiKeys/[^/]+/accessList$`
	assignPath      = `^/api/atlas/v2/groups/[^/]+/apiKeys/[^/]+$`
)

// faultSteps follows src/engine/creds.rs: an org key is POSTed to the org's apiKeys, a
// project key to the project's; the access list is POSTed to the key's accessList; a role
// with both organization_id and project_id creates an org key and then assigns it to the
// project (POST groups/{project}/apiKeys/{key}); revocation DELETEs the org key.
func faultSteps() []faultStep {
	return []faultStep{
		{name: "create org key", role: "org", method: http.MethodPost, path: orgKeysPath, data: func(s *atlasSim) map[string]any {
			return map[string]any{"organization_id": s.OrgID, "roles": "ORG_MEMBER"}
		}},
		{name: "create project key", role: "project", method: http.MethodPost, path: projectKeysPath, data: func(s *atlasSim) map[string]any {
			return map[string]any{"project_id": s.ProjectID, "roles": "GROUP_READ_ONLY"}
		}},
		{name: "access list", role: "acl", method: http.MethodPost, path: accessListPath, data: func(s *atlasSim) map[string]any {
			return map[string]any{"organization_id": s.OrgID, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.10", "cidr_blocks": "198.51.100.0/24"}
		}},
		{name: "project assignment", role: "assigned", method: http.MethodPost, path: assignPath, data: func(s *atlasSim) map[string]any {
			return map[string]any{"organization_id": s.OrgID, "project_id": s.ProjectID, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}
		}},
		{name: "revoke", role: "revoked", method: http.MethodDelete, revoke: true, data: func(s *atlasSim) map[string]any {
			return map[string]any{"project_id": s.ProjectID, "roles": "GROUP_READ_ONLY", "ip_addresses": "192.0.2.10"}
		}},
	}
}

// TestFaultMatrix: every fault at every step, once (the retry succeeds) and on every attempt
// (the operation fails cleanly). Steps run concurrently, each with its own simulator and plugin
// process (mostly waiting out retries, so not bound by -parallel); the cases of a step run in
// order against that simulator.
func TestFaultMatrix(t *testing.T) {
	e := loadEngineEnv(t)
	var steps sync.WaitGroup
	defer steps.Wait()
	for _, step := range faultSteps() {
		steps.Go(func() { t.Run(step.name, func(t *testing.T) { runFaultStep(t, e, step) }) })
	}
}

func runFaultStep(t *testing.T, e *engineEnv, step faultStep) {
	ctx := testContext(t, 150*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	m := mountEngine(t, ctx, e.newHost(t, faultEnv()...), "mongodbatlas", sim)
	m.ok(t, ctx, logical.UpdateOperation, "roles/"+step.role, step.data(sim))

	// A lease issued before any fault stays live throughout: faults must not touch it.
	live := []*lease{m.issue(t, ctx, step.role)}
	for _, kind := range faultKinds() {
		for _, persistent := range []bool{false, true} {
			mode := "transient"
			if persistent {
				mode = "persistent"
			}
			t.Run(kind.name+"/"+mode, func(t *testing.T) {
				if step.revoke {
					revokeUnderFault(t, ctx, m, step, kind, persistent, live)
				} else {
					live = issueUnderFault(t, ctx, m, step, kind, persistent, live)
				}
			})
			if t.Failed() {
				// Later cases would only report the same broken state.
				return
			}
		}
	}
	for _, l := range live {
		m.mustRevoke(t, ctx, l)
	}
	sim.requireLiveLeases(t, ctx, "after revoking every lease of the step", nil)
	m.requireNoWAL(t, ctx, "at the end of the step")
}

// addStepFault installs kind on the step's call: once, or on every attempt.
func addStepFault(t *testing.T, ctx context.Context, sim *atlasSim, method, path string, kind faultKind, persistent bool) int {
	t.Helper()
	rule := map[string]any{"method": method, "path": path}
	for k, v := range kind.rule {
		rule[k] = v
	}
	if !persistent {
		rule["times"] = 1
	}
	return sim.addFault(t, ctx, rule)
}

// checkFired fails the test unless the fault acted as the case needs: exactly once for a
// transient fault, on at least two attempts (so the client did retry) for a persistent one.
func checkFired(t *testing.T, f simFault, persistent bool) {
	t.Helper()
	switch {
	case !persistent && f.Fired != 1:
		t.Errorf("the transient fault fired %d times, want 1 (matched %d)", f.Fired, f.Matched)
	case persistent && f.Fired < 2:
		t.Errorf("the persistent fault fired %d times, want the client to retry (at least 2)", f.Fired)
	}
}

func issueUnderFault(t *testing.T, ctx context.Context, m *engineMount, step faultStep, kind faultKind, persistent bool, live []*lease) []*lease {
	sim := m.sim
	id := addStepFault(t, ctx, sim, step.method, step.path, kind, persistent)
	started := time.Now()
	got := m.tryIssue(ctx, step.role)
	took := time.Since(started)
	fired := sim.fault(t, ctx, id)
	sim.clearFaults(t, ctx)
	checkFired(t, fired, persistent)

	if !persistent {
		if got.status != 0 || got.lease == nil {
			t.Errorf("issuance with one %s at %s: %v; want the retry to succeed", kind.name, step.name, got)
		} else {
			live = append(live, got.lease)
			if k, ok := sim.keyByID(t, ctx, got.lease.keyID()); !ok || k.PublicKey != got.lease.publicKey() {
				t.Errorf("the issued key %s (public key %s) is not in the simulator", got.lease.keyID(), got.lease.publicKey())
			} else if step.path == accessListPath && len(k.AccessList) != 2 {
				t.Errorf("the issued key's access list is %v, want the role's two entries", k.AccessList)
			} else if step.path == assignPath && !inProject(k, sim.ProjectID) {
				t.Errorf("the issued key is not assigned to the project: roles %v", k.Roles)
			}
		}
	} else {
		switch {
		case got.status == 0:
			t.Errorf("issuance with %s on every attempt at %s succeeded (%v); want an error", kind.name, step.name, got)
			if got.lease != nil {
				live = append(live, got.lease)
			}
		case got.status != http.StatusInternalServerError:
			t.Errorf("issuance with %s on every attempt at %s: %v; want a 500 (Atlas failed, not the user)", kind.name, step.name, got)
		case !strings.Contains(errString(got.err), "Atlas"):
			t.Errorf("issuance error %q does not say Atlas failed", got.err)
		case got.why != "":
			t.Errorf("failed issuance: %s", got.why)
		}
		if took > faultCallTimeout+2*faultAttemptTimeout+3*time.Second {
			t.Errorf("the failed issuance took %v; the call timeout is %v", took, faultCallTimeout)
		}
	}
	// The in-place clean-up (or the client's create recovery) leaves nothing for rollback.
	m.requireNoWAL(t, ctx, "after the issuance")
	sim.requireLiveLeases(t, ctx, "after the issuance", live)
	return live
}

func revokeUnderFault(t *testing.T, ctx context.Context, m *engineMount, step faultStep, kind faultKind, persistent bool, live []*lease) {
	sim := m.sim
	l := m.issue(t, ctx, step.role)
	path := `^/api/atlas/v2/orgs/[^/]+/apiKeys/` + regexp.QuoteMeta(l.keyID()) + `$`
	id := addStepFault(t, ctx, sim, step.method, path, kind, persistent)
	req, resp, err := m.revoke(ctx, l)
	status, verr := vaultStatus(req, resp, err)
	fired := sim.fault(t, ctx, id)
	sim.clearFaults(t, ctx)
	checkFired(t, fired, persistent)

	if !persistent {
		if status != 0 || verr != nil {
			t.Errorf("revocation with one %s: Vault would answer %d (%v); want the retry to succeed", kind.name, status, verr)
		}
		sim.requireLiveLeases(t, ctx, "after the revocation", live)
		return
	}
	switch {
	case status == 0 && verr == nil:
		t.Errorf("revocation with %s on every attempt succeeded; want an error so that Vault retries", kind.name)
	case !strings.Contains(errString(verr), l.keyID()):
		t.Errorf("revocation error %q (HTTP %d) does not name the key", errString(verr), status)
	}
	if !kind.executed && !kind.delayed {
		// Atlas never acted on the DELETE: the key must still be there, under its live lease.
		sim.requireLiveLeases(t, ctx, "after the failed revocation", append(live[:len(live):len(live)], l))
	}
	// Vault retries the revocation once Atlas is back.
	m.mustRevoke(t, ctx, l)
	sim.requireLiveLeases(t, ctx, "after the retried revocation", live)
}

// TestConfigChangeWhileRequestsInFlight writes a new config while creds reads are held in
// Atlas: first a second valid key of the same org, then wrong credentials, then the original
// key again. Every read either returns a key that exists or fails cleanly; no key leaks; all
// leases are revoked afterwards with the config then current.
func TestConfigChangeWhileRequestsInFlight(t *testing.T) {
	e := loadEngineEnv(t)
	ctx := testContext(t, 120*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	m := mountEngine(t, ctx, e.newHost(t, faultEnv()...), "mongodbatlas", sim)
	m.ok(t, ctx, logical.UpdateOperation, "roles/app", map[string]any{"organization_id": sim.OrgID, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.10"})
	second := sim.createOwnerKey(t, ctx, "second-owner")
	configOf := func(public, private string) map[string]any {
		return map[string]any{"public_key": public, "private_key": private, "base_url": sim.BaseURL}
	}

	// Every exchange of a create (Digest challenges included) is held 500 ms, so the reads
	// are still in Atlas when the config is written.
	const hold = 500 * time.Millisecond
	const readers = 6
	holdID := sim.addFault(t, ctx, map[string]any{"method": "POST", "path": orgKeysPath, "action": "latency", "latency_ms": hold.Milliseconds(), "before_auth": true})

	var live []*lease
	phases := []struct {
		name    string
		config  map[string]any
		working bool // whether reads after the write can succeed
	}{
		{"to a second valid key", configOf(second.PublicKey, second.PrivateKey), true},
		{"to wrong credentials", configOf(sim.PublicKey, "00000000-0000-4000-8000-000000000000"), false},
		{"back to the original key", configOf(sim.PublicKey, sim.PrivateKey), true},
	}
	for _, phase := range phases {
		t.Run(phase.name, func(t *testing.T) {
			before := sim.fault(t, ctx, holdID).Matched
			results := make([]attempt, readers)
			var finished atomic.Int32
			var wg sync.WaitGroup
			for i := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = m.tryIssue(ctx, "app")
					finished.Add(1)
				}()
			}
			if !sim.waitFaultMatched(t, ctx, holdID, before+readers, 10*time.Second) {
				wg.Wait()
				t.Fatalf("the %d reads did not all reach Atlas' create within 10s", readers)
			}
			m.ok(t, ctx, logical.UpdateOperation, "config", phase.config)
			inFlight := readers - int(finished.Load())
			// A read started now uses the new config.
			after := m.tryIssue(ctx, "app")
			wg.Wait()
			if inFlight == 0 {
				t.Fatalf("every read had finished before the config write returned: the test did not exercise requests in flight")
			}

			for i, r := range append(results, after) {
				switch {
				case r.status == 0 && r.lease == nil:
					t.Errorf("read %d: %v", i, r)
				case r.status == 0:
					live = append(live, r.lease)
					if _, ok := sim.keyByID(t, ctx, r.lease.keyID()); !ok {
						t.Errorf("read %d returned key %s, which the simulator does not hold", i, r.lease.keyID())
					}
				case r.why != "":
					t.Errorf("read %d: %s", i, r.why)
				case r.status == http.StatusInternalServerError || r.status == http.StatusBadRequest:
					// A clean failure.
				default:
					t.Errorf("read %d: %v; want a lease or a clean 400/500", i, r)
				}
			}
			if phase.working && after.status != 0 {
				t.Errorf("a read after the write of a valid config failed: %v", after)
			}
			if !phase.working {
				if after.status == 0 {
					t.Errorf("a read after the write of wrong credentials succeeded")
				} else if !strings.Contains(errString(after.err), "credentials") {
					t.Errorf("a read with wrong credentials failed with %q; want it to say the credentials were rejected", after.err)
				}
				// Revocation with wrong credentials fails, so Vault keeps the lease and retries.
				if len(live) > 0 {
					l := live[0]
					req, resp, err := m.revoke(ctx, l)
					if status, verr := vaultStatus(req, resp, err); status == 0 && verr == nil {
						t.Errorf("revocation with wrong credentials succeeded")
					}
				}
			}
			t.Logf("%d of %d reads were in flight when the config write returned; outcomes: %s", inFlight, readers, summarize(append(results, after)))
			sim.requireLiveLeases(t, ctx, "after the config change", live, second.ID)
			m.requireNoWAL(t, ctx, "after the config change")
		})
	}

	sim.clearFaults(t, ctx)
	if len(live) == 0 {
		t.Fatal("no read succeeded in any phase")
	}
	for _, l := range live {
		m.mustRevoke(t, ctx, l)
	}
	sim.requireLiveLeases(t, ctx, "after revoking every lease", nil, second.ID)
}

func summarize(results []attempt) string {
	counts := map[string]int{}
	for _, r := range results {
		key := "lease"
		if r.status != 0 {
			key = fmt.Sprintf("HTTP %d", r.status)
		}
		counts[key]++
	}
	return fmt.Sprint(counts)
}

// TestFaultCreateUncertainLeftToRollback: Atlas executes a create and loses the answer, and
// keeps losing the answers of the listings the client then uses to find the key. The engine
// cannot know whether a key exists, so the WAL keeps the entry; the periodic rollback fails
// while Atlas still fails, then deletes the orphan once Atlas is back.
func TestFaultCreateUncertainLeftToRollback(t *testing.T) {
	e := loadEngineEnv(t)
	ctx := testContext(t, 90*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	m := mountEngine(t, ctx, e.newHost(t, faultEnv()...), "mongodbatlas", sim)
	m.ok(t, ctx, logical.UpdateOperation, "roles/org", map[string]any{"organization_id": sim.OrgID, "roles": "ORG_MEMBER"})
	live := []*lease{m.issue(t, ctx, "org")}

	sim.addFault(t, ctx, map[string]any{"path": orgKeysPath, "action": "reset_after"})
	got := m.tryIssue(ctx, "org")
	sim.clearFaults(t, ctx)
	if got.status != http.StatusInternalServerError || !strings.Contains(errString(got.err), "may have created") {
		t.Fatalf("issuance whose create and clean-up answers were all lost: %v; want a 500 saying Atlas may have created the key", got)
	}
	ids, err := m.Storage.List(ctx, "wal/")
	if err != nil || len(ids) != 1 {
		t.Fatalf("WAL entries after an uncertain create: %v (%v); want exactly one for the rollback", ids, err)
	}
	var orphans []simKey
	for _, k := range sim.issuedKeys(t, ctx) {
		if k.ID != live[0].keyID() {
			orphans = append(orphans, k)
		}
	}
	if len(orphans) != 1 || !strings.HasPrefix(orphans[0].Desc, "vault-org-") {
		t.Fatalf("keys besides the live lease's after the uncertain create: %s; want the one orphan the WAL names", describeKeys(orphans))
	}

	// Atlas still fails the listing the rollback searches: the rollback reports it and keeps the entry.
	// (Immediate passes: the entry is younger than any minimum age the issue timeout allows.)
	sim.addFault(t, ctx, map[string]any{"method": "GET", "path": orgKeysPath, "action": "status", "status": 503})
	req, resp, err := m.rollback(ctx, true)
	sim.clearFaults(t, ctx)
	if status, verr := vaultStatus(req, resp, err); status == 0 && verr == nil {
		t.Error("the rollback succeeded although Atlas failed every listing")
	}
	if ids, err := m.Storage.List(ctx, "wal/"); err != nil || len(ids) != 1 {
		t.Errorf("WAL entries after a failed rollback: %v (%v); want the entry kept for the next pass", ids, err)
	}
	if _, ok := sim.keyByID(t, ctx, orphans[0].ID); !ok {
		t.Error("the orphan vanished although the rollback failed")
	}

	req, resp, err = m.rollback(ctx, true)
	if status, verr := vaultStatus(req, resp, err); status != 0 || verr != nil {
		t.Fatalf("the rollback once Atlas is back: %d %v", status, verr)
	}
	m.requireNoWAL(t, ctx, "after the rollback")
	sim.requireLiveLeases(t, ctx, "after the rollback", live)
	m.mustRevoke(t, ctx, live[0])
	sim.requireLiveLeases(t, ctx, "after revoking the last lease", nil)
}
