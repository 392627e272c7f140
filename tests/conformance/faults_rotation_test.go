package conformance

// The rotation steps of the fault matrix (faults_test.go): rotate-root with each fault at each
// Atlas call it makes, under an API-key login and under a service-account login, and a
// rotate-root whose client hangs up mid-rotation. After every case and a rollback pass the
// mount's config works, Atlas holds exactly one login credential of that kind (the one config
// holds), the live leases are intact and no WAL entry is left.

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Paths of the calls only a rotation makes.
const (
	orgsPath          = `^/api/atlas/v2/orgs$`
	orgKeyAnyPath     = `^/api/atlas/v2/orgs/[^/]+/apiKeys/[^/]+$`
	keyAccessListPath = `^/api/atlas/v2/orgs/[^/]+/apiKeys/{id}/accessList$`
	accountSecretPath = `^/api/atlas/v2/orgs/[^/]+/serviceAccounts/[^/]+/secrets$`
	oldSecretPath     = `^/api/atlas/v2/orgs/[^/]+/serviceAccounts/[^/]+/secrets/{id}$`
)

// rotationID says which id stands for "{id}" in a rotation step's path.
type rotationID int

const (
	// idNone: the path has no "{id}".
	idNone rotationID = iota
	// idLogin: the configured login's Atlas id (the API key's id, the service account's
	// secret id).
	idLogin
	// idClient: the service account's client id.
	idClient
)

// The login key of the API-key rotation steps: an Organization Owner with a role in the
// simulator's project and an access list (that admits the plugin), so that a rotation makes
// every call: the new key is assigned to the project and gets the access list.
var (
	loginKeyProjectRoles = []string{"GROUP_READ_ONLY"}
	loginKeyAccessList   = []string{"127.0.0.1/32", "198.51.100.0/24"}
)

// rotationSteps follows src/engine/rotation.rs.
//
// API-key login: GET orgs (the login's organizations), GET the org's apiKeys (to find the
// configured key), GET its accessList, POST a new org key with its organization roles (the
// WAL entry written first), POST groups/{project}/apiKeys/{new} with its project roles, POST
// the new key's accessList, GET orgs/{org}/apiKeys/{new} with the new key (it works), store
// config, DELETE the old key. Service-account login: GET orgs, GET the account, POST a new
// secret (WAL first), a token for the new secret and GET orgs with it (the second GET orgs of
// a rotation: skip 1), store config, DELETE the old secret.
func rotationSteps() []faultStep {
	return []faultStep{
		{name: "rotate: list orgs", method: http.MethodGet, path: orgsPath, kind: stepRotate},
		{name: "rotate: list keys", method: http.MethodGet, path: orgKeysPath, kind: stepRotate},
		{name: "rotate: read access list", method: http.MethodGet, path: keyAccessListPath, rotationID: idLogin, kind: stepRotate},
		{name: "rotate: create key", method: http.MethodPost, path: orgKeysPath, afterWAL: true, kind: stepRotate},
		{name: "rotate: project assignment", method: http.MethodPost, path: assignPath, afterWAL: true, kind: stepRotate},
		{name: "rotate: add access list", method: http.MethodPost, path: accessListPath, afterWAL: true, kind: stepRotate},
		{name: "rotate: verify new key", method: http.MethodGet, path: orgKeyAnyPath, afterWAL: true, kind: stepRotate},
		{name: "rotate: delete old key", method: http.MethodDelete, path: orgKeyPath, rotationID: idLogin, kind: stepRotate, afterStore: true},
		{name: "rotate: client hangs up", method: http.MethodGet, path: orgKeyAnyPath, kind: stepRotateHangUp},

		{name: "sa rotate: list orgs", method: http.MethodGet, path: orgsPath, kind: stepRotate, login: loginServiceAccount},
		{name: "sa rotate: get account", method: http.MethodGet, path: orgAccountPath, rotationID: idClient, kind: stepRotate, login: loginServiceAccount},
		{name: "sa rotate: create secret", method: http.MethodPost, path: accountSecretPath, afterWAL: true, kind: stepRotate, login: loginServiceAccount, create: true},
		{name: "sa rotate: token for the new secret", method: http.MethodPost, path: tokenPath, afterWAL: true, kind: stepRotate, login: loginServiceAccount},
		{name: "sa rotate: verify new secret", method: http.MethodGet, path: orgsPath, skip: 1, afterWAL: true, kind: stepRotate, login: loginServiceAccount},
		{name: "sa rotate: delete old secret", method: http.MethodDelete, path: oldSecretPath, rotationID: idLogin, kind: stepRotate, login: loginServiceAccount, afterStore: true},
		{name: "sa rotate: client hangs up", method: http.MethodGet, path: orgsPath, skip: 1, kind: stepRotateHangUp, login: loginServiceAccount},
	}
}

