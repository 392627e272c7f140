package conformance

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-secure-stdlib/base62"
	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	bplugin "github.com/hashicorp/vault/sdk/plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Host plays the part of Vault's plugin catalog for a single registered plugin: it launches the
// binary through the SDK's PluginRunner with the options Vault uses for v5 secrets engines,
// shares one process between mounts when the plugin reports multiplexing support, and tags
// every call of a mount with that mount's multiplex_id.
type Host struct {
	runner  *pluginutil.PluginRunner
	system  logical.SystemView
	logger  hclog.Logger
	mu      sync.Mutex
	process *plugin.Client // shared by every mount while multiplexed
	muxed   bool
	conns   map[string]*mountClient
	spawned int
}

// HostConfig describes the plugin as Vault's catalog would hold it.
type HostConfig struct {
	Name    string // catalog name; also the plugin_name mount option
	Command string // absolute path of the executable (checked by SHA-256 like Vault does)
	Version string // registered version, e.g. "v0.1.0"
	Env     []string
	System  logical.SystemView // logical.StaticSystemView, or one with a rotation manager
	Logs    io.Writer          // where the host logger (and the plugin's stderr, re-logged) goes
}

// NewHost registers the plugin; nothing is started until the first Mount.
func NewHost(cfg HostConfig) (*Host, error) {
	bin, err := os.ReadFile(cfg.Command)
	if err != nil {
		return nil, fmt.Errorf("read plugin binary for its checksum: %w", err)
	}
	sum := sha256.Sum256(bin)
	logs := cfg.Logs
	if logs == nil {
		logs = io.Discard
	}
	return &Host{
		runner: &pluginutil.PluginRunner{
			Name:    cfg.Name,
			Type:    consts.PluginTypeSecrets,
			Version: cfg.Version,
			Command: cfg.Command,
			Env:     cfg.Env,
			Sha256:  sum[:],
		},
		system: cfg.System,
		logger: hclog.New(&hclog.LoggerOptions{
			Name:   "conformance-host",
			Level:  hclog.Trace,
			Output: logs,
		}),
		conns: map[string]*mountClient{},
	}, nil
}

// Spawned is how many plugin processes this host has started.
func (h *Host) Spawned() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.spawned
}

// Multiplexed reports what the plugin answered to MultiplexingSupport.
func (h *Host) Multiplexed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.muxed
}

// Close kills every process still running (Vault does this on unmount/shutdown).
func (h *Host) Close() {
	h.mu.Lock()
	clients := map[*plugin.Client]bool{}
	for id, c := range h.conns {
		clients[c.process] = true
		delete(h.conns, id)
	}
	if h.process != nil {
		clients[h.process] = true
		h.process = nil
	}
	h.mu.Unlock()
	for c := range clients {
		c.Kill()
	}
}

// newPluginClient mirrors the catalog's newPluginClient: spawn unless a multiplexed process
// already serves this plugin, then ask the process whether it multiplexes.
func (h *Host) newPluginClient(ctx context.Context) (*mountClient, error) {
	h.mu.Lock()
	defer h.mu.Unlock()

	id, err := base62.Random(10)
	if err != nil {
		return nil, err
	}
	mc := &mountClient{id: id, host: h}

	spawned := false
	if !h.muxed || len(h.conns) == 0 {
		process, err := h.runner.RunConfig(ctx,
			pluginutil.PluginSets(bplugin.PluginSet),
			pluginutil.HandshakeConfig(bplugin.HandshakeConfig),
			pluginutil.Logger(h.logger.Named(h.runner.Name)),
			pluginutil.MetadataMode(false),
			pluginutil.MLock(false),
			pluginutil.AutoMTLS(true),
			pluginutil.Runner(h.system),
		)
		if err != nil {
			return nil, err
		}
		mc.process = process
		spawned = true
		h.spawned++
	} else {
		for _, other := range h.conns {
			mc.process = other.process
			break
		}
	}

	rpcClient, err := mc.process.Client()
	if err != nil {
		if spawned {
			mc.process.Kill()
		}
		return nil, err
	}
	grpcClient, ok := rpcClient.(*plugin.GRPCClient)
	if !ok {
		if spawned {
			mc.process.Kill()
		}
		return nil, fmt.Errorf("plugin negotiated a non-gRPC protocol (%T)", rpcClient)
	}
	muxed, err := pluginutil.MultiplexingSupported(ctx, grpcClient.Conn, h.runner.Name)
	if err != nil {
		if spawned {
			mc.process.Kill()
		}
		return nil, fmt.Errorf("MultiplexingSupport: %w", err)
	}

	mc.raw = grpcClient.Conn
	mc.conn = &multiplexConn{ClientConn: grpcClient.Conn, id: id}
	mc.ClientProtocol = rpcClient
	h.conns[id] = mc
	h.muxed = muxed
	h.process = mc.process
	return mc, nil
}

// cleanup mirrors the catalog's cleanupExternalPlugin.
func (h *Host) cleanup(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	mc, ok := h.conns[id]
	if !ok {
		return fmt.Errorf("plugin connection %s not found", id)
	}
	delete(h.conns, id)
	if !h.muxed || len(h.conns) == 0 || mc.process.Exited() {
		mc.process.Kill()
		if len(h.conns) == 0 {
			h.process = nil
		}
	}
	return nil
}

