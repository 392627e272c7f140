package main

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Credential kinds: the lease secret types.
const (
	kindAPIKey         = "programmatic_api_key"
	kindServiceAccount = "service_account"
	// A grant of roles to a person: no credential exists in Atlas for it.
	kindUserAccess = "user_access"
)

// lease is what Vault's expiration manager would keep for an issued secret.
type lease struct {
	path      string // creds/<role>
	secret    *logical.Secret
	data      map[string]any
	issueTime time.Time
	kind      string // kindAPIKey or kindServiceAccount
	credID    string // the API key's id or the service account's client id
	// revokeSent is set just before the first revoke request: from then on the credential
	// may legitimately be gone, even if that revoke (or a later one) reported failure.
	revokeSent bool
}

// credential is an API key or a service account alive in Atlas.
type credential struct {
	Kind string // kindAPIKey or kindServiceAccount
	ID   string // key id or client id
	Desc string // key description or account name
	// Seeded: the simulator's own (its startup key and account, accounts made through its
	// admin API): never a plugin's.
	Seeded bool
}

func (c credential) String() string {
	if c.Kind == kindServiceAccount {
		return fmt.Sprintf("service account client_id=%s name=%q", c.ID, c.Desc)
	}
	return fmt.Sprintf("key id=%s desc=%q", c.ID, c.Desc)
}

// ledger is the soak's bookkeeping of live leases. A worker claims a lease to renew or
// revoke it, so no two workers act on the same lease at once.
type ledger struct {
	mu        sync.Mutex
	free      []*lease // live, unclaimed
	claimed   map[*lease]bool
	issued    map[string]int // by kind
	revoked   int
	premature []prematureDelete
}

// prematureDelete is a credential found missing in Atlas while its lease was live and never
// revoked.
type prematureDelete struct {
	Kind string
	ID   string
	Path string
}

func newLedger() *ledger {
	return &ledger{claimed: map[*lease]bool{}, issued: map[string]int{}}
}

// add registers a freshly issued lease.
func (l *ledger) add(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, ls)
	l.issued[ls.kind]++
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

// beforeRevoke is called by the lease's claimant with the credentials alive in Atlas,
// fetched after the claim: if the lease was never revoked, its credential must still be there.
func (l *ledger) beforeRevoke(ls *lease, alive map[string]credential) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls.revokeSent {
		return
	}
	if _, ok := alive[ls.credID]; !ok && ls.kind != kindUserAccess {
		l.premature = append(l.premature, prematureDelete{Kind: ls.kind, ID: ls.credID, Path: ls.path})
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

// leakedCredentials are the credentials (API keys and service accounts) alive in Atlas that
// no live lease holds, other than the seeded ones and the excluded ones (the soak's own
// config key), sorted by kind and id.
func leakedCredentials(alive map[string]credential, live []*lease, excluded map[string]bool) []credential {
	held := make(map[string]bool, len(live))
	for _, ls := range live {
		held[ls.credID] = true
	}
	var out []credential
	for id, c := range alive {
		if c.Seeded || excluded[id] || held[id] {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// countKind counts the credentials of one kind.
func countKind[T any](items []T, kind func(T) string, want string) int {
	n := 0
	for _, it := range items {
		if kind(it) == want {
			n++
		}
	}
	return n
}
