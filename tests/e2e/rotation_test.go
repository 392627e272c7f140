package e2e

import (
	"net/http"
	"slices"
	"strings"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

// rotateRoot runs `write -f <mount>/rotate-root` through the server for a mount logged in
// as login, after that mount issued a lease. Then: the old credential is refused by Atlas,
// the lease still renews and revokes, the mount issues again with the new login, and Atlas
// holds exactly one login credential of that kind. It runs last: the rotation deletes the
// simulator's seeded login that the other mounts share. Returns how many checks failed.
func (s *suite) rotateRoot(login, sha, version string) int {
	s.t.Helper()
	failed := 0
	errorf := func(format string, args ...any) {
		s.t.Helper()
		failed++
		s.t.Errorf(format, args...)
	}
	c := combo{label: login + " login, rotated", mount: "rotate-" + strings.ReplaceAll(login, "_", "-"), login: login}
	s.mount(c.mount, sha, version)
	s.configure(c)
	failed += s.checkScheduleKeptByPlugin(c)
	r := roleSpec{name: "probe", kind: apiKey, body: map[string]any{
		"organization_id": s.sim.OrgID, "roles": "ORG_MEMBER", "ttl": roleTTL.String(), "max_ttl": roleMaxTTL.String(),
	}}
	if _, err := s.root.Logical().WriteWithContext(s.ctx, c.mount+"/roles/"+r.name, r.body); err != nil {
		s.t.Fatalf("write %s/roles/%s: %v", c.mount, r.name, err)
	}
	before := s.issue(c, r)

	answer, err := s.root.Logical().WriteWithContext(s.ctx, c.mount+"/rotate-root", map[string]any{})
	if err != nil || answer == nil || answer.Data == nil {
		s.t.Fatalf("write %s/rotate-root: %v", c.mount, err)
	}
	for _, v := range answer.Data {
		text, _ := v.(string)
		for _, secret := range s.seen.values() {
			if text != "" && strings.Contains(text, secret) {
				errorf("%s/rotate-root answers a secret", c.mount)
			}
		}
	}
	for _, field := range []string{"private_key", "client_secret"} {
		if _, ok := answer.Data[field]; ok {
			errorf("%s/rotate-root answers %s", c.mount, field)
		}
	}

	// The old login no longer authenticates.
	switch login {
	case apiKey:
		status, _, _, err := digestGet(s.ctx, s.sim.BaseURL, "/api/atlas/v2/orgs/"+s.sim.OrgID, s.sim.PublicKey, s.sim.PrivateKey)
		if err == nil && status != http.StatusUnauthorized {
			errorf("the rotated-out API key still reads its organization (status %d)", status)
		}
		if pk, _ := answer.Data["public_key"].(string); pk == "" || pk == s.sim.PublicKey {
			errorf("rotate-root answered public_key %q, want a new one", pk)
		}
	case serviceAccount:
		if _, status, _ := oauthToken(s.ctx, s.sim.BaseURL, s.sim.SAClientID, s.sim.SAClientSecret); status != http.StatusUnauthorized {
			errorf("the rotated-out service-account secret still gets a token (status %d)", status)
		}
		if id, _ := answer.Data["client_id"].(string); id != s.sim.SAClientID {
			errorf("rotate-root answered client_id %q, want %s", id, s.sim.SAClientID)
		}
	}

	// The lease from before the rotation renews and revokes with the new login.
	s.renew(before)
	if err := s.root.Sys().RevokeWithContext(s.ctx, before.leaseID); err != nil {
		errorf("%s: revoke after the rotation: %v", before, err)
	}
	// And the new login issues.
	after := s.issue(c, r)
	if err := s.root.Sys().RevokeWithContext(s.ctx, after.leaseID); err != nil {
		errorf("%s: revoke: %v", after, err)
	}
	// Both count in the log checks: each issued and revoked once.
	s.issued = append(s.issued, before, after)

	inv, err := s.sim.Inventory(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	switch login {
	case apiKey:
		owners := 0
		for _, k := range inv.APIKeys {
			if slices.ContainsFunc(k.Roles, func(role atlassim.Role) bool { return role.RoleName == "ORG_OWNER" }) {
				owners++
			}
		}
		if owners != 1 {
			errorf("%d Organization Owner keys in Atlas after the rotation, want exactly the new login", owners)
		}
	case serviceAccount:
		for _, a := range inv.ServiceAccounts {
			if a.ClientID == s.sim.SAClientID && len(a.Secrets) != 1 {
				errorf("the login service account has %d secrets after the rotation, want 1", len(a.Secrets))
			}
		}
	}
	return failed
}

// checkScheduleKeptByPlugin writes a rotation schedule: Vault Community Edition and OpenBao
// refuse the registration with a rotation manager, so the plugin keeps it (a config read says
// so, with the next turn). Then the config is written back without one. Returns how many
// checks failed.
func (s *suite) checkScheduleKeptByPlugin(c combo) int {
	s.t.Helper()
	data := s.configData(c)
	data["rotation_schedule"], data["rotation_window"] = "0 3 * * SUN", "2h"
	if _, err := s.root.Logical().WriteWithContext(s.ctx, c.mount+"/config", data); err != nil {
		s.t.Fatalf("write %s/config with a rotation schedule: %v", c.mount, err)
	}
	read, err := s.root.Logical().ReadWithContext(s.ctx, c.mount+"/config")
	if err != nil || read == nil {
		s.t.Fatalf("read %s/config: %v", c.mount, err)
	}
	failed := 0
	next, _ := read.Data["next_rotation"].(string)
	if read.Data["rotation_managed_by"] != "plugin" || read.Data["rotation_schedule"] != "0 3 * * SUN" || !strings.HasSuffix(next, "T03:00:00Z") {
		failed++
		s.t.Errorf("%s/config with a schedule, without a rotation manager: rotation_managed_by=%v rotation_schedule=%v next_rotation=%v; want plugin, 0 3 * * SUN, a Sunday 03:00",
			c.mount, read.Data["rotation_managed_by"], read.Data["rotation_schedule"], next)
	}
	s.configure(c)
	return failed
}
