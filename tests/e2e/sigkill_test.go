package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"syscall"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/vaultserver"
)

// The plugin environment that makes Vault's periodic WAL rollback (once a minute) act on a
// rotation's entry 8 s after it was written (the engine wants the issue timeout plus 2 s).
var rollbackEnv = []string{"MONGODBATLAS_ISSUE_TIMEOUT=6s", "MONGODBATLAS_WAL_ROLLBACK_MIN_AGE=8s"}

const (
	// A held call outlives the kill; the plugin's attempt timeout (30 s) never runs out.
	holdLatency = 120 * time.Second
	// Bounds: a held rotation reaches its hold; the killed requests return; Vault's next
	// rollback pass (one a minute, on entries 8 s old) has undone the rotation.
	heldTimeout     = 30 * time.Second
	answerTimeout   = 60 * time.Second
	relaunchTimeout = 30 * time.Second
	rolledBackLimit = 150 * time.Second
)

// killedRotation is one mount whose rotation the SIGKILL interrupts.
type killedRotation struct {
	c      combo
	r      roleSpec
	before issued
	// API-key login: the fresh login key, and the keys that existed before the rotation.
	loginKeyID string
	keysBefore map[string]bool
	// Service-account login: the fresh account and its one secret before the rotation.
	clientID, oldSecret string
	holdID              int
	answer              chan error
}