// rotationMount is a mount whose login the rotation steps rotate.
type rotationMount struct {
	*engineMount
	login faultLogin
	// originalSecret: the service account's secret before any rotation (config records the
	// id only once a rotation stored a new one).
	originalSecret string
}

// runRotationStep: a mount with the step's login and a live lease, then every fault kind
// once and on every attempt at the step's call (or the hang-up case), each followed by a
// rollback pass and the checks.
func runRotationStep(t *testing.T, e *engineEnv, step faultStep) {
	ctx := testContext(t, 240*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	r := &rotationMount{engineMount: mountEngine(t, ctx, e.newHost(t, faultEnv()...), "mongodbatlas", sim), login: step.login}
	r.ok(t, ctx, logical.UpdateOperation, "roles/live", map[string]any{"organization_id": sim.OrgID, "roles": "ORG_MEMBER"})
	switch step.login {
	case loginAPIKey:
		r.useOwnLoginKey(t, ctx)
	case loginServiceAccount:
		r.engineMount.login(t, ctx, loginServiceAccount)
		r.originalSecret = r.loginCredential(t, ctx)
	}
	// A lease issued before any fault stays live throughout: rotations must not touch it.
	// (The issuance also caches the login's client, and with it a service account's token.)
	live := []*lease{r.mustIssue(t, ctx, "live")}
	r.requireOneLogin(t, ctx, "before any rotation", live)
	if t.Failed() {
		return
	}

	if step.kind == stepRotateHangUp {
		c := &faultCase{ctx: ctx, m: r.engineMount, step: step}
		c.rotateHangUp(t, r, live)
	} else {
		for _, kind := range faultKinds(step) {
			for _, persistent := range []bool{false, true} {
				mode := "transient"
				if persistent {
					mode = "persistent"
				}
				t.Run(kind.name+"/"+mode, func(t *testing.T) {
					c := &faultCase{ctx: ctx, m: r.engineMount, step: step, kind: kind, persistent: persistent}
					c.rotate(t, r, live)
				})
				if t.Failed() {
					return
				}
			}
		}
	}
	for _, l := range live {
		r.mustRevoke(t, ctx, l)
	}
	r.requireOneLogin(t, ctx, "after revoking every lease of the step", nil)
}

// useOwnLoginKey replaces the seeded login with an Organization Owner key that also has a
// project role and an access list (made by the engine itself, from a role), and deletes the
// seeded key: from then on Atlas holds exactly one Organization Owner key, the login.
func (r *rotationMount) useOwnLoginKey(t *testing.T, ctx context.Context) {
	t.Helper()
	sim := r.sim
	r.ok(t, ctx, logical.UpdateOperation, "roles/login", map[string]any{
		"organization_id": sim.OrgID, "roles": "ORG_OWNER",
		"project_id": sim.ProjectID, "project_roles": strings.Join(loginKeyProjectRoles, ","),
		"ip_addresses": "127.0.0.1", "cidr_blocks": "198.51.100.0/24",
	})
	login := r.mustIssue(t, ctx, "login")
	private, _ := login.data["private_key"].(string)
	r.ok(t, ctx, logical.UpdateOperation, "config", map[string]any{"public_key": login.publicKey(), "private_key": private, "base_url": sim.BaseURL})
	r.ok(t, ctx, logical.DeleteOperation, "roles/login", nil)
	sim.deleteKey(t, ctx, sim.KeyID)
}

// storedConfig is the part of the stored config the checks read (never the secret halves).
type storedConfig struct {
	PublicKey    string `json:"public_key"`
	ClientID     string `json:"client_id"`
	CredentialID string `json:"credential_id"`
}

func (r *rotationMount) storedConfig(t *testing.T, ctx context.Context) storedConfig {
	t.Helper()
	entry, err := r.Storage.Get(ctx, "config")
	if err != nil || entry == nil {
		t.Fatalf("no config in storage (%v)", err)
	}
	var c storedConfig
	if err := json.Unmarshal(entry.Value, &c); err != nil {
		t.Fatalf("the stored config is not JSON: %v", err)
	}
	return c
}

// loginCredential is the Atlas id of the credential config holds: the API key's id (found by
// its public key), or the service account's secret id.
func (r *rotationMount) loginCredential(t *testing.T, ctx context.Context) string {
	t.Helper()
	c := r.storedConfig(t, ctx)
	if r.login == loginAPIKey {
		k, ok := r.sim.keyByPublicKey(t, ctx, c.PublicKey)
		if !ok {
			t.Fatalf("the configured key %s is not in Atlas", c.PublicKey)
		}
		return k.ID
	}
	if c.CredentialID != "" {
		return c.CredentialID
	}
	// Never rotated: the account's one secret.
	a, ok := r.sim.serviceAccount(t, ctx, r.sim.SAClientID)
	if !ok || len(a.Secrets) != 1 {
		t.Fatalf("the login service account (found: %v) does not have exactly one secret", ok)
	}
	return a.Secrets[0].ID
}

// requireOneLogin checks the invariant of the rotation steps: Atlas holds exactly one login
// credential of the mount's kind and it is the one config holds (one Organization Owner key,
// with the login's project role and access list; one secret of the login service account);
// the config works (a lease is issued and revoked with it); every other credential belongs to
// a live lease.
func (r *rotationMount) requireOneLogin(t *testing.T, ctx context.Context, when string, live []*lease) {
	t.Helper()
	sim := r.sim
	config := r.storedConfig(t, ctx)
	inv := sim.inventory(t, ctx)
	var loginKeys []string
	switch r.login {
	case loginAPIKey:
		var owners []simKey
		for _, k := range inv.APIKeys {
			if slices.ContainsFunc(k.Roles, func(role simRole) bool { return role.RoleName == "ORG_OWNER" }) {
				owners = append(owners, k)
				loginKeys = append(loginKeys, k.ID)
			}
		}
		if len(owners) != 1 {
			t.Errorf("%s: Atlas holds %d Organization Owner keys, want exactly the login: %s", when, len(owners), describeKeys(owners))
			break
		}
		k := owners[0]
		acl := slices.Clone(k.AccessList)
		slices.Sort(acl)
		switch {
		case k.PublicKey != config.PublicKey:
			t.Errorf("%s: the one Organization Owner key is %s, config holds %s", when, k.PublicKey, config.PublicKey)
		case !hasRole(k, "", sim.ProjectID, loginKeyProjectRoles[0]):
			t.Errorf("%s: the login key lost its project role: roles %v", when, k.Roles)
		case !slices.Equal(acl, loginKeyAccessList):
			t.Errorf("%s: the login key's access list is %v, want %v", when, acl, loginKeyAccessList)
		}
	case loginServiceAccount:
		a, ok := sim.serviceAccount(t, ctx, sim.SAClientID)
		want := config.CredentialID
		if want == "" {
			want = r.originalSecret
		}
		switch {
		case !ok:
			t.Errorf("%s: the login service account is gone", when)
		case len(a.Secrets) != 1:
			ids := make([]string, 0, len(a.Secrets))
			for _, s := range a.Secrets {
				ids = append(ids, s.ID)
			}
			t.Errorf("%s: the login service account has %d secrets %v, want exactly the one config holds (%s)", when, len(a.Secrets), ids, want)
		case a.Secrets[0].ID != want:
			t.Errorf("%s: the login service account's one secret is %s, config holds %s", when, a.Secrets[0].ID, want)
		}
	}
	sim.requireLiveLeases(t, ctx, when, live, loginKeys...)
	// The config works.
	got := r.tryIssue(ctx, "live")
	if got.status != 0 || got.lease == nil {
		t.Errorf("%s: a creds read with the config fails: %v", when, got)
		return
	}
	req, resp, err := r.revoke(ctx, got.lease)
	if status, verr := vaultStatus(req, resp, err); status != 0 || verr != nil {
		t.Errorf("%s: revoking a lease with the config fails: %d %v", when, status, verr)
	}
	sim.requireLiveLeases(t, ctx, when+", after a probe lease", live, loginKeys...)
}

// rotationSucceeds: a transient fault at a call the client resends, or any fault at the old
// credential's delete (after config holds the new one: the rotation reports success with a
// warning and leaves the delete to the rollback).
func (step faultStep) rotationSucceeds(kind faultKind, persistent bool) bool {
	return step.afterStore || (!persistent && step.resent(kind))
}

// rotateRoot sends rotate-root and returns Vault's status (0: success), error and response.
func (r *rotationMount) rotateRoot(ctx context.Context) (int, error, *logical.Response) {
	req := r.Request(logical.UpdateOperation, "rotate-root", map[string]any{})
	resp, err := r.Handle(ctx, req)
	status, verr := vaultStatus(req, resp, err)
	return status, verr, resp
}

// rotate: the step's fault at one call of a rotation, then a rollback pass and the checks.
func (c *faultCase) rotate(t *testing.T, r *rotationMount, live []*lease) {
	step, kind := c.step, c.kind
	before := r.loginCredential(t, c.ctx)
	faultID := c.addRotationFault(t, r, before)
	status, verr, resp := r.rotateRoot(c.ctx)
	c.settle(t, faultID, 0, step.resent(kind))
	after := r.loginCredential(t, c.ctx)

	if step.rotationSucceeds(kind, c.persistent) {
		if status != 0 || verr != nil {
			t.Errorf("rotation with %s: Vault would answer %d (%v); want success", describe(kind, c.persistent), status, verr)
		}
		if after == before {
			t.Errorf("rotation with %s succeeded but config still holds %s", describe(kind, c.persistent), before)
		}
		if step.afterStore && c.persistent {
			// The old credential's delete kept failing: the answer says so, and the WAL
			// entry stays for the rollback.
			if resp == nil || !slices.ContainsFunc(resp.Warnings, func(w string) bool { return strings.Contains(w, "WAL rollback") }) {
				t.Errorf("rotation whose old-credential delete failed: warnings %v; want one saying the WAL rollback deletes it", warnings(resp))
			}
			if n := r.walEntries(t, c.ctx); n != 1 {
				t.Errorf("WAL entries after the old credential's delete failed: %d, want 1", n)
			}
			// Rotated again before Vault's rollback pass (on demand or on schedule): the
			// new rotation first undoes the entry, so the credential the first one
			// replaced does not outlive both.
			if status, verr, _ := r.rotateRoot(c.ctx); status != 0 || verr != nil {
				t.Errorf("a second rotation before the rollback: Vault would answer %d (%v); want success", status, verr)
			}
			r.requireNoWAL(t, c.ctx, "after a second rotation")
		} else {
			r.requireNoWAL(t, c.ctx, "after the rotation")
		}
	} else {
		switch {
		case status == 0:
			t.Errorf("rotation with %s succeeded; want an error", describe(kind, c.persistent))
		case status != http.StatusInternalServerError:
			t.Errorf("rotation with %s: HTTP %d %v; want a 500 (Atlas failed, not the user)", describe(kind, c.persistent), status, verr)
		case !strings.Contains(errString(verr), "Atlas"):
			t.Errorf("rotation error %q does not say Atlas failed", verr)
		case step.afterWAL && !strings.Contains(errString(verr), "config still holds the old"):
			// (Also proves the fault hit this call, not an earlier one to the same path.)
			t.Errorf("rotation error %q does not say config still holds the old credential", verr)
		}
		if after != before {
			t.Errorf("the failed rotation changed the config's credential from %s to %s", before, after)
		}
		// Atlas worked for the clean-up: the new credential is gone and the entry with it.
		r.requireNoWAL(t, c.ctx, "after the failed rotation")
	}
	r.mustRollback(t, c.ctx)
	r.requireNoWAL(t, c.ctx, "after the rollback")
	r.requireOneLogin(t, c.ctx, "after the rotation and a rollback pass", live)
}

func warnings(resp *logical.Response) []string {
	if resp == nil {
		return nil
	}
	return resp.Warnings
}

// addRotationFault installs kind on the step's call ("{id}" replaced as the step says),
// once or on every attempt.
func (c *faultCase) addRotationFault(t *testing.T, r *rotationMount, loginID string) int {
	t.Helper()
	path := c.step.path
	switch c.step.rotationID {
	case idLogin:
		path = strings.ReplaceAll(path, "{id}", regexp.QuoteMeta(loginID))
	case idClient:
		path = strings.ReplaceAll(path, "{id}", regexp.QuoteMeta(r.sim.SAClientID))
	}
	rule := map[string]any{"method": c.step.method, "path": path}
	for k, v := range c.kind.rule {
		rule[k] = v
	}
	if c.step.skip > 0 {
		rule["skip"] = c.step.skip
	}
	if !c.persistent {
		rule["times"] = 1
	}
	return r.sim.addFault(t, c.ctx, rule)
}

// rotateHangUp: the rotation is held in Atlas at the new credential's verification and the
// client hangs up (its request context is cancelled). The rotation runs on, detached; once it
// has finished (its WAL entry gone) and a rollback pass ran, one working credential is left:
// the new one.
func (c *faultCase) rotateHangUp(t *testing.T, r *rotationMount, live []*lease) {
	step := c.step
	before := r.loginCredential(t, c.ctx)
	// Held for less than the attempt timeout: a slow answer, not a fault.
	const hold = 800 * time.Millisecond
	rule := map[string]any{"method": step.method, "path": step.path, "action": "latency", "latency_ms": hold.Milliseconds(), "times": 1}
	if step.skip > 0 {
		rule["skip"] = step.skip
	}
	holdID := r.sim.addFault(t, c.ctx, rule)

	reqCtx, hangUp := context.WithCancel(c.ctx)
	defer hangUp()
	answered := make(chan int, 1)
	go func() {
		status, _, _ := r.rotateRoot(reqCtx)
		answered <- status
	}()
	// The first step.skip matches pass: the rotation is held at the next one.
	if !r.sim.waitFaultMatched(t, c.ctx, holdID, step.skip+1, 15*time.Second) {
		t.Fatal("the rotation did not reach the verification within 15s")
	}
	hangUp()
	select {
	case status := <-answered:
		t.Logf("the request whose client hung up answered HTTP %d", status)
	case <-time.After(10 * time.Second):
		t.Fatal("the request whose client hung up did not return within 10s")
	}

	// The rotation goes on without its client; it is over when its WAL entry is gone.
	deadline := time.Now().Add(20 * time.Second)
	for r.walEntries(t, c.ctx) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the rotation whose client hung up still has its WAL entry after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f := r.sim.fault(t, c.ctx, holdID); f.Fired != 1 {
		t.Errorf("the hold fired %d times, want 1", f.Fired)
	}
	r.sim.clearFaults(t, c.ctx)
	if after := r.loginCredential(t, c.ctx); after == before {
		t.Errorf("the rotation whose client hung up did not finish: config still holds %s", before)
	}
	r.mustRollback(t, c.ctx)
	r.requireNoWAL(t, c.ctx, "after the rollback")
	r.requireOneLogin(t, c.ctx, "after the rotation whose client hung up and a rollback pass", live)
}
