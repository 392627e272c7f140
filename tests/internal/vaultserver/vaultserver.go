// Package vaultserver starts real `vault server` (or OpenBao `bao server`) processes for
// end-to-end tests: one node or a raft cluster of several, on loopback with free ports,
// initialised (one key share), unsealed and joined. Every process is started here and
// stopped by its pid when the test ends (plugin processes it left behind included); every
// wait is bounded. A binary whose file name starts with "bao" is taken for OpenBao, as
// scripts/lib/vault-dev.sh does: its config then has no disable_mlock (OpenBao dropped the
// option and warns about it).
package vaultserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Bounds of the waits.
const (
	StartTimeout = 60 * time.Second // a process answers, a node is unsealed or joined
	StopTimeout  = 15 * time.Second // SIGTERM to exit, before SIGKILL
	pollInterval = 100 * time.Millisecond
)

// Options configure the servers of a cluster.
type Options struct {
	Binary    string // the vault binary (or OpenBao's bao)
	PluginDir string // plugin_directory of every node (shared: all run on this host)
	LogDir    string // each node logs to <LogDir>/<node name>.log; default: a test temp dir
	LogLevel  string // default "debug" (the plugin's own lines appear at their level)
	// Env is added to the servers' environment (and so to the plugins they launch).
	// VAULT_*, BAO_* and MONGODBATLAS_* variables of the test's own environment are never
	// passed.
	Env []string
	// Redact, when set, rewrites the log tails printed on failure (a test that hunts
	// secrets in the log must not print the ones it finds).
	Redact func(string) string
	// RawStorage turns on sys/raw (raw_storage_endpoint), so a test can read what a plugin
	// stored (its own records, its WAL) and the leases. Off by default, as in production.
	RawStorage bool
}

func (o Options) redact(s string) string {
	if o.Redact == nil {
		return s
	}
	return o.Redact(s)
}

// Node is one running `vault server`.
type Node struct {
	Name        string
	Addr        string // http://127.0.0.1:<api port>
	ClusterAddr string // https://127.0.0.1:<cluster port>
	LogPath     string
	dataDir     string
	configPath  string
	opts        Options
	cmd         *exec.Cmd
	exited      chan struct{}
	token       string
}

// Cluster is a set of raft nodes; Nodes[0] was initialised first and is the active node
// when StartCluster returns.
type Cluster struct {
	Nodes     []*Node
	RootToken string
	UnsealKey string
}

