// Package atlassim starts the Atlas simulator (`atlas-sim`) for a test, reads its one-line
// JSON startup output and talks to its admin API. It is shared by the Go test packages of
// this module; anything that needs the simulator as a process should use it.
package atlassim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartTimeout bounds the wait for the startup line.
const StartTimeout = 30 * time.Second

// Info is the JSON line atlas-sim prints on stdout once it listens.
type Info struct {
	BaseURL    string `json:"base_url"`
	AdminURL   string `json:"admin_url"`
	OrgID      string `json:"org_id"`
	ProjectID  string `json:"project_id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
	KeyID      string `json:"key_id"`
}

// Sim is a running atlas-sim process and a client of its admin API.
type Sim struct {
	Info
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *Buffer
	http   *http.Client
}

// Inventory is the answer of GET /admin/inventory (the parts tests read).
type Inventory struct {
	APIKeys []Key `json:"api_keys"`
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

// Start launches atlas-sim on a free loopback port with the given extra flags and stops it
// (by its pid) when the test ends. Its stderr is logged if the test fails.
func Start(t testing.TB, binary string, flags ...string) *Sim {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--listen", "127.0.0.1:0"}, flags...)...)
	stderr := &Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start atlas-sim %s: %v", binary, err)
	}
	sim := &Sim{cmd: cmd, exited: make(chan struct{}), stderr: stderr, http: &http.Client{Timeout: 15 * time.Second}}
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
			t.Logf("atlas-sim stderr (last 40 lines):\n%s", Tail(stderr.String(), 40))
		}
		sim.Stop(t)
	})

	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &sim.Info); err != nil {
			t.Fatalf("atlas-sim startup line %q: %v", line, err)
		}
	case <-sim.exited:
		t.Fatalf("atlas-sim exited before printing its startup line: %s", stderr.String())
	case <-time.After(StartTimeout):
		t.Fatalf("atlas-sim printed no startup line within %v", StartTimeout)
	}
	if sim.BaseURL == "" || sim.AdminURL == "" || sim.OrgID == "" || sim.ProjectID == "" || sim.PublicKey == "" || sim.PrivateKey == "" {
		t.Fatalf("atlas-sim startup line lacks a field: base_url=%q admin_url=%q org_id=%q project_id=%q public_key=%q private_key set=%v",
			sim.BaseURL, sim.AdminURL, sim.OrgID, sim.ProjectID, sim.PublicKey, sim.PrivateKey != "")
	}
	return sim
}

// Pid is the simulator's process id.
func (s *Sim) Pid() int { return s.cmd.Process.Pid }

// Stop kills the simulator (idempotent) and waits, bounded, for it to exit.
func (s *Sim) Stop(t testing.TB) {
	if s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("atlas-sim (pid %d) did not exit within 10s of SIGKILL", s.cmd.Process.Pid)
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
			return fmt.Errorf("atlas-sim admin %s %s: %w in %s", method, path, err, raw)
		}
	}
	return nil
}

// SetLatency sets the latency the simulator adds to every HTTP request.
func (s *Sim) SetLatency(ctx context.Context, latency time.Duration) error {
	return s.Admin(ctx, http.MethodPut, "/latency", map[string]int64{"ms": latency.Milliseconds()}, http.StatusOK, nil)
}

// Inventory reads the live inventory.
func (s *Sim) Inventory(ctx context.Context) (Inventory, error) {
	var inv Inventory
	err := s.Admin(ctx, http.MethodGet, "/inventory", nil, http.StatusOK, &inv)
	return inv, err
}

// IssuedKeys are the live keys other than the seeded one.
func (s *Sim) IssuedKeys(ctx context.Context) ([]Key, error) {
	inv, err := s.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, k := range inv.APIKeys {
		if !k.Seeded {
			out = append(out, k)
		}
	}
	return out, nil
}

// Describe formats keys for a failure message (no secrets: the inventory holds none).
func Describe(keys []Key) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("{id=%s public_key=%s desc=%q}", k.ID, k.PublicKey, k.Desc))
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
