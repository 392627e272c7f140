package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

// Vault's expiration manager (vault/expiration.go): a failed revocation is retried after
// (2^attempts × 10 s) ± 50 %, each attempt bounded by DefaultMaxRequestDuration (90 s); after
// the sixth failed attempt the lease is marked irrevocable and the key stays in Atlas.
const (
	revokeRetryBase    = 10 * time.Second
	maxRevokeAttempts  = 6
	revokeAttemptLimit = 90 * time.Second
)

// vaultBackoff is Vault's revokeExponentialBackoff after `attempt` failed attempts.
func vaultBackoff(attempt int, rng *rand.Rand) time.Duration {
	exp := float64(time.Duration(1<<attempt) * revokeRetryBase)
	delta := 0.5 * exp
	return time.Duration(exp - delta + rng.Float64()*2*delta)
}

// StormResult is one revocation storm.
type StormResult struct {
	Leases int `json:"leases"`
	// Revocations whose first attempt failed (Vault retries them later).
	FirstAttemptFailures int `json:"first_attempt_failures"`
	// Failed attempts in total, retries included.
	FailedAttempts int `json:"failed_attempts"`
	// Leases still not revoked when the storm ended (irrevocable or out of time).
	Unrevoked   int  `json:"unrevoked"`
	Irrevocable int  `json:"irrevocable"`
	Drained     bool `json:"drained"`
	// Seconds from the start until the last lease was revoked (or the bound, when not drained).
	DrainS  float64 `json:"drain_s"`
	BoundS  float64 `json:"bound_s"`
	MaxTry  int     `json:"max_attempts_used"`
	Leaks   int     `json:"leaked_keys"`
	Atlas   uint64  `json:"atlas_requests"`
	Limited uint64  `json:"atlas_rate_limited"`
	// Seconds at which each lease was revoked, sorted (for the plot).
	RevokedAtS []float64          `json:"revoked_at_s"`
	FirstError string             `json:"first_error,omitempty"`
	RateLimit  atlassim.RateLimit `json:"rate_limit"`
}

// Storm issues the leases with rate limits off, restores the default Atlas limits, then
// revokes every lease at once and retries failures on Vault's schedule until all are revoked,
// a lease becomes irrevocable, or the bound passes. Leaks are the issued keys still in the
// simulator afterwards.
func (b *Bench) Storm(ctx context.Context, side *Side, seed uint64) (*StormResult, error) {
	h, err := side.NewHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	m, err := h.Mount(ctx, "mongodbatlas")
	if err != nil {
		return nil, err
	}
	if err := side.Configure(ctx, m, b.sim.Info.OrgID); err != nil {
		return nil, err
	}
	if err := b.sim.SetLatency(ctx, 0); err != nil {
		return nil, err
	}
	off := b.defaultLimits
	off.Enabled = false
	if err := b.sim.SetRateLimit(ctx, off); err != nil {
		return nil, err
	}
	_, leases, _, failures, firstErr := issueBatch(ctx, m, roleName, b.plan.StormLeases, 64)
	if failures > 0 {
		return nil, fmt.Errorf("%s: %d of %d storm issuances failed: %v", side.Name, failures, b.plan.StormLeases, firstErr)
	}

	if err := b.sim.SetRateLimit(ctx, b.defaultLimits); err != nil {
		return nil, err
	}
	before, err := b.sim.Stats(ctx)
	if err != nil {
		return nil, err
	}

	res := &StormResult{Leases: len(leases), BoundS: b.plan.StormBound.Seconds(), RateLimit: b.defaultLimits}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var rngMu sync.Mutex
	backoff := func(attempt int) time.Duration {
		rngMu.Lock()
		defer rngMu.Unlock()
		return vaultBackoff(attempt, rng)
	}
	stormCtx, cancel := context.WithTimeout(ctx, b.plan.StormBound)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := time.Now()
	for _, l := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 1; ; attempt++ {
				actx, acancel := context.WithTimeout(stormCtx, revokeAttemptLimit)
				err := Revoke(actx, m, l)
				acancel()
				mu.Lock()
				res.MaxTry = max(res.MaxTry, attempt)
				if err == nil {
					res.RevokedAtS = append(res.RevokedAtS, time.Since(started).Seconds())
					mu.Unlock()
					return
				}
				res.FailedAttempts++
				if attempt == 1 {
					res.FirstAttemptFailures++
				}
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				if attempt >= maxRevokeAttempts {
					res.Irrevocable++
					mu.Unlock()
					return
				}
				mu.Unlock()
				select {
				case <-time.After(backoff(attempt)):
				case <-stormCtx.Done():
					return
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(b.plan.StormBound + 30*time.Second):
		return nil, fmt.Errorf("%s: revocations still running 30 s after the storm's bound", side.Name)
	}
	elapsed := time.Since(started)

	slices.Sort(res.RevokedAtS)
	res.Unrevoked = res.Leases - len(res.RevokedAtS)
	res.Drained = res.Unrevoked == 0
	if res.Drained {
		res.DrainS = res.RevokedAtS[len(res.RevokedAtS)-1]
	} else {
		res.DrainS = min(elapsed.Seconds(), res.BoundS)
	}

	after, err := b.sim.Stats(ctx)
	if err != nil {
		return nil, err
	}
	res.Atlas = after.RequestsTotal - before.RequestsTotal
	res.Limited = after.RateLimited - before.RateLimited

	issued := make(map[string]bool, len(leases))
	for _, l := range leases {
		issued[l.ID] = true
	}
	live, err := b.sim.IssuedKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range live {
		if issued[k.ID] {
			res.Leaks++
		}
	}
	// Leave the simulator as the next phase expects: no limits, no keys.
	if err := b.sim.SetRateLimit(ctx, off); err != nil {
		return nil, err
	}
	if _, err := b.sim.PurgeIssuedKeys(ctx); err != nil {
		return nil, err
	}
	return res, nil
}
