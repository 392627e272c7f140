// Package atlassim starts the Atlas simulator (`atlas-sim`), reads its one-line JSON startup
// output and talks to its admin API. It is the one launcher of the Go test module: the
// conformance tests, the storm, the OpenAPI check, the soak and the benchmark all use it.
// Launch serves programs (the soak and benchmark drivers); Start wraps it for tests.
package atlassim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds the wait for the startup line.
const StartTimeout = 30 * time.Second

// stopTimeout bounds the wait for the process to exit after SIGKILL.
const stopTimeout = 10 * time.Second

// DefaultAdminTimeout bounds one admin API call unless Config.AdminTimeout says otherwise.
const DefaultAdminTimeout = 15 * time.Second

// Info is the JSON line atlas-sim prints on stdout once it listens.
type Info struct {
	BaseURL    string `json:"base_url"`
	AdminURL   string `json:"admin_url"`
	OrgID      string `json:"org_id"`
	ProjectID  string `json:"project_id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
	KeyID      string `json:"key_id"`
	// The seeded ORG_OWNER service account (a login for config's client_id/client_secret).
	SAClientID     string `json:"sa_client_id"`
	SAClientSecret string `json:"sa_client_secret"`
	TLS            bool   `json:"tls"`
	ProxyURL       string `json:"proxy_url"` // set with --proxy
	CAPath         string `json:"ca_path"`   // set with --ca-out
}

// Config says how to launch the simulator.
type Config struct {
	// Flags follow `--listen 127.0.0.1:0` on the command line.
	Flags []string
	// Stderr receives the simulator's stderr (nil: discarded).
	Stderr io.Writer
	// AdminTimeout bounds each admin API call (0: DefaultAdminTimeout).
	AdminTimeout time.Duration
}

// Sim is a running atlas-sim process and a client of its admin API.
type Sim struct {
	Info
	cmd    *exec.Cmd
	exited chan struct{}
	http   *http.Client
}

// Launch starts atlas-sim on a free loopback port and waits, bounded by ctx and StartTimeout,
// for its startup line. The simulator gets SIGKILL should this process die first, and
// persists nothing, so Stop kills it outright. On error nothing is left running.
func Launch(ctx context.Context, binary string, cfg Config) (*Sim, error) {
	cmd := exec.Command(binary, append([]string{"--listen", "127.0.0.1:0"}, cfg.Flags...)...)
	cmd.Stderr = cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start atlas-sim %s: %w", binary, err)
	}
	s := &Sim{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r) // a full pipe must never block the simulator
	}()
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	fail := func(err error) (*Sim, error) {
		_ = s.Stop()
		return nil, err
	}

	wait, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	select {
	case line := <-lines:
		if !strings.HasSuffix(line, "\n") {
			// Stdout closed before a whole line: the process is ending.
			return fail(fmt.Errorf("atlas-sim exited before printing its startup line (stdout %q)", line))
		}
		if err := json.Unmarshal([]byte(line), &s.Info); err != nil {
			return fail(fmt.Errorf("atlas-sim startup line %q: %w", line, err))
		}
	case <-s.exited:
		return nil, errors.New("atlas-sim exited before printing its startup line")
	case <-wait.Done():
		return fail(fmt.Errorf("atlas-sim printed no startup line within %v: %w", StartTimeout, wait.Err()))
	}
	if s.BaseURL == "" || s.AdminURL == "" || s.OrgID == "" || s.ProjectID == "" || s.PublicKey == "" || s.PrivateKey == "" {
		return fail(fmt.Errorf("atlas-sim startup line lacks a field: base_url=%q admin_url=%q org_id=%q project_id=%q public_key=%q private_key set=%v",
			s.BaseURL, s.AdminURL, s.OrgID, s.ProjectID, s.PublicKey, s.PrivateKey != ""))
	}

	// The admin API is on the main listener: plain HTTP, or TLS under the simulator's CA.
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	if s.CAPath != "" {
		pem, err := os.ReadFile(s.CAPath)
		if err != nil {
			return fail(fmt.Errorf("read the simulator CA: %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fail(errors.New("the simulator CA file holds no certificate"))
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := cfg.AdminTimeout
	if timeout == 0 {
		timeout = DefaultAdminTimeout
	}
	s.http = &http.Client{Transport: transport, Timeout: timeout}
	return s, nil
}

// Start launches atlas-sim for a test (Launch with these flags) and stops it when the test
// ends. Its stderr is logged if the test fails.
func Start(t testing.TB, binary string, flags ...string) *Sim {
	t.Helper()
	stderr := &Buffer{}
	sim, err := Launch(context.Background(), binary, Config{Flags: flags, Stderr: stderr})
	if err != nil {
		t.Fatalf("%v; atlas-sim stderr (last 40 lines):\n%s", err, Tail(stderr.String(), 40))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("atlas-sim stderr (last 40 lines):\n%s", Tail(stderr.String(), 40))
		}
		if err := sim.Stop(); err != nil {
			t.Error(err)
		}
	})
	return sim
}

// Pid is the simulator's process id.
func (s *Sim) Pid() int { return s.cmd.Process.Pid }

// Alive reports whether the process is still running.
func (s *Sim) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop kills the simulator (idempotent) and waits, bounded, for it to exit.
func (s *Sim) Stop() error {
	if !s.Alive() {
		return nil
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("atlas-sim (pid %d) did not exit within %v of SIGKILL", s.cmd.Process.Pid, stopTimeout)
	}
}

// Admin calls the admin API (path below /admin); want is the expected status; out (if
// non-nil) receives the JSON body. Errors are returned, not fatal, so polling loops and
// cleanups can use it.
func (s *Sim) Admin(ctx context.Context, method, path string, body any, want int, out any) error {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(s.AdminURL, "/")+path, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("atlas-sim admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("atlas-sim admin %s %s: reading the body: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("atlas-sim admin %s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("atlas-sim admin %s %s: %w in %s", method, path, err, raw)
		}
	}
	return nil
}

// Inventory is the answer of GET /admin/inventory (the parts the tests read).
type Inventory struct {
	APIKeys         []Key            `json:"api_keys"`
	Projects        []Project        `json:"projects"`
	ServiceAccounts []ServiceAccount `json:"service_accounts"`
	// One entry per organization membership of a MongoDB Cloud user (a person).
	OrgUsers []OrgUser `json:"org_users"`
}

// OrgUser is a MongoDB Cloud user's membership of one organization, with the user's roles
// in the organization and in its projects.
type OrgUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	OrgID    string `json:"org_id"`
	// ACTIVE, or PENDING (invited), INVITATION_EXPIRED, INVITATION_REJECTED.
	Status   string   `json:"status"`
	OrgRoles []string `json:"org_roles"`
	// Project id -> roles in that project.
	ProjectRoles map[string][]string `json:"project_roles"`
	// Added through the admin API (test setup), not through the Atlas API.
	Seeded bool `json:"seeded"`
}

// OrgUser is the membership of username (any case) in orgID, or nil.
func (inv Inventory) OrgUser(orgID, username string) *OrgUser {
	for i := range inv.OrgUsers {
		if u := &inv.OrgUsers[i]; u.OrgID == orgID && strings.EqualFold(u.Username, username) {
			return u
		}
	}
	return nil
}

// ProjectMembers maps the usernames of the users with roles in the project to those roles.
func (inv Inventory) ProjectMembers(projectID string) map[string][]string {
	out := map[string][]string{}
	for _, u := range inv.OrgUsers {
		if roles, ok := u.ProjectRoles[projectID]; ok {
			out[u.Username] = roles
		}
	}
	return out
}

// ServiceAccount is a live service account in the simulator (no secret values: the
// inventory never shows them).
type ServiceAccount struct {
	ClientID    string `json:"client_id"`
	OrgID       string `json:"org_id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Organization roles.
	Roles []string `json:"roles"`
	// Project id -> roles in that project.
	ProjectRoles map[string][]string `json:"project_roles"`
	// Access-list entries in CIDR notation.
	AccessList []string `json:"access_list"`
	Secrets    []struct {
		ID        string `json:"id"`
		ExpiresAt string `json:"expires_at"`
		Expired   bool   `json:"expired"`
	} `json:"secrets"`
	// Unexpired, unrevoked access tokens.
	ActiveTokens int `json:"active_tokens"`
	// Created at startup or through the admin API (not through the Atlas API).
	Seeded bool `json:"seeded"`
}