// StartCluster starts n nodes with raft storage, initialises and unseals the first, joins
// the others to it and unseals them, then waits until the raft configuration lists all n
// and every standby answers a forwarded request with the root token.
func StartCluster(t testing.TB, ctx context.Context, opts Options, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("vaultserver: a cluster needs at least one node, got %d", n)
	}
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	base := t.TempDir()
	c := &Cluster{}
	for i := range n {
		c.Nodes = append(c.Nodes, startNode(t, ctx, opts, base, fmt.Sprintf("node%d", i+1)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, node := range c.Nodes {
				t.Logf("%s log tail (%s):\n%s", node.Name, node.LogPath, opts.redact(node.LogTail(40)))
			}
		}
	})

	leader := c.Nodes[0]
	init, err := leader.client(t, "").Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vaultserver: sys/init on %s: %v", leader.Name, err)
	}
	if len(init.KeysB64) != 1 || init.RootToken == "" {
		t.Fatalf("vaultserver: sys/init on %s returned %d keys and a root token of %d chars", leader.Name, len(init.KeysB64), len(init.RootToken))
	}
	c.UnsealKey, c.RootToken = init.KeysB64[0], init.RootToken
	for _, node := range c.Nodes {
		node.token = c.RootToken
	}
	c.unseal(t, ctx, leader)
	waitFor(t, ctx, leader.Name+" active", func() error {
		h, err := leader.client(t, "").Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if !h.Initialized || h.Sealed || h.Standby {
			return fmt.Errorf("health: initialized=%v sealed=%v standby=%v", h.Initialized, h.Sealed, h.Standby)
		}
		return nil
	})
	for _, node := range c.Nodes[1:] {
		waitFor(t, ctx, node.Name+" joins "+leader.Name, func() error {
			resp, err := node.client(t, "").Sys().RaftJoinWithContext(ctx, &api.RaftJoinRequest{LeaderAPIAddr: leader.Addr})
			if err != nil {
				return err
			}
			if !resp.Joined {
				return errors.New("sys/storage/raft/join answered joined=false")
			}
			return nil
		})
		c.unseal(t, ctx, node)
		waitStandby(t, ctx, node)
	}
	waitFor(t, ctx, fmt.Sprintf("%d servers in the raft configuration", n), func() error {
		servers, err := c.RaftServers(ctx)
		if err != nil {
			return err
		}
		if len(servers) != n {
			return fmt.Errorf("raft configuration lists %v", servers)
		}
		return nil
	})
	for _, node := range c.Nodes[1:] {
		waitFor(t, ctx, node.Name+" forwards to "+leader.Name, func() error {
			client := node.Client(t)
			l, err := client.Sys().LeaderWithContext(ctx)
			if err != nil {
				return err
			}
			if l.IsSelf || l.LeaderAddress != leader.Addr {
				return fmt.Errorf("sys/leader: is_self=%v leader_address=%q, want %q", l.IsSelf, l.LeaderAddress, leader.Addr)
			}
			_, err = client.Auth().Token().LookupSelfWithContext(ctx)
			return err
		})
	}
	t.Logf("vaultserver: %d-node raft cluster ready: %s", n, c)
	return c
}

func (c *Cluster) String() string {
	parts := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		parts = append(parts, fmt.Sprintf("%s %s (pid %d, log %s)", n.Name, n.Addr, n.Pid(), n.LogPath))
	}
	return strings.Join(parts, "; ")
}

// Active is the node that was initialised first (the active node after StartCluster).
func (c *Cluster) Active() *Node { return c.Nodes[0] }

// RaftServers lists "node_id voter=true|false" of each server in the raft configuration.
func (c *Cluster) RaftServers(ctx context.Context) ([]string, error) {
	client, err := c.Active().NewClient()
	if err != nil {
		return nil, err
	}
	secret, err := client.Logical().ReadWithContext(ctx, "sys/storage/raft/configuration")
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Data == nil {
		return nil, errors.New("sys/storage/raft/configuration: empty answer")
	}
	config, _ := secret.Data["config"].(map[string]any)
	list, _ := config["servers"].([]any)
	var out []string
	for _, s := range list {
		m, _ := s.(map[string]any)
		out = append(out, fmt.Sprintf("%v voter=%v", m["node_id"], m["voter"]))
	}
	return out, nil
}

// WaitVoters waits (bounded) until autopilot has made every node a raft voter: a node that
// joined is a non-voter until it has been healthy for a while (10 s), and a cluster whose
// standbys cannot vote cannot elect a new leader when the active node dies.
func (c *Cluster) WaitVoters(t testing.TB, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, fmt.Sprintf("all %d nodes to be raft voters", len(c.Nodes)), func() error {
		servers, err := c.RaftServers(ctx)
		if err != nil {
			return err
		}
		for _, s := range servers {
			if !strings.HasSuffix(s, "voter=true") {
				return fmt.Errorf("raft configuration: %v", servers)
			}
		}
		if len(servers) != len(c.Nodes) {
			return fmt.Errorf("raft configuration lists %v", servers)
		}
		return nil
	})
}

