package main

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/helper/wrapping"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/rotation"
)

// Calls a plugin makes back into Vault (storage and system view) are each a gRPC round trip
// to the host, and in a real Vault a storage write is a raft commit: the host counts them by
// wrapping the mount's storage and system view, so no plugin needs to log anything.

// callCounter counts calls by kind ("storage_get", "wal_put", "system_view.MaxLeaseTTL", …).
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int64
}

func newCallCounter() *callCounter { return &callCounter{counts: map[string]int64{}} }

func (c *callCounter) add(kind string) {
	c.mu.Lock()
	c.counts[kind]++
	c.mu.Unlock()
}

func (c *callCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// callsSince is after − before per kind (kinds with no calls left out) and the total.
func callsSince(before, after map[string]int64) (map[string]int64, int64) {
	out := map[string]int64{}
	var total int64
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
			total += d
		}
	}
	return out, total
}

// storageKind names a storage call; write-ahead-log entries (both plugins keep them under
// "wal/", the SDK's framework convention) are told apart from other entries.
func storageKind(op, key string) string {
	if strings.HasPrefix(key, "wal/") {
		return "wal_" + op
	}
	return "storage_" + op
}

// countingStorage is a mount's storage that counts every call.
type countingStorage struct {
	logical.Storage
	c *callCounter
}

func (s countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.c.add(storageKind("list", prefix))
	return s.Storage.List(ctx, prefix)
}

func (s countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.c.add(storageKind("get", key))
	return s.Storage.Get(ctx, key)
}

func (s countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.c.add(storageKind("put", e.Key))
	return s.Storage.Put(ctx, e)
}

func (s countingStorage) Delete(ctx context.Context, key string) error {
	s.c.add(storageKind("delete", key))
	return s.Storage.Delete(ctx, key)
}

// countingSystem is the system view that counts every call a plugin can make over gRPC
// (sdk/plugin's gRPCSystemViewServer).
type countingSystem struct {
	logical.SystemView
	c *callCounter
}

const sv = "system_view."

func (s countingSystem) DefaultLeaseTTL() time.Duration {
	s.c.add(sv + "DefaultLeaseTTL")
	return s.SystemView.DefaultLeaseTTL()
}

func (s countingSystem) MaxLeaseTTL() time.Duration {
	s.c.add(sv + "MaxLeaseTTL")
	return s.SystemView.MaxLeaseTTL()
}

func (s countingSystem) Tainted() bool {
	s.c.add(sv + "Tainted")
	return s.SystemView.Tainted()
}

func (s countingSystem) CachingDisabled() bool {
	s.c.add(sv + "CachingDisabled")
	return s.SystemView.CachingDisabled()
}

func (s countingSystem) LocalMount() bool {
	s.c.add(sv + "LocalMount")
	return s.SystemView.LocalMount()
}

func (s countingSystem) ReplicationState() consts.ReplicationState {
	s.c.add(sv + "ReplicationState")
	return s.SystemView.ReplicationState()
}

func (s countingSystem) MlockEnabled() bool {
	s.c.add(sv + "MlockEnabled")
	return s.SystemView.MlockEnabled()
}

func (s countingSystem) ResponseWrapData(ctx context.Context, data map[string]any, ttl time.Duration, jwt bool) (*wrapping.ResponseWrapInfo, error) {
	s.c.add(sv + "ResponseWrapData")
	return s.SystemView.ResponseWrapData(ctx, data, ttl, jwt)
}

func (s countingSystem) EntityInfo(id string) (*logical.Entity, error) {
	s.c.add(sv + "EntityInfo")
	return s.SystemView.EntityInfo(id)
}

func (s countingSystem) GroupsForEntity(id string) ([]*logical.Group, error) {
	s.c.add(sv + "GroupsForEntity")
	return s.SystemView.GroupsForEntity(id)
}

func (s countingSystem) PluginEnv(ctx context.Context) (*logical.PluginEnvironment, error) {
	s.c.add(sv + "PluginEnv")
	return s.SystemView.PluginEnv(ctx)
}

func (s countingSystem) GeneratePasswordFromPolicy(ctx context.Context, policy string) (string, error) {
	s.c.add(sv + "GeneratePasswordFromPolicy")
	return s.SystemView.GeneratePasswordFromPolicy(ctx, policy)
}

func (s countingSystem) ClusterID(ctx context.Context) (string, error) {
	s.c.add(sv + "ClusterInfo")
	return s.SystemView.ClusterID(ctx)
}

func (s countingSystem) GenerateIdentityToken(ctx context.Context, req *pluginutil.IdentityTokenRequest) (*pluginutil.IdentityTokenResponse, error) {
	s.c.add(sv + "GenerateIdentityToken")
	return s.SystemView.GenerateIdentityToken(ctx, req)
}

func (s countingSystem) GetRotationInformation(ctx context.Context, req *rotation.RotationInfoRequest) (*rotation.RotationInfoResponse, error) {
	s.c.add(sv + "GetRotationInformation")
	return s.SystemView.GetRotationInformation(ctx, req)
}

func (s countingSystem) RegisterRotationJob(ctx context.Context, req *rotation.RotationJobConfigureRequest) (string, error) {
	s.c.add(sv + "RegisterRotationJob")
	return s.SystemView.RegisterRotationJob(ctx, req)
}

func (s countingSystem) RegisterRotationJobWithResponse(ctx context.Context, req *rotation.RotationJobConfigureRequest) (*rotation.RotationInfo, error) {
	s.c.add(sv + "RegisterRotationJob")
	return s.SystemView.RegisterRotationJobWithResponse(ctx, req)
}

func (s countingSystem) DeregisterRotationJob(ctx context.Context, req *rotation.RotationJobDeregisterRequest) error {
	s.c.add(sv + "DeregisterRotationJob")
	return s.SystemView.DeregisterRotationJob(ctx, req)
}
