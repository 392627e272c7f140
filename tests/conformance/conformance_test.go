package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/logical"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"
)

// 1. go-plugin's client completes the handshake (v5, gRPC, AutoMTLS) and the health ping.
func TestHandshakeAndPing(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)

	m, err := h.Dispense(ctx, "ping")
	if err != nil {
		t.Fatalf("start and handshake: %v", err)
	}
	if v := m.Process().NegotiatedVersion(); v != 5 {
		t.Errorf("negotiated protocol version %d, want 5", v)
	}
	if p := m.Process().Protocol(); p != plugin.ProtocolGRPC {
		t.Errorf("protocol %q, want grpc", p)
	}
	pingErr, err := within(ctx, "go-plugin Ping", func() error { return m.client.Ping() })
	if err != nil || pingErr != nil {
		t.Errorf("go-plugin Ping: %v %v", err, pingErr)
	}
	resp, err := grpc_health_v1.NewHealthClient(m.RawConn()).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "plugin"})
	if err != nil {
		t.Fatalf("health Check(service=plugin): %v", err)
	}
	if resp.Status != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Errorf("health status %v, want SERVING", resp.Status)
	}
}

// 2. Setup hands the plugin a broker id; the plugin dials back and reaches Vault's Storage
// (an entry put into the host's storage is listed by the plugin) and the system view.
func TestSetupWithBrokerDialBack(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)

	m, err := h.Dispense(ctx, "setup")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Backend.Setup(ctx, h.BackendConfig(m)); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := m.Backend.Initialize(ctx, &logical.InitializationRequest{Storage: m.Storage}); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	typ, err := within(ctx, "Type", m.Backend.Type)
	if err != nil || typ != logical.TypeLogical {
		t.Errorf("Type = %v (%v), want logical", typ, err)
	}
	paths, err := within(ctx, "SpecialPaths", m.Backend.SpecialPaths)
	if err != nil || paths == nil {
		t.Fatalf("SpecialPaths = %v (%v), want a reply", paths, err)
	}
	if s.profile == profileExample {
		if !slices.Equal(paths.SealWrapStorage, []string{"config"}) || !slices.Equal(paths.LocalStorage, []string{"wal/"}) {
			t.Errorf("SpecialPaths seal_wrap_storage=%v local_storage=%v, want [config] and [wal/]", paths.SealWrapStorage, paths.LocalStorage)
		}
	}

	// Storage over the broker: the plugin lists what the host put in storage.
	codec := s.kvCodec()
	if err := m.Storage.Put(ctx, &logical.StorageEntry{Key: "kv/seeded", Value: codec.encode("from-host")}); err != nil {
		t.Fatal(err)
	}
	resp, err := m.Do(ctx, logical.ListOperation, "kv/", nil)
	if err != nil {
		t.Fatalf("list kv/ after Setup (needs the brokered Storage): %v", err)
	}
	keys, err := listKeys(resp)
	if err != nil || !slices.Equal(keys, []string{"seeded"}) {
		t.Fatalf("list kv/ = %v (%v), want [seeded]", keys, err)
	}
	if s.profile == profileExample {
		// System view over the broker.
		resp, err := m.Do(ctx, logical.ReadOperation, "ttl", nil)
		if err != nil || resp == nil {
			t.Fatalf("read ttl after Setup (needs the brokered SystemView): %v %v", resp, err)
		}
	}
	if err := m.Cleanup(ctx); err != nil {
		t.Error(err)
	}
}