// IssuedServiceAccounts are the live service accounts other than the seeded ones.
func (inv Inventory) IssuedServiceAccounts() []ServiceAccount {
	var out []ServiceAccount
	for _, sa := range inv.ServiceAccounts {
		if !sa.Seeded {
			out = append(out, sa)
		}
	}
	return out
}

// IssuedKeys are the live API keys other than the seeded ones.
func (inv Inventory) IssuedKeys() []Key {
	var out []Key
	for _, k := range inv.APIKeys {
		if !k.Seeded {
			out = append(out, k)
		}
	}
	return out
}

// Key is a live API key in the simulator.
type Key struct {
	ID         string   `json:"id"`
	PublicKey  string   `json:"public_key"`
	Desc       string   `json:"desc"`
	OrgID      string   `json:"org_id"`
	Roles      []Role   `json:"roles"`
	AccessList []string `json:"access_list"`
	Seeded     bool     `json:"seeded"`
}

// Role is one role assignment of a key.
type Role struct {
	OrgID    string `json:"orgId,omitempty"`
	GroupID  string `json:"groupId,omitempty"`
	RoleName string `json:"roleName"`
}

// Project is a project in the simulator.
type Project struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
}

// get reads one admin resource (GET, 200, JSON).
func get[T any](ctx context.Context, s *Sim, path string) (T, error) {
	var out T
	err := s.Admin(ctx, http.MethodGet, path, nil, http.StatusOK, &out)
	return out, err
}

