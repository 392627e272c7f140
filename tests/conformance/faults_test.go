package conformance

// Atlas failing at every step of issuance, revocation and rollback, of API keys and service
// accounts and at the service-account login's token endpoint, at every call of rotate-root
// under either login, and the config changing while requests are in flight: the production
// engine binary, hosted as Vault hosts it, against a real atlas-sim with fault rules. After
// every case the simulator must hold exactly the keys and service accounts of the leases
// still live (no leaked credential, none deleted under a live lease), and no WAL entry may be
// left once the rollback ran.
//
// The rotation steps (faults_rotation_test.go) fault each distinct call of a rotation: under
// an API-key login (an Organization Owner key with a project role and an access list) the
// organizations' listing, the org's keys, the key's access list, the new key's create, its
// project assignment, its access list, its verification with the new key and the old key's
// delete; under a service-account login the organizations' listing, the account's read, the
// new secret's create, the token for it, the verification with it and the old secret's
// delete (when that delete keeps failing, the rotation succeeds with a warning and leaves its
// WAL entry; a second rotation, before any rollback pass, must undo it first). After each
// case and a rollback pass the config works (a lease is issued and revoked), Atlas holds
// exactly one login credential of that kind, the one config holds, the live leases are
// intact and no WAL entry is left. Two more cases hang up a rotate-root (its request context
// is cancelled) while the rotation waits on Atlas: the rotation runs on, and afterwards one
// working credential, the new one, is left.
//
// The user-access steps (faults_user_access_test.go) fault each call of a user_access grant
// and of its revocation: finding the organization member, reading their organization and
// project roles, adding them to a project they are not in, an organization and a project
// addRole; a project and an organization removeRole and the removal from the project. The
// person holds one live grant throughout that overlaps the faulted one (an organization role
// and GROUP_OWNER in a project where they held GROUP_READ_ONLY before); the faulted role
// grants organization roles and project roles in that project and in one they are not in.
// After each case, and again after a rollback pass, the person's roles (organization and each
// project) are exactly their original roles plus what the live grants need, no WAL entry is
// left and the ledgers in storage (user_access/) record exactly the live grants.
//
// The plugin runs with a 1 s attempt timeout and a 5 s call timeout (MONGODBATLAS_*), so a
// persistent fault exhausts the client's retries in about 5 s; the steps run concurrently, so
// the whole matrix (540 cases: 252 of issuance, revocation and rollback, 178 of rotation, 2
// hang-ups and 108 of user access) takes about as long as its slowest step (about 30 s).

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

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
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
	// refusal: an answer proving Atlas did nothing, which the client may resend at once, a
	// create included: Atlas' own 429, or a 401 to a bearer token (answered with a new token).
	refusal bool
	// rejectsToken: a 401 to the service-account login's bearer token.
	rejectsToken bool
}

// faultKinds are the faults of every step; under a service-account login also a 401 to the
// bearer token (as when Atlas revoked or expired it early), except at the token endpoint.
func faultKinds(step faultStep) []faultKind {
	kinds := []faultKind{
		{name: "429 retry-after 1s", rule: map[string]any{"action": "status", "status": 429, "retry_after": 1}, refusal: true},
		{name: "500", rule: map[string]any{"action": "status", "status": 500}},
		{name: "503", rule: map[string]any{"action": "status", "status": 503}},
		{name: "connection reset", rule: map[string]any{"action": "reset"}},
		{name: "reset after executing", rule: map[string]any{"action": "reset_after"}, executed: true},
		{name: "timeout", rule: map[string]any{"action": "latency", "latency_ms": faultLatency.Milliseconds()}, delayed: true},
	}
	if step.login == loginServiceAccount && step.path != tokenPath {
		kinds = append(kinds, faultKind{name: "401 token rejected", rule: map[string]any{"action": "status", "status": 401}, refusal: true, rejectsToken: true})
	}
	return kinds
}

// faultLogin is the engine's Atlas login during a step.
type faultLogin int

const (
	// loginAPIKey: the seeded API key (HTTP Digest).
	loginAPIKey faultLogin = iota
	// loginServiceAccount: the seeded service account (an OAuth token, then bearer calls).
	loginServiceAccount
)