// 13. `vault plugin register` runs the plugin with an empty BackendConfig (no storage, no
// system view), asks Type and Version, and shuts it down.
func TestRegistrationProbe(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)

	m, err := h.Dispense(ctx, "registration")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Backend.Setup(ctx, &logical.BackendConfig{}); err != nil {
		t.Fatalf("Setup with an empty config (registration): %v", err)
	}
	typ, err := within(ctx, "Type", m.Backend.Type)
	if err != nil || typ != logical.TypeLogical {
		t.Errorf("Type = %v (%v), want logical (registration as a secrets engine)", typ, err)
	}
	if s.version != "" {
		v, err := within(ctx, "PluginVersion", m.Backend.(logical.PluginVersioner).PluginVersion)
		if err != nil || v.Version != s.version {
			t.Errorf("PluginVersion = %q (%v), want %q: registration would fail with \"plugin version mismatch\"", v.Version, err, s.version)
		}
	}
	process := m.Process()
	if err := m.client.Close(); err != nil {
		t.Error(err)
	}
	if !process.Exited() {
		t.Error("plugin still running after the registration probe released it")
	}
}

// 3. Put/Get/List/Delete through Vault's storage, checked against the in-memory storage.
func TestStorageRoundTrip(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)
	m := mustMount(t, ctx, h, "storage")
	codec := s.kvCodec()

	check := m.Request(logical.UpdateOperation, "kv/item", codec.write("first"))
	found, exists, err := m.Backend.HandleExistenceCheck(ctx, check)
	if err != nil || !found || exists {
		t.Fatalf("existence check on a new key = found %v exists %v err %v, want true false nil", found, exists, err)
	}

	resp, err := m.Do(ctx, logical.UpdateOperation, "kv/item", codec.write("first"))
	if err != nil {
		t.Fatalf("write kv/item: %v", err)
	}
	if s.profile == profileExample && resp != nil {
		t.Errorf("write kv/item returned %+v, want no response", resp)
	}
	entry, err := m.Storage.Get(ctx, "kv/item")
	if err != nil || entry == nil {
		t.Fatalf("host storage has no kv/item after the write (%v)", err)
	}
	if !sameStored(entry.Value, codec.encode("first")) {
		t.Errorf("host storage kv/item = %s, want %s", entry.Value, codec.encode("first"))
	}

	found, exists, err = m.Backend.HandleExistenceCheck(ctx, m.Request(logical.UpdateOperation, "kv/item", codec.write("x")))
	if err != nil || !found || !exists {
		t.Errorf("existence check on a stored key = found %v exists %v err %v, want true true nil", found, exists, err)
	}

	// An update (existing key) overwrites.
	if _, err := m.Do(ctx, logical.UpdateOperation, "kv/item", codec.write("second")); err != nil {
		t.Fatalf("update kv/item: %v", err)
	}
	resp, err = m.Do(ctx, logical.ReadOperation, "kv/item", nil)
	if err != nil || resp == nil {
		t.Fatalf("read kv/item = %v, %v", resp, err)
	}
	if v, err := codec.read(resp.Data); err != nil || v != "second" {
		t.Errorf("read kv/item value %q (%v), want \"second\"", v, err)
	}

	// The plugin sees entries the host wrote, and lists relative keys.
	if err := m.Storage.Put(ctx, &logical.StorageEntry{Key: "kv/other", Value: codec.encode("host")}); err != nil {
		t.Fatal(err)
	}
	resp, err = m.Do(ctx, logical.ListOperation, "kv/", nil)
	keys, kerr := listKeys(resp)
	if err != nil || kerr != nil || !slices.Equal(keys, []string{"item", "other"}) {
		t.Errorf("list kv/ = %v (%v %v), want [item other]", keys, err, kerr)
	}

	delReq := m.Request(logical.DeleteOperation, "kv/item", nil)
	if _, err := m.Handle(ctx, delReq); err != nil {
		t.Fatalf("delete kv/item: %v", err)
	}
	if e, _ := m.Storage.Get(ctx, "kv/item"); e != nil {
		t.Errorf("host storage still has kv/item after delete")
	}
	readReq := m.Request(logical.ReadOperation, "kv/item", nil)
	resp, err = m.Handle(ctx, readReq)
	if err != nil || resp != nil {
		t.Errorf("read of a deleted key = %+v, %v; want no response", resp, err)
	}
	if code, _ := logical.RespondErrorCommon(readReq, resp, err); code != http.StatusNotFound {
		t.Errorf("read of a deleted key maps to HTTP %d, want 404", code)
	}
	resp, err = m.Do(ctx, logical.ListOperation, "kv/", nil)
	keys, kerr = listKeys(resp)
	if err != nil || kerr != nil || !slices.Equal(keys, []string{"other"}) {
		t.Errorf("list kv/ after delete = %v (%v %v), want [other]", keys, err, kerr)
	}
}

