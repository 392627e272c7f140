package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/conformance"
)

// ManyMountsRound is one plugin process serving Plan.ManyMounts multiplexed mounts, each
// with a config and a role.
type ManyMountsRound struct {
	Mounts int `json:"mounts"`
	// VmRSS with the first mount set up, configured and having issued once: the base that
	// each further mount adds to.
	RSS1Mount int64 `json:"rss_1_mount_bytes"`
	// VmRSS after Setup, config and role of every mount, then after one issuance on each.
	RSSAfterSetup int64 `json:"rss_after_setup_bytes"`
	RSSAfterIssue int64 `json:"rss_after_issue_bytes"`
	RSSAnonAfter  int64 `json:"rss_anon_after_issue_bytes"`
	Threads       int64 `json:"threads_after_issue"`
	// Open sockets of the process after Setup and after the issuances: each mount has its
	// own connection back to the host for storage (go-plugin's broker), and each Atlas
	// client its own connections unless the plugin shares them between mounts.
	SocketsAfterSetup int     `json:"sockets_after_setup"`
	SocketsAfterIssue int     `json:"sockets_after_issue"`
	SetupS            float64 `json:"setup_s"`
	IssueS            float64 `json:"issue_s"`
	LeftoverKeys      int     `json:"leftover_keys"`
}

// PerMount is what each mount after the first adds to the process, with an issuance done.
func (r *ManyMountsRound) PerMount() float64 {
	if r.Mounts < 2 {
		return 0
	}
	return float64(r.RSSAfterIssue-r.RSS1Mount) / float64(r.Mounts-1)
}

// ManyMounts runs one many-mounts round of a plugin. Mounts are set up 8 at a time (Vault
// enables mounts one by one, but the cost measured here is memory, not setup time);
// issuances run 16 at a time with no added latency, every lease is revoked afterwards.
func (b *Bench) ManyMounts(ctx context.Context, side *Side) (*ManyMountsRound, error) {
	h, err := side.NewHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := b.sim.SetLatency(ctx, 0); err != nil {
		return nil, err
	}
	n := b.plan.ManyMounts
	round := &ManyMountsRound{Mounts: n}
	mounts := make([]*conformance.Mount, n)
	leases := make([]*Lease, n)
	setUp := func(i int) error {
		m, err := h.Mount(ctx, fmt.Sprintf("mongodbatlas%d", i))
		if err != nil {
			return fmt.Errorf("mount %d: %w", i, err)
		}
		mounts[i] = m
		return side.Configure(ctx, m, b.sim.Info.OrgID)
	}
	issue := func(i int) error {
		l, err := Issue(ctx, mounts[i], roleName)
		if err != nil {
			return fmt.Errorf("mount %d: %w", i, err)
		}
		leases[i] = l
		return nil
	}
	started := time.Now()
	if err := setUp(0); err != nil {
		return nil, err
	}
	if err := issue(0); err != nil {
		return nil, err
	}
	pid, err := Pid(mounts[0])
	if err != nil {
		return nil, err
	}
	time.Sleep(b.plan.IdleSettle)
	if round.RSS1Mount, err = procStatusKB(pid, "VmRSS"); err != nil {
		return nil, err
	}
	if err := parallel(ctx, 1, n, 8, setUp); err != nil {
		return nil, err
	}
	round.SetupS = time.Since(started).Seconds()
	if h.Spawned() != 1 || !h.Multiplexed() {
		return nil, fmt.Errorf("%s: %d mounts used %d processes (multiplexed: %v); want one", side.Name, n, h.Spawned(), h.Multiplexed())
	}
	time.Sleep(b.plan.IdleSettle)
	if round.RSSAfterSetup, err = procStatusKB(pid, "VmRSS"); err != nil {
		return nil, err
	}
	if round.SocketsAfterSetup, err = sockets(pid); err != nil {
		return nil, err
	}
	started = time.Now()
	if err := parallel(ctx, 1, n, 16, issue); err != nil {
		return nil, err
	}
	round.IssueS = time.Since(started).Seconds()
	time.Sleep(b.plan.IdleSettle)
	if round.RSSAfterIssue, err = procStatusKB(pid, "VmRSS"); err != nil {
		return nil, err
	}
	if round.RSSAnonAfter, err = procStatusKB(pid, "RssAnon"); err != nil {
		return nil, err
	}
	if round.Threads, err = procStatusInt(pid, "Threads"); err != nil {
		return nil, err
	}
	if round.SocketsAfterIssue, err = sockets(pid); err != nil {
		return nil, err
	}
	// Revocation is not measured; anything it leaves is counted and deleted out of band.
	_ = parallel(ctx, 0, n, 64, func(i int) error {
		if leases[i] != nil {
			_ = Revoke(ctx, mounts[i], leases[i])
		}
		return nil
	})
	if round.LeftoverKeys, err = b.sim.PurgeIssuedKeys(ctx); err != nil {
		return nil, err
	}
	return round, nil
}

// parallel runs f(from) … f(to-1) with c workers and returns the first error (after which
// no new index is started).
func parallel(ctx context.Context, from, to, c int, f func(int) error) error {
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Bool
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// sockets counts the open sockets of a process (its /proc/<pid>/fd links to "socket:[…]").
func sockets(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n, nil
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }
