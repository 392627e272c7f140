package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/conformance"
)

// SARound is one service-account round of our plugin (the official plugin has no service
// accounts): one process, each measurement on its own mount.
type SARound struct {
	// The simulator's access-token lifetime during the round (3600 s, as Atlas).
	TokenLifetimeS float64 `json:"token_lifetime_s"`
	// creds/bench-sa (organization service account, one access-list entry) with a
	// service-account login and a warm token, sim +50 ms, one caller.
	ServiceAccount ScenarioResult `json:"service_account"`
	// creds/bench (organization API key, the same access list) with an API-key login and a
	// warm digest nonce, the same scenario: the round trips to compare with.
	APIKey ScenarioResult `json:"api_key"`
	// Service accounts with a service-account login on a fresh mount, many callers: its
	// first token is fetched under the load; TokenRequests counts every token fetched.
	TokenLoad ScenarioResult `json:"token_load"`
	// The same with short-lived tokens (ShortTokenLifetimeS), replaced during the load.
	ShortTokenLoad      *ScenarioResult `json:"short_token_load,omitempty"`
	ShortTokenLifetimeS float64         `json:"short_token_lifetime_s,omitempty"`
	// Issued service accounts and keys still in the simulator after the round's
	// revocations (deleted out of band afterwards).
	LeftoverAccounts int `json:"leftover_service_accounts"`
	LeftoverKeys     int `json:"leftover_keys"`
}

// tokensPer1000 is token requests per 1,000 successful issuances; NaN without any.
func tokensPer1000(sc ScenarioResult) float64 {
	issued := sc.Issues - sc.Failures
	if issued <= 0 {
		return math.NaN()
	}
	return float64(sc.TokenRequests) * 1000 / float64(issued)
}

// ServiceAccounts runs one service-account round of a plugin (ours): a service-account
// mount and an API-key mount warmed up, then measured one after the other at +50 ms with one
// caller; then the token load on a fresh service-account mount, with Atlas's token lifetime
// and, when the plan says so, with a short one. Everything issued is revoked.
func (b *Bench) ServiceAccounts(ctx context.Context, side *Side) (*SARound, error) {
	info := b.sim.Info
	if info.SAClientID == "" || info.SAClientSecret == "" {
		return nil, errors.New("atlas-sim reported no sa_client_id/sa_client_secret in its startup line")
	}
	saLogin := map[string]any{"client_id": info.SAClientID, "client_secret": info.SAClientSecret}
	h, err := side.NewHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var mounts []*conformance.Mount
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		for _, m := range mounts {
			_ = m.Cleanup(cleanupCtx)
		}
	}()
	mount := func(name string, login map[string]any, role string, data map[string]any) (*conformance.Mount, error) {
		m, err := h.Mount(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", name, err)
		}
		mounts = append(mounts, m)
		return m, configure(ctx, m, login, role, data)
	}
	saMount, err := mount("mongodbatlas-sa", saLogin, saRoleName, saRoleData(info.OrgID))
	if err != nil {
		return nil, err
	}
	keyMount, err := mount("mongodbatlas-key", side.Config, roleName, roleData(info.OrgID))
	if err != nil {
		return nil, err
	}
	pid, err := Pid(saMount)
	if err != nil {
		return nil, err
	}
	round := &SARound{}
	lifetime, err := b.tokenLifetime(ctx)
	if err != nil {
		return nil, err
	}
	round.TokenLifetimeS = lifetime.Seconds()

	// Warm token (service account) and warm nonce (API key): neither is measured.
	if err := b.warmUp(ctx, side, saMount, saRoleName); err != nil {
		return nil, err
	}
	if err := b.warmUp(ctx, side, keyMount, roleName); err != nil {
		return nil, err
	}
	one := Scenario{LatencyMS: 50, Concurrency: 1, Issues: b.plan.SAIssues}
	sa, err := b.scenario(ctx, side, saMount, pid, saRoleName, one, nil)
	if err != nil {
		return nil, err
	}
	round.ServiceAccount = *sa
	key, err := b.scenario(ctx, side, keyMount, pid, roleName, one, nil)
	if err != nil {
		return nil, err
	}
	round.APIKey = *key

	// Token load: a fresh mount, so its first token is fetched by 64 callers at once.
	loadMount, err := mount("mongodbatlas-sa-load", saLogin, saRoleName, saRoleData(info.OrgID))
	if err != nil {
		return nil, err
	}
	load, err := b.scenario(ctx, side, loadMount, pid, saRoleName, b.plan.TokenLoad, nil)
	if err != nil {
		return nil, err
	}
	round.TokenLoad = *load

	if short := b.plan.ShortTokenLifetime; short > 0 && b.plan.ShortTokenLoad.Issues > 0 && b.plan.ShortTokenLoadFor > 0 {
		sc := b.plan.ShortTokenLoad
		sc.Issues = min(sc.Issues, max(b.plan.TokenLoad.Issues, int(math.Ceil(load.Throughput*b.plan.ShortTokenLoadFor.Seconds()))))
		res, err := b.shortTokenLoad(ctx, side, pid, sc, short, lifetime, func() (*conformance.Mount, error) {
			return mount("mongodbatlas-sa-short", saLogin, saRoleName, saRoleData(info.OrgID))
		})
		if err != nil {
			return nil, err
		}
		round.ShortTokenLoad, round.ShortTokenLifetimeS = res, short.Seconds()
	}

	if round.LeftoverAccounts, err = b.purgeIssuedServiceAccounts(ctx); err != nil {
		return nil, err
	}
	if round.LeftoverKeys, err = b.sim.PurgeIssuedKeys(ctx); err != nil {
		return nil, err
	}
	return round, nil
}

