package main

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
	"time"
)

// SimInfo is the JSON line atlas-sim prints on start.
type SimInfo struct {
	BaseURL    string `json:"base_url"`
	AdminURL   string `json:"admin_url"`
	OrgID      string `json:"org_id"`
	ProjectID  string `json:"project_id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
	KeyID      string `json:"key_id"`
	TLS        bool   `json:"tls"`
	ProxyURL   string `json:"proxy_url"`
	CAPath     string `json:"ca_path"`
}

// Sim is a running atlas-sim process and a client for its admin API.
type Sim struct {
	Info  SimInfo
	Args  []string
	cmd   *exec.Cmd
	done  chan struct{}
	admin *http.Client
}

// StartSim launches the simulator and waits (bounded by ctx) for its startup line.
func StartSim(ctx context.Context, binary string, args []string, logs io.Writer) (*Sim, error) {
	cmd := exec.Command(binary, args...)
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start atlas-sim: %w", err)
	}
	s := &Sim{Args: args, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &s.Info); err != nil {
			s.Stop()
			return nil, fmt.Errorf("atlas-sim startup line %q: %w", line, err)
		}
	case <-ctx.Done():
		s.Stop()
		return nil, fmt.Errorf("atlas-sim printed no startup line: %w", ctx.Err())
	}

	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	if s.Info.CAPath != "" {
		pem, err := os.ReadFile(s.Info.CAPath)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("read the simulator CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			s.Stop()
			return nil, errors.New("the simulator CA file holds no certificate")
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	s.admin = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	return s, nil
}

// Pid is the simulator's process id.
func (s *Sim) Pid() int { return s.cmd.Process.Pid }

// Stop terminates the simulator and waits for it (bounded).
func (s *Sim) Stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

func (s *Sim) call(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(s.Info.AdminURL, "/")+path, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.admin.Do(req)
	if err != nil {
		return fmt.Errorf("sim admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("sim admin %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sim admin %s %s: HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("sim admin %s %s: %w", method, path, err)
		}
	}
	return nil
}

// SetLatency sets the latency the simulator adds to every HTTP request (challenges included).
func (s *Sim) SetLatency(ctx context.Context, ms int) error {
	return s.call(ctx, http.MethodPut, "/latency", map[string]int{"ms": ms}, nil)
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

func (s *Sim) RateLimit(ctx context.Context) (RateLimit, error) {
	var rl RateLimit
	err := s.call(ctx, http.MethodGet, "/ratelimit", nil, &rl)
	return rl, err
}

// SetRateLimit replaces the configuration; the simulator refills every bucket.
func (s *Sim) SetRateLimit(ctx context.Context, rl RateLimit) error {
	return s.call(ctx, http.MethodPut, "/ratelimit", rl, nil)
}

// SimStats is the part of /admin/stats the benchmark reads.
type SimStats struct {
	RequestsTotal uint64 `json:"requests_total"`
	Challenges    uint64 `json:"challenges"`
	RateLimited   uint64 `json:"rate_limited"`
	Routes        map[string]struct {
		Total      uint64 `json:"total"`
		Challenges uint64 `json:"challenges"`
	} `json:"routes"`
}

func (s *Sim) Stats(ctx context.Context) (SimStats, error) {
	var st SimStats
	err := s.call(ctx, http.MethodGet, "/stats", nil, &st)
	return st, err
}

// InventoryKey is one live API key.
type InventoryKey struct {
	ID     string `json:"id"`
	Desc   string `json:"desc"`
	Seeded bool   `json:"seeded"`
}

// IssuedKeys lists the live keys other than the seeded one.
func (s *Sim) IssuedKeys(ctx context.Context) ([]InventoryKey, error) {
	var inv struct {
		APIKeys []InventoryKey `json:"api_keys"`
	}
	if err := s.call(ctx, http.MethodGet, "/inventory", nil, &inv); err != nil {
		return nil, err
	}
	out := inv.APIKeys[:0]
	for _, k := range inv.APIKeys {
		if !k.Seeded {
			out = append(out, k)
		}
	}
	return out, nil
}

// DeleteKey removes a key out of band (cleanup between phases, never part of a measurement).
func (s *Sim) DeleteKey(ctx context.Context, id string) error {
	return s.call(ctx, http.MethodDelete, "/keys/"+id, nil, nil)
}

// PurgeIssuedKeys deletes every non-seeded key and returns how many there were.
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