// Inventory reads the live inventory.
func (s *Sim) Inventory(ctx context.Context) (Inventory, error) {
	return get[Inventory](ctx, s, "/inventory")
}

// IssuedKeys are the live keys other than the seeded one.
func (s *Sim) IssuedKeys(ctx context.Context) ([]Key, error) {
	inv, err := s.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	return inv.IssuedKeys(), nil
}

// IssuedServiceAccounts are the live service accounts created through the Atlas API (not
// the seeded one nor those made through the admin API).
func (s *Sim) IssuedServiceAccounts(ctx context.Context) ([]ServiceAccount, error) {
	inv, err := s.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	return inv.IssuedServiceAccounts(), nil
}

// CreatedKey is the admin API's answer to POST /admin/keys (the private key included).
type CreatedKey struct {
	ID         string `json:"id"`
	OrgID      string `json:"org_id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// CreateKey makes a key directly in the simulator's seeded org, not through the Atlas API (as
// if another tool had created it). projectRoles maps project ids to roles in them.
func (s *Sim) CreateKey(ctx context.Context, desc string, orgRoles []string, projectRoles map[string][]string) (CreatedKey, error) {
	body := map[string]any{"desc": desc, "org_roles": orgRoles}
	if len(projectRoles) > 0 {
		body["project_roles"] = projectRoles
	}
	var key CreatedKey
	if err := s.Admin(ctx, http.MethodPost, "/keys", body, http.StatusOK, &key); err != nil {
		return key, err
	}
	if key.ID == "" || key.PublicKey == "" || key.PrivateKey == "" {
		return key, fmt.Errorf("atlas-sim created a key without an id or credentials (id %q)", key.ID)
	}
	return key, nil
}

// DeleteKey removes a key out of band (as if someone used the Atlas UI).
func (s *Sim) DeleteKey(ctx context.Context, id string) error {
	return s.Admin(ctx, http.MethodDelete, "/keys/"+id, nil, http.StatusNoContent, nil)
}

// CreatedServiceAccount is the admin API's answer to POST /admin/service_accounts (the
// secret included).
type CreatedServiceAccount struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	OrgID        string `json:"org_id"`
	Name         string `json:"name"`
}

// CreateServiceAccount makes a service account directly in the simulator's seeded org (test
// setup: the inventory reports it as seeded), e.g. a second login for the engine's config.
func (s *Sim) CreateServiceAccount(ctx context.Context, name string, orgRoles []string) (CreatedServiceAccount, error) {
	var sa CreatedServiceAccount
	body := map[string]any{"name": name, "org_roles": orgRoles}
	if err := s.Admin(ctx, http.MethodPost, "/service_accounts", body, http.StatusOK, &sa); err != nil {
		return sa, err
	}
	if sa.ClientID == "" || sa.ClientSecret == "" {
		return sa, fmt.Errorf("atlas-sim created a service account without a client id or secret (id %q)", sa.ClientID)
	}
	return sa, nil
}

// DeleteServiceAccount removes a service account everywhere, out of band (its tokens are
// revoked).
func (s *Sim) DeleteServiceAccount(ctx context.Context, clientID string) error {
	return s.Admin(ctx, http.MethodDelete, "/service_accounts/"+clientID, nil, http.StatusNoContent, nil)
}

// AddOrgMember adds a MongoDB Cloud user (username: an email address) to the simulator's
// seeded organization as an active member, as an accepted invitation leaves them (an open
// invitation of that username is accepted): orgRoles (ORG_MEMBER when empty) and, in
// projectRoles, project id -> roles. Not through the Atlas API: the inventory reports it
// as seeded.
func (s *Sim) AddOrgMember(ctx context.Context, username string, orgRoles []string, projectRoles map[string][]string) (OrgUser, error) {
	body := map[string]any{"username": username}
	if len(orgRoles) > 0 {
		body["org_roles"] = orgRoles
	}
	if len(projectRoles) > 0 {
		body["project_roles"] = projectRoles
	}
	var user OrgUser
	if err := s.Admin(ctx, http.MethodPost, "/org_users", body, http.StatusOK, &user); err != nil {
		return user, err
	}
	if user.ID == "" || user.Status == "" {
		return user, fmt.Errorf("atlas-sim added an organization user without an id or status (id %q)", user.ID)
	}
	return user, nil
}

// RemoveOrgUser deletes a MongoDB Cloud user's account (every membership), out of band.
func (s *Sim) RemoveOrgUser(ctx context.Context, userID string) error {
	return s.Admin(ctx, http.MethodDelete, "/org_users/"+userID, nil, http.StatusNoContent, nil)
}

// PurgeIssuedKeys deletes every key but the seeded one and returns how many there were.
func (s *Sim) PurgeIssuedKeys(ctx context.Context) (int, error) {
	keys, err := s.IssuedKeys(ctx)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := s.DeleteKey(ctx, k.ID); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// CreateProject adds a project to the seeded org and returns its id.
func (s *Sim) CreateProject(ctx context.Context, name string) (string, error) {
	var p Project
	if err := s.Admin(ctx, http.MethodPost, "/projects", map[string]any{"name": name}, http.StatusOK, &p); err != nil {
		return "", err
	}
	if p.ID == "" {
		return "", errors.New("atlas-sim created a project without an id")
	}
	return p.ID, nil
}

// Fault is one fault rule of GET /admin/faults with its counters.
type Fault struct {
	ID   int `json:"id"`
	Rule struct {
		Nth   *int `json:"nth"`
		Times *int `json:"times"`
		Skip  *int `json:"skip"`
	} `json:"rule"`
	Matched int `json:"matched"`
	Fired   int `json:"fired"`
}

// Exhausted reports whether the rule can no longer act.
func (f Fault) Exhausted() bool {
	skip := 0
	if f.Rule.Skip != nil {
		skip = *f.Rule.Skip
	}
	switch {
	case f.Rule.Nth != nil:
		return f.Matched >= skip+*f.Rule.Nth
	case f.Rule.Times != nil:
		return f.Fired >= *f.Rule.Times
	}
	return false
}

// AddFault adds a fault rule (the admin API's JSON shape) and returns its id.
func (s *Sim) AddFault(ctx context.Context, rule map[string]any) (int, error) {
	var out struct {
		ID int `json:"id"`
	}
	err := s.Admin(ctx, http.MethodPost, "/faults", rule, http.StatusOK, &out)
	return out.ID, err
}

// Faults lists the fault rules.
func (s *Sim) Faults(ctx context.Context) ([]Fault, error) {
	return get[[]Fault](ctx, s, "/faults")
}

// RemoveFault removes one fault rule.
func (s *Sim) RemoveFault(ctx context.Context, id int) error {
	return s.Admin(ctx, http.MethodDelete, fmt.Sprintf("/faults/%d", id), nil, http.StatusNoContent, nil)
}

// ClearFaults removes every fault rule.
func (s *Sim) ClearFaults(ctx context.Context) error {
	return s.Admin(ctx, http.MethodDelete, "/faults", nil, http.StatusNoContent, nil)
}

// SetLatency sets the latency the simulator adds to every HTTP request (challenges included).
func (s *Sim) SetLatency(ctx context.Context, latency time.Duration) error {
	return s.Admin(ctx, http.MethodPut, "/latency", map[string]int64{"ms": latency.Milliseconds()}, http.StatusOK, nil)
}

// Bucket and RateLimit mirror the simulator's rate-limit configuration.
type Bucket struct {
	Capacity uint64 `json:"capacity"`
	Refill   uint64 `json:"refill"`
	PeriodMS uint64 `json:"period_ms"`
}

type RateLimit struct {
	Enabled bool   `json:"enabled"`
	Org     Bucket `json:"org"`
	Project Bucket `json:"project"`
}

// RateLimit reads the rate-limit configuration.
func (s *Sim) RateLimit(ctx context.Context) (RateLimit, error) {
	return get[RateLimit](ctx, s, "/ratelimit")
}

// SetRateLimit replaces the rate-limit configuration; the simulator refills every bucket.
func (s *Sim) SetRateLimit(ctx context.Context, rl RateLimit) error {
	return s.Admin(ctx, http.MethodPut, "/ratelimit", rl, http.StatusOK, nil)
}

// Stats is the part of GET /admin/stats the tests read.
type Stats struct {
	RequestsTotal uint64 `json:"requests_total"`
	Challenges    uint64 `json:"challenges"`
	RateLimited   uint64 `json:"rate_limited"`
	FaultsFired   uint64 `json:"faults_fired"`
	Routes        map[string]struct {
		Total      uint64 `json:"total"`
		Challenges uint64 `json:"challenges"`
	} `json:"routes"`
}

// Stats reads the request counters.
func (s *Sim) Stats(ctx context.Context) (Stats, error) {
	return get[Stats](ctx, s, "/stats")
}

// Describe formats keys for a failure message (no secrets: the inventory holds none).
func Describe(keys []Key) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("{id=%s public_key=%s desc=%q}", k.ID, k.PublicKey, k.Desc))
	}
	return strings.Join(parts, ", ")
}

// DescribeServiceAccounts formats service accounts for a failure message (no secrets).
func DescribeServiceAccounts(accounts []ServiceAccount) string {
	parts := make([]string, 0, len(accounts))
	for _, a := range accounts {
		parts = append(parts, fmt.Sprintf("{client_id=%s name=%q roles=%v project_roles=%v access_list=%v}", a.ClientID, a.Name, a.Roles, a.ProjectRoles, a.AccessList))
	}
	return strings.Join(parts, ", ")
}

// Buffer is a bytes.Buffer safe for concurrent writes (a process's output) and reads.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
