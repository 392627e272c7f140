package conformance

import (
	"context"
	"fmt"
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
	simInventory  = atlassim.Inventory
	simKey        = atlassim.Key
	simRole       = atlassim.Role
	simCreatedKey = atlassim.CreatedKey
	simFault      = atlassim.Fault
)

// startSim launches atlas-sim on a free port and stops it when the test ends; its stderr is
// printed only if the test fails.
func startSim(t *testing.T, _ context.Context, binary string) *atlasSim {
	t.Helper()
	return &atlasSim{atlassim.Start(t, binary)}
}

func (s *atlasSim) inventory(t *testing.T, ctx context.Context) simInventory {
	t.Helper()
	inv, err := s.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// issuedKeys are the keys other than the seeded one.
func (s *atlasSim) issuedKeys(t *testing.T, ctx context.Context) []simKey {
	t.Helper()
	keys, err := s.IssuedKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return keys
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
	var perProject map[string][]string
	if len(projectRoles) > 0 {
		perProject = map[string][]string{s.ProjectID: projectRoles}
	}
	key, err := s.CreateKey(ctx, desc, orgRoles, perProject)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// deleteKey removes a key out of band.
func (s *atlasSim) deleteKey(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	if err := s.DeleteKey(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func (s *atlasSim) addFault(t *testing.T, ctx context.Context, rule map[string]any) int {
	t.Helper()
	id, err := s.AddFault(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *atlasSim) faults(t *testing.T, ctx context.Context) []simFault {
	t.Helper()
	out, err := s.Faults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *atlasSim) clearFaults(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := s.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
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