// unseal submits the key, then polls the seal status; a node that joined a raft cluster
// stays sealed until it has caught up with the leader. The key is submitted again only if
// the node forgot it (progress back to 0 while still sealed after a few seconds).
func (c *Cluster) unseal(t testing.TB, ctx context.Context, node *Node) {
	t.Helper()
	client := node.client(t, "")
	var submitted time.Time
	waitFor(t, ctx, node.Name+" unsealed", func() error {
		if submitted.IsZero() {
			submitted = time.Now()
			if _, err := client.Sys().UnsealWithContext(ctx, c.UnsealKey); err != nil {
				submitted = time.Time{}
				return err
			}
		}
		status, err := client.Sys().SealStatusWithContext(ctx)
		if err != nil {
			return err
		}
		if !status.Sealed {
			return nil
		}
		if status.Progress == 0 && time.Since(submitted) > 5*time.Second {
			submitted = time.Time{}
		}
		return fmt.Errorf("still sealed (progress %d/%d)", status.Progress, status.T)
	})
}

// Client is an API client of this node with the root token, no retries.
func (n *Node) Client(t testing.TB) *api.Client {
	t.Helper()
	return n.client(t, n.token)
}

// NewClient is an API client of this node with the root token, no retries, and its own
// HTTP transport (connections are not shared with other clients).
func (n *Node) NewClient() (*api.Client, error) {
	return NewClient(n.Addr, n.token)
}

func (n *Node) client(t testing.TB, token string) *api.Client {
	t.Helper()
	client, err := NewClient(n.Addr, token)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// NewClient is a Vault API client of addr with its own HTTP transport, no retries and no
// client-side timeout (callers bound requests with their context); it ignores VAULT_*
// variables of the environment that would change where or how it connects.
func NewClient(addr, token string) (*api.Client, error) {
	config := api.DefaultConfig()
	if config.Error != nil {
		return nil, config.Error
	}
	config.Address = addr
	config.MaxRetries = 0
	config.Timeout = 0
	client, err := api.NewClient(config)
	if err != nil {
		return nil, err
	}
	client.ClearNamespace()
	if token == "" {
		client.ClearToken()
	} else {
		client.SetToken(token)
	}
	return client, nil
}

// Pid is the server's process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// ChildrenRunning are the pids of the node's child processes whose executable is path (a
// plugin binary the server launched), from /proc.
func (n *Node) ChildrenRunning(path string) []int {
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, child := range childProcesses(n.Pid()) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", child.pid))
		if err == nil && exe == want && child.stillRunning() {
			out = append(out, child.pid)
		}
	}
	return out
}