// stepKind says what a step does with its fault.
type stepKind int

const (
	// stepIssue: the fault hits a call of an issuance.
	stepIssue stepKind = iota
	// stepRevoke: the fault hits a call of the revocation of a lease.
	stepRevoke
	// stepLostCreate: Atlas creates a service account and loses the answer; the fault hits
	// the listing the issuance then searches by name to delete it.
	stepLostCreate
	// stepRollback: a WAL entry names a service account whose create answer was lost (and
	// that the issuance could not find); the fault hits a call of the WAL rollback.
	stepRollback
	// stepRotate: the fault hits a call of rotate-root (faults_rotation_test.go).
	stepRotate
	// stepRotateHangUp: rotate-root is held at the step's call and its client hangs up.
	stepRotateHangUp
	// stepGrant: the fault hits a call of a user_access grant (faults_user_access_test.go).
	stepGrant
	// stepRevokeGrant: the fault hits a call of the revocation of a user_access grant.
	stepRevokeGrant
)

// faultStep is one Atlas call of issuance, revocation or rollback and a role whose
// credential makes it.
type faultStep struct {
	name   string
	role   string
	data   func(sim *atlasSim) map[string]any
	method string
	// path is the regex of the call's path; "{id}" stands for the credential's id (the
	// lease's in revocation, the orphan's in rollback).
	path  string
	kind  stepKind
	login faultLogin
	// create: a create the client never sends again once Atlas may have acted on it (a
	// service account's), so any fault but a refusal fails the issuance, even once. API-key
	// creates are not: their client removes what the create may have made and creates again.
	create bool
	// optional: an issuance succeeds even when this call fails (a project's organization).
	optional bool
	// freshToken: the config is written again before the faulted request, so the plugin
	// must fetch a token (faults on the token endpoint).
	freshToken bool
	// removal: revocation removes the account from its project, because the organization
	// refuses the delete (a Project Owner login): the account then stays in the organization.
	removal bool
	// createPath and listPath: the account create and the listing that finds an account by
	// name (lost-create and rollback steps).
	createPath, listPath string
	// unknownOrg: the rollback step's issuance cannot read the project's organization
	// either, so its WAL entry lacks it (as one written before a crash does): the rollback
	// must read it to delete the account, not merely remove it from the project.
	unknownOrg bool
	// skip: the first skip matches of path pass (rotation steps: a second call to a path).
	skip int
	// rotationID: which id stands for "{id}" in a rotation step's path.
	rotationID rotationID
	// afterWAL: a rotation step from the new credential's create on (the WAL entry is
	// written): a failed rotation says what became of the new credential.
	afterWAL bool
	// afterStore: a rotation step after config holds the new credential (the old one's
	// delete): the rotation succeeds whatever the fault.
	afterStore bool
}

const (
	orgKeysPath     = `^/api/atlas/v2/orgs/[^/]+/apiKeys$`
	projectKeysPath = `^/api/atlas/v2/groups/[^/]+/apiKeys$`
	accessListPath  = `^/api/atlas/v2/orgs/[^/]+/apiKeys/[^/]+/accessList$`
	assignPath      = `^/api/atlas/v2/groups/[^/]+/apiKeys/[^/]+$`
	orgKeyPath      = `^/api/atlas/v2/orgs/[^/]+/apiKeys/{id}$`

	orgAccountsPath     = `^/api/atlas/v2/orgs/[^/]+/serviceAccounts$`
	projectAccountsPath = `^/api/atlas/v2/groups/[^/]+/serviceAccounts$`
	accountAccessPath   = `^/api/atlas/v2/orgs/[^/]+/serviceAccounts/[^/]+/accessList$`
	invitePath          = `^/api/atlas/v2/groups/[^/]+/serviceAccounts/[^/]+:invite$`
	projectPath         = `^/api/atlas/v2/groups/[^/]+$`
	orgAccountPath      = `^/api/atlas/v2/orgs/[^/]+/serviceAccounts/{id}$`
	projectAccountPath  = `^/api/atlas/v2/groups/[^/]+/serviceAccounts/{id}$`
	tokenPath           = `^/api/oauth/token$`
)

