package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/vaultserver"
)

const (
	pluginName = "vault-plugin-secrets-mongodbatlas"

	// Every role's TTLs: the lease starts at ttl, a renewal asks for renewIncrement.
	roleTTL        = time.Hour
	roleMaxTTL     = 2 * time.Hour
	renewIncrement = 30 * time.Minute
	// OpenBao may answer a TTL one second shorter than Vault.
	ttlSlack = 2 * time.Second

	// Bounds.
	serverTimeout = 240 * time.Second // one server's whole run (up to 150 s of it waiting for a rollback pass)
	goneTimeout   = 30 * time.Second  // issued credentials gone from the simulator after revocation
	pollInterval  = 100 * time.Millisecond
)

// Credential kinds, as the roles' credential_type names them.
const (
	apiKey         = "api_key"
	serviceAccount = "service_account"
)

type binaries struct {
	plugin, sim, version string
}

// server is a Vault or OpenBao server binary under test.
type server struct {
	name, binary string
}

func TestServiceAccounts(t *testing.T) {
	bins := binaries{plugin: os.Getenv("PLUGIN_BINARY"), sim: os.Getenv("ATLAS_SIM_BINARY"), version: os.Getenv("PLUGIN_VERSION")}
	var servers []server
	for _, s := range []server{{"vault", os.Getenv("VAULT_BINARY")}, {"bao", os.Getenv("BAO_BINARY")}} {
		if s.binary != "" {
			servers = append(servers, s)
		}
	}
	if bins.plugin == "" || bins.sim == "" || len(servers) == 0 {
		t.Skip("e2e: set PLUGIN_BINARY (release plugin), ATLAS_SIM_BINARY and VAULT_BINARY and/or BAO_BINARY; scripts/e2e-sa.sh builds them and sets them")
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) { runServer(t, bins, s) })
	}
}

// roleSpec is a role to write and what its credential must be in Atlas.
type roleSpec struct {
	name string
	kind string
	body map[string]any
	// What the simulator must show for the issued credential.
	wantOrgRoles     []string
	wantProjectRoles []string // roles in the sim's project (in each of wantProjects, if set)
	wantProjects     []string // project_ids: every project the credential must hold wantProjectRoles in
	wantAccessList   []string // CIDR notation
	// Reads that prove the credential works: "org" (GET /orgs/<org>), "project"
	// (GET /groups/<project>).
	reads []string
}

// combo is one mount: a login and the roles it issues.
type combo struct {
	label string
	mount string
	login string // apiKey or serviceAccount
	roles []roleSpec
}