// killMidRotation: two mounts with fresh logins of their own (an Organization Owner key and
// an ORG_OWNER service account, made in the simulator for this check: the seeded logins are
// the other mounts'), each with a live lease. Both rotate at once; the simulator holds each
// rotation at a call after its new credential exists (the API key's verification with the new
// key, before config stores it; the service account's delete of its old secret, after config
// stores the new one), and the plugin process is SIGKILLed. The next requests relaunch it, and
// Vault's next periodic rollback undoes each rotation to exactly one login credential, the one
// config holds (the API key's old key, the service account's new secret): polled in the
// simulator's inventory, bounded. Then each config issues and revokes a lease, and the lease
// from before the kill revokes. Returns how many checks failed.
func (s *suite) killMidRotation(node *vaultserver.Node, pluginPath, sha, version string) int {
	s.t.Helper()
	failed := 0
	errorf := func(format string, args ...any) {
		s.t.Helper()
		failed++
		s.t.Errorf(format, args...)
	}
	probe := roleSpec{name: "probe", kind: apiKey, body: map[string]any{
		"organization_id": s.sim.OrgID, "roles": "ORG_MEMBER", "ttl": roleTTL.String(), "max_ttl": roleMaxTTL.String(),
	}}

	key, err := s.sim.CreateKey(s.ctx, "e2e kill-mid-rotation login", []string{"ORG_OWNER"}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.seen.add(s.t, "kill-mid-rotation login private_key", key.PrivateKey)
	account, err := s.sim.CreateServiceAccount(s.ctx, "e2e-kill-mid-rotation-login", []string{"ORG_OWNER"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.seen.addServiceAccount(s.t, "kill-mid-rotation login", account.ClientID, account.ClientSecret)

	keyMount := &killedRotation{c: combo{label: "API-key login, killed mid-rotation", mount: "kill-rotate-api-key", login: apiKey}, loginKeyID: key.ID, answer: make(chan error, 1)}
	saMount := &killedRotation{c: combo{label: "service-account login, killed mid-rotation", mount: "kill-rotate-service-account", login: serviceAccount}, clientID: account.ClientID, answer: make(chan error, 1)}
	logins := map[*killedRotation]map[string]any{
		keyMount: {"public_key": key.PublicKey, "private_key": key.PrivateKey},
		saMount:  {"client_id": account.ClientID, "client_secret": account.ClientSecret},
	}
	for _, k := range []*killedRotation{keyMount, saMount} {
		s.mount(k.c.mount, sha, version)
		data := logins[k]
		data["base_url"] = s.sim.BaseURL
		if _, err := s.root.Logical().WriteWithContext(s.ctx, k.c.mount+"/config", data); err != nil {
			s.t.Fatalf("write %s/config: %v", k.c.mount, err)
		}
		k.r = probe
		if _, err := s.root.Logical().WriteWithContext(s.ctx, k.c.mount+"/roles/"+k.r.name, k.r.body); err != nil {
			s.t.Fatalf("write %s/roles/%s: %v", k.c.mount, k.r.name, err)
		}
		// A live lease, which also caches the login's client (and a service account's token).
		k.before = s.issue(k.c, k.r)
		s.issued = append(s.issued, k.before)
	}
	inv, err := s.sim.Inventory(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	keyMount.keysBefore = map[string]bool{}
	for _, k := range inv.APIKeys {
		keyMount.keysBefore[k.ID] = true
	}
	secrets := accountSecrets(inv, account.ClientID)
	if len(secrets) != 1 {
		s.t.Fatalf("the fresh login service account has %d secrets, want 1", len(secrets))
	}
	saMount.oldSecret = secrets[0]

	// Hold each rotation, one after the other (the rules match only their own call).
	keyMount.holdID = s.addFault(map[string]any{"method": http.MethodGet, "path": `^/api/atlas/v2/orgs/[^/]+/apiKeys/[^/]+$`,
		"action": "latency", "latency_ms": holdLatency.Milliseconds(), "times": 1})
	saMount.holdID = s.addFault(map[string]any{"method": http.MethodDelete,
		"path":   `^/api/atlas/v2/orgs/[^/]+/serviceAccounts/` + regexp.QuoteMeta(account.ClientID) + `/secrets/` + regexp.QuoteMeta(saMount.oldSecret) + `$`,
		"action": "latency", "latency_ms": holdLatency.Milliseconds(), "times": 1})
	for _, k := range []*killedRotation{keyMount, saMount} {
		go func() {
			_, err := s.root.Logical().WriteWithContext(s.ctx, k.c.mount+"/rotate-root", map[string]any{})
			k.answer <- err
		}()
		s.waitFor(heldTimeout, k.c.mount+"'s rotation held in Atlas", func(inv atlassim.Inventory) bool {
			f, _ := s.fault(k.holdID)
			return f.Matched >= 1
		})
	}
	// Both new credentials exist.
	inv, err = s.sim.Inventory(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	if n := len(keyMount.newKeys(inv)); n != 1 {
		s.t.Fatalf("%d new keys while the API-key rotation is held, want 1", n)
	}
	if n := len(accountSecrets(inv, account.ClientID)); n != 2 {
		s.t.Fatalf("the login service account has %d secrets while its rotation is held, want 2", n)
	}

	pids := node.ChildrenRunning(pluginPath)
	if len(pids) != 1 {
		s.t.Fatalf("plugin processes of %s under the server: %v, want exactly one (multiplexed)", pluginPath, pids)
	}
	killed := pids[0]
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		s.t.Fatalf("SIGKILL the plugin process %d: %v", killed, err)
	}
	killedAt := time.Now()
	s.t.Logf("both rotations held (a new key, a second secret): SIGKILLed the plugin process %d", killed)
	for _, k := range []*killedRotation{keyMount, saMount} {
		select {
		case err := <-k.answer:
			if err == nil {
				// Vault retried the request on a relaunched plugin, which rotated anew.
				s.t.Logf("%s/rotate-root: retried by the server on a relaunched plugin, succeeded", k.c.mount)
			} else {
				s.t.Logf("%s/rotate-root failed with the plugin: %s", k.c.mount, s.seen.redact(err.Error()))
			}
		case <-time.After(answerTimeout):
			s.t.Fatalf("%s/rotate-root did not return within %v of the kill", k.c.mount, answerTimeout)
		}
	}
	if err := s.sim.ClearFaults(s.ctx); err != nil {
		s.t.Fatal(err)
	}

	// A request relaunches the plugin once the server has seen the process exit: until
	// then requests fail (connection refused), and the first that finds the plugin shut
	// down reloads it and is retried on the new process. Each mount reloads on its own.
	for _, k := range []*killedRotation{keyMount, saMount} {
		failures, deadline := 0, time.Now().Add(relaunchTimeout)
		for {
			_, err := s.root.Logical().ReadWithContext(s.ctx, k.c.mount+"/config")
			if err == nil {
				break
			}
			failures++
			if time.Now().After(deadline) || s.ctx.Err() != nil {
				s.t.Fatalf("read %s/config: still failing %v after the kill: %s", k.c.mount, relaunchTimeout, s.seen.redact(err.Error()))
			}
			time.Sleep(pollInterval)
		}
		s.t.Logf("%s/config answered after the kill; requests that failed before the plugin was relaunched: %d", k.c.mount, failures)
	}
	if now := node.ChildrenRunning(pluginPath); len(now) == 0 || slices.Contains(now, killed) {
		errorf("plugin processes after the kill: %v; want a new one, not %d", now, killed)
	}

	// Vault's next rollback pass leaves one login credential of each.
	inv = s.waitFor(rolledBackLimit, "the rollback of both rotations", func(inv atlassim.Inventory) bool {
		return len(keyMount.logins(inv)) == 1 && len(accountSecrets(inv, account.ClientID)) == 1
	})
	s.t.Logf("both rotations rolled back %v after the kill", time.Since(killedAt).Round(time.Second))
	keys := keyMount.logins(inv)
	config, err := s.root.Logical().ReadWithContext(s.ctx, keyMount.c.mount+"/config")
	switch {
	case err != nil || config == nil:
		errorf("read %s/config: %v", keyMount.c.mount, err)
	case len(keys) != 1:
		errorf("API-key login keys after the rollback: %s; want exactly one", atlassim.Describe(keys))
	case fmt.Sprint(config.Data["public_key"]) != keys[0].PublicKey:
		errorf("the one API-key login left is %s, config holds %v", keys[0].PublicKey, config.Data["public_key"])
	}
	switch left := accountSecrets(inv, account.ClientID); {
	case len(left) != 1:
		errorf("the login service account has %d secrets after the rollback, want 1", len(left))
	case left[0] == saMount.oldSecret:
		errorf("the rollback kept the service account's old secret %s although config held the new one", left[0])
	}

	// Each config works: a new lease issues and revokes, the one from before the kill revokes.
	var leaseKeys []string
	for _, k := range []*killedRotation{keyMount, saMount} {
		after := s.issue(k.c, k.r)
		s.issued = append(s.issued, after)
		for _, l := range []issued{k.before, after} {
			leaseKeys = append(leaseKeys, l.id)
			if err := s.root.Sys().RevokeWithContext(s.ctx, l.leaseID); err != nil {
				errorf("%s: revoke after the kill and the rollback: %v", l, err)
			}
		}
	}
	// Nothing but the one login key is left of the kill mounts.
	s.waitFor(goneTimeout, "the kill mounts' leases revoked", func(inv atlassim.Inventory) bool {
		return !slices.ContainsFunc(inv.APIKeys, func(key atlassim.Key) bool {
			return slices.Contains(leaseKeys, key.PublicKey) || (!keyMount.keysBefore[key.ID] && !keyMount.isLogin(key))
		})
	})
	return failed
}

// newKeys are the keys that did not exist before the rotation.
func (k *killedRotation) newKeys(inv atlassim.Inventory) []atlassim.Key {
	var out []atlassim.Key
	for _, key := range inv.APIKeys {
		if !k.keysBefore[key.ID] {
			out = append(out, key)
		}
	}
	return out
}

// isLogin: the fresh login key, or an Organization Owner key a rotation of it made.
func (k *killedRotation) isLogin(key atlassim.Key) bool {
	if key.ID == k.loginKeyID {
		return true
	}
	return !k.keysBefore[key.ID] && slices.ContainsFunc(key.Roles, func(r atlassim.Role) bool { return r.RoleName == "ORG_OWNER" })
}

// logins are the login keys of the mount: the fresh one and those rotations of it made.
func (k *killedRotation) logins(inv atlassim.Inventory) []atlassim.Key {
	var out []atlassim.Key
	for _, key := range inv.APIKeys {
		if k.isLogin(key) {
			out = append(out, key)
		}
	}
	return out
}

// accountSecrets are the ids of a service account's secrets.
func accountSecrets(inv atlassim.Inventory, clientID string) []string {
	var out []string
	for _, a := range inv.ServiceAccounts {
		if a.ClientID == clientID {
			for _, secret := range a.Secrets {
				out = append(out, secret.ID)
			}
		}
	}
	return out
}

func (s *suite) addFault(rule map[string]any) int {
	s.t.Helper()
	id, err := s.sim.AddFault(s.ctx, rule)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *suite) fault(id int) (atlassim.Fault, bool) {
	s.t.Helper()
	faults, err := s.sim.Faults(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, f := range faults {
		if f.ID == id {
			return f, true
		}
	}
	return atlassim.Fault{}, false
}

// waitFor polls the simulator's inventory until done, bounded by limit; returns the last
// inventory read.
func (s *suite) waitFor(limit time.Duration, what string, done func(atlassim.Inventory) bool) atlassim.Inventory {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		inv, err := s.sim.Inventory(s.ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		if done(inv) {
			return inv
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			s.t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(pollInterval)
	}
}
