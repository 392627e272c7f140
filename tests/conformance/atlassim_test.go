package conformance

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

// atlasSim is the shared simulator launcher (internal/atlassim) with helpers that fail the
// test on an admin API error.
type atlasSim struct {
	*atlassim.Sim
}

type (
	simInventory = atlassim.Inventory
	simKey       = atlassim.Key
	simRole      = atlassim.Role
)

// simCreatedKey is the admin API's answer to POST /admin/keys.
type simCreatedKey struct {
	ID        string `json:"id"`
	OrgID     string `json:"org_id"`
	PublicKey string `json:"public_key"`
}

type simFault struct {
	ID      int `json:"id"`
	Matched int `json:"matched"`
	Fired   int `json:"fired"`
}

// startSim launches atlas-sim on a free port and stops it when the test ends; its stderr is
// printed only if the test fails.
func startSim(t *testing.T, _ context.Context, binary string) *atlasSim {
	t.Helper()
	return &atlasSim{atlassim.Start(t, binary)}
}

// admin calls the admin API; want is the expected status; out (if non-nil) receives the JSON body.
func (s *atlasSim) admin(t *testing.T, ctx context.Context, method, path string, body any, want int, out any) {
	t.Helper()
	if err := s.Admin(ctx, method, path, body, want, out); err != nil {
		t.Fatal(err)
	}
}

func (s *atlasSim) inventory(t *testing.T, ctx context.Context) simInventory {
	t.Helper()
	var inv simInventory
	s.admin(t, ctx, http.MethodGet, "/inventory", nil, http.StatusOK, &inv)
	return inv
}

// issuedKeys are the keys other than the seeded one.
func (s *atlasSim) issuedKeys(t *testing.T, ctx context.Context) []simKey {
	t.Helper()
	var out []simKey
	for _, k := range s.inventory(t, ctx).APIKeys {
		if !k.Seeded {
			out = append(out, k)
		}
	}
	return out
}

func (s *atlasSim) keyByPublicKey(t *testing.T, ctx context.Context, publicKey string) (simKey, bool) {
	t.Helper()
	for _, k := range s.inventory(t, ctx).APIKeys {
		if k.PublicKey == publicKey {
			return k, true
		}
	}
	return simKey{}, false
}

func (s *atlasSim) keyByID(t *testing.T, ctx context.Context, id string) (simKey, bool) {
	t.Helper()
	for _, k := range s.inventory(t, ctx).APIKeys {
		if k.ID == id {
			return k, true
		}
	}
	return simKey{}, false
}

// requireNoIssuedKeys fails the test if any key other than the seeded one is alive.
func (s *atlasSim) requireNoIssuedKeys(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	if keys := s.issuedKeys(t, ctx); len(keys) != 0 {
		t.Errorf("%s: the simulator still holds %d issued keys: %s", when, len(keys), describeKeys(keys))
	}
}

// createKey makes a key directly in the simulator (as if another tool, or the official
// plugin, had created it). orgRoles apply in the seeded org, projectRoles in its project.
func (s *atlasSim) createKey(t *testing.T, ctx context.Context, desc string, orgRoles, projectRoles []string) simCreatedKey {
	t.Helper()
	body := map[string]any{"desc": desc, "org_roles": orgRoles}
	if len(projectRoles) > 0 {
		body["project_roles"] = map[string][]string{s.ProjectID: projectRoles}
	}
	var key simCreatedKey
	s.admin(t, ctx, http.MethodPost, "/keys", body, http.StatusOK, &key)
	if key.ID == "" {
		t.Fatalf("atlas-sim created a key without an id: %+v", key)
	}
	return key
}

// deleteKey removes a key out of band.
func (s *atlasSim) deleteKey(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	s.admin(t, ctx, http.MethodDelete, "/keys/"+id, nil, http.StatusNoContent, nil)
}

func (s *atlasSim) addFault(t *testing.T, ctx context.Context, rule map[string]any) int {
	t.Helper()
	var out struct {
		ID int `json:"id"`
	}
	s.admin(t, ctx, http.MethodPost, "/faults", rule, http.StatusOK, &out)
	return out.ID
}

func (s *atlasSim) faults(t *testing.T, ctx context.Context) []simFault {
	t.Helper()
	var out []simFault
	s.admin(t, ctx, http.MethodGet, "/faults", nil, http.StatusOK, &out)
	return out
}

func (s *atlasSim) clearFaults(t *testing.T, ctx context.Context) {
	t.Helper()
	s.admin(t, ctx, http.MethodDelete, "/faults", nil, http.StatusNoContent, nil)
}

// hasRole reports whether k holds role in the given org (group empty) or project.
func hasRole(k simKey, org, group, role string) bool {
	return slices.ContainsFunc(k.Roles, func(r simRole) bool {
		return r.RoleName == role && r.OrgID == org && r.GroupID == group
	})
}

func inProject(k simKey, group string) bool {
	return slices.ContainsFunc(k.Roles, func(r simRole) bool { return r.GroupID == group })
}

func describeKeys(keys []simKey) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("{id=%s public_key=%s desc=%q roles=%v access_list=%v}", k.ID, k.PublicKey, k.Desc, k.Roles, k.AccessList))
	}
	return strings.Join(parts, ", ")
}
