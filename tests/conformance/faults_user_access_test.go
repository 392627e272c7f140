package conformance

// The user-access steps of the fault matrix (faults_test.go): a user_access grant, and the
// revocation of one, with each fault at each Atlas call it makes. The person (an organization
// member with GROUP_READ_ONLY in the simulator's project, not in a second project) holds one
// live grant throughout that overlaps the faulted one; after every case and a rollback pass
// their roles in the organization and in each project are exactly their original roles plus
// what the live grants need, no WAL entry is left and the ledgers in storage (user_access/)
// record exactly the live grants.

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Paths of the user calls (src/atlas/users.rs). The ids never hold a colon; a role change's
// last segment is "{userId}:addRole" or "{userId}:removeRole".
const (
	orgUsersPath          = `^/api/atlas/v2/orgs/[^/]+/users$`
	orgUserPath           = `^/api/atlas/v2/orgs/[^/]+/users/[^/:]+$`
	orgAddRolePath        = `^/api/atlas/v2/orgs/[^/]+/users/[^/:]+:addRole$`
	orgRemoveRolePath     = `^/api/atlas/v2/orgs/[^/]+/users/[^/:]+:removeRole$`
	projectUsersPath      = `^/api/atlas/v2/groups/[^/]+/users$`
	projectUserPath       = `^/api/atlas/v2/groups/[^/]+/users/[^/:]+$`
	projectAddRolePath    = `^/api/atlas/v2/groups/[^/]+/users/[^/:]+:addRole$`
	projectRemoveRolePath = `^/api/atlas/v2/groups/[^/]+/users/[^/:]+:removeRole$`
)

// userAccessSecretType is the lease secret_type (and WAL kind) of user_access grants.
const userAccessSecretType = "user_access"

// The person granted, and what the grants need. The live grant (GROUP_OWNER in the first
// project, ORG_GROUP_CREATOR) overlaps the faulted one, so a release that removes too much
// takes a role the live grant needs. The faulted grant makes every call: in the organization
// an addRole (ORG_BILLING_ADMIN) and its removeRole; in the first project, where the person
// holds GROUP_READ_ONLY and the live grant GROUP_OWNER, an addRole (GROUP_DATA_ACCESS_ADMIN)
// and its removeRole; the second project adds the person with both roles, and removes them.
const grantee = "alice@example.com"

var (
	granteeOrgRoles     = []string{"ORG_MEMBER"}
	granteeProjectRoles = []string{"GROUP_READ_ONLY"}
	liveGrantOrgRoles   = []string{"ORG_GROUP_CREATOR"}
	liveGrantRoles      = []string{"GROUP_OWNER"}
	faultedOrgRoles     = []string{"ORG_GROUP_CREATOR", "ORG_BILLING_ADMIN"}
	faultedProjectRoles = []string{"GROUP_OWNER", "GROUP_DATA_ACCESS_ADMIN"}
)

// userAccessSteps follows src/engine/user_access/grant.rs.
//
// A grant finds the member (GET orgs/{org}/users?username=), then place by place (the
// organization, then each project) reads the person's roles (GET orgs/{org}/users/{id}, GET
// groups/{project}/users/{id}: 404, not in the project), writes the place's ledger and adds
// what the person lacks: POST orgs/{org}/users/{id}:addRole, POST
// groups/{project}/users/{id}:addRole, or, for a project they are not in, POST
// groups/{project}/users with the roles (never resent once Atlas may have acted). A failure
// part-way releases what was recorded. A revocation (or a release) removes, place by place,
// what no live grant needs and the person did not hold before: POST
// orgs/{org}/users/{id}:removeRole, POST groups/{project}/users/{id}:removeRole, or DELETE
// groups/{project}/users/{id} for a project the plugin added them to.
func userAccessSteps() []faultStep {
	return []faultStep{
		{name: "grant: find the member", method: http.MethodGet, path: orgUsersPath, kind: stepGrant},
		{name: "grant: read org roles", method: http.MethodGet, path: orgUserPath, kind: stepGrant},
		{name: "grant: read project roles", method: http.MethodGet, path: projectUserPath, kind: stepGrant},
		{name: "grant: add to project", method: http.MethodPost, path: projectUsersPath, kind: stepGrant, create: true},
		{name: "grant: add project role", method: http.MethodPost, path: projectAddRolePath, kind: stepGrant},
		{name: "grant: add org role", method: http.MethodPost, path: orgAddRolePath, kind: stepGrant},
		{name: "revoke grant: remove project role", method: http.MethodPost, path: projectRemoveRolePath, kind: stepRevokeGrant},
		{name: "revoke grant: remove org role", method: http.MethodPost, path: orgRemoveRolePath, kind: stepRevokeGrant},
		{name: "revoke grant: remove from project", method: http.MethodDelete, path: projectUserPath, kind: stepRevokeGrant},
	}
}