// mountClient is one mount's view of the (possibly shared) plugin process; it satisfies
// pluginutil.PluginClient, which is what sdk/plugin.Dispense expects.
type mountClient struct {
	id      string
	host    *Host
	process *plugin.Client
	raw     *grpc.ClientConn
	conn    grpc.ClientConnInterface
	plugin.ClientProtocol
}

var _ pluginutil.PluginClient = (*mountClient)(nil)

func (m *mountClient) Conn() grpc.ClientConnInterface { return m.conn }
func (m *mountClient) Close() error                   { return m.host.cleanup(m.id) }
func (m *mountClient) Reload() error                  { return errors.New("reload is not part of the conformance host") }

// multiplexConn attaches the mount's multiplex_id to every call, as Vault's catalog does.
type multiplexConn struct {
	*grpc.ClientConn
	id string
}

func (c *multiplexConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(pluginutil.MultiplexingCtxKey, c.id))
	return c.ClientConn.Invoke(ctx, method, args, reply, opts...)
}

func (c *multiplexConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(pluginutil.MultiplexingCtxKey, c.id))
	return c.ClientConn.NewStream(ctx, desc, method, opts...)
}

// Mount is one secrets-engine mount backed by the plugin, with its own in-memory storage.
type Mount struct {
	Path    string
	Backend logical.Backend
	Storage *logical.InmemStorage
	client  *mountClient
}

// MultiplexID is the id this mount's calls carry.
func (m *Mount) MultiplexID() string { return m.client.id }

// Process is the go-plugin client of the process serving this mount.
func (m *Mount) Process() *plugin.Client { return m.client.process }

// Conn is the mount's connection (calls carry its multiplex_id).
func (m *Mount) Conn() grpc.ClientConnInterface { return m.client.conn }

// RawConn is the process's connection without any multiplex_id (go-plugin's own services).
func (m *Mount) RawConn() *grpc.ClientConn { return m.client.raw }

// Dispense connects a new mount to the plugin without running Setup (the registration probe
// and the Setup test drive Setup themselves).
func (h *Host) Dispense(ctx context.Context, path string) (*Mount, error) {
	mc, err := h.newPluginClient(ctx)
	if err != nil {
		return nil, err
	}
	backend, err := bplugin.Dispense(mc.ClientProtocol, mc)
	if err != nil {
		_ = mc.Close()
		return nil, fmt.Errorf("dispense backend: %w", err)
	}
	return &Mount{Path: path, Backend: backend, Storage: &logical.InmemStorage{}, client: mc}, nil
}

// BackendConfig is what Vault hands Setup for a mount of this plugin.
func (h *Host) BackendConfig(m *Mount) *logical.BackendConfig {
	backendUUID, _ := uuid.GenerateUUID()
	return &logical.BackendConfig{
		StorageView: m.Storage,
		Logger:      h.logger.Named(m.Path),
		System:      h.system,
		BackendUUID: backendUUID,
		Config: map[string]string{
			"plugin_name":    h.runner.Name,
			"plugin_type":    consts.PluginTypeSecrets.String(),
			"plugin_version": h.runner.Version,
		},
	}
}

// Mount dispenses, sets up and initializes a mount, the way enabling a secrets engine does.
func (h *Host) Mount(ctx context.Context, path string) (*Mount, error) {
	m, err := h.Dispense(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := m.Backend.Setup(ctx, h.BackendConfig(m)); err != nil {
		_ = m.client.Close()
		return nil, fmt.Errorf("Setup: %w", err)
	}
	if err := m.Backend.Initialize(ctx, &logical.InitializationRequest{Storage: m.Storage}); err != nil {
		m.Cleanup(ctx)
		return nil, fmt.Errorf("Initialize: %w", err)
	}
	return m, nil
}

// Cleanup unmounts: the backend's Cleanup rpc, then the catalog releases the connection
// (killing the process if this was its last mount). The SDK client may wait without a
// deadline, so the wait is bounded by ctx here.
func (m *Mount) Cleanup(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		m.Backend.Cleanup(ctx)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("Cleanup of mount %s did not finish: %w", m.Path, ctx.Err())
	}
}

// Request builds a request the way Vault's router hands it to a mount.
func (m *Mount) Request(op logical.Operation, path string, data map[string]any) *logical.Request {
	id, _ := uuid.GenerateUUID()
	return &logical.Request{
		ID:          id,
		Operation:   op,
		Path:        path,
		Data:        data,
		Storage:     m.Storage,
		MountPoint:  m.Path + "/",
		MountType:   "plugin",
		DisplayName: "conformance",
		ClientToken: "conformance-token",
	}
}

// Handle sends a request; for writes it first runs the existence check and picks create or
// update exactly as Vault's request handling does.
func (m *Mount) Handle(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.CreateOperation || req.Operation == logical.UpdateOperation {
		req.Operation = logical.UpdateOperation
		checkFound, exists, err := m.Backend.HandleExistenceCheck(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("existence check: %w", err)
		}
		if checkFound && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	return m.Backend.HandleRequest(ctx, req)
}

// Do is Handle on a fresh request.
func (m *Mount) Do(ctx context.Context, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return m.Handle(ctx, m.Request(op, path, data))
}

// waitExited waits, bounded, until go-plugin has seen the process exit.
func waitExited(ctx context.Context, c *plugin.Client) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !c.Exited() {
		select {
		case <-ctx.Done():
			return c.Exited()
		case <-tick.C:
		}
	}
	return true
}