// combos are the mounts of the suite; projects are three projects of the simulator's
// organization (its own first) for the multi-project roles.
func combos(sim *atlassim.Sim, projects []string) []combo {
	ttls := func(body map[string]any) map[string]any {
		body["ttl"] = roleTTL.String()
		body["max_ttl"] = roleMaxTTL.String()
		return body
	}
	org, project := sim.OrgID, sim.ProjectID
	return []combo{
		{
			label: "service-account login, API-key role", mount: "sa-login-key-role", login: serviceAccount,
			roles: []roleSpec{{
				name: "key", kind: apiKey,
				body:         ttls(map[string]any{"organization_id": org, "roles": "ORG_MEMBER", "ip_addresses": "127.0.0.1"}),
				wantOrgRoles: []string{"ORG_MEMBER"}, wantAccessList: []string{"127.0.0.1/32"}, reads: []string{"org"},
			}},
		},
		{
			label: "API-key login, service-account role", mount: "key-login-sa-role", login: apiKey,
			roles: []roleSpec{{
				name: "sa-org", kind: serviceAccount,
				body:         ttls(map[string]any{"credential_type": serviceAccount, "organization_id": org, "roles": "ORG_READ_ONLY"}),
				wantOrgRoles: []string{"ORG_READ_ONLY"}, reads: []string{"org"},
			}},
		},
		{
			label: "service-account login, service-account roles", mount: "sa-login-sa-roles", login: serviceAccount,
			roles: []roleSpec{
				{
					name: "sa-org-acl", kind: serviceAccount,
					body: ttls(map[string]any{"credential_type": serviceAccount, "organization_id": org, "roles": "ORG_MEMBER",
						"ip_addresses": "127.0.0.1", "cidr_blocks": "192.0.2.0/24"}),
					wantOrgRoles: []string{"ORG_MEMBER"}, wantAccessList: []string{"127.0.0.1/32", "192.0.2.0/24"}, reads: []string{"org"},
				},
				{
					name: "sa-invited", kind: serviceAccount,
					body: ttls(map[string]any{"credential_type": serviceAccount, "organization_id": org, "project_id": project,
						"roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}),
					wantOrgRoles: []string{"ORG_MEMBER"}, wantProjectRoles: []string{"GROUP_READ_ONLY"}, reads: []string{"org", "project"},
				},
				{
					name: "sa-project", kind: serviceAccount,
					body:             ttls(map[string]any{"credential_type": serviceAccount, "project_id": project, "roles": "GROUP_READ_ONLY"}),
					wantProjectRoles: []string{"GROUP_READ_ONLY"}, reads: []string{"project"},
				},
			},
		},
		{
			label: "API-key login, roles across three projects (project_ids)", mount: "key-login-multi-project", login: apiKey,
			roles: []roleSpec{
				{
					name: "key-3-projects", kind: apiKey,
					body: ttls(map[string]any{"organization_id": org, "project_ids": strings.Join(projects, ","),
						"roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY,GROUP_DATA_ACCESS_READ_ONLY"}),
					wantOrgRoles: []string{"ORG_MEMBER"}, wantProjectRoles: []string{"GROUP_READ_ONLY", "GROUP_DATA_ACCESS_READ_ONLY"},
					wantProjects: projects, reads: []string{"org", "project"},
				},
				{
					name: "sa-3-projects", kind: serviceAccount,
					body: ttls(map[string]any{"credential_type": serviceAccount, "organization_id": org, "project_ids": projects,
						"roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}),
					wantOrgRoles: []string{"ORG_MEMBER"}, wantProjectRoles: []string{"GROUP_READ_ONLY"},
					wantProjects: projects, reads: []string{"org", "project"},
				},
			},
		},
	}
}

// projectsOf is where r's credential must hold its project roles.
func (s *suite) projectsOf(r roleSpec) []string {
	if r.wantProjects != nil {
		return r.wantProjects
	}
	return []string{s.sim.ProjectID}
}

// issued is a credential Vault handed out.
type issued struct {
	mount, role, kind string
	leaseID           string
	id                string // public key or client id
	secret            string // private key or client secret
	tokens            []string
}

func (c issued) String() string {
	return fmt.Sprintf("%s/creds/%s (%s %s)", c.mount, c.role, c.kind, c.id)
}

// suite is one server's run.
type suite struct {
	t        *testing.T
	ctx      context.Context
	sim      *atlassim.Sim
	root     *api.Client
	seen     *secrets
	issued   []issued
	renewed  map[string]bool // kinds renewed
	renewals int
}

func runServer(t *testing.T, bins binaries, srv server) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), serverTimeout)
	defer cancel()
	s := &suite{t: t, ctx: ctx, seen: newSecrets(), renewed: map[string]bool{}}

	s.sim = atlassim.Start(t, bins.sim)
	if s.sim.SAClientID == "" || s.sim.SAClientSecret == "" {
		t.Fatal("the simulator's startup line has no sa_client_id/sa_client_secret (a simulator without service accounts?)")
	}
	s.seen.add(t, "login private_key", s.sim.PrivateKey)
	s.seen.addServiceAccount(t, "login", s.sim.SAClientID, s.sim.SAClientSecret)

	// The server at trace level, the plugin too: whatever either logs is in the log scanned
	// below. Vault's catalog sets the plugin's environment; OpenBao's has no env, so there
	// the plugin inherits the server's.
	pluginEnv := append([]string{"PLUGIN_LOG_LEVEL=trace"}, rollbackEnv...)
	env, registerEnv := []string{}, pluginEnv
	if vaultserver.IsOpenBao(srv.binary) {
		env, registerEnv = pluginEnv, nil
	}
	logDir := ""
	if base := os.Getenv("E2E_SA_LOG_DIR"); base != "" {
		logDir = filepath.Join(base, srv.name)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pluginDir := t.TempDir()
	sha, err := vaultserver.InstallPlugin(bins.plugin, pluginDir, pluginName)
	if err != nil {
		t.Fatal(err)
	}
	cluster := vaultserver.StartCluster(t, ctx, vaultserver.Options{
		Binary: srv.binary, PluginDir: pluginDir, LogDir: logDir, LogLevel: "trace", Env: env,
		Redact: s.seen.redact,
	}, 1)
	node := cluster.Active()
	s.root = node.Client(t)
	s.register(sha, bins.version, registerEnv)

	projects := []string{s.sim.ProjectID}
	for _, name := range []string{"e2e-second", "e2e-third"} {
		id, err := s.sim.CreateProject(ctx, name)
		if err != nil {
			t.Fatalf("creating project %s in the simulator: %v", name, err)
		}
		projects = append(projects, id)
	}
	all := combos(s.sim, projects)
	for _, c := range all {
		s.mount(c.mount, sha, bins.version)
		s.configure(c)
		for _, r := range c.roles {
			if _, err := s.root.Logical().WriteWithContext(ctx, c.mount+"/roles/"+r.name, r.body); err != nil {
				t.Fatalf("write %s/roles/%s: %v", c.mount, r.name, err)
			}
			cred := s.issue(c, r)
			s.checkInAtlas(cred, r)
			s.proveWorks(&cred, r)
			s.issued = append(s.issued, cred)
		}
		// One renewal per mount: the API key of the first, a service account under each login.
		s.renew(s.issued[len(s.issued)-len(c.roles)])
	}
	for _, kind := range []string{apiKey, serviceAccount} {
		if !s.renewed[kind] {
			t.Errorf("no lease of a %s was renewed", kind)
		}
	}
	for _, c := range all {
		s.checkConfigRead(c)
	}

	revoked := s.revokeAll()
	leaked := s.checkGone()
	for _, c := range all {
		s.checkConfigRead(c) // also after all the work
	}
	// Just-in-time access for a person, with her own Vault identity.
	accessFailures := s.userAccess(sha, bins.version)
	// Last: each rotation deletes the seeded login the mounts above share.
	rotationFailures := 0
	for _, login := range []string{apiKey, serviceAccount} {
		rotationFailures += s.rotateRoot(login, sha, bins.version)
	}
	// Then, on fresh logins of their own, both rotations killed midway and rolled back.
	killFailures := s.killMidRotation(node, filepath.Join(pluginDir, pluginName), sha, bins.version)

	// Stop the server (the plugin with it) so every log line is written, then scan.
	node.Stop(t)
	hits := s.scanLog(node.LogPath)

	issuedCount := len(s.issued)
	fmt.Printf("e2e-sa: server=%s combos=%d issued=%d renewed=%d revoked=%d leaked=%d rotations=2 rotation_failures=%d killed_rotations=2 kill_failures=%d user_access_failures=%d secrets=%d secret_hits=%d log=%s (%v)\n",
		srv.name, len(all), issuedCount, s.renewals, revoked, leaked, rotationFailures, killFailures, accessFailures, s.seen.count(), hits, node.LogPath, time.Since(started).Round(time.Millisecond))
}

// register puts the plugin in the catalog by its SHA-256 and version.
func (s *suite) register(sha, version string, env []string) {
	s.t.Helper()
	if err := s.root.Sys().RegisterPluginWithContext(s.ctx, &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName, SHA256: sha, Version: version, Env: env,
	}); err != nil {
		s.t.Fatalf("register the plugin: %v", err)
	}
}

// mount enables the plugin at path and checks the mount runs the registered binary.
func (s *suite) mount(path, sha, version string) {
	s.t.Helper()
	if err := s.root.Sys().MountWithContext(s.ctx, path, &api.MountInput{Type: pluginName, Config: api.MountConfigInput{PluginVersion: version}}); err != nil {
		s.t.Fatalf("enable the plugin at %s/: %v", path, err)
	}
	mounts, err := s.root.Sys().ListMountsWithContext(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	m := mounts[path+"/"]
	if m == nil || m.Type != pluginName || m.RunningSha256 != sha {
		s.t.Fatalf("mount %s/ does not run the registered binary (sha256 %s): %+v", path, sha, m)
	}
	if version != "" && m.RunningVersion != version {
		s.t.Errorf("mount %s/ runs plugin version %q, want %q", path, m.RunningVersion, version)
	}
}

// configure writes the mount's login.
func (s *suite) configure(c combo) {
	s.t.Helper()
	data := s.configData(c)
	if _, err := s.root.Logical().WriteWithContext(s.ctx, c.mount+"/config", data); err != nil {
		s.t.Fatalf("write %s/config (%s login): %v", c.mount, c.login, err)
	}
}

// configData is the config write of c's login (the simulator's seeded key or account).
func (s *suite) configData(c combo) map[string]any {
	data := map[string]any{"base_url": s.sim.BaseURL}
	switch c.login {
	case apiKey:
		data["public_key"], data["private_key"] = s.sim.PublicKey, s.sim.PrivateKey
	case serviceAccount:
		data["client_id"], data["client_secret"] = s.sim.SAClientID, s.sim.SAClientSecret
	}
	return data
}

// checkConfigRead: a config read shows the login's public half, never private_key nor
// client_secret, and no secret the suite has seen.
func (s *suite) checkConfigRead(c combo) {
	s.t.Helper()
	secret, err := s.root.Logical().ReadWithContext(s.ctx, c.mount+"/config")
	if err != nil || secret == nil || secret.Data == nil {
		s.t.Fatalf("read %s/config: %v (answer %v)", c.mount, err, secret != nil)
	}
	for _, field := range []string{"private_key", "client_secret"} {
		if _, ok := secret.Data[field]; ok {
			s.t.Errorf("read %s/config returns the field %s", c.mount, field)
		}
	}
	raw, err := json.Marshal(secret)
	if err != nil {
		s.t.Fatal(err)
	}
	if shown := s.seen.redact(string(raw)); shown != string(raw) {
		s.t.Errorf("read %s/config shows a secret: %s", c.mount, shown)
	}
	want := map[string]string{apiKey: "public_key", serviceAccount: "client_id"}[c.login]
	wantValue := map[string]string{apiKey: s.sim.PublicKey, serviceAccount: s.sim.SAClientID}[c.login]
	if got := fmt.Sprint(secret.Data[want]); got != wantValue {
		s.t.Errorf("read %s/config: %s = %q, want %q", c.mount, want, got, wantValue)
	}
	if got := fmt.Sprint(secret.Data["base_url"]); got != s.sim.BaseURL {
		s.t.Errorf("read %s/config: base_url = %q, want %q", c.mount, got, s.sim.BaseURL)
	}
}

// issue reads creds/<role> and checks the answer's shape and lease.
func (s *suite) issue(c combo, r roleSpec) issued {
	s.t.Helper()
	path := c.mount + "/creds/" + r.name
	secret, err := s.root.Logical().ReadWithContext(s.ctx, path)
	if err != nil || secret == nil || secret.Data == nil {
		s.t.Fatalf("read %s (%s): %v (answer %v)", path, c.label, err, secret != nil)
	}
	field := func(name string) string {
		v, _ := secret.Data[name].(string)
		return v
	}
	cred := issued{mount: c.mount, role: r.name, kind: r.kind, leaseID: secret.LeaseID}
	var want, unwanted []string
	switch r.kind {
	case apiKey:
		cred.id, cred.secret = field("public_key"), field("private_key")
		want, unwanted = []string{"public_key", "private_key"}, []string{"client_id", "client_secret"}
		s.seen.add(s.t, "issued private_key of "+path, cred.secret)
	case serviceAccount:
		cred.id, cred.secret = field("client_id"), field("client_secret")
		want, unwanted = []string{"client_id", "client_secret", "name", "description", "secret_expires_at"}, []string{"public_key", "private_key"}
		s.seen.addServiceAccount(s.t, "issued "+path, cred.id, cred.secret)
	}
	for _, f := range want {
		if field(f) == "" {
			s.t.Errorf("%s: no %s in the answer (fields %v)", path, f, keys(secret.Data))
		}
	}
	for _, f := range unwanted {
		if _, ok := secret.Data[f]; ok {
			s.t.Errorf("%s: the answer of a %s role has %s", path, r.kind, f)
		}
	}
	if cred.leaseID == "" || !strings.HasPrefix(cred.leaseID, path+"/") || !secret.Renewable {
		s.t.Errorf("%s: lease %q renewable=%v, want a renewable lease under %s/", path, cred.leaseID, secret.Renewable, path)
	}
	checkTTL(s.t, path+" lease", secret.LeaseDuration, roleTTL)
	if r.kind == serviceAccount {
		if !strings.HasPrefix(cred.id, "mdb_sa_id_") {
			s.t.Errorf("%s: client_id %q is not an Atlas service account's", path, cred.id)
		}
		if name := field("name"); !strings.HasPrefix(name, "vault-"+r.name+"-") {
			s.t.Errorf("%s: name %q, want vault-%s-<random>", path, name, r.name)
		}
		// The secret expires in Atlas no earlier than the lease's maximum lifetime, and at
		// least 8 hours on (Atlas' minimum).
		expires, err := time.Parse(time.RFC3339, field("secret_expires_at"))
		if err != nil {
			s.t.Errorf("%s: secret_expires_at %q: %v", path, field("secret_expires_at"), err)
		} else if left := time.Until(expires); left < 8*time.Hour-time.Minute || left > 9*time.Hour {
			s.t.Errorf("%s: the secret expires in %v, want 8 hours (Atlas' minimum, above max_ttl %v)", path, left.Round(time.Second), roleMaxTTL)
		}
	}
	return cred
}

func checkTTL(t *testing.T, what string, seconds int, want time.Duration) {
	t.Helper()
	got := time.Duration(seconds) * time.Second
	if got > want || got < want-ttlSlack {
		t.Errorf("%s: TTL %v, want %v", what, got, want)
	}
}

// checkInAtlas: the simulator holds the credential, issued (not seeded), with the role's
// roles and access list.
func (s *suite) checkInAtlas(cred issued, r roleSpec) {
	s.t.Helper()
	inv, err := s.sim.Inventory(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	switch cred.kind {
	case apiKey:
		i := slices.IndexFunc(inv.APIKeys, func(k atlassim.Key) bool { return k.PublicKey == cred.id })
		if i < 0 {
			s.t.Fatalf("%s: no such key in the simulator", cred)
		}
		k := inv.APIKeys[i]
		var orgRoles []string
		projectRoles := map[string][]string{}
		for _, role := range k.Roles {
			switch {
			case role.OrgID == s.sim.OrgID:
				orgRoles = append(orgRoles, role.RoleName)
			case role.GroupID != "":
				projectRoles[role.GroupID] = append(projectRoles[role.GroupID], role.RoleName)
			default:
				s.t.Errorf("%s: a role outside the simulator's organization: %+v", cred, role)
			}
		}
		s.checkSet(cred, "organization roles", orgRoles, r.wantOrgRoles)
		s.checkProjects(cred, r, projectRoles)
		s.checkSet(cred, "access list", k.AccessList, r.wantAccessList)
		if k.Seeded {
			s.t.Errorf("%s: the simulator marks the issued key as seeded", cred)
		}
	case serviceAccount:
		i := slices.IndexFunc(inv.ServiceAccounts, func(a atlassim.ServiceAccount) bool { return a.ClientID == cred.id })
		if i < 0 {
			s.t.Fatalf("%s: no such service account in the simulator", cred)
		}
		a := inv.ServiceAccounts[i]
		if r.wantOrgRoles != nil || r.body["organization_id"] != nil {
			s.checkSet(cred, "organization roles", a.Roles, r.wantOrgRoles)
		}
		s.checkProjects(cred, r, a.ProjectRoles)
		s.checkSet(cred, "access list", a.AccessList, r.wantAccessList)
		if a.Seeded || a.OrgID != s.sim.OrgID || len(a.Secrets) != 1 {
			s.t.Errorf("%s: seeded=%v org %s (want %s), %d secrets (want 1)", cred, a.Seeded, a.OrgID, s.sim.OrgID, len(a.Secrets))
		}
	}
}

// checkProjects: the credential holds r's project roles in each of its projects, and is in
// no other project.
func (s *suite) checkProjects(cred issued, r roleSpec, held map[string][]string) {
	s.t.Helper()
	want := s.projectsOf(r)
	if len(r.wantProjectRoles) == 0 {
		want = nil
	}
	for _, project := range want {
		s.checkSet(cred, "project roles in "+project, held[project], r.wantProjectRoles)
	}
	for project := range held {
		if !slices.Contains(want, project) {
			s.t.Errorf("%s: roles in project %s, which the role does not name: %v", cred, project, held[project])
		}
	}
}

func (s *suite) checkSet(cred issued, what string, got, want []string) {
	s.t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		s.t.Errorf("%s: %s in the simulator %v, want %v", cred, what, got, want)
	}
}

// proveWorks uses the credential against the simulator: a service account gets a token and
// reads its organization and/or project with it; an API key reads over HTTP Digest.
func (s *suite) proveWorks(cred *issued, r roleSpec) {
	s.t.Helper()
	var token string
	if cred.kind == serviceAccount {
		var err error
		token, _, err = oauthToken(s.ctx, s.sim.BaseURL, cred.id, cred.secret)
		if err != nil {
			s.t.Fatalf("%s: %v", cred, err)
		}
		s.seen.add(s.t, "bearer token of "+cred.String(), token)
		cred.tokens = append(cred.tokens, token)
	}
	for _, read := range r.reads {
		path, want := "/orgs/"+s.sim.OrgID, s.sim.OrgID
		if read == "project" {
			path, want = "/groups/"+s.sim.ProjectID, s.sim.ProjectID
		}
		var (
			status int
			body   []byte
			err    error
		)
		if cred.kind == serviceAccount {
			status, body, err = bearerGet(s.ctx, s.sim.BaseURL, path, token)
		} else {
			var response string
			status, body, response, err = digestGet(s.ctx, s.sim.BaseURL, path, cred.id, cred.secret)
			if response != "" {
				s.seen.add(s.t, "Digest response of "+cred.String(), response)
			}
		}
		if err != nil {
			s.t.Fatalf("%s: GET %s: %v", cred, path, err)
		}
		if status != http.StatusOK {
			s.t.Fatalf("%s: GET %s: status %d, want 200: %s", cred, path, status, s.seen.redact(string(body)))
		}
		if id, err := atlasID(body); err != nil || id != want {
			s.t.Errorf("%s: GET %s answered id %q (%v), want %s", cred, path, id, err, want)
		}
	}
}

// renew renews a lease through sys/leases/renew and checks the new TTL.
func (s *suite) renew(cred issued) {
	s.t.Helper()
	secret, err := s.root.Sys().RenewWithContext(s.ctx, cred.leaseID, int(renewIncrement.Seconds()))
	if err != nil || secret == nil {
		s.t.Fatalf("%s: sys/leases/renew: %v", cred, err)
	}
	if secret.LeaseID != cred.leaseID || !secret.Renewable {
		s.t.Errorf("%s: renewal answered lease %q renewable=%v", cred, secret.LeaseID, secret.Renewable)
	}
	checkTTL(s.t, cred.String()+" renewed", secret.LeaseDuration, renewIncrement)
	s.renewed[cred.kind] = true
	s.renewals++
}

// revokeAll revokes every lease through sys/leases/revoke and checks Vault forgot them.
func (s *suite) revokeAll() int {
	s.t.Helper()
	revoked := 0
	for _, cred := range s.issued {
		if err := s.root.Sys().RevokeWithContext(s.ctx, cred.leaseID); err != nil {
			s.t.Errorf("%s: sys/leases/revoke: %v", cred, err)
			continue
		}
		revoked++
	}
	mounts := map[string]bool{}
	for _, cred := range s.issued {
		mounts[cred.mount] = true
	}
	for mount := range mounts {
		left, err := s.root.Logical().ListWithContext(s.ctx, "sys/leases/lookup/"+mount+"/creds/")
		if err != nil {
			s.t.Errorf("list the leases under %s/creds/: %v", mount, err)
		} else if left != nil && left.Data != nil && left.Data["keys"] != nil {
			s.t.Errorf("leases remain under %s/creds/ after revoking each: %v", mount, left.Data["keys"])
		}
	}
	return revoked
}

// checkGone polls (bounded) until the simulator holds no issued key nor service account;
// then checks the seeded logins survived, and that the revoked credentials fail. Returns
// the number of issued credentials left.
func (s *suite) checkGone() int {
	s.t.Helper()
	deadline := time.Now().Add(goneTimeout)
	var (
		inv atlassim.Inventory
		err error
	)
	for {
		inv, err = s.sim.Inventory(s.ctx)
		if err == nil && len(inv.IssuedKeys()) == 0 && len(inv.IssuedServiceAccounts()) == 0 {
			break
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			break
		}
		time.Sleep(pollInterval)
	}
	if err != nil {
		s.t.Fatalf("reading the simulator's inventory: %v", err)
	}
	leftKeys, leftAccounts := inv.IssuedKeys(), inv.IssuedServiceAccounts()
	if n := len(leftKeys) + len(leftAccounts); n > 0 {
		var ids []string
		for _, a := range leftAccounts {
			ids = append(ids, a.ClientID+" ("+a.Name+")")
		}
		s.t.Errorf("%d issued credentials outlive their revoked leases after %v: keys %s; service accounts %v",
			n, goneTimeout, atlassim.Describe(leftKeys), ids)
	}
	if !slices.ContainsFunc(inv.APIKeys, func(k atlassim.Key) bool { return k.Seeded && k.PublicKey == s.sim.PublicKey }) ||
		!slices.ContainsFunc(inv.ServiceAccounts, func(a atlassim.ServiceAccount) bool { return a.Seeded && a.ClientID == s.sim.SAClientID }) {
		s.t.Errorf("a login of the config (seeded key %s, seeded service account %s) is gone from the simulator", s.sim.PublicKey, s.sim.SAClientID)
	}
	// What was revoked no longer works: tokens are refused, no new token is issued, and a
	// key gets no further than the Digest challenge.
	for _, cred := range s.issued {
		switch cred.kind {
		case serviceAccount:
			for _, token := range cred.tokens {
				if status, _, err := bearerGet(s.ctx, s.sim.BaseURL, "/orgs/"+s.sim.OrgID, token); err != nil || status != http.StatusUnauthorized {
					s.t.Errorf("%s: a token of the revoked account: status %d (%v), want 401", cred, status, err)
				}
			}
			if _, status, _ := oauthToken(s.ctx, s.sim.BaseURL, cred.id, cred.secret); status != http.StatusUnauthorized {
				s.t.Errorf("%s: a token request of the revoked account: status %d, want 401", cred, status)
			}
		case apiKey:
			status, _, response, err := digestGet(s.ctx, s.sim.BaseURL, "/orgs/"+s.sim.OrgID, cred.id, cred.secret)
			if response != "" {
				s.seen.add(s.t, "Digest response of revoked "+cred.String(), response)
			}
			if err != nil || status != http.StatusUnauthorized {
				s.t.Errorf("%s: the revoked key: status %d (%v), want 401", cred, status, err)
			}
		}
	}
	return len(leftKeys) + len(leftAccounts)
}

// scanLog searches the server log (plugin lines included) for every secret seen; first it
// checks the log holds what the scan must cover, and that the scan finds a secret planted in
// a copy of it. Returns the number of hits.
func (s *suite) scanLog(path string) int {
	s.t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatal(err)
	}
	log := string(raw)
	// The plugin's own lines carry go-plugin's "<catalog name>.<file name>".
	pluginLine := "secrets." + pluginName + "." + pluginName
	counts := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		plugin := strings.Contains(line, pluginLine)
		if strings.Contains(line, "[TRACE]") {
			counts["server trace"]++
			// The plugin's own trace lines (its modules are mongodbatlas.*).
			if plugin && strings.Contains(line, "@module=mongodbatlas.") {
				counts["plugin trace"]++
			}
		}
		for _, mark := range []string{"issued Atlas API key", "issued Atlas service account", "revoked Atlas API key", "revoked Atlas service account", "Atlas exchange"} {
			if plugin && strings.Contains(line, mark) {
				counts[mark]++
			}
		}
	}
	keys, accounts := 0, 0
	for _, c := range s.issued {
		if c.kind == apiKey {
			keys++
		} else {
			accounts++
		}
	}
	for mark, want := range map[string]int{"issued Atlas API key": keys, "issued Atlas service account": accounts, "revoked Atlas API key": keys, "revoked Atlas service account": accounts} {
		if counts[mark] != want {
			s.t.Errorf("log %s: %d plugin lines %q, want %d (is the plugin logging at debug or finer?)", path, counts[mark], mark, want)
		}
	}
	if counts["server trace"] == 0 || counts["plugin trace"] == 0 || counts["Atlas exchange"] == 0 {
		s.t.Errorf("log %s: %d [TRACE] lines, %d of them the plugin's, %d plugin 'Atlas exchange' lines: not the trace-level log (server and plugin) the scan needs",
			path, counts["server trace"], counts["plugin trace"], counts["Atlas exchange"])
	}

	// The scan can fail: a copy of the log with one secret planted gives exactly one more hit.
	res, err := s.seen.scan(path)
	if err != nil {
		s.t.Fatal(err)
	}
	planted := filepath.Join(s.t.TempDir(), "planted.log")
	victim := s.issued[len(s.issued)-1].secret
	if err := os.WriteFile(planted, append(raw, []byte("planted: "+victim+"\n")...), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if check, err := s.seen.scan(planted); err != nil || len(check.Hits) != len(res.Hits)+1 {
		s.t.Errorf("the scan does not find a secret planted in a copy of the log: %d hits, want %d (%v)", len(check.Hits), len(res.Hits)+1, err)
	}
	for _, h := range res.Hits {
		s.t.Errorf("secret scan: %s", h)
	}
	s.t.Logf("secret scan of %s: %d secrets, %d lines, %d bytes (%d [TRACE] lines, %d of them the plugin's; %d plugin 'Atlas exchange' lines): %d hits",
		path, s.seen.count(), res.Lines, res.Bytes, counts["server trace"], counts["plugin trace"], counts["Atlas exchange"], len(res.Hits))
	return len(res.Hits)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
