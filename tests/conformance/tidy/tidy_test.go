// Package tidy checks the plugin's tidy endpoint after a raft snapshot restore, on one real
// Vault (or OpenBao) node with integrated storage: credentials issued after a snapshot lose
// their leases and the plugin's record when the snapshot is restored, and tidy must delete
// exactly those (they bear the mount's tag) while every credential of a lease in the restored
// state keeps working and nothing else in Atlas is touched: not another mount's credentials,
// not look-alikes with another tag, no tag or the tag elsewhere in the name, not credentials
// made by hand. Run by scripts/tidy-restore.sh (which builds the binaries and sets the
// variables).
package tidy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/vaultserver"
)

const (
	pluginName = "vault-plugin-secrets-mongodbatlas"
	keyRole    = "keys"
	saRole     = "accounts"
	keyType    = "programmatic_api_key"
	saType     = "service_account"

	// Per mount and per credential type: issued before the snapshot, and after it (orphans
	// once it is restored).
	beforePerType = 3
	afterPerType  = 6

	requestTimeout = 30 * time.Second
	waitBound      = 60 * time.Second
	pollInterval   = 200 * time.Millisecond
	suiteTimeout   = 8 * time.Minute
)

var mounts = []string{"mongodbatlas", "atlas-b"}

// cred is a credential in the simulator: issued by a mount (with its lease) or a decoy.
type cred struct {
	mount   string // "" for a decoy
	kind    string // keyType or saType
	id      string // Atlas id: the key's id, the account's client id
	name    string // key description or account name
	leaseID string
	public  string // the key's public key, or the client id
	secret  string // the private key, or the client secret
}

func (c cred) ref() string { return c.kind + ":" + c.id }

// suite is one run against one server.
type suite struct {
	t      *testing.T
	ctx    context.Context
	sim    *atlassim.Sim
	node   *vaultserver.Node
	c      *vaultserver.Cluster
	root   *api.Client
	uuids  map[string]string // mount -> mount uuid
	tags   map[string]string // mount -> tag
	server string
}