// 4. The static system view's TTLs and plugin environment reach the plugin.
func TestSystemViewReachesPlugin(t *testing.T) {
	s := loadSuite(t)
	s.requireContract(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)
	m := mustMount(t, ctx, h, "sysview")

	resp, err := m.Do(ctx, logical.ReadOperation, "ttl", nil)
	if err != nil || resp == nil {
		t.Fatalf("read ttl = %v, %v", resp, err)
	}
	if got, err := jsonInt(resp.Data, "default_lease_ttl"); err != nil || got != int64(defaultLeaseTTL.Seconds()) {
		t.Errorf("default_lease_ttl = %d (%v), want %d", got, err, int64(defaultLeaseTTL.Seconds()))
	}
	if got, err := jsonInt(resp.Data, "max_lease_ttl"); err != nil || got != int64(maxLeaseTTL.Seconds()) {
		t.Errorf("max_lease_ttl = %d (%v), want %d", got, err, int64(maxLeaseTTL.Seconds()))
	}

	resp, err = m.Do(ctx, logical.ReadOperation, "env", nil)
	if err != nil || resp == nil {
		t.Fatalf("read env = %v, %v", resp, err)
	}
	if got := resp.Data["vault_version"]; got != hostVaultVersion {
		t.Errorf("vault_version = %#v, want %q", got, hostVaultVersion)
	}
}

// 5. The Version rpc (logical.PluginVersion) returns "v"+PLUGIN_VERSION.
func TestPluginVersion(t *testing.T) {
	s := loadSuite(t)
	if s.version == "" {
		t.Skip("PLUGIN_VERSION is not set")
	}
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)
	m := mustMount(t, ctx, h, "version")

	// The raw rpc first, so a failure shows the real error (the SDK maps errors to "").
	reply, err := logical.NewPluginVersionClient(m.Conn()).Version(ctx, &logical.Empty{})
	if err != nil {
		t.Fatalf("logical.PluginVersion/Version: %v", err)
	}
	if reply.PluginVersion != s.version {
		t.Errorf("Version rpc = %q, want %q", reply.PluginVersion, s.version)
	}
	versioner, ok := m.Backend.(logical.PluginVersioner)
	if !ok {
		t.Fatal("the SDK backend client is not a PluginVersioner")
	}
	v, err := within(ctx, "PluginVersion", versioner.PluginVersion)
	if err != nil || v.Version != s.version {
		t.Errorf("PluginVersion() = %q (%v), want %q", v.Version, err, s.version)
	}
}

// 6. Two mounts share one multiplexed process, each with its own storage.
func TestMultiplexedMountsShareOneProcess(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)

	// A wrapper that records each launch and execs the plugin (same pid).
	dir := t.TempDir()
	launches := filepath.Join(dir, "launches")
	wrapper := filepath.Join(dir, "plugin-wrapper")
	script := "#!/bin/sh\necho \"$$\" >> '" + launches + "'\nexec '" + s.binary + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := s.newHost(t, wrapper)
	a := mustMount(t, ctx, h, "alpha")
	b := mustMount(t, ctx, h, "beta")

	if !h.Multiplexed() {
		t.Fatal("plugin answered MultiplexingSupport = false (or Unimplemented); the contract requires multiplexing")
	}
	pids := readLaunches(t, launches)
	if len(pids) != 1 || h.Spawned() != 1 {
		t.Fatalf("plugin launched %d times (pids %v, host spawned %d), want once for two mounts", len(pids), pids, h.Spawned())
	}
	if a.Process() != b.Process() {
		t.Fatal("the two mounts use different go-plugin clients")
	}
	if rc := a.Process().ReattachConfig(); rc == nil || rc.Pid != pids[0] {
		t.Errorf("go-plugin client pid %v, launched pid %d", rc, pids[0])
	}
	if a.MultiplexID() == b.MultiplexID() {
		t.Fatal("both mounts got the same multiplex_id")
	}

	codec := s.kvCodec()
	if _, err := a.Do(ctx, logical.UpdateOperation, "kv/only-alpha", codec.write("a")); err != nil {
		t.Fatalf("write on alpha: %v", err)
	}
	if _, err := b.Do(ctx, logical.UpdateOperation, "kv/only-beta", codec.write("b")); err != nil {
		t.Fatalf("write on beta: %v", err)
	}
	assertKeys(t, ctx, a.Storage, "alpha", []string{"kv/only-alpha"})
	assertKeys(t, ctx, b.Storage, "beta", []string{"kv/only-beta"})
	if resp, err := a.Do(ctx, logical.ReadOperation, "kv/only-beta", nil); err != nil || resp != nil {
		t.Errorf("alpha reads beta's key: %+v %v; want nothing", resp, err)
	}
	resp, err := b.Do(ctx, logical.ListOperation, "kv/", nil)
	if keys, kerr := listKeys(resp); err != nil || kerr != nil || !slices.Equal(keys, []string{"only-beta"}) {
		t.Errorf("list on beta = %v (%v %v), want [only-beta]", keys, err, kerr)
	}
}

// 7. Cleaning up one mount leaves the other working in the same process; the last
// cleanup ends the process.
func TestCleanupOneMountLeavesOther(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)
	a := mustMount(t, ctx, h, "first")
	b := mustMount(t, ctx, h, "second")
	codec := s.kvCodec()

	for _, m := range []*Mount{a, b} {
		if _, err := m.Do(ctx, logical.UpdateOperation, "kv/before", codec.write(m.Path)); err != nil {
			t.Fatalf("write on %s: %v", m.Path, err)
		}
	}
	process := a.Process()
	if err := a.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if h.Multiplexed() && process.Exited() {
		t.Fatal("plugin process ended when only one of two multiplexed mounts was cleaned up")
	}

	resp, err := b.Do(ctx, logical.ReadOperation, "kv/before", nil)
	if err != nil || resp == nil {
		t.Fatalf("read on the remaining mount after the other's Cleanup: %+v %v", resp, err)
	}
	if v, err := codec.read(resp.Data); err != nil || v != "second" {
		t.Errorf("remaining mount read %q (%v), want \"second\"", v, err)
	}
	if _, err := b.Do(ctx, logical.UpdateOperation, "kv/after", codec.write("still-here")); err != nil {
		t.Fatalf("write on the remaining mount: %v", err)
	}
	assertKeys(t, ctx, b.Storage, "second", []string{"kv/after", "kv/before"})
	assertKeys(t, ctx, a.Storage, "first", []string{"kv/before"})

	if err := b.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Process().Exited() {
		t.Error("plugin still running after its last mount was cleaned up")
	}
}

