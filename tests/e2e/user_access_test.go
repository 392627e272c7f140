package e2e

import (
	"slices"
	"strings"

	"github.com/hashicorp/vault/api"
)

// userAccess runs just-in-time access through the server. Alice, an organization member with
// GROUP_READ_ONLY in the simulator's project, logs in with userpass; her identity entity holds
// her MongoDB Cloud username in its metadata (email). A role with username_from_entity grants
// her GROUP_OWNER: she asks for it with her own token (the plugin reads her username through the
// server's SystemView EntityInfo), and can name nobody else. A second, operator-granted lease
// (allowed_users) overlaps; revoking either leaves what the other needs, revoking both restores
// her roles exactly. Returns how many checks failed.
func (s *suite) userAccess(sha, version string) int {
	s.t.Helper()
	failed := 0
	errorf := func(format string, args ...any) {
		s.t.Helper()
		failed++
		s.t.Errorf(format, args...)
	}
	const alice = "alice@example.com"
	project := s.sim.ProjectID
	if _, err := s.sim.AddOrgMember(s.ctx, alice, []string{"ORG_MEMBER"}, map[string][]string{project: {"GROUP_READ_ONLY"}}); err != nil {
		s.t.Fatalf("adding %s to the simulator's organization: %v", alice, err)
	}
	projectRoles := func() []string {
		inv, err := s.sim.Inventory(s.ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		roles := slices.Clone(inv.ProjectMembers(project)[alice])
		slices.Sort(roles)
		return roles
	}

	c := combo{label: "user access", mount: "user-access", login: apiKey}
	s.mount(c.mount, sha, version)
	s.configure(c)
	logical := s.root.Logical()
	for name, body := range map[string]map[string]any{
		"self":     {"credential_type": "user_access", "project_id": project, "project_roles": "GROUP_OWNER", "username_from_entity": "email", "ttl": "1h"},
		"operator": {"credential_type": "user_access", "project_id": project, "project_roles": "GROUP_OWNER,GROUP_DATA_ACCESS_READ_ONLY", "allowed_users": "*@example.com"},
	} {
		if _, err := logical.WriteWithContext(s.ctx, c.mount+"/roles/"+name, body); err != nil {
			s.t.Fatalf("write %s/roles/%s: %v", c.mount, name, err)
		}
	}

	// Alice: a userpass login whose entity carries her username, allowed to ask for herself.
	must := func(what string, err error) {
		s.t.Helper()
		if err != nil {
			s.t.Fatalf("%s: %v", what, err)
		}
	}
	must("enable userpass", s.root.Sys().EnableAuthWithOptionsWithContext(s.ctx, "userpass", &api.EnableAuthOptions{Type: "userpass"}))
	must("policy", s.root.Sys().PutPolicyWithContext(s.ctx, "jit-self", `path "`+c.mount+`/creds/self" { capabilities = ["update"] }`))
	const password = "e2e-alice-userpass-password"
	s.seen.add(s.t, "alice's userpass password", password)
	_, err := logical.WriteWithContext(s.ctx, "auth/userpass/users/alice", map[string]any{"password": password, "token_policies": "jit-self"})
	must("userpass user", err)
	entity, err := logical.WriteWithContext(s.ctx, "identity/entity", map[string]any{"name": "alice", "metadata": map[string]any{"email": alice}})
	must("entity", err)
	auths, err := s.root.Sys().ListAuthWithContext(s.ctx)
	must("list auth", err)
	_, err = logical.WriteWithContext(s.ctx, "identity/entity-alias", map[string]any{
		"name": "alice", "canonical_id": entity.Data["id"], "mount_accessor": auths["userpass/"].Accessor,
	})
	must("entity alias", err)
	login, err := logical.WriteWithContext(s.ctx, "auth/userpass/login/alice", map[string]any{"password": password})
	must("alice logs in", err)
	s.seen.add(s.t, "alice's token", login.Auth.ClientToken)
	aliceClient, err := s.root.Clone()
	must("client", err)
	aliceClient.SetToken(login.Auth.ClientToken)

	own, err := aliceClient.Logical().WriteWithContext(s.ctx, c.mount+"/creds/self", map[string]any{})
	if err != nil || own == nil || own.LeaseID == "" {
		s.t.Fatalf("alice asks for her own access: %v", err)
	}
	if own.Data["username"] != alice {
		errorf("alice's grant names %v, want %s", own.Data["username"], alice)
	}
	if _, err := aliceClient.Logical().WriteWithContext(s.ctx, c.mount+"/creds/self", map[string]any{"username": "bob@example.com"}); err == nil ||
		!strings.Contains(err.Error(), "grants only the requester's own access") {
		errorf("alice naming someone else: %v, want a 400 saying the role grants only her own access", err)
	}
	other, err := logical.WriteWithContext(s.ctx, c.mount+"/creds/operator", map[string]any{"username": alice})
	if err != nil || other == nil {
		s.t.Fatalf("an operator grants alice: %v", err)
	}
	if got := projectRoles(); !slices.Equal(got, []string{"GROUP_DATA_ACCESS_READ_ONLY", "GROUP_OWNER", "GROUP_READ_ONLY"}) {
		errorf("alice's roles with both leases: %v", got)
	}
	must("revoke her own lease", s.root.Sys().RevokeWithContext(s.ctx, own.LeaseID))
	if got := projectRoles(); !slices.Equal(got, []string{"GROUP_DATA_ACCESS_READ_ONLY", "GROUP_OWNER", "GROUP_READ_ONLY"}) {
		errorf("after revoking one lease, alice holds %v; the other still needs GROUP_OWNER", got)
	}
	must("revoke the operator's lease", s.root.Sys().RevokeWithContext(s.ctx, other.LeaseID))
	if got := projectRoles(); !slices.Equal(got, []string{"GROUP_READ_ONLY"}) {
		errorf("after both leases, alice holds %v, want exactly her original GROUP_READ_ONLY", got)
	}
	return failed
}