func TestTidyAfterRestore(t *testing.T) {
	vaultBin, plugin, simBin, version := os.Getenv("VAULT_BINARY"), os.Getenv("PLUGIN_BINARY"), os.Getenv("ATLAS_SIM_BINARY"), os.Getenv("PLUGIN_VERSION")
	if vaultBin == "" || plugin == "" || simBin == "" || version == "" {
		t.Skip("tidy: set VAULT_BINARY, PLUGIN_BINARY, PLUGIN_VERSION and ATLAS_SIM_BINARY; scripts/tidy-restore.sh builds them and sets all four")
	}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	started := time.Now()

	sim := atlassim.Start(t, simBin, "--no-rate-limit")
	pluginDir := t.TempDir()
	sha, err := vaultserver.InstallPlugin(plugin, pluginDir, pluginName)
	if err != nil {
		t.Fatal(err)
	}
	// Vault's catalog sets the plugin's environment; OpenBao's has none, so there the plugin
	// inherits the server's.
	pluginEnv := []string{"PLUGIN_LOG_LEVEL=debug"}
	serverEnv, registerEnv := []string(nil), pluginEnv
	if vaultserver.IsOpenBao(vaultBin) {
		serverEnv, registerEnv = pluginEnv, nil
	}
	cluster := vaultserver.StartCluster(t, ctx, vaultserver.Options{
		Binary: vaultBin, PluginDir: pluginDir, LogDir: os.Getenv("TIDY_LOG_DIR"), Env: serverEnv, RawStorage: true,
	}, 1)
	s := &suite{t: t, ctx: ctx, sim: sim, c: cluster, node: cluster.Active(), root: cluster.Active().Client(t),
		uuids: map[string]string{}, tags: map[string]string{}, server: "vault"}
	if vaultserver.IsOpenBao(vaultBin) {
		s.server = "openbao"
	}
	if err := s.root.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName, SHA256: sha, Version: "v" + version, Env: registerEnv,
	}); err != nil {
		t.Fatalf("register the plugin: %v", err)
	}
	for _, m := range mounts {
		s.setUp(m, version)
	}

	// 1. Before the snapshot: credentials on both mounts, and decoys made without the plugin.
	var before []cred
	for _, m := range mounts {
		before = append(before, s.issueMany(m, beforePerType)...)
	}
	decoys := s.makeDecoys()
	s.checkRecords("before the snapshot", before)

	// 2. Snapshot; more credentials; restore: those lose their leases and records.
	snap := s.snapshot()
	var after []cred
	for _, m := range mounts {
		after = append(after, s.issueMany(m, afterPerType)...)
	}
	s.restore(snap, before)
	for _, c := range after {
		if _, err := s.root.Sys().LookupWithContext(ctx, c.leaseID); err == nil {
			t.Errorf("lease %s issued after the snapshot is still known after the restore", c.leaseID)
		}
	}
	s.checkRecords("after the restore", before)
	inv := s.inventory()
	for _, c := range append(append([]cred(nil), before...), after...) {
		if _, ok := inv[c.ref()]; !ok {
			t.Fatalf("%s %s (%s) is not in the simulator after the restore", c.kind, c.id, c.name)
		}
	}
	firstInventory := inv

	// 3. Tidy each mount: a dry run touches nothing, then the real run deletes exactly the
	// mount's orphans.
	orphansDeleted := 0
	gone := map[string]bool{}
	for _, m := range mounts {
		mine := func(list []cred) []cred {
			var out []cred
			for _, c := range list {
				if c.mount == m {
					out = append(out, c)
				}
			}
			return out
		}
		orphans, inUse := mine(after), mine(before)
		invBefore := s.inventory()
		dry := s.tidy(m, map[string]any{"dry_run": true, "safety_margin": "0s"})
		s.checkResult(m, "dry run", dry, true, orphans, inUse, invBefore)
		if diff := diffInventory(invBefore, s.inventory(), nil); diff != "" {
			t.Errorf("%s: the dry run changed the simulator's inventory: %s", m, diff)
		}
		res := s.tidy(m, map[string]any{"safety_margin": "0s"})
		s.checkResult(m, "tidy", res, false, orphans, inUse, invBefore)
		orphansDeleted += res.Deleted
		for _, c := range orphans {
			gone[c.ref()] = true
		}
		if diff := diffInventory(invBefore, s.inventory(), gone); diff != "" {
			t.Errorf("%s: after tidy the inventory differs from the one before minus this mount's orphans: %s", m, diff)
		}
		last := s.readTidy(m)
		if lr, ok := last["last_run"].(map[string]any); !ok {
			t.Errorf("%s: read %s/tidy after a run has last_run %v, want the run's result", m, m, last["last_run"])
		} else if fmt.Sprint(lr["deleted"]) != fmt.Sprint(res.Deleted) || fmt.Sprint(lr["dry_run"]) != "false" {
			t.Errorf("%s: last_run %v is not the run just made (deleted %d)", m, lr, res.Deleted)
		}
	}
	untouched := len(firstInventory) - len(gone)
	if diff := diffInventory(firstInventory, s.inventory(), gone); diff != "" {
		t.Errorf("after tidying both mounts: %s", diff)
	}

	// 4. An orphan younger than the default safety margin (15 m) is counted, not deleted.
	snap2 := s.snapshot()
	young := s.issueMany(mounts[0], 1)
	s.restore(snap2, before)
	invYoung := s.inventory()
	res := s.tidy(mounts[0], nil)
	if res.SafetyMargin != 15*60 || res.TooRecent != len(young) || res.Deleted != 0 || res.Orphaned != 0 {
		t.Errorf("%s: default tidy with %d orphans issued seconds ago: safety_margin=%d too_recent=%d orphaned=%d deleted=%d, want 900, %d, 0, 0",
			mounts[0], len(young), res.SafetyMargin, res.TooRecent, res.Orphaned, res.Deleted, len(young))
	}
	if diff := diffInventory(invYoung, s.inventory(), nil); diff != "" {
		t.Errorf("the default tidy changed the inventory: %s", diff)
	}
	res = s.tidy(mounts[0], map[string]any{"safety_margin": "0s"})
	if res.Deleted != len(young) {
		t.Errorf("%s: tidy safety_margin=0s deleted %d of the %d young orphans", mounts[0], res.Deleted, len(young))
	}
	orphansDeleted += res.Deleted
	tooRecentKept := len(young)

	// 5. Every credential of a lease in the restored state still works; one renews, one is
	// revoked and disappears.
	checked := 0
	for _, c := range before {
		if _, err := s.root.Sys().LookupWithContext(ctx, c.leaseID); err != nil {
			t.Errorf("lease %s of %s %s is unknown after the restores: %v", c.leaseID, c.kind, c.id, err)
			continue
		}
		if err := s.works(c); err != nil {
			t.Errorf("%s %s of a restored lease does not work: %v", c.kind, c.id, err)
			continue
		}
		checked++
	}
	renewed, revoked := before[0], before[len(before)-1]
	if renewed.kind != keyType || revoked.kind != saType {
		t.Fatalf("test setup: expected an API key first and a service account last, got %s and %s", renewed.kind, revoked.kind)
	}
	if _, err := s.root.Sys().RenewWithContext(ctx, renewed.leaseID, 1800); err != nil {
		t.Errorf("renew %s: %v", renewed.leaseID, err)
	}
	if err := s.root.Sys().RevokeWithContext(ctx, revoked.leaseID); err != nil {
		t.Errorf("revoke %s: %v", revoked.leaseID, err)
	}
	s.waitGone("the revoked lease's service account", []cred{revoked})
	remaining := before[:len(before)-1]
	s.checkRecords("after a renewal and a revocation", remaining)
	for _, m := range mounts {
		res := s.tidy(m, map[string]any{"safety_margin": "0s"})
		inUse := 0
		for _, c := range remaining {
			if c.mount == m {
				inUse++
			}
		}
		if res.Orphaned != 0 || res.Deleted != 0 || res.Expired != 0 || res.StaleRecords != 0 || res.InUse != inUse {
			t.Errorf("%s: tidy with nothing to do: orphaned=%d deleted=%d expired=%d stale_records=%d in_use=%d (want 0 0 0 0 %d)",
				m, res.Orphaned, res.Deleted, res.Expired, res.StaleRecords, res.InUse, inUse)
		}
	}

	// 6. Revoking every lease leaves the decoys and nothing else of ours.
	for _, m := range mounts {
		if err := s.root.Sys().RevokePrefixWithContext(ctx, m+"/creds/"); err != nil {
			t.Errorf("revoke-prefix %s/creds/: %v", m, err)
		}
	}
	s.waitGone("every issued credential after revoke-prefix", remaining)
	s.checkRecords("after revoke-prefix", nil)
	final := s.inventory()
	for _, d := range decoys {
		if _, ok := final[d.ref()]; !ok {
			t.Errorf("decoy %s %s (%q) is gone", d.kind, d.id, d.name)
		}
	}
	fmt.Printf("tidy: mounts=%d orphans_deleted=%d untouched=%d too_recent_kept=%d restored_checked=%d decoys=%d server=%s (%v)\n",
		len(mounts), orphansDeleted, untouched, tooRecentKept, checked, len(decoys), s.server, time.Since(started).Round(time.Second))
}

// setUp mounts the plugin at m with an API-key login on the simulator, an API-key role and a
// service-account role, and learns the mount's tag.
func (s *suite) setUp(m, version string) {
	t := s.t
	t.Helper()
	if err := s.root.Sys().MountWithContext(s.ctx, m, &api.MountInput{Type: pluginName, Config: api.MountConfigInput{PluginVersion: "v" + version}}); err != nil {
		t.Fatalf("enable the plugin at %s/: %v", m, err)
	}
	for path, data := range map[string]map[string]any{
		m + "/config":           {"public_key": s.sim.PublicKey, "private_key": s.sim.PrivateKey, "base_url": s.sim.BaseURL},
		m + "/roles/" + keyRole: {"organization_id": s.sim.OrgID, "roles": "ORG_MEMBER", "ttl": "1h", "max_ttl": "2h"},
		m + "/roles/" + saRole:  {"credential_type": "service_account", "organization_id": s.sim.OrgID, "roles": "ORG_READ_ONLY", "ttl": "1h", "max_ttl": "2h"},
	} {
		if _, err := s.root.Logical().WriteWithContext(s.ctx, path, data); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	uuid, err := vaultserver.MountUUID(s.ctx, s.root, m)
	if err != nil {
		t.Fatal(err)
	}
	s.uuids[m] = uuid
	// The tag derives from the backend UUID the server hands the plugin: the mount entry's
	// backend_aware_uuid, not the uuid sys/mounts shows (which names its storage).
	backendUUID, err := vaultserver.MountBackendUUID(s.ctx, s.root, m)
	if err != nil {
		t.Fatal(err)
	}
	info := s.readTidy(m)
	tag, _ := info["mount_tag"].(string)
	sum := sha256.Sum256([]byte(backendUUID))
	if want := hex.EncodeToString(sum[:])[:8]; tag != want {
		t.Errorf("%s: read %s/tidy says mount_tag %q; the first 8 hex digits of SHA-256 of the mount's backend UUID %s are %q", m, m, tag, backendUUID, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(tag) {
		t.Fatalf("%s: mount_tag %q is not 8 lowercase hex digits", m, tag)
	}
	if _, ok := info["tidy_interval"]; !ok {
		t.Errorf("%s: read %s/tidy has no tidy_interval: %v", m, m, info)
	}
	for _, other := range s.tags {
		if other == tag {
			t.Fatalf("two mounts share the tag %s", tag)
		}
	}
	s.tags[m] = tag
}

// issueMany issues n API keys and n service accounts on mount m, alternating, the first an
// API key; their names must end with the mount's tag.
func (s *suite) issueMany(m string, n int) []cred {
	s.t.Helper()
	var out []cred
	for range n {
		out = append(out, s.issue(m, keyRole), s.issue(m, saRole))
	}
	inv, err := s.sim.Inventory(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	ids := map[string]string{}
	for _, k := range inv.APIKeys {
		ids[k.PublicKey] = k.ID
	}
	shape := regexp.MustCompile(`^vault-(` + keyRole + `|` + saRole + `)-[0-9A-Za-z]{20}-` + s.tags[m] + `$`)
	for i, c := range out {
		if c.kind == keyType {
			if out[i].id = ids[c.public]; out[i].id == "" {
				s.t.Fatalf("the API key %s issued on %s is not in the simulator", c.public, m)
			}
		}
		if !shape.MatchString(c.name) {
			s.t.Errorf("%s: issued %s named %q, want vault-<role>-<20 base62>-%s", m, c.kind, c.name, s.tags[m])
		}
	}
	return out
}

func (s *suite) issue(m, role string) cred {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	secret, err := s.root.Logical().ReadWithContext(ctx, m+"/creds/"+role)
	if err != nil || secret == nil || secret.LeaseID == "" {
		s.t.Fatalf("read %s/creds/%s: %v (answer %v)", m, role, err, secret)
	}
	str := func(k string) string { v, _ := secret.Data[k].(string); return v }
	c := cred{mount: m, leaseID: secret.LeaseID}
	if role == keyRole {
		c.kind, c.public, c.secret, c.name = keyType, str("public_key"), str("private_key"), str("description")
	} else {
		c.kind, c.id, c.public, c.secret, c.name = saType, str("client_id"), str("client_id"), str("client_secret"), str("name")
	}
	if c.public == "" || c.secret == "" || c.name == "" {
		s.t.Fatalf("read %s/creds/%s answered without a credential or its name (fields %v)", m, role, keys(secret.Data))
	}
	return c
}

// makeDecoys creates credentials tidy must never touch: through the Atlas API with the
// seeded login, the plugin's shape with another tag, without a tag (as earlier versions
// named them) and with this mount's tag inside the name rather than at its end; through the
// admin API, credentials made by hand.
func (s *suite) makeDecoys() []cred {
	t := s.t
	t.Helper()
	admin, err := digestClient(s.sim.PublicKey, s.sim.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	other := randomTag()
	for s.isTag(other) {
		other = randomTag()
	}
	tag := s.tags[mounts[0]]
	var out []cred
	for _, name := range []string{
		"-" + random20() + "-" + other,
		"-" + random20(),
		"-" + tag + "-" + random20(),
		"-" + random20() + "-" + tag + "x",
	} {
		desc := "vault-" + keyRole + name
		id, err := createKeyViaAPI(s.ctx, admin, s.sim.BaseURL, s.sim.OrgID, desc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cred{kind: keyType, id: id, name: desc})
		acct := "vault-" + saRole + name
		clientID, err := createServiceAccountViaAPI(s.ctx, admin, s.sim.BaseURL, s.sim.OrgID, acct)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cred{kind: saType, id: clientID, name: acct})
	}
	key, err := s.sim.CreateKey(s.ctx, "ci deploy key, made by hand", []string{"ORG_MEMBER"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, cred{kind: keyType, id: key.ID, name: "ci deploy key, made by hand"})
	sa, err := s.sim.CreateServiceAccount(s.ctx, "ci-deploy", []string{"ORG_READ_ONLY"})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, cred{kind: saType, id: sa.ClientID, name: sa.Name})
	return out
}

func (s *suite) isTag(tag string) bool {
	for _, t := range s.tags {
		if t == tag {
			return true
		}
	}
	return false
}

// snapshot saves the raft snapshot of the cluster.
func (s *suite) snapshot() []byte {
	s.t.Helper()
	var buf bytes.Buffer
	if err := s.root.Sys().RaftSnapshotWithContext(s.ctx, &buf); err != nil {
		s.t.Fatalf("sys/storage/raft/snapshot: %v", err)
	}
	return buf.Bytes()
}

// restore installs a snapshot (forced) and waits, bounded, until the node is active and both
// mounts answer and know the lease of a credential issued before the snapshot.
func (s *suite) restore(snap []byte, before []cred) {
	t := s.t
	t.Helper()
	started := time.Now()
	if err := s.root.Sys().RaftSnapshotRestoreWithContext(s.ctx, bytes.NewReader(snap), true); err != nil {
		t.Fatalf("sys/storage/raft/snapshot-force: %v", err)
	}
	s.c.WaitActive(t, s.ctx, s.node)
	s.waitFor("both mounts to answer after the restore", func() error {
		for _, m := range mounts {
			if _, err := s.root.Logical().ReadWithContext(s.ctx, m+"/tidy"); err != nil {
				return err
			}
		}
		_, err := s.root.Sys().LookupWithContext(s.ctx, before[0].leaseID)
		return err
	})
	t.Logf("restored a %d-byte snapshot; the node and the mounts answered %v later", len(snap), time.Since(started).Round(time.Millisecond))
}

// tidyResult is the answer of a tidy run, as the API contract names its fields.
type tidyResult struct {
	DryRun       bool       `json:"dry_run"`
	SafetyMargin int        `json:"safety_margin"`
	Listed       int        `json:"listed"`
	Tagged       int        `json:"tagged"`
	InUse        int        `json:"in_use"`
	Orphaned     int        `json:"orphaned"`
	Expired      int        `json:"expired"`
	TooRecent    int        `json:"too_recent"`
	Deleted      int        `json:"deleted"`
	DeleteFailed int        `json:"delete_failed"`
	StaleRecords int        `json:"stale_records"`
	ScopeErrors  []any      `json:"scope_errors"`
	Credentials  []tidyCred `json:"credentials"`
	StartedAt    any        `json:"started_at"`
	FinishedAt   any        `json:"finished_at"`
	Trigger      string     `json:"trigger"`
}

type tidyCred struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	Name           string `json:"name"`
	OrganizationID string `json:"organization_id"`
	CreatedAt      any    `json:"created_at"`
	Reason         string `json:"reason"`
	Deleted        bool   `json:"deleted"`
}

var resultFields = []string{"dry_run", "safety_margin", "listed", "tagged", "in_use", "orphaned", "expired", "too_recent",
	"deleted", "delete_failed", "stale_records", "scope_errors", "credentials", "started_at", "finished_at", "trigger"}

// tidy runs `write <m>/tidy` with data and decodes the answer.
func (s *suite) tidy(m string, data map[string]any) tidyResult {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	if data == nil {
		data = map[string]any{}
	}
	secret, err := s.root.Logical().WriteWithContext(ctx, m+"/tidy", data)
	if err != nil || secret == nil {
		t.Fatalf("write %s/tidy %v: %v (answer %v)", m, data, err, secret)
	}
	var missing []string
	for _, f := range resultFields {
		if _, ok := secret.Data[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		t.Errorf("write %s/tidy: the answer lacks %v (it has %v)", m, missing, keys(secret.Data))
	}
	raw, err := json.Marshal(secret.Data)
	if err != nil {
		t.Fatal(err)
	}
	var res tidyResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("write %s/tidy: decoding %s: %v", m, raw, err)
	}
	t.Logf("%s/tidy %v: dry_run=%v margin=%ds listed=%d tagged=%d in_use=%d orphaned=%d expired=%d too_recent=%d deleted=%d delete_failed=%d stale_records=%d scope_errors=%v trigger=%s credentials=%d",
		m, data, res.DryRun, res.SafetyMargin, res.Listed, res.Tagged, res.InUse, res.Orphaned, res.Expired, res.TooRecent, res.Deleted,
		res.DeleteFailed, res.StaleRecords, res.ScopeErrors, res.Trigger, len(res.Credentials))
	return res
}

// checkResult compares a tidy answer with what the mount holds: orphans (tagged, no record)
// and credentials in use (recorded, with leases); inv is the inventory before the run.
func (s *suite) checkResult(m, what string, res tidyResult, dryRun bool, orphans, inUse []cred, inv map[string]entry) {
	t := s.t
	t.Helper()
	listed := 0
	for _, e := range inv {
		if e.org == s.sim.OrgID {
			listed++
		}
	}
	want := tidyResult{DryRun: dryRun, Listed: listed, Tagged: len(orphans) + len(inUse), InUse: len(inUse), Orphaned: len(orphans), Trigger: "manual"}
	if !dryRun {
		want.Deleted = len(orphans)
	}
	got := res
	got.SafetyMargin, got.ScopeErrors, got.Credentials, got.StartedAt, got.FinishedAt = 0, nil, nil, nil, nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("%s %s: got %+v\nwant %+v", m, what, got, want)
	}
	if res.SafetyMargin != 0 || len(res.ScopeErrors) != 0 {
		t.Errorf("%s %s: safety_margin=%d scope_errors=%v, want 0 and none", m, what, res.SafetyMargin, res.ScopeErrors)
	}
	wantIDs := map[string]bool{}
	for _, c := range orphans {
		wantIDs[c.ref()] = true
	}
	seen := map[string]bool{}
	for _, c := range res.Credentials {
		ref := c.Type + ":" + c.ID
		switch {
		case c.Reason != "orphaned":
			if wantIDs[ref] {
				t.Errorf("%s %s: orphan %s listed with reason %q", m, what, ref, c.Reason)
			}
			if c.Deleted {
				t.Errorf("%s %s: %s (%q, reason %q) was deleted", m, what, ref, c.Name, c.Reason)
			}
			continue
		case !wantIDs[ref]:
			t.Errorf("%s %s: %s (%q) reported as orphaned; it is not one of this mount's orphans", m, what, ref, c.Name)
		case c.Deleted == dryRun:
			t.Errorf("%s %s: orphan %s reported deleted=%v", m, what, ref, c.Deleted)
		}
		if !strings.HasSuffix(c.Name, "-"+s.tags[m]) || c.OrganizationID != s.sim.OrgID || c.CreatedAt == nil || c.CreatedAt == "" {
			t.Errorf("%s %s: credential entry %+v: want a name ending in -%s, organization %s and a creation time", m, what, c, s.tags[m], s.sim.OrgID)
		}
		seen[ref] = true
	}
	if len(wantIDs) <= 100 && len(seen) != len(wantIDs) {
		var missing []string
		for ref := range wantIDs {
			if !seen[ref] {
				missing = append(missing, ref)
			}
		}
		sort.Strings(missing)
		t.Errorf("%s %s: credentials lists %d of the %d orphans; missing %v", m, what, len(seen), len(wantIDs), missing)
	}
}

// readTidy is `read <m>/tidy`.
func (s *suite) readTidy(m string) map[string]any {
	s.t.Helper()
	secret, err := s.root.Logical().ReadWithContext(s.ctx, m+"/tidy")
	if err != nil || secret == nil {
		s.t.Fatalf("read %s/tidy: %v (answer %v)", m, err, secret)
	}
	return secret.Data
}

// checkRecords: the plugin's record of each mount (sys/raw/logical/<uuid>/issued/<type>/)
// holds exactly the credentials of want, and its WAL is empty.
func (s *suite) checkRecords(when string, want []cred) {
	t := s.t
	t.Helper()
	for _, m := range mounts {
		expect := map[string]bool{}
		for _, c := range want {
			if c.mount == m {
				expect[c.ref()] = true
			}
		}
		got := map[string]bool{}
		for _, kind := range []string{keyType, saType} {
			ids, err := vaultserver.RawList(s.ctx, s.root, "logical/"+s.uuids[m]+"/issued/"+kind+"/")
			if err != nil {
				t.Errorf("%s: %v", when, err)
				return
			}
			for _, id := range ids {
				got[kind+":"+id] = true
			}
		}
		if d := diffSets(expect, got); d != "" {
			t.Errorf("%s: %s's record of issued credentials: %s", when, m, d)
		}
		wal, err := vaultserver.RawList(s.ctx, s.root, "logical/"+s.uuids[m]+"/wal/")
		if err != nil {
			t.Errorf("%s: %v", when, err)
		} else if len(wal) != 0 {
			t.Errorf("%s: %s's WAL holds %v", when, m, wal)
		}
	}
}

// works proves a credential against the simulator.
func (s *suite) works(c cred) error {
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	if c.kind == keyType {
		return keyWorks(ctx, s.sim.BaseURL, s.sim.OrgID, c.public, c.secret)
	}
	return serviceAccountWorks(ctx, s.sim.BaseURL, s.sim.OrgID, c.public, c.secret)
}

// waitGone waits (bounded) until none of creds is in the simulator.
func (s *suite) waitGone(what string, creds []cred) {
	s.t.Helper()
	s.waitFor(what+" gone from the simulator", func() error {
		inv := s.inventory()
		var left []string
		for _, c := range creds {
			if _, ok := inv[c.ref()]; ok {
				left = append(left, c.ref())
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("still there: %v", left)
		}
		return nil
	})
}

// entry is what the test compares of a credential in the simulator.
type entry struct {
	org, desc string
}

// inventory maps "<type>:<atlas id>" of every API key and service account in the simulator
// to what tidy must not change of it.
func (s *suite) inventory() map[string]entry {
	s.t.Helper()
	inv, err := s.sim.Inventory(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]entry{}
	for _, k := range inv.APIKeys {
		out[keyType+":"+k.ID] = entry{org: k.OrgID, desc: fmt.Sprintf("key %q roles=%v access=%v", k.Desc, k.Roles, k.AccessList)}
	}
	for _, sa := range inv.ServiceAccounts {
		var secrets []string
		for _, sec := range sa.Secrets {
			secrets = append(secrets, sec.ID)
		}
		out[saType+":"+sa.ClientID] = entry{org: sa.OrgID, desc: fmt.Sprintf("account %q roles=%v projects=%v access=%v secrets=%v",
			sa.Name, sa.Roles, sa.ProjectRoles, sa.AccessList, secrets)}
	}
	return out
}

// diffInventory describes how after differs from before without the refs in removed
// ("" when it does not).
func diffInventory(before, after map[string]entry, removed map[string]bool) string {
	var out []string
	for ref, e := range before {
		a, ok := after[ref]
		switch {
		case removed[ref] && ok:
			out = append(out, "still there: "+ref+" "+e.desc)
		case !removed[ref] && !ok:
			out = append(out, "deleted: "+ref+" "+e.desc)
		case !removed[ref] && a != e:
			out = append(out, "changed: "+ref+" "+e.desc+" -> "+a.desc)
		}
	}
	for ref, a := range after {
		if _, ok := before[ref]; !ok {
			out = append(out, "new: "+ref+" "+a.desc)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func diffSets(want, got map[string]bool) string {
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("missing %v, unexpected %v", missing, extra)
}

func (s *suite) waitFor(what string, check func() error) {
	s.t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			s.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(pollInterval)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func random20() string {
	b := make([]byte, 20)
	for i := range b {
		b[i] = base62[rand.IntN(len(base62))]
	}
	return string(b)
}

func randomTag() string {
	return fmt.Sprintf("%08x", rand.Uint32())
}
