package conformance

// Automated rotation of the engine's own credential with Vault Enterprise's rotation manager, as
// the SDK's own gRPC SystemView server delivers it: a config write with a schedule registers a
// job (RegisterRotationJob, with the fields Vault reads), the manager's `rotate` operation
// rotates the credential, disabling automated rotation withdraws the job. Without a rotation
// manager (the SDK's StaticSystemView refuses, as Community Edition does) the plugin keeps the
// schedule itself.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/rotation"
)

// rotationManager is what a plugin sees of Vault Enterprise's rotation manager: the
// SystemView's job registration, recorded per mount and path.
type rotationManager struct {
	logical.StaticSystemView
	mu   sync.Mutex
	jobs map[string]rotation.RotationJobConfigureRequest
}

func (r *rotationManager) RegisterRotationJob(_ context.Context, req *rotation.RotationJobConfigureRequest) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs[req.MountPoint+req.ReqPath] = *req
	return "rotation-" + req.MountPoint + req.ReqPath, nil
}

func (r *rotationManager) DeregisterRotationJob(_ context.Context, req *rotation.RotationJobDeregisterRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, req.MountPoint+req.ReqPath)
	return nil
}

func (r *rotationManager) registered() map[string]rotation.RotationJobConfigureRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]rotation.RotationJobConfigureRequest{}
	for k, v := range r.jobs {
		out[k] = v
	}
	return out
}

func TestRotationManagerKeepsTheSchedule(t *testing.T) {
	e := loadEngineEnv(t)
	ctx := testContext(t, 120*time.Second)
	sim := startSim(t, ctx, e.simBinary)
	manager := &rotationManager{StaticSystemView: staticSystem(), jobs: map[string]rotation.RotationJobConfigureRequest{}}
	m := mountEngine(t, ctx, e.newHostWith(t, manager), "mongodbatlas", sim)
	m.ok(t, ctx, logical.UpdateOperation, "roles/probe", map[string]any{"organization_id": sim.OrgID, "roles": "ORG_MEMBER"})

	login := map[string]any{"public_key": sim.PublicKey, "private_key": sim.PrivateKey, "base_url": sim.BaseURL}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range login {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	m.ok(t, ctx, logical.UpdateOperation, "config", with(map[string]any{"rotation_schedule": "0 3 * * SUN", "rotation_window": "2h"}))
	want := rotation.RotationJobConfigureRequest{
		Name:             "mongodbatlas-root-credential",
		MountPoint:       "mongodbatlas/",
		ReqPath:          "config",
		RotationSchedule: "0 3 * * SUN",
		RotationWindow:   2 * time.Hour,
	}
	same := func(a, b rotation.RotationJobConfigureRequest) bool {
		return a.Name == b.Name && a.MountPoint == b.MountPoint && a.ReqPath == b.ReqPath &&
			a.RotationSchedule == b.RotationSchedule && a.RotationWindow == b.RotationWindow && a.RotationPeriod == b.RotationPeriod
	}
	if got := manager.registered(); len(got) != 1 || !same(got["mongodbatlas/config"], want) {
		t.Fatalf("registered jobs %+v, want exactly %+v", got, want)
	}
	if by := m.ok(t, ctx, logical.ReadOperation, "config", nil).Data["rotation_managed_by"]; by != "vault" {
		t.Errorf("config read: rotation_managed_by %v, want vault", by)
	}

	// A period replaces the schedule; disabling withdraws the job; a schedule registers again.
	m.ok(t, ctx, logical.UpdateOperation, "config", with(map[string]any{"rotation_period": "2h"}))
	if got := manager.registered()["mongodbatlas/config"]; got.RotationPeriod != 2*time.Hour || got.RotationSchedule != "" {
		t.Errorf("after a period: job %+v, want a 2h period and no schedule", got)
	}
	m.ok(t, ctx, logical.UpdateOperation, "config", with(map[string]any{"rotation_period": "2h", "disable_automated_rotation": true}))
	if got := manager.registered(); len(got) != 0 {
		t.Errorf("disable_automated_rotation left jobs %+v", got)
	}
	m.ok(t, ctx, logical.UpdateOperation, "config", with(map[string]any{"rotation_schedule": "0 3 * * SUN", "rotation_window": "2h"}))

	// The manager's turn: the `rotate` operation on the job's path.
	req := m.routed(&logical.Request{Operation: logical.RotationOperation, Path: "config", Data: map[string]any{}})
	resp, err := m.Backend.HandleRequest(ctx, req)
	if status, err := vaultStatus(req, resp, err); status != 0 || err != nil {
		t.Fatalf("rotate: status %d, %v", status, err)
	}
	shown := m.ok(t, ctx, logical.ReadOperation, "config", nil).Data
	if pk := shown["public_key"]; pk == sim.PublicKey || pk == "" {
		t.Errorf("after rotate, config holds public_key %v: not a new key", pk)
	}
	owners := 0
	for _, k := range sim.inventory(t, ctx).APIKeys {
		if hasRole(k, sim.OrgID, "", "ORG_OWNER") {
			owners++
		}
	}
	if owners != 1 {
		t.Errorf("%d Organization Owner keys after the rotation, want 1 (the new login)", owners)
	}
	m.mustRevoke(t, ctx, m.mustIssue(t, ctx, "probe"))
}

func TestNoRotationManagerMeansThePluginKeepsTheSchedule(t *testing.T) {
	e := loadEngineEnv(t)
	ctx := testContext(t, 60*time.Second)
	_, _, m := e.setup(t, ctx)
	m.ok(t, ctx, logical.UpdateOperation, "config", map[string]any{
		"public_key": m.sim.PublicKey, "private_key": m.sim.PrivateKey, "base_url": m.sim.BaseURL,
		"rotation_period": "24h",
	})
	shown := m.ok(t, ctx, logical.ReadOperation, "config", nil).Data
	if shown["rotation_managed_by"] != "plugin" || shown["next_rotation"] == "" {
		t.Errorf("config read without a rotation manager: %v", shown)
	}
}