// shortTokenLoad is the token load on a fresh mount with the simulator issuing short-lived
// tokens; the usual lifetime is restored afterwards.
func (b *Bench) shortTokenLoad(ctx context.Context, side *Side, pid int, sc Scenario, short, usual time.Duration, newMount func() (*conformance.Mount, error)) (*ScenarioResult, error) {
	if err := b.setTokenLifetime(ctx, short); err != nil {
		return nil, err
	}
	defer func() { _ = b.setTokenLifetime(context.WithoutCancel(ctx), usual) }()
	m, err := newMount()
	if err != nil {
		return nil, err
	}
	return b.scenario(ctx, side, m, pid, saRoleName, sc, nil)
}

// tokenLifetime is the lifetime of the access tokens the simulator issues.
func (b *Bench) tokenLifetime(ctx context.Context) (time.Duration, error) {
	var out struct {
		MS int64 `json:"token_lifetime_ms"`
	}
	if err := b.sim.Admin(ctx, http.MethodGet, "/oauth", nil, http.StatusOK, &out); err != nil {
		return 0, err
	}
	return time.Duration(out.MS) * time.Millisecond, nil
}

// setTokenLifetime sets the lifetime of the tokens the simulator issues from now on.
func (b *Bench) setTokenLifetime(ctx context.Context, d time.Duration) error {
	return b.sim.Admin(ctx, http.MethodPut, "/oauth", map[string]int64{"token_lifetime_ms": d.Milliseconds()}, http.StatusOK, nil)
}

// purgeIssuedServiceAccounts deletes, out of band, every service account but the seeded ones
// and returns how many there were.
func (b *Bench) purgeIssuedServiceAccounts(ctx context.Context) (int, error) {
	var inv struct {
		ServiceAccounts []struct {
			ClientID string `json:"client_id"`
			Seeded   bool   `json:"seeded"`
		} `json:"service_accounts"`
	}
	if err := b.sim.Admin(ctx, http.MethodGet, "/inventory", nil, http.StatusOK, &inv); err != nil {
		return 0, err
	}
	n := 0
	for _, sa := range inv.ServiceAccounts {
		if sa.Seeded {
			continue
		}
		n++
		if err := b.sim.Admin(ctx, http.MethodDelete, "/service_accounts/"+sa.ClientID, nil, http.StatusNoContent, nil); err != nil {
			return 0, err
		}
	}
	return n, nil
}
