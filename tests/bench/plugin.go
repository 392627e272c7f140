package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/conformance"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	hostVaultVersion = "1.21.4"
	roleName         = "bench"
	// The service-account role (ours only: the official plugin has no service accounts).
	saRoleName = "bench-sa"
	// TEST-NET-1: an access-list entry that never matches anything real.
	roleIPAddress = "192.0.2.10"
)

// Side is one of the two plugins under comparison.
type Side struct {
	Name    string // "ours" or "official"
	Binary  string
	Version string
	// Env is added to the plugin's environment (Vault's catalog allows per-plugin env).
	Env []string
	// Config is what `vault write <mount>/config` gets.
	Config map[string]any
	logs   io.Writer
}

func staticSystem() logical.StaticSystemView {
	return logical.StaticSystemView{
		DefaultLeaseTTLVal: time.Hour,
		MaxLeaseTTLVal:     24 * time.Hour,
		VersionString:      hostVaultVersion,
		PluginEnvironment: &logical.PluginEnvironment{
			VaultVersion:         hostVaultVersion,
			VaultVersionMetadata: "bench",
		},
	}
}

// NewHost registers the side's binary with a fresh catalog-like host.
func (s *Side) NewHost() (*conformance.Host, error) {
	return conformance.NewHost(conformance.HostConfig{
		Name:    "mongodbatlas-" + s.Name,
		Command: s.Binary,
		Version: s.Version,
		Env:     s.Env,
		System:  staticSystem(),
		Logs:    s.logs,
	})
}

// mountCounted enables a mount the way Host.Mount does, with a storage and a system view
// that count every call the plugin makes back into Vault.
func mountCounted(ctx context.Context, h *conformance.Host, path string, calls *callCounter) (*conformance.Mount, error) {
	m, err := h.Dispense(ctx, path)
	if err != nil {
		return nil, err
	}
	cfg := h.BackendConfig(m)
	cfg.StorageView = countingStorage{Storage: m.Storage, c: calls}
	cfg.System = countingSystem{SystemView: cfg.System, c: calls}
	if err := m.Backend.Setup(ctx, cfg); err != nil {
		_ = m.Cleanup(ctx)
		return nil, fmt.Errorf("Setup: %w", err)
	}
	if err := m.Backend.Initialize(ctx, &logical.InitializationRequest{Storage: cfg.StorageView}); err != nil {
		_ = m.Cleanup(ctx)
		return nil, fmt.Errorf("Initialize: %w", err)
	}
	return m, nil
}

// roleData is an organization key with one access-list entry, the same for both plugins.
func roleData(orgID string) map[string]any {
	return map[string]any{
		"organization_id": orgID,
		"roles":           []string{"ORG_MEMBER"},
		"ip_addresses":    []string{roleIPAddress},
	}
}

// saRoleData is roleData issuing an organization service account instead of a key: same
// organization role, same access list, so both issuances make the same Atlas calls.
func saRoleData(orgID string) map[string]any {
	data := roleData(orgID)
	data["credential_type"] = "service_account"
	return data
}

// Configure writes config and the benchmark role on a mount.
func (s *Side) Configure(ctx context.Context, m *conformance.Mount, orgID string) error {
	return configure(ctx, m, s.Config, roleName, roleData(orgID))
}

// configure writes a login and one role on a mount.
func configure(ctx context.Context, m *conformance.Mount, login map[string]any, role string, data map[string]any) error {
	if err := write(ctx, m, "config", login); err != nil {
		return err
	}
	return write(ctx, m, "roles/"+role, data)
}

func write(ctx context.Context, m *conformance.Mount, path string, data map[string]any) error {
	resp, err := m.Do(ctx, logical.UpdateOperation, path, data)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if resp != nil && resp.IsError() {
		return fmt.Errorf("write %s: %v", path, resp.Error())
	}
	return nil
}