// 8. GRPCController.Shutdown ends the process within 2 s (Vault kills it after that).
func TestShutdownEndsProcess(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)
	m := mustMount(t, ctx, h, "shutdown")
	rc := m.Process().ReattachConfig()
	if rc == nil || rc.Pid <= 0 {
		t.Fatalf("no pid for the plugin process (%v)", rc)
	}

	start := time.Now()
	shutdownCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// go-plugin's controller on the process connection (no multiplex_id); the reply may be
	// lost when the server stops, which go-plugin ignores too.
	if err := m.RawConn().Invoke(shutdownCtx, "/plugin.GRPCController/Shutdown", &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
		t.Logf("Shutdown rpc returned %v (tolerated)", err)
	}
	exited := waitExited(shutdownCtx, m.Process())
	elapsed := time.Since(start)
	if !exited {
		t.Fatalf("plugin (pid %d) still running %v after GRPCController.Shutdown", rc.Pid, elapsed.Round(time.Millisecond))
	}
	if err := syscall.Kill(rc.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid %d still exists after exit (kill 0: %v)", rc.Pid, err)
	}
	t.Logf("process ended %v after Shutdown", elapsed.Round(time.Millisecond))
}

// 9. The plugin's TLS server requires Vault's client certificate: a client without a
// certificate, or with another certificate, is refused; the right one is served.
func TestMTLSRefusesOtherClients(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	p, err := StartRaw(ctx, s.binary, hostVaultVersion, t.TempDir())
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", p.Stderr())
		}
	})

	// Control: Vault's own certificate is served, so the refusals below can fail.
	expectServed(t, ctx, p, &p.Client.Cert)
	stranger, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no client certificate", func(t *testing.T) { expectRefused(t, ctx, p, nil) })
	t.Run("wrong client certificate", func(t *testing.T) { expectRefused(t, ctx, p, &stranger.Cert) })
	// Still serving the right client afterwards.
	expectServed(t, ctx, p, &p.Client.Cert)
}

