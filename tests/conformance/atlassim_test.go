package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// atlasSim is a running `atlas-sim` process and a client of its admin API.
type atlasSim struct {
	simInfo
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *lockedBuffer
	http   *http.Client
}

// simInfo is the JSON line atlas-sim prints on stdout once it listens.
type simInfo struct {
	BaseURL    string `json:"base_url"`
	AdminURL   string `json:"admin_url"`
	OrgID      string `json:"org_id"`
	ProjectID  string `json:"project_id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
	KeyID      string `json:"key_id"`
}

type simInventory struct {
	APIKeys []simKey `json:"api_keys"`
}

type simKey struct {
	ID         string    `json:"id"`
	PublicKey  string    `json:"public_key"`
	Desc       string    `json:"desc"`
	OrgID      string    `json:"org_id"`
	Roles      []simRole `json:"roles"`
	AccessList []string  `json:"access_list"`
	Seeded     bool      `json:"seeded"`
}

type simRole struct {
	OrgID    string `json:"orgId,omitempty"`
	GroupID  string `json:"groupId,omitempty"`
	RoleName string `json:"roleName"`
}

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

const simStartTimeout = 30 * time.Second

// startSim launches atlas-sim on a free port and stops it when the test ends; its stderr is
// printed only if the test fails.
func startSim(t *testing.T, ctx context.Context, binary string) *atlasSim {
	t.Helper()
	cmd := exec.Command(binary, "--listen", "127.0.0.1:0")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start atlas-sim %s: %v", binary, err)
	}
	sim := &atlasSim{cmd: cmd, exited: make(chan struct{}), stderr: stderr, http: &http.Client{Timeout: 15 * time.Second}}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r) // never let a full pipe block the simulator
	}()
	go func() {
		_ = cmd.Wait()
		close(sim.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("atlas-sim stderr:\n%s", stderr.String())
		}
		sim.stop(t)
	})

	wait, cancel := context.WithTimeout(ctx, simStartTimeout)
	defer cancel()
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &sim.simInfo); err != nil {
			t.Fatalf("atlas-sim startup line %q: %v", line, err)
		}
	case <-sim.exited:
		t.Fatalf("atlas-sim exited before printing its startup line: %s", stderr.String())
	case <-wait.Done():
		t.Fatalf("atlas-sim printed no startup line within %v", simStartTimeout)
	}
	if sim.BaseURL == "" || sim.AdminURL == "" || sim.OrgID == "" || sim.ProjectID == "" || sim.PublicKey == "" || sim.PrivateKey == "" {
		t.Fatalf("atlas-sim startup line lacks a field: %+v", sim.simInfo)
	}
	return sim
}

func (s *atlasSim) stop(t *testing.T) {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("atlas-sim (pid %d) did not exit within 10s of SIGKILL", s.cmd.Process.Pid)
	}
}

// admin calls the admin API; want is the expected status; out (if non-nil) receives the JSON body.
func (s *atlasSim) admin(t *testing.T, ctx context.Context, method, path string, body any, want int, out any) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.AdminURL+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("atlas-sim admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("atlas-sim admin %s %s: reading the body: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("atlas-sim admin %s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("atlas-sim admin %s %s: %v in %s", method, path, err, raw)
		}
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

// hasRole reports whether the key holds role in the given org (group empty) or project.
func (k simKey) hasRole(org, group, role string) bool {
	return slices.ContainsFunc(k.Roles, func(r simRole) bool {
		return r.RoleName == role && r.OrgID == org && r.GroupID == group
	})
}

func (k simKey) inProject(group string) bool {
	return slices.ContainsFunc(k.Roles, func(r simRole) bool { return r.GroupID == group })
}

func describeKeys(keys []simKey) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("{id=%s public_key=%s desc=%q roles=%v access_list=%v}", k.ID, k.PublicKey, k.Desc, k.Roles, k.AccessList))
	}
	return strings.Join(parts, ", ")
}