// grantMount is a mount with the person, the second project and the two roles.
type grantMount struct {
	*engineMount
	second string
	// original: the person's roles before any grant.
	originalOrg      []string
	originalProjects map[string][]string
}

// runUserAccessStep: the person, a live grant, then every fault kind once and on every
// attempt at the step's call, each case followed by a rollback pass and the checks.
func runUserAccessStep(t *testing.T, e *engineEnv, step faultStep) {
	ctx := testContext(t, 240*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	g := &grantMount{engineMount: mountEngine(t, ctx, e.newHost(t, faultEnv()...), "mongodbatlas", sim)}
	second, err := sim.CreateProject(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	g.second = second
	if _, err := sim.AddOrgMember(ctx, grantee, granteeOrgRoles, map[string][]string{sim.ProjectID: granteeProjectRoles}); err != nil {
		t.Fatal(err)
	}
	g.originalOrg, g.originalProjects = g.roles(t, ctx)
	g.ok(t, ctx, logical.UpdateOperation, "roles/live", map[string]any{
		"credential_type": userAccessSecretType, "allowed_users": "*@example.com",
		"organization_id": sim.OrgID, "roles": strings.Join(liveGrantOrgRoles, ","),
		"project_id": sim.ProjectID, "project_roles": strings.Join(liveGrantRoles, ","),
	})
	g.ok(t, ctx, logical.UpdateOperation, "roles/oncall", map[string]any{
		"credential_type": userAccessSecretType, "allowed_users": grantee,
		"organization_id": sim.OrgID, "roles": strings.Join(faultedOrgRoles, ","),
		"project_ids": []string{sim.ProjectID, second}, "project_roles": strings.Join(faultedProjectRoles, ","),
	})

	// A grant made before any fault stays live throughout: faults must not touch it.
	live := []*lease{g.mustGrant(t, ctx, "live")}
	g.requireGranted(t, ctx, "after the live grant", live)
	if t.Failed() {
		return
	}
	for _, kind := range faultKinds(step) {
		for _, persistent := range []bool{false, true} {
			mode := "transient"
			if persistent {
				mode = "persistent"
			}
			t.Run(kind.name+"/"+mode, func(t *testing.T) {
				c := &faultCase{ctx: ctx, m: g.engineMount, step: step, kind: kind, persistent: persistent}
				switch step.kind {
				case stepGrant:
					c.grant(t, g, live)
				case stepRevokeGrant:
					c.revokeGrant(t, g, live)
				}
				// A failure part-way released what the grant recorded before it answered.
				g.requireGranted(t, ctx, "after the case", live)
				g.mustRollback(t, ctx)
				g.requireGranted(t, ctx, "after the case and a rollback pass", live)
			})
			if t.Failed() {
				return
			}
		}
	}
	for _, l := range live {
		g.mustRevoke(t, ctx, l)
	}
	g.requireGranted(t, ctx, "after revoking every grant of the step", nil)
}

// grant: the fault hits a call of a grant of the faulted role.
func (c *faultCase) grant(t *testing.T, g *grantMount, live []*lease) {
	step, kind := c.step, c.kind
	faultID, _ := c.addStepFault(t, "")
	got := g.tryGrant(c.ctx, "oncall")
	resent := step.resent(kind)
	c.settle(t, faultID, 0, resent)

	if !c.persistent && resent {
		// The client's retry succeeds: the grant holds, and its revocation takes it back.
		if got.status != 0 || got.lease == nil {
			t.Errorf("grant with %s at %s: %v; want the retry to succeed", describe(kind, c.persistent), step.name, got)
			return
		}
		g.requireGranted(t, c.ctx, "after the grant", append(live[:len(live):len(live)], got.lease))
		g.mustRevoke(t, c.ctx, got.lease)
		return
	}
	switch {
	case got.status == 0:
		t.Errorf("grant with %s at %s succeeded (%v); want an error", describe(kind, c.persistent), step.name, got)
		if got.lease != nil {
			g.mustRevoke(t, c.ctx, got.lease)
		}
	case got.status != http.StatusInternalServerError:
		t.Errorf("grant with %s at %s: %v; want a 500 (Atlas failed, not the user)", describe(kind, c.persistent), step.name, got)
	case got.why != "":
		t.Errorf("failed grant: %s", got.why)
	}
}

// revokeGrant: a grant of the faulted role, then the fault hits a call of its revocation.
func (c *faultCase) revokeGrant(t *testing.T, g *grantMount, live []*lease) {
	kind := c.kind
	l := g.mustGrant(t, c.ctx, "oncall")
	g.requireGranted(t, c.ctx, "after the grant", append(live[:len(live):len(live)], l))
	faultID, _ := c.addStepFault(t, "")
	req, resp, err := g.revoke(c.ctx, l)
	status, verr := vaultStatus(req, resp, err)
	c.settle(t, faultID, 0, true)
	failed := status != 0 || verr != nil
	if !c.persistent {
		if failed {
			t.Errorf("revocation with %s: Vault would answer %d (%v); want the retry to succeed", describe(kind, c.persistent), status, verr)
		}
		return
	}
	if !failed {
		t.Errorf("revocation with %s on every attempt succeeded; want an error so that Vault retries", kind.name)
	}
	// Vault retries the revocation once Atlas is back.
	g.mustRevoke(t, c.ctx, l)
}

// tryGrant writes creds/<role> for the person once and classifies the answer.
func (g *grantMount) tryGrant(ctx context.Context, role string) attempt {
	path := "creds/" + role
	req := g.Request(logical.UpdateOperation, path, map[string]any{"username": grantee})
	resp, err := g.Handle(ctx, req)
	status, verr := vaultStatus(req, resp, err)
	if status != 0 || verr != nil {
		if status == 0 {
			status = http.StatusInternalServerError
		}
		a := attempt{status: status, err: verr}
		if resp != nil && resp.Secret != nil {
			a.why = "an error response carries a secret"
		}
		return a
	}
	switch {
	case resp == nil || resp.Secret == nil:
		return attempt{why: "no secret in the response"}
	case resp.Secret.InternalData["secret_type"] != userAccessSecretType:
		return attempt{why: "internal secret_type is not " + userAccessSecretType}
	case resp.Data["username"] != grantee:
		return attempt{why: "data does not name the person"}
	case grantID(resp.Secret) == "":
		return attempt{why: "internal data has no grant_id"}
	}
	return attempt{lease: &lease{path: path, secret: resp.Secret, data: resp.Data, issueTime: time.Now()}}
}

func (g *grantMount) mustGrant(t *testing.T, ctx context.Context, role string) *lease {
	t.Helper()
	got := g.tryGrant(ctx, role)
	if got.status != 0 || got.lease == nil {
		t.Fatalf("write creds/%s username=%s: %v", role, grantee, got)
	}
	return got.lease
}

func grantID(s *logical.Secret) string {
	id, _ := s.InternalData["grant_id"].(string)
	return id
}

// grantNeeds is what a grant lease needs: organization roles, and project -> roles.
func grantNeeds(l *lease) (org []string, projects map[string][]string) {
	projects = map[string][]string{}
	org = strs(l.secret.InternalData["org_roles"])
	if m, ok := l.secret.InternalData["project_roles"].(map[string]any); ok {
		for p, roles := range m {
			projects[p] = strs(roles)
		}
	}
	return org, projects
}

func strs(v any) []string {
	var out []string
	if list, ok := v.([]any); ok {
		for _, s := range list {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// union is the sorted, deduplicated union of role lists.
func union(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// roles are the person's roles in Atlas: organization roles, and project -> roles (sorted).
func (g *grantMount) roles(t *testing.T, ctx context.Context) ([]string, map[string][]string) {
	t.Helper()
	u := g.sim.inventory(t, ctx).OrgUser(g.sim.OrgID, grantee)
	if u == nil {
		t.Fatalf("%s is no longer a member of the organization", grantee)
	}
	projects := map[string][]string{}
	for p, roles := range u.ProjectRoles {
		projects[p] = union(roles)
	}
	return union(u.OrgRoles), projects
}

// storedLedger is one ledger of src/engine/user_access/ledger.rs.
type storedLedger struct {
	HeldBefore  []string            `json:"held_before"`
	AddedMember bool                `json:"added_member"`
	Grants      map[string][]string `json:"grants"`
}

// ledgers reads every ledger under user_access/: key -> ledger.
func (g *grantMount) ledgers(t *testing.T, ctx context.Context) map[string]storedLedger {
	t.Helper()
	out := map[string]storedLedger{}
	places, err := g.Storage.List(ctx, "user_access/")
	if err != nil {
		t.Fatal(err)
	}
	for _, place := range places {
		users, err := g.Storage.List(ctx, "user_access/"+place)
		if err != nil {
			t.Fatal(err)
		}
		for _, user := range users {
			key := "user_access/" + place + user
			entry, err := g.Storage.Get(ctx, key)
			if err != nil || entry == nil {
				t.Fatalf("ledger %s: %v", key, err)
			}
			var l storedLedger
			if err := json.Unmarshal(entry.Value, &l); err != nil {
				t.Fatalf("ledger %s: %v", key, err)
			}
			out[key] = l
		}
	}
	return out
}

// requireGranted checks the invariant of the user-access steps: the person's roles in the
// organization and in each project are exactly their original roles plus what the live
// grants need (a project they were not in holds them only while a live grant needs it); no
// WAL entry is left; the ledgers are exactly those of the places of the live grants, each
// naming exactly the live grants there with their roles and the roles held before.
func (g *grantMount) requireGranted(t *testing.T, ctx context.Context, when string, live []*lease) {
	t.Helper()
	sim := g.sim
	userID := ""
	if u := sim.inventory(t, ctx).OrgUser(sim.OrgID, grantee); u != nil {
		userID = u.ID
	}
	wantOrg := slices.Clone(g.originalOrg)
	wantProjects := maps.Clone(g.originalProjects)
	// Ledger key -> the ledger the live grants make.
	wantLedgers := map[string]storedLedger{}
	place := func(key string, held []string, added bool, id string, roles []string) {
		l, ok := wantLedgers[key]
		if !ok {
			l = storedLedger{HeldBefore: held, AddedMember: added, Grants: map[string][]string{}}
		}
		l.Grants[id] = union(roles)
		wantLedgers[key] = l
	}
	for _, l := range live {
		org, projects := grantNeeds(l)
		if len(org) > 0 {
			wantOrg = union(wantOrg, org)
			place("user_access/org-"+sim.OrgID+"/"+userID, g.originalOrg, false, grantID(l.secret), org)
		}
		for p, roles := range projects {
			held, member := g.originalProjects[p]
			wantProjects[p] = union(wantProjects[p], roles)
			place("user_access/project-"+p+"/"+userID, held, !member, grantID(l.secret), roles)
		}
	}
	org, projects := g.roles(t, ctx)
	if !slices.Equal(org, wantOrg) {
		t.Errorf("%s: %s's organization roles are %v, want %v (original %v plus the live grants')", when, grantee, org, wantOrg, g.originalOrg)
	}
	for _, p := range []string{sim.ProjectID, g.second} {
		got, in := projects[p]
		want, wantIn := wantProjects[p]
		switch {
		case in != wantIn:
			t.Errorf("%s: %s is in project %s: %v (roles %v), want %v (original roles %v plus the live grants')", when, grantee, p, in, got, wantIn, g.originalProjects[p])
		case !slices.Equal(got, want):
			t.Errorf("%s: %s's roles in project %s are %v, want %v (original %v plus the live grants')", when, grantee, p, got, want, g.originalProjects[p])
		}
	}
	g.requireNoWAL(t, ctx, when)
	got := g.ledgers(t, ctx)
	for key, l := range got {
		for id, roles := range l.Grants {
			l.Grants[id] = union(roles)
		}
		l.HeldBefore = union(l.HeldBefore)
		got[key] = l
	}
	for key, want := range wantLedgers {
		want.HeldBefore = union(want.HeldBefore)
		have, ok := got[key]
		switch {
		case !ok:
			t.Errorf("%s: no ledger %s, which the live grants need", when, key)
		case !slices.Equal(have.HeldBefore, want.HeldBefore) || have.AddedMember != want.AddedMember:
			t.Errorf("%s: ledger %s records held_before %v, added_member %v; want %v, %v", when, key, have.HeldBefore, have.AddedMember, want.HeldBefore, want.AddedMember)
		case !maps.EqualFunc(have.Grants, want.Grants, slices.Equal):
			t.Errorf("%s: ledger %s records grants %v, want the live grants' %v", when, key, have.Grants, want.Grants)
		}
	}
	for key, l := range got {
		if _, ok := wantLedgers[key]; !ok {
			t.Errorf("%s: ledger %s (grants %v) is left, which no live grant needs", when, key, l.Grants)
		}
	}
}