// Roles of the service-account steps: an organization account with an access list, one
// invited to a project, a project account.
func saOrgRole(s *atlasSim) map[string]any {
	return map[string]any{"credential_type": "service_account", "organization_id": s.OrgID, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.10", "cidr_blocks": "198.51.100.0/24"}
}

func saInvitedRole(s *atlasSim) map[string]any {
	return map[string]any{"credential_type": "service_account", "organization_id": s.OrgID, "project_id": s.ProjectID, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}
}

func saProjectRole(s *atlasSim) map[string]any {
	return map[string]any{"credential_type": "service_account", "project_id": s.ProjectID, "roles": "GROUP_READ_ONLY"}
}

// faultSteps follows src/engine/api_key and src/engine/service_account.
//
// API keys (API-key login): an org key is POSTed to the org's apiKeys, a project key to the
// project's; the access list is POSTed to the key's accessList; a role with both
// organization_id and project_id creates an org key and then assigns it to the project
// (POST groups/{project}/apiKeys/{key}); revocation DELETEs the org key.
//
// Service accounts (service-account login, so every call carries a bearer token): an
// organization account is POSTed to the org's serviceAccounts, a project account to the
// project's while GET groups/{project} reads its organization; the access list is POSTed to
// the account's accessList; an organization account invited to a project gets
// POST groups/{project}/serviceAccounts/{id}:invite. Revocation DELETEs the account from its
// organization, and removes a project account from its project (DELETE
// groups/{project}/serviceAccounts/{id}) when the organization refuses. After a lost create
// answer, the issuance and the WAL rollback list the org's (or project's) serviceAccounts to
// find the account by name, then DELETE it.
//
// The token endpoint (POST /api/oauth/token) is faulted under a service-account login right
// after a config write, which drops the cached token: at an issuance (of an API key) and at a
// revocation (of a service account).
func faultSteps() []faultStep {
	return append([]faultStep{
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
		{name: "revoke", role: "revoked", method: http.MethodDelete, path: orgKeyPath, kind: stepRevoke, data: func(s *atlasSim) map[string]any {
			return map[string]any{"project_id": s.ProjectID, "roles": "GROUP_READ_ONLY", "ip_addresses": "192.0.2.10"}
		}},

		{name: "sa create org account", role: "sa-org", data: saOrgRole, method: http.MethodPost, path: orgAccountsPath, login: loginServiceAccount, create: true},
		{name: "sa access list", role: "sa-acl", data: saOrgRole, method: http.MethodPost, path: accountAccessPath, login: loginServiceAccount},
		{name: "sa invite to project", role: "sa-invited", data: saInvitedRole, method: http.MethodPost, path: invitePath, login: loginServiceAccount},
		{name: "sa create project account", role: "sa-project", data: saProjectRole, method: http.MethodPost, path: projectAccountsPath, login: loginServiceAccount, create: true},
		{name: "sa project's organization", role: "sa-project-org", data: saProjectRole, method: http.MethodGet, path: projectPath, login: loginServiceAccount, optional: true},
		{name: "sa revoke org account", role: "sa-revoked", data: saOrgRole, method: http.MethodDelete, path: orgAccountPath, kind: stepRevoke, login: loginServiceAccount},
		{name: "sa revoke project account", role: "sa-project-revoked", data: saProjectRole, method: http.MethodDelete, path: orgAccountPath, kind: stepRevoke, login: loginServiceAccount},
		{name: "sa revoke by removal from project", role: "sa-project-removed", data: saProjectRole, method: http.MethodDelete, path: projectAccountPath, kind: stepRevoke, login: loginServiceAccount, removal: true},
		{name: "sa lost create, find by name", role: "sa-lost", data: saOrgRole, method: http.MethodGet, path: orgAccountsPath, kind: stepLostCreate, login: loginServiceAccount, createPath: orgAccountsPath},
		{name: "sa rollback, find by name", role: "sa-rollback", data: saOrgRole, method: http.MethodGet, path: orgAccountsPath, kind: stepRollback, login: loginServiceAccount, createPath: orgAccountsPath, listPath: orgAccountsPath},
		{name: "sa rollback, find by name in project", role: "sa-rollback-project", data: saProjectRole, method: http.MethodGet, path: projectAccountsPath, kind: stepRollback, login: loginServiceAccount, createPath: projectAccountsPath, listPath: projectAccountsPath, unknownOrg: true},
		{name: "sa rollback, delete", role: "sa-rollback-delete", data: saInvitedRole, method: http.MethodDelete, path: orgAccountPath, kind: stepRollback, login: loginServiceAccount, createPath: orgAccountsPath, listPath: orgAccountsPath},

		{name: "token at issuance", role: "token-key", method: http.MethodPost, path: tokenPath, login: loginServiceAccount, freshToken: true, data: func(s *atlasSim) map[string]any {
			return map[string]any{"organization_id": s.OrgID, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.10"}
		}},
		{name: "token at revocation", role: "token-revoked", data: saInvitedRole, method: http.MethodPost, path: tokenPath, kind: stepRevoke, login: loginServiceAccount, freshToken: true},
	}, append(rotationSteps(), userAccessSteps()...)...)
}

// resent reports whether the client sends the step's call again after kind fails it.
func (step faultStep) resent(kind faultKind) bool {
	return !step.create || kind.refusal
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

// faultCase is one fault kind, once or on every attempt, at one step.
type faultCase struct {
	ctx        context.Context
	m          *engineMount
	step       faultStep
	kind       faultKind
	persistent bool
}

func runFaultStep(t *testing.T, e *engineEnv, step faultStep) {
	if step.kind == stepRotate || step.kind == stepRotateHangUp {
		runRotationStep(t, e, step)
		return
	}
	if step.kind == stepGrant || step.kind == stepRevokeGrant {
		runUserAccessStep(t, e, step)
		return
	}
	ctx := testContext(t, 240*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	m := mountEngine(t, ctx, e.newHost(t, faultEnv()...), "mongodbatlas", sim)
	if step.login == loginServiceAccount {
		m.login(t, ctx, loginServiceAccount)
	}
	m.ok(t, ctx, logical.UpdateOperation, "roles/"+step.role, step.data(sim))

	// A lease issued before any fault stays live throughout: faults must not touch it.
	live := []*lease{m.mustIssue(t, ctx, step.role)}
	for _, kind := range faultKinds(step) {
		for _, persistent := range []bool{false, true} {
			mode := "transient"
			if persistent {
				mode = "persistent"
			}
			t.Run(kind.name+"/"+mode, func(t *testing.T) {
				c := &faultCase{ctx: ctx, m: m, step: step, kind: kind, persistent: persistent}
				switch step.kind {
				case stepIssue:
					live = c.issue(t, live)
				case stepRevoke:
					c.revoke(t, live)
				case stepLostCreate:
					c.lostCreate(t, live)
				case stepRollback:
					c.rollback(t, live)
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

// login writes the config with the simulator's seeded API key or service account (dropping
// the plugin's cached client, and with it any token).
func (m *engineMount) login(t *testing.T, ctx context.Context, login faultLogin) {
	t.Helper()
	data := map[string]any{"base_url": m.sim.BaseURL}
	switch login {
	case loginAPIKey:
		data["public_key"], data["private_key"] = m.sim.PublicKey, m.sim.PrivateKey
	case loginServiceAccount:
		if m.sim.SAClientID == "" || m.sim.SAClientSecret == "" {
			t.Fatal("the simulator's startup line has no sa_client_id/sa_client_secret")
		}
		data["client_id"], data["client_secret"] = m.sim.SAClientID, m.sim.SAClientSecret
	}
	m.ok(t, ctx, logical.UpdateOperation, "config", data)
}

// mustRollback runs an immediate WAL rollback pass (as on unmount) and fails the test unless
// it succeeds.
func (m *engineMount) mustRollback(t *testing.T, ctx context.Context) {
	t.Helper()
	req, resp, err := m.rollback(ctx, true)
	if status, verr := vaultStatus(req, resp, err); status != 0 || verr != nil {
		t.Fatalf("the rollback with Atlas working: Vault would answer %d: %v", status, verr)
	}
}

// addStepFault installs kind on the step's call (path with "{id}" replaced by id): once, or
// on every attempt. Under a service-account login it also counts token requests from now on
// (the returned counter's id; 0 otherwise).
func (c *faultCase) addStepFault(t *testing.T, id string) (faultID, tokenID int) {
	t.Helper()
	sim := c.m.sim
	if c.step.login == loginServiceAccount && !c.step.freshToken {
		tokenID = sim.addFault(t, c.ctx, map[string]any{"method": http.MethodPost, "path": tokenPath, "action": "count"})
	}
	path := strings.ReplaceAll(c.step.path, "{id}", regexp.QuoteMeta(id))
	rule := map[string]any{"method": c.step.method, "path": path}
	for k, v := range c.kind.rule {
		rule[k] = v
	}
	if !c.persistent {
		rule["times"] = 1
	}
	return sim.addFault(t, c.ctx, rule), tokenID
}

// settle reads the step fault's counters, removes every rule, and checks the fault acted as
// the case needs: exactly once for a transient fault or a call the client never sends again,
// on at least two attempts (so the client did retry) for a persistent one. Under a
// service-account login with its token cached, the plugin must ask for one new token when
// Atlas rejects the bearer token (once: it never loops on 401s), and for none otherwise.
func (c *faultCase) settle(t *testing.T, faultID, tokenID int, resent bool) {
	t.Helper()
	sim := c.m.sim
	f := sim.fault(t, c.ctx, faultID)
	var tokens simFault
	if tokenID != 0 {
		tokens = sim.fault(t, c.ctx, tokenID)
	}
	sim.clearFaults(t, c.ctx)
	switch {
	case (!c.persistent || !resent) && f.Fired != 1:
		t.Errorf("the fault fired %d times, want 1 (matched %d; resent by the client: %v)", f.Fired, f.Matched, resent)
	case c.persistent && resent && f.Fired < 2:
		t.Errorf("the persistent fault fired %d times, want the client to retry (at least 2)", f.Fired)
	}
	if tokenID != 0 {
		want := 0
		if c.kind.rejectsToken {
			want = 1
		}
		if tokens.Matched != want {
			t.Errorf("the plugin asked for %d tokens, want %d (a rejected token is replaced once; a cached one is reused)", tokens.Matched, want)
		}
	}
}

// tokenLogin drops the cached token when the step faults the token endpoint.
func (c *faultCase) tokenLogin(t *testing.T) {
	t.Helper()
	if c.step.freshToken {
		c.m.login(t, c.ctx, loginServiceAccount)
	}
}

func (c *faultCase) issue(t *testing.T, live []*lease) []*lease {
	m, sim, step, kind := c.m, c.m.sim, c.step, c.kind
	c.tokenLogin(t)
	faultID, tokenID := c.addStepFault(t, "")
	started := time.Now()
	got := m.tryIssue(c.ctx, step.role)
	took := time.Since(started)
	resent := step.resent(kind)
	c.settle(t, faultID, tokenID, resent)

	succeeds := step.optional || (!c.persistent && resent)
	// A service-account create failed with no proof that Atlas did nothing: the WAL keeps
	// its entry, and the rollback (finding no account by that name) drops it.
	leftForRollback := !succeeds && step.create && !kind.refusal && !kind.executed
	if succeeds {
		if got.status != 0 || got.lease == nil {
			t.Errorf("issuance with %s at %s: %v; want the retry to succeed", describe(kind, c.persistent), step.name, got)
		} else {
			live = append(live, got.lease)
			checkIssued(t, c.ctx, sim, step, got.lease)
			if step.optional {
				org, _ := got.lease.secret.InternalData["account_org_id"].(string)
				if !c.persistent && org != sim.OrgID {
					t.Errorf("the lease records the account's organization as %q, want %s", org, sim.OrgID)
				}
			}
		}
	} else {
		switch {
		case got.status == 0:
			t.Errorf("issuance with %s at %s succeeded (%v); want an error", describe(kind, c.persistent), step.name, got)
			if got.lease != nil {
				live = append(live, got.lease)
			}
		case got.status != http.StatusInternalServerError:
			t.Errorf("issuance with %s at %s: %v; want a 500 (Atlas failed, not the user)", describe(kind, c.persistent), step.name, got)
		case !strings.Contains(errString(got.err), "Atlas"):
			t.Errorf("issuance error %q does not say Atlas failed", got.err)
		case got.why != "":
			t.Errorf("failed issuance: %s", got.why)
		case leftForRollback && !strings.Contains(errString(got.err), "WAL rollback"):
			t.Errorf("issuance error %q does not say the WAL rollback deletes what the create may have made", got.err)
		}
		if took > faultCallTimeout+2*faultAttemptTimeout+3*time.Second {
			t.Errorf("the failed issuance took %v; the call timeout is %v", took, faultCallTimeout)
		}
	}
	if leftForRollback {
		if n := m.walEntries(t, c.ctx); n != 1 {
			t.Errorf("WAL entries after a create that may have landed: %d, want 1", n)
		}
		sim.requireLiveLeases(t, c.ctx, "before the rollback", live)
		m.mustRollback(t, c.ctx)
	}
	// The in-place clean-up (or the client's create recovery, or the rollback) leaves nothing.
	m.requireNoWAL(t, c.ctx, "after the issuance")
	sim.requireLiveLeases(t, c.ctx, "after the issuance", live)
	if step.optional && got.lease != nil {
		// Whether or not the issuance learnt the project's organization, the revocation
		// deletes the account (not merely removes it from the project).
		l := live[len(live)-1]
		live = live[:len(live)-1]
		m.mustRevoke(t, c.ctx, l)
		sim.requireLiveLeases(t, c.ctx, "after revoking the project account", live)
	}
	return live
}

func describe(kind faultKind, persistent bool) string {
	if persistent {
		return kind.name + " on every attempt"
	}
	return "one " + kind.name
}

// checkIssued checks the credential of a fresh lease in the simulator against its role.
func checkIssued(t *testing.T, ctx context.Context, sim *atlasSim, step faultStep, l *lease) {
	t.Helper()
	role := step.data(sim)
	wantACL := 0
	for _, field := range []string{"ip_addresses", "cidr_blocks"} {
		if v, _ := role[field].(string); v != "" {
			wantACL += len(strings.Split(v, ","))
		}
	}
	org, _ := role["organization_id"].(string)
	project, _ := role["project_id"].(string)
	if !l.isServiceAccount() {
		k, ok := sim.keyByID(t, ctx, l.keyID())
		switch {
		case !ok || k.PublicKey != l.publicKey():
			t.Errorf("the issued key %s (public key %s) is not in the simulator", l.keyID(), l.publicKey())
		case len(k.AccessList) != wantACL:
			t.Errorf("the issued key's access list is %v, want the role's %d entries", k.AccessList, wantACL)
		case org != "" && project != "" && !inProject(k, project):
			t.Errorf("the issued key is not assigned to the project: roles %v", k.Roles)
		}
		return
	}
	a, ok := sim.serviceAccount(t, ctx, l.credID())
	switch {
	case !ok:
		t.Errorf("the issued service account %s is not in the simulator", l.credID())
	case a.Name != l.data["name"]:
		t.Errorf("the issued service account is named %q in the simulator, %q in the lease", a.Name, l.data["name"])
	case len(a.AccessList) != wantACL:
		t.Errorf("the issued service account's access list is %v, want the role's %d entries", a.AccessList, wantACL)
	case project != "" && len(a.ProjectRoles[project]) == 0:
		t.Errorf("the issued service account has no roles in the project: %v", a.ProjectRoles)
	}
}

func (c *faultCase) revoke(t *testing.T, live []*lease) {
	m, sim, step, kind := c.m, c.m.sim, c.step, c.kind
	l := m.mustIssue(t, c.ctx, step.role)
	c.tokenLogin(t)
	if step.removal {
		// The organization refuses the delete, as it does a Project Owner's.
		sim.addFault(t, c.ctx, map[string]any{"method": http.MethodDelete, "path": strings.ReplaceAll(orgAccountPath, "{id}", regexp.QuoteMeta(l.credID())), "action": "status", "status": 403})
	}
	faultID, tokenID := c.addStepFault(t, l.credID())
	req, resp, err := m.revoke(c.ctx, l)
	status, verr := vaultStatus(req, resp, err)
	c.settle(t, faultID, tokenID, true)

	// A project account whose delete the organization keeps refusing (a 401 to a new token
	// too) is removed from its project instead: it stays in the organization, reaching nothing.
	projectAccount := l.isServiceAccount() && l.secret.InternalData["organization_id"] == ""
	fallback := !step.removal && c.persistent && kind.rejectsToken && projectAccount
	if !c.persistent || fallback {
		if status != 0 || verr != nil {
			t.Errorf("revocation with %s: Vault would answer %d (%v); want the retry to succeed", describe(kind, c.persistent), status, verr)
		}
		if step.removal || fallback {
			c.requireRemovedFromProject(t, l)
		}
		sim.requireLiveLeases(t, c.ctx, "after the revocation", live)
		return
	}
	switch {
	case status == 0 && verr == nil:
		t.Errorf("revocation with %s on every attempt succeeded; want an error so that Vault retries", kind.name)
	case !strings.Contains(errString(verr), l.credID()):
		t.Errorf("revocation error %q (HTTP %d) does not name the credential", errString(verr), status)
	}
	if !kind.executed && !kind.delayed {
		// Atlas never acted on the call: the credential must still be there, under its live lease.
		sim.requireLiveLeases(t, c.ctx, "after the failed revocation", append(live[:len(live):len(live)], l))
	}
	// Vault retries the revocation once Atlas is back (and deletes the account outright).
	m.mustRevoke(t, c.ctx, l)
	sim.requireLiveLeases(t, c.ctx, "after the retried revocation", live)
}

// requireRemovedFromProject checks that a revoked project account has no role left in its
// project, then deletes it out of band: by design it stays in the organization, which the
// login could not delete it from (the invariant of the next cases needs it gone).
func (c *faultCase) requireRemovedFromProject(t *testing.T, l *lease) {
	t.Helper()
	sim := c.m.sim
	a, ok := sim.serviceAccount(t, c.ctx, l.credID())
	if !ok {
		t.Errorf("the project account %s was deleted from its organization, which refused", l.credID())
		return
	}
	if roles := a.ProjectRoles[sim.ProjectID]; len(roles) != 0 {
		t.Errorf("the revoked project account %s still has roles %v in its project", l.credID(), roles)
	}
	if err := sim.DeleteServiceAccount(c.ctx, l.credID()); err != nil {
		t.Fatal(err)
	}
}

// lostCreate: Atlas creates the account and loses the answer; the fault hits the listing
// the issuance searches by name.
func (c *faultCase) lostCreate(t *testing.T, live []*lease) {
	m, sim, step, kind := c.m, c.m.sim, c.step, c.kind
	createID := sim.addFault(t, c.ctx, map[string]any{"method": http.MethodPost, "path": step.createPath, "action": "reset_after", "times": 1})
	faultID, tokenID := c.addStepFault(t, "")
	got := m.tryIssue(c.ctx, step.role)
	if f := sim.fault(t, c.ctx, createID); f.Fired != 1 {
		t.Errorf("the lost create fired %d times, want 1 (creates are never resent)", f.Fired)
	}
	c.settle(t, faultID, tokenID, true)

	switch {
	case got.status != http.StatusInternalServerError:
		t.Errorf("issuance whose create answer was lost, with %s at the listing: %v; want a 500", describe(kind, c.persistent), got)
	case !c.persistent && !strings.Contains(errString(got.err), "was deleted"):
		t.Errorf("issuance error %q does not say the account was deleted", got.err)
	case c.persistent && !strings.Contains(errString(got.err), "WAL rollback"):
		t.Errorf("issuance error %q does not say the WAL rollback deletes the account", got.err)
	}
	if c.persistent {
		// The listing kept failing: the entry stays and names the orphan, which the rollback
		// finds and deletes once Atlas is back.
		if n := m.walEntries(t, c.ctx); n != 1 {
			t.Errorf("WAL entries after the listing failed: %d, want 1", n)
		}
		if orphans := c.orphans(t, live); len(orphans) != 1 {
			t.Errorf("service accounts no lease holds: %s; want the one whose create answer was lost", atlassim.DescribeServiceAccounts(orphans))
		}
		m.mustRollback(t, c.ctx)
	}
	m.requireNoWAL(t, c.ctx, "after the issuance")
	sim.requireLiveLeases(t, c.ctx, "after the issuance", live)
}

// orphans are the issued service accounts no live lease holds.
func (c *faultCase) orphans(t *testing.T, live []*lease) []simServiceAccount {
	t.Helper()
	held := map[string]bool{}
	for _, l := range live {
		held[l.credID()] = true
	}
	var out []simServiceAccount
	for _, a := range c.m.sim.issuedServiceAccounts(t, c.ctx) {
		if !held[a.ClientID] {
			out = append(out, a)
		}
	}
	return out
}

// rollback: an issuance whose create answer was lost and whose listing Atlas refused leaves
// a WAL entry naming an orphan; the fault hits the rollback's listing or delete.
func (c *faultCase) rollback(t *testing.T, live []*lease) {
	m, sim, step, kind := c.m, c.m.sim, c.step, c.kind
	sim.addFault(t, c.ctx, map[string]any{"method": http.MethodPost, "path": step.createPath, "action": "reset_after", "times": 1})
	sim.addFault(t, c.ctx, map[string]any{"method": http.MethodGet, "path": step.listPath, "action": "status", "status": 400})
	if step.unknownOrg {
		sim.addFault(t, c.ctx, map[string]any{"method": http.MethodGet, "path": projectPath, "action": "status", "status": 400})
	}
	if got := m.tryIssue(c.ctx, step.role); got.status == 0 {
		t.Fatalf("issuance with a lost create answer and a refused listing: %v; want an error", got)
	}
	sim.clearFaults(t, c.ctx)
	orphans := c.orphans(t, live)
	wal := m.walRecords(t, c.ctx)
	if len(wal) != 1 || len(orphans) != 1 {
		t.Fatalf("after a lost create answer and a refused listing: %d WAL entries and orphans %s; want one of each", len(wal), atlassim.DescribeServiceAccounts(orphans))
	}
	if r := wal[0]; r.Kind != saSecretType || r.Data["name"] != orphans[0].Name || r.Data["client_id"] != "" || (step.unknownOrg && r.Data["account_org_id"] != "") {
		t.Fatalf("the WAL entry %+v does not name the orphan %q by name alone (or names its organization)", r, orphans[0].Name)
	}

	faultID, tokenID := c.addStepFault(t, orphans[0].ClientID)
	req, resp, err := m.rollback(c.ctx, true)
	status, verr := vaultStatus(req, resp, err)
	c.settle(t, faultID, tokenID, true)
	if !c.persistent {
		if status != 0 || verr != nil {
			t.Errorf("rollback with %s: Vault would answer %d (%v); want the retry to succeed", describe(kind, c.persistent), status, verr)
		}
	} else {
		if status == 0 && verr == nil {
			t.Errorf("the rollback with %s succeeded; want an error (the entry kept for the next pass)", describe(kind, c.persistent))
		}
		if n := m.walEntries(t, c.ctx); n != 1 {
			t.Errorf("WAL entries after a failed rollback: %d, want the entry kept", n)
		}
		if _, ok := sim.serviceAccount(t, c.ctx, orphans[0].ClientID); !ok && !(kind.executed && step.method == http.MethodDelete) {
			t.Error("the orphan vanished although Atlas never acted on the rollback's delete")
		}
		m.mustRollback(t, c.ctx)
	}
	m.requireNoWAL(t, c.ctx, "after the rollback")
	sim.requireLiveLeases(t, c.ctx, "after the rollback", live)
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