// 10. Data, warnings and errors cross the wire with the right types and HTTP mapping.
func TestDataWarningsErrorsRoundTrip(t *testing.T) {
	s := loadSuite(t)
	s.requireContract(t)
	ctx := testContext(t, 60*time.Second)
	h := s.newHost(t, s.binary)
	m := mustMount(t, ctx, h, "roundtrip")

	t.Run("echo typed fields and unknown-field warning", func(t *testing.T) {
		req := m.Request(logical.UpdateOperation, "echo", map[string]any{
			"name": "widget", "count": 3, "tags": "a,b", "ttl": "90s", "mode": "LOUD", "foo": "bar",
		})
		resp, err := m.Handle(ctx, req)
		if err != nil || resp == nil {
			t.Fatalf("echo = %+v, %v", resp, err)
		}
		if code, e := logical.RespondErrorCommon(req, resp, err); code != 0 || e != nil {
			t.Errorf("echo maps to HTTP %d %v, want success", code, e)
		}
		d := resp.Data
		if d["name"] != "widget" {
			t.Errorf("name = %#v, want \"widget\"", d["name"])
		}
		if n, err := jsonInt(d, "count"); err != nil || n != 3 {
			t.Errorf("count = %#v (%v), want the integer 3", d["count"], err)
		}
		if tags, ok := d["tags"].([]any); !ok || !slices.Equal(tags, []any{"a", "b"}) {
			t.Errorf("tags = %#v, want [\"a\" \"b\"]", d["tags"])
		}
		if n, err := jsonInt(d, "ttl"); err != nil || n != 90 {
			t.Errorf("ttl = %#v (%v), want 90 (seconds)", d["ttl"], err)
		}
		if d["mode"] != "loud" {
			t.Errorf("mode = %#v, want \"loud\"", d["mode"])
		}
		want := "Endpoint ignored these unrecognized parameters: [foo]"
		if !slices.Contains(resp.Warnings, want) {
			t.Errorf("warnings = %q, want to contain %q", resp.Warnings, want)
		}
	})
	t.Run("echo read with query data", func(t *testing.T) {
		resp, err := m.Do(ctx, logical.ReadOperation, "echo", map[string]any{"name": "reader"})
		if err != nil || resp == nil || resp.Data["name"] != "reader" {
			t.Errorf("read echo = %+v, %v; want name \"reader\"", resp, err)
		}
	})
	t.Run("missing name is a 400 with the plugin's message", func(t *testing.T) {
		req := m.Request(logical.UpdateOperation, "echo", map[string]any{"count": 1})
		resp, err := m.Handle(ctx, req)
		code, e := logical.RespondErrorCommon(req, resp, err)
		if code != http.StatusBadRequest || e == nil || !strings.Contains(e.Error(), `missing required field "name"`) {
			t.Errorf("missing name maps to HTTP %d %v (response %+v, error %v); want 400 with `missing required field \"name\"`", code, e, resp, err)
		}
	})
	t.Run("non-integer count is a 400 naming the field", func(t *testing.T) {
		req := m.Request(logical.UpdateOperation, "echo", map[string]any{"name": "x", "count": "many"})
		resp, err := m.Handle(ctx, req)
		code, e := logical.RespondErrorCommon(req, resp, err)
		if code != http.StatusBadRequest || e == nil || !strings.Contains(e.Error(), "count") {
			t.Errorf("bad count maps to HTTP %d %v (response %+v, error %v); want 400 naming \"count\"", code, e, resp, err)
		}
	})
	t.Run("fail is a 500 with the plugin's message", func(t *testing.T) {
		req := m.Request(logical.ReadOperation, "fail", nil)
		resp, err := m.Handle(ctx, req)
		code, e := logical.RespondErrorCommon(req, resp, err)
		if code != http.StatusInternalServerError || e == nil || !strings.Contains(e.Error(), "deliberate internal failure") {
			t.Errorf("fail maps to HTTP %d %v (response %+v, error %v); want 500 with \"deliberate internal failure\"", code, e, resp, err)
		}
	})
	t.Run("secret lease, renew and revoke", func(t *testing.T) {
		resp, err := m.Do(ctx, logical.ReadOperation, "secret", nil)
		if err != nil || resp == nil || resp.Secret == nil {
			t.Fatalf("read secret = %+v, %v; want a response with a secret", resp, err)
		}
		sec := resp.Secret
		if sec.TTL != time.Hour || sec.MaxTTL != 2*time.Hour || !sec.Renewable {
			t.Errorf("lease ttl %v max %v renewable %v, want 1h0m0s 2h0m0s true", sec.TTL, sec.MaxTTL, sec.Renewable)
		}
		if resp.Data["value"] != "example" {
			t.Errorf("secret data value = %#v, want \"example\"", resp.Data["value"])
		}
		if sec.InternalData["secret_type"] != "example_secret" {
			t.Errorf("internal secret_type = %#v, want \"example_secret\"", sec.InternalData["secret_type"])
		}
		if n, err := jsonInt(sec.InternalData, "counter"); err != nil || n != 0 {
			t.Errorf("internal counter = %#v (%v), want 0", sec.InternalData["counter"], err)
		}

		// What Vault's expiration manager sends on renew and revoke.
		issued := time.Now().Add(-time.Minute)
		renewSecret := *sec
		renewSecret.IssueTime = issued
		renewSecret.Increment = 0
		renewSecret.LeaseID = ""
		renewReq := logical.RenewRequest("secret", &renewSecret, resp.Data)
		renewReq.Storage = m.Storage
		renewReq.MountPoint = m.Path + "/"
		renewed, err := m.Handle(ctx, renewReq)
		if err != nil || renewed == nil || renewed.Secret == nil {
			t.Fatalf("renew = %+v, %v; want a response with a secret", renewed, err)
		}
		if renewed.Secret.TTL != 1800*time.Second {
			t.Errorf("renewed ttl %v, want 30m0s", renewed.Secret.TTL)
		}

		revokeSecret := *sec
		revokeSecret.IssueTime = issued
		revokeSecret.LeaseID = m.Path + "/secret/conformance-lease"
		revokeReq := logical.RevokeRequest("secret", &revokeSecret, resp.Data)
		revokeReq.Storage = m.Storage
		revokeReq.MountPoint = m.Path + "/"
		if _, err := m.Handle(ctx, revokeReq); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		entry, err := m.Storage.Get(ctx, "revoked/0")
		if err != nil || entry == nil {
			t.Fatalf("host storage has no revoked/0 after revoke (%v)", err)
		}
		var got map[string]any
		if err := json.Unmarshal(entry.Value, &got); err != nil || got["revoked"] != true {
			t.Errorf("revoked/0 = %s, want {\"revoked\":true}", entry.Value)
		}
	})
}

