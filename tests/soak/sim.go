package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// sim is a running atlas-sim process and a client of its admin API.
type sim struct {
	simInfo
	cmd    *exec.Cmd
	exited chan struct{}
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

type inventory struct {
	APIKeys  []simKey     `json:"api_keys"`
	Projects []simProject `json:"projects"`
}

type simKey struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`
	Desc      string `json:"desc"`
	Seeded    bool   `json:"seeded"`
}

type simProject struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
}

// createdKey is the admin API's answer to POST /admin/keys (private key included).
type createdKey struct {
	ID         string `json:"id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

type faultStatus struct {
	ID   int `json:"id"`
	Rule struct {
		Nth   *int `json:"nth"`
		Times *int `json:"times"`
	} `json:"rule"`
	Matched int `json:"matched"`
	Fired   int `json:"fired"`
}

// exhausted reports whether the rule can no longer act.
func (f faultStatus) exhausted() bool {
	switch {
	case f.Rule.Nth != nil:
		return f.Matched >= *f.Rule.Nth
	case f.Rule.Times != nil:
		return f.Fired >= *f.Rule.Times
	}
	return false
}

type simStats struct {
	RequestsTotal int `json:"requests_total"`
	FaultsFired   int `json:"faults_fired"`
}

const simStartTimeout = 30 * time.Second

// startSim launches atlas-sim on a free loopback port; its stderr goes to logs. No rate
// limit (the soak injects its own 429s) and no journal (the soak reads the inventory).
func startSim(ctx context.Context, binary string, logs io.Writer) (*sim, error) {
	cmd := exec.Command(binary, "--listen", "127.0.0.1:0", "--no-rate-limit", "--journal-capacity", "0")
	cmd.Stderr = logs
	// The simulator must not outlive the driver, however the driver ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start atlas-sim %s: %w", binary, err)
	}
	s := &sim{cmd: cmd, exited: make(chan struct{}), http: &http.Client{Timeout: 20 * time.Second}}
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
	wait, cancel := context.WithTimeout(ctx, simStartTimeout)
	defer cancel()
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &s.simInfo); err != nil {
			s.stop()
			return nil, fmt.Errorf("atlas-sim startup line %q: %w", line, err)
		}
	case <-s.exited:
		return nil, errors.New("atlas-sim exited before printing its startup line")
	case <-wait.Done():
		s.stop()
		return nil, fmt.Errorf("atlas-sim printed no startup line within %v", simStartTimeout)
	}
	if s.BaseURL == "" || s.AdminURL == "" || s.OrgID == "" || s.ProjectID == "" || s.PublicKey == "" || s.PrivateKey == "" {
		s.stop()
		return nil, fmt.Errorf("atlas-sim startup line lacks a field: base_url=%q org_id=%q project_id=%q", s.BaseURL, s.OrgID, s.ProjectID)
	}
	return s, nil
}

func (s *sim) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(os.Stderr, "soak: atlas-sim (pid %d) did not exit within 10s of SIGKILL\n", s.cmd.Process.Pid)
	}
}

func (s *sim) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// admin calls the admin API; want is the expected status; out (if non-nil) receives the JSON body.
func (s *sim) admin(ctx context.Context, method, path string, body any, want int, out any) error {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.AdminURL+path, reader)
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
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("atlas-sim admin %s %s: reading the body: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("atlas-sim admin %s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("atlas-sim admin %s %s: %w", method, path, err)
		}
	}
	return nil
}

func (s *sim) inventory(ctx context.Context) (inventory, error) {
	var inv inventory
	err := s.admin(ctx, http.MethodGet, "/inventory", nil, http.StatusOK, &inv)
	return inv, err
}

// liveKeyIDs is the set of ids of every key alive in the simulator.
func (s *sim) liveKeyIDs(ctx context.Context) (map[string]simKey, error) {
	inv, err := s.inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]simKey, len(inv.APIKeys))
	for _, k := range inv.APIKeys {
		out[k.ID] = k
	}
	return out, nil
}

// createOrgKey makes a key directly in the simulator's seeded org (not through the Atlas API).
func (s *sim) createOrgKey(ctx context.Context, desc string, orgRoles []string, projectRoles map[string][]string) (createdKey, error) {
	body := map[string]any{"desc": desc, "org_roles": orgRoles}
	if len(projectRoles) > 0 {
		body["project_roles"] = projectRoles
	}
	var key createdKey
	if err := s.admin(ctx, http.MethodPost, "/keys", body, http.StatusOK, &key); err != nil {
		return key, err
	}
	if key.ID == "" || key.PublicKey == "" || key.PrivateKey == "" {
		return key, fmt.Errorf("atlas-sim created a key without an id or credentials (id %q)", key.ID)
	}
	return key, nil
}

// createProject adds a project to the seeded org.
func (s *sim) createProject(ctx context.Context, name string) (string, error) {
	var p simProject
	if err := s.admin(ctx, http.MethodPost, "/projects", map[string]any{"name": name}, http.StatusOK, &p); err != nil {
		return "", err
	}
	if p.ID == "" {
		return "", errors.New("atlas-sim created a project without an id")
	}
	return p.ID, nil
}

// deleteKey removes a key out of band (as if someone used the Atlas UI).
func (s *sim) deleteKey(ctx context.Context, id string) error {
	return s.admin(ctx, http.MethodDelete, "/keys/"+id, nil, http.StatusNoContent, nil)
}

func (s *sim) addFault(ctx context.Context, rule map[string]any) (int, error) {
	var out struct {
		ID int `json:"id"`
	}
	err := s.admin(ctx, http.MethodPost, "/faults", rule, http.StatusOK, &out)
	return out.ID, err
}

func (s *sim) faults(ctx context.Context) ([]faultStatus, error) {
	var out []faultStatus
	err := s.admin(ctx, http.MethodGet, "/faults", nil, http.StatusOK, &out)
	return out, err
}

func (s *sim) removeFault(ctx context.Context, id int) error {
	return s.admin(ctx, http.MethodDelete, fmt.Sprintf("/faults/%d", id), nil, http.StatusNoContent, nil)
}

func (s *sim) clearFaults(ctx context.Context) error {
	return s.admin(ctx, http.MethodDelete, "/faults", nil, http.StatusNoContent, nil)
}

func (s *sim) stats(ctx context.Context) (simStats, error) {
	var out simStats
	err := s.admin(ctx, http.MethodGet, "/stats", nil, http.StatusOK, &out)
	return out, err
}
