package main

import (
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// lease is what Vault's expiration manager would keep for an issued secret.
type lease struct {
	path      string // creds/<role>
	secret    *logical.Secret
	data      map[string]any
	issueTime time.Time
	keyID     string
	// revokeSent is set just before the first revoke request: from then on the key may
	// legitimately be gone, even if that revoke (or a later one) reported failure.
	revokeSent bool
}

// ledger is the soak's bookkeeping of live leases. A worker claims a lease to renew or
// revoke it, so no two workers act on the same lease at once.
type ledger struct {
	mu        sync.Mutex
	free      []*lease // live, unclaimed
	claimed   map[*lease]bool
	issued    int
	revoked   int
	premature []prematureDelete
}

// prematureDelete is a key found missing in Atlas while its lease was live and never revoked.
type prematureDelete struct {
	KeyID string
	Path  string
}

func newLedger() *ledger {
	return &ledger{claimed: map[*lease]bool{}}
}

// add registers a freshly issued lease.
func (l *ledger) add(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, ls)
	l.issued++
}

// claim takes a random unclaimed live lease (nil if none).
func (l *ledger) claim(rng *rand.Rand) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) == 0 {
		return nil
	}
	i := rng.IntN(len(l.free))
	ls := l.free[i]
	l.free[i] = l.free[len(l.free)-1]
	l.free = l.free[:len(l.free)-1]
	l.claimed[ls] = true
	return ls
}

// claimAll claims every unclaimed live lease (for the final revocations).
func (l *ledger) claimAll() []*lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.free
	l.free = nil
	for _, ls := range out {
		l.claimed[ls] = true
	}
	return out
}

// release gives a claimed lease back (still live).
func (l *ledger) release(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.claimed, ls)
	l.free = append(l.free, ls)
}

// revokedOK forgets a claimed lease whose revocation succeeded.
func (l *ledger) revokedOK(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.claimed, ls)
	l.revoked++
}

// beforeRevoke is called by the lease's claimant with the keys alive in Atlas, fetched
// after the claim: if the lease was never revoked, its key must still be there.
func (l *ledger) beforeRevoke(ls *lease, alive map[string]simKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls.revokeSent {
		return
	}
	if _, ok := alive[ls.keyID]; !ok {
		l.premature = append(l.premature, prematureDelete{KeyID: ls.keyID, Path: ls.path})
	}
	ls.revokeSent = true
}

// live counts live leases (claimed or not).
func (l *ledger) live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.free) + len(l.claimed)
}

// all lists every live lease; only meaningful when no worker runs.
func (l *ledger) all() []*lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]*lease(nil), l.free...)
	for ls := range l.claimed {
		out = append(out, ls)
	}
	return out
}

func (l *ledger) prematureDeletes() []prematureDelete {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]prematureDelete(nil), l.premature...)
}

// leakedKeys are the keys alive in Atlas that no live lease holds, other than the
// excluded ones (the seeded key and the soak's own config keys), sorted by id.
func leakedKeys(alive map[string]simKey, live []*lease, excluded map[string]bool) []simKey {
	held := make(map[string]bool, len(live))
	for _, ls := range live {
		held[ls.keyID] = true
	}
	var out []simKey
	for id, k := range alive {
		if k.Seeded || excluded[id] || held[id] {
			continue
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