// Lease is an issued credential as Vault's expiration manager would hold it.
type Lease struct {
	Secret *logical.Secret
	Data   map[string]any
	Role   string
	// ID is the credential's Atlas id: the API key's id or the service account's client id.
	ID string
}

var leaseCounter atomic.Uint64

// Issue reads creds/<role> once.
func Issue(ctx context.Context, m *conformance.Mount, role string) (*Lease, error) {
	resp, err := m.Do(ctx, logical.ReadOperation, "creds/"+role, nil)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("creds: empty response")
	}
	if resp.IsError() {
		return nil, fmt.Errorf("creds: %v", resp.Error())
	}
	if resp.Secret == nil {
		return nil, errors.New("creds: response without a lease")
	}
	id, _ := resp.Secret.InternalData["programmatic_api_key_id"].(string)
	if id == "" {
		id, _ = resp.Secret.InternalData["client_id"].(string)
	}
	if id == "" {
		return nil, errors.New("creds: lease without programmatic_api_key_id or client_id")
	}
	sec := *resp.Secret
	sec.LeaseID = m.Path + "/creds/" + role + "/" + strconv.FormatUint(leaseCounter.Add(1), 10)
	sec.IssueTime = time.Now()
	return &Lease{Secret: &sec, Data: resp.Data, Role: role, ID: id}, nil
}

// Revoke sends what Vault's expiration manager sends when a lease ends.
func Revoke(ctx context.Context, m *conformance.Mount, l *Lease) error {
	sec := *l.Secret
	req := logical.RevokeRequest("creds/"+l.Role, &sec, l.Data)
	req.Storage = m.Storage
	req.MountPoint = m.Path + "/"
	resp, err := m.Handle(ctx, req)
	if err != nil {
		return err
	}
	if resp != nil && resp.IsError() {
		return fmt.Errorf("revoke: %v", resp.Error())
	}
	return nil
}

// Pid is the process id of the plugin serving the mount.
func Pid(m *conformance.Mount) (int, error) {
	rc := m.Process().ReattachConfig()
	if rc == nil || rc.Pid == 0 {
		return 0, errors.New("the plugin process has no pid")
	}
	return rc.Pid, nil
}

// procStatusKB reads a "kB" field (VmRSS, VmHWM) of /proc/<pid>/status, in bytes.
func procStatusKB(pid int, field string) (int64, error) {
	rest, err := procStatus(pid, field)
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(rest)
	if len(fields) != 2 || fields[1] != "kB" {
		return 0, fmt.Errorf("/proc/%d/status %s: unexpected %q", pid, field, rest)
	}
	kb, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return 0, err
	}
	return kb * 1024, nil
}

// procStatusInt reads a plain number field (Threads) of /proc/<pid>/status.
func procStatusInt(pid int, field string) (int64, error) {
	rest, err := procStatus(pid, field)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
}

// procStatus is the text after "<field>:" in /proc/<pid>/status.
func procStatus(pid int, field string) (string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if name, rest, ok := strings.Cut(line, ":"); ok && name == field {
			return rest, nil
		}
	}
	return "", fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports here.
const clockTicks = 100

// procCPU is the user+system CPU time a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ')' are fixed.
	end := strings.LastIndexByte(string(raw), ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuTimes is the CPU time of the plugin, the simulator and this driver (the Vault host).
func cpuTimes(pluginPid, simPid int) ([3]time.Duration, error) {
	var out [3]time.Duration
	for i, pid := range []int{pluginPid, simPid, os.Getpid()} {
		d, err := procCPU(pid)
		if err != nil {
			return out, err
		}
		out[i] = d
	}
	return out, nil
}

// configEntry is the stored config in the format both plugins read.
func configEntry(publicKey, privateKey string) (*logical.StorageEntry, error) {
	raw, err := json.Marshal(map[string]string{"public_key": publicKey, "private_key": privateKey})
	if err != nil {
		return nil, err
	}
	return &logical.StorageEntry{Key: "config", Value: raw, SealWrap: true}, nil
}