// 11. Launch refusals: no cookie or only the database cookie prints go-plugin's message and
// exits 1; legacy protocol versions only are refused cleanly.
func TestLaunchRefusals(t *testing.T) {
	s := loadSuite(t)
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	base := append(hostEnv(), "PLUGIN_PROTOCOL_VERSIONS=5", "PLUGIN_CLIENT_CERT="+string(id.CertPEM))
	const notAPlugin = "This binary is a plugin"

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"no cookie", base},
		{"database cookie only", append(slices.Clone(base), DatabaseCookieKey+"="+DatabaseCookieValue)},
		{"wrong cookie value", append(slices.Clone(base), "VAULT_BACKEND_PLUGIN=not-the-cookie")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 15*time.Second)
			res, err := RunToExit(ctx, s.binary, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 1 || !strings.Contains(res.Stderr, notAPlugin) {
				t.Errorf("exit %d, stderr %q; want exit 1 and go-plugin's %q message", res.ExitCode, res.Stderr, notAPlugin)
			}
			if strings.Contains(res.Stdout, "|grpc|") {
				t.Errorf("printed a handshake anyway: %q", res.Stdout)
			}
		})
	}

	t.Run("legacy protocol versions 3,4", func(t *testing.T) {
		if s.profile == profileSDKMock {
			t.Skip("Vault's sdk mock serves the legacy v3/v4 protocols by design")
		}
		ctx := testContext(t, 15*time.Second)
		env := VaultEnv(id, hostVaultVersion)
		for i, kv := range env {
			if strings.HasPrefix(kv, "PLUGIN_PROTOCOL_VERSIONS=") {
				env[i] = "PLUGIN_PROTOCOL_VERSIONS=3,4"
			}
		}
		res, err := RunToExit(ctx, s.binary, append(hostEnv(), env...))
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == 0 {
			t.Errorf("exit 0 when only protocols 3,4 are offered; want a refusal (stderr %q)", res.Stderr)
		}
		if !strings.Contains(strings.ToLower(res.Stderr), "protocol") {
			t.Errorf("stderr %q does not explain the protocol refusal", res.Stderr)
		}
		if strings.Contains(res.Stdout, "|grpc|") {
			t.Errorf("printed a handshake for an unsupported protocol: %q", res.Stdout)
		}
	})
}

// 12. The handshake line: 1|5|unix|<socket>|grpc|<unpadded std base64 DER>, with a P-256 or
// stronger ECDSA certificate for localhost usable for both server and client auth.
func TestHandshakeLineFormat(t *testing.T) {
	s := loadSuite(t)
	ctx := testContext(t, 60*time.Second)
	p, err := StartRaw(ctx, s.binary, hostVaultVersion, t.TempDir())
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Stop)
	checkHandshake(t, p.Handshake)
}

func readLaunches(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("launch log: %v", err)
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("launch log line %q: %v", sc.Text(), err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func assertKeys(t *testing.T, ctx context.Context, st *logical.InmemStorage, name string, want []string) {
	t.Helper()
	var all []string
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := st.List(ctx, prefix)
		if err != nil {
			t.Fatalf("list %s storage: %v", name, err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
			} else {
				all = append(all, prefix+k)
			}
		}
	}
	walk("")
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Errorf("%s storage holds %v, want %v", name, all, want)
	}
}