// LogTail is the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	raw, err := os.ReadFile(n.LogPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// startNode launches one server and waits until its HTTP API answers; it retries on fresh
// ports when another process took a chosen port first.
func startNode(t testing.TB, ctx context.Context, opts Options, base, name string) *Node {
	t.Helper()
	dir := filepath.Join(base, name)
	node := &Node{Name: name, dataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(opts.LogDir, name+".log")}
	if err := os.MkdirAll(node.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		node.Addr = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		node.ClusterAddr = fmt.Sprintf("https://127.0.0.1:%d", ports[1])
		// performance_multiplier 1: the production setting (Vault's default of 5 is for dev
		// machines and makes an election after a lost leader take 15 s or more).
		config := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = %q
  performance_multiplier = 1
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = %q
cluster_addr     = %q
plugin_directory = %q
log_level        = %q
ui               = false
`, node.dataDir, name, ports[0], ports[1], node.Addr, node.ClusterAddr, opts.PluginDir, opts.LogLevel)
		if opts.RawStorage {
			config += "raw_storage_endpoint = true\n"
		}
		if !IsOpenBao(opts.Binary) {
			// Vault insists on an explicit choice with raft storage.
			config += "disable_mlock    = true\n"
		}
		node.configPath, node.opts = filepath.Join(dir, "server.hcl"), opts
		if err := os.WriteFile(node.configPath, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		node.launch(t, attempt)

		err = node.waitAnswering(ctx)
		if err == nil {
			return node
		}
		node.Stop(t)
		if attempt < 3 && strings.Contains(node.LogTail(20), "address already in use") {
			t.Logf("vaultserver: a port of %s was taken before it bound it; retrying on others", name)
			continue
		}
		t.Fatalf("vaultserver: %s: %v; log tail:\n%s", name, err, opts.redact(node.LogTail(30)))
	}
}

// launch starts the server process on the node's config (its log appended to) and arranges
// for it to be stopped when the test ends.
func (n *Node) launch(t testing.TB, attempt int) {
	t.Helper()
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "==== vaultserver: %s %s on %s (attempt %d)\n", time.Now().UTC().Format(time.RFC3339), n.Name, n.Addr, attempt)
	cmd := exec.Command(n.opts.Binary, "server", "-config="+n.configPath)
	cmd.Env = append(serverEnv(), n.opts.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("vaultserver: start %s: %v", n.opts.Binary, err)
	}
	logFile.Close() // the child holds its own descriptor
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(n.exited)
	t.Cleanup(func() { n.Stop(t) })
}

// Kill SIGKILLs the server, as a crashed host would lose it, and waits for it to exit. The
// plugin processes it launched are left to notice on their own (they exit when Vault's
// connection goes); their pids are returned so the caller can check that they did.
func (n *Node) Kill(t testing.TB) []int {
	t.Helper()
	children := childProcesses(n.Pid())
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatalf("vaultserver: SIGKILL %s (pid %d): %v", n.Name, n.Pid(), err)
	}
	select {
	case <-n.exited:
	case <-time.After(StopTimeout):
		t.Fatalf("vaultserver: %s (pid %d) did not exit within %v of SIGKILL", n.Name, n.Pid(), StopTimeout)
	}
	var pids []int
	for _, c := range children {
		pids = append(pids, c.pid)
	}
	return pids
}

// ChildrenExited waits (bounded) until none of pids runs any more: the plugins a killed node
// left behind must not live on as orphans.
func ChildrenExited(ctx context.Context, pids []int) error {
	deadline := time.Now().Add(StopTimeout)
	for {
		var alive []int
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(raw), ") Z ") {
					alive = append(alive, pid)
				}
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("processes %v still running %v after their server died", alive, StopTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// Restart starts a stopped or killed node again on its own config and data (same ports, same
// raft node id), unseals it and waits until it is a standby of the cluster again.
func (c *Cluster) Restart(t testing.TB, ctx context.Context, node *Node) {
	t.Helper()
	select {
	case <-node.exited:
	default:
		t.Fatalf("vaultserver: restart %s: it is still running", node.Name)
	}
	node.launch(t, 1)
	if err := node.waitAnswering(ctx); err != nil {
		t.Fatalf("vaultserver: restart %s: %v; log tail:\n%s", node.Name, err, node.opts.redact(node.LogTail(30)))
	}
	c.unseal(t, ctx, node)
	waitStandby(t, ctx, node)
}

// WaitActive waits (bounded) until node is unsealed and active again, submitting the unseal
// key if it sealed itself (a raft snapshot restore may reload the node's seal state).
func (c *Cluster) WaitActive(t testing.TB, ctx context.Context, node *Node) {
	t.Helper()
	client := node.client(t, "")
	waitFor(t, ctx, node.Name+" active", func() error {
		h, err := client.Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if h.Sealed {
			if _, err := client.Sys().UnsealWithContext(ctx, c.UnsealKey); err != nil {
				return fmt.Errorf("unseal: %w", err)
			}
			return errors.New("sealed; unseal key submitted")
		}
		if !h.Initialized || h.Standby {
			return fmt.Errorf("health: initialized=%v sealed=%v standby=%v", h.Initialized, h.Sealed, h.Standby)
		}
		return nil
	})
}

// waitStandby waits (bounded) until node is initialised, unsealed and a standby.
func waitStandby(t testing.TB, ctx context.Context, node *Node) {
	t.Helper()
	waitFor(t, ctx, node.Name+" standby", func() error {
		h, err := node.client(t, "").Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if !h.Initialized || h.Sealed || !h.Standby {
			return fmt.Errorf("health: initialized=%v sealed=%v standby=%v", h.Initialized, h.Sealed, h.Standby)
		}
		return nil
	})
}

// Leader is the node that answers sys/health as active (nil if none does right now); killed
// and stopped nodes are not asked.
func (c *Cluster) Leader(ctx context.Context) *Node {
	for _, node := range c.Nodes {
		select {
		case <-node.exited:
			continue
		default:
		}
		client, err := NewClient(node.Addr, "")
		if err != nil {
			continue
		}
		h, err := client.Sys().HealthWithContext(ctx)
		if err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return node
		}
	}
	return nil
}

// Running reports whether the node's server process is up.
func (n *Node) Running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// waitAnswering polls sys/health until it answers anything at all.
func (n *Node) waitAnswering(ctx context.Context) error {
	deadline := time.Now().Add(StartTimeout)
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Addr+"/v1/sys/health", nil)
		if err != nil {
			return err
		}
		if resp, err := probe.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("the server (pid %d) exited before answering", n.Pid())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s within %v", n.Addr, StartTimeout)
		}
	}
}

// Stop ends the server: SIGTERM, a bounded wait, then SIGKILL; afterwards, any plugin
// process it had started and left running is killed by its pid. Idempotent.
func (n *Node) Stop(t testing.TB) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	children := childProcesses(n.Pid())
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(StopTimeout):
		t.Logf("vaultserver: %s (pid %d) ignored SIGTERM for %v; killing it", n.Name, n.Pid(), StopTimeout)
		_ = n.cmd.Process.Kill()
		select {
		case <-n.exited:
		case <-time.After(StopTimeout):
			t.Errorf("vaultserver: %s (pid %d) did not exit within %v of SIGKILL", n.Name, n.Pid(), StopTimeout)
		}
	}
	for _, child := range children {
		if child.stillRunning() {
			t.Logf("vaultserver: %s left its child process %d running; killing it", n.Name, child.pid)
			_ = syscall.Kill(child.pid, syscall.SIGKILL)
		}
	}
}

// process identifies a process by pid and start time, so a reused pid is never signalled.
type process struct {
	pid   int
	start string
}

func (p process) stillRunning() bool {
	start, ok := startTime(p.pid)
	return ok && start == p.start
}

// childProcesses lists the children of pid (every thread's), from /proc.
func childProcesses(pid int) []process {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []process
	for _, path := range tasks {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(raw)) {
			child, err := strconv.Atoi(field)
			if err != nil {
				continue
			}
			if start, ok := startTime(child); ok {
				out = append(out, process{pid: child, start: start})
			}
		}
	}
	return out
}

// startTime is field 22 of /proc/<pid>/stat (after the parenthesised command name).
func startTime(pid int) (string, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(string(raw[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return "", false
	}
	return fields[19], true
}

// IsOpenBao reports whether binary is OpenBao's server (its file name starts with "bao").
func IsOpenBao(binary string) bool {
	return strings.HasPrefix(filepath.Base(binary), "bao")
}

// serverEnv is this process's environment without VAULT_* and BAO_* (client and server
// settings of whoever runs the tests) and MONGODBATLAS_* (the plugin's tuning knobs).
func serverEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VAULT_") || strings.HasPrefix(name, "BAO_") || strings.HasPrefix(name, "MONGODBATLAS_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls check until it succeeds; the test fails with the last error after
// StartTimeout.
func waitFor(t testing.TB, ctx context.Context, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaultserver: %s: not reached within %v: %v", what, StartTimeout, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vaultserver: %s: %v (last error: %v)", what, ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// InstallPlugin copies binary into dir under name (mode 0755) and returns its SHA-256
// (hex), as `vault plugin register -sha256` wants it.
func InstallPlugin(binary, dir, name string) (string, error) {
	raw, err := os.ReadFile(binary)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, name), raw, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// ListLeases lists the lease ids under prefix (ending in /), recursively, through
// sys/leases/lookup.
func ListLeases(ctx context.Context, client *api.Client, prefix string) ([]string, error) {
	secret, err := client.Logical().ListWithContext(ctx, "sys/leases/lookup/"+prefix)
	if err != nil {
		return nil, fmt.Errorf("LIST sys/leases/lookup/%s: %w", prefix, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, nil // 404: nothing under this prefix
	}
	raw, _ := secret.Data["keys"].([]any)
	var out []string
	for _, k := range raw {
		key := fmt.Sprint(k)
		if strings.HasSuffix(key, "/") {
			sub, err := ListLeases(ctx, client, prefix+key)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		} else {
			out = append(out, prefix+key)
		}
	}
	return out, nil
}

// MountUUID is the uuid of the mount at path (no trailing slash) in sys/mounts: the name of
// its storage under logical/ (sys/raw/logical/<uuid>/).
func MountUUID(ctx context.Context, client *api.Client, path string) (string, error) {
	mounts, err := client.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return "", err
	}
	m := mounts[strings.TrimSuffix(path, "/")+"/"]
	if m == nil || m.UUID == "" {
		return "", fmt.Errorf("sys/mounts has no uuid for %s/", path)
	}
	return m.UUID, nil
}

// RawList lists the keys under prefix (ending in /) of the server's storage through sys/raw
// (the server needs Options.RawStorage); nothing there is an empty list.
func RawList(ctx context.Context, client *api.Client, prefix string) ([]string, error) {
	secret, err := client.Logical().ListWithContext(ctx, "sys/raw/"+prefix)
	if err != nil {
		return nil, fmt.Errorf("LIST sys/raw/%s: %w", prefix, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, nil
	}
	raw, _ := secret.Data["keys"].([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		out = append(out, fmt.Sprint(k))
	}
	return out, nil
}

// RawGet reads one storage entry through sys/raw (decrypted, decompressed); false if absent.
func RawGet(ctx context.Context, client *api.Client, path string) ([]byte, bool, error) {
	secret, err := client.Logical().ReadWithContext(ctx, "sys/raw/"+path)
	if err != nil {
		return nil, false, fmt.Errorf("GET sys/raw/%s: %w", path, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, false, nil
	}
	value, ok := secret.Data["value"].(string)
	if !ok {
		return nil, false, fmt.Errorf("GET sys/raw/%s: no string value in %v", path, secret.Data)
	}
	return []byte(value), true, nil
}

// MountBackendUUID is the backend UUID the server hands the plugin of the mount at path
// (logical.BackendConfig.BackendUUID): the mount table entry's backend_aware_uuid, which
// sys/mounts does not show, read through sys/raw from the stored mount table: one entry,
// core/mounts, in Vault; one entry per mount, core/mounts/<uuid>, in OpenBao.
func MountBackendUUID(ctx context.Context, client *api.Client, path string) (string, error) {
	type mountEntry struct {
		Path             string `json:"path"`
		BackendAwareUUID string `json:"backend_aware_uuid"`
	}
	var entries []mountEntry
	raw, ok, err := RawGet(ctx, client, "core/mounts")
	if err != nil {
		return "", err
	}
	if ok {
		var table struct {
			Entries []mountEntry `json:"entries"`
		}
		if err := json.Unmarshal(raw, &table); err != nil {
			return "", fmt.Errorf("the mount table (core/mounts): %w", err)
		}
		entries = table.Entries
	} else {
		uuid, err := MountUUID(ctx, client, path)
		if err != nil {
			return "", err
		}
		raw, ok, err := RawGet(ctx, client, "core/mounts/"+uuid)
		if err != nil || !ok {
			return "", fmt.Errorf("the mount table has neither core/mounts nor core/mounts/%s (present=%v, %v)", uuid, ok, err)
		}
		var e mountEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return "", fmt.Errorf("the mount table (core/mounts/%s): %w", uuid, err)
		}
		entries = []mountEntry{e}
	}
	for _, e := range entries {
		if e.Path == strings.TrimSuffix(path, "/")+"/" && e.BackendAwareUUID != "" {
			return e.BackendAwareUUID, nil
		}
	}
	return "", fmt.Errorf("the mount table has no backend_aware_uuid for %s/", path)
}
