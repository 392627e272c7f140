package main

import (
	"math/rand/v2"
	"testing"
)

func TestLeakedCredentialsAreTheUnleasedOnes(t *testing.T) {
	alive := map[string]credential{
		"seeded":     {Kind: kindAPIKey, ID: "seeded", Seeded: true},
		"seeded-sa":  {Kind: kindServiceAccount, ID: "seeded-sa", Seeded: true},
		"config2":    {Kind: kindAPIKey, ID: "config2"},
		"leased":     {Kind: kindAPIKey, ID: "leased"},
		"leased-sa":  {Kind: kindServiceAccount, ID: "leased-sa"},
		"orphan":     {Kind: kindAPIKey, ID: "orphan", Desc: "vault-r1-x"},
		"orphan-sa":  {Kind: kindServiceAccount, ID: "orphan-sa", Desc: "vault-r2-y"},
		"orphan-sa2": {Kind: kindServiceAccount, ID: "orphan-sa2", Desc: "vault-r3-z"},
	}
	live := []*lease{{credID: "leased"}, {credID: "leased-sa"}, {credID: "gone-already"}}
	got := leakedCredentials(alive, live, map[string]bool{"config2": true})
	if len(got) != 3 || got[0].ID != "orphan" || got[1].ID != "orphan-sa" || got[2].ID != "orphan-sa2" {
		t.Fatalf("leaked = %+v, want the three orphans, API keys first", got)
	}
	kind := func(c credential) string { return c.Kind }
	if countKind(got, kind, kindAPIKey) != 1 || countKind(got, kind, kindServiceAccount) != 2 {
		t.Fatalf("leaked = %+v: want 1 key and 2 service accounts", got)
	}
	if got := leakedCredentials(map[string]credential{"seeded": {ID: "seeded", Seeded: true}}, nil, nil); len(got) != 0 {
		t.Fatalf("leaked = %+v with only the seeded key alive", got)
	}
}

func TestPrematureDeleteOnlyBeforeTheFirstRevoke(t *testing.T) {
	l := newLedger()
	rng := rand.New(rand.NewPCG(1, 2))
	present := &lease{credID: "present", kind: kindAPIKey, path: "creds/a"}
	missing := &lease{credID: "missing", kind: kindServiceAccount, path: "creds/b"}
	l.add(present)
	l.add(missing)
	alive := map[string]credential{"present": {ID: "present"}}
	for _, ls := range []*lease{l.claim(rng), l.claim(rng)} {
		l.beforeRevoke(ls, alive)
		l.release(ls)
	}
	got := l.prematureDeletes()
	if len(got) != 1 || got[0].ID != "missing" || got[0].Kind != kindServiceAccount {
		t.Fatalf("premature = %+v, want the missing service account once", got)
	}
	// Once a revoke was sent, the key may be gone (that revoke may have deleted it and failed).
	for _, ls := range l.claimAll() {
		l.beforeRevoke(ls, map[string]credential{})
		l.revokedOK(ls)
	}
	if got := l.prematureDeletes(); len(got) != 1 {
		t.Fatalf("premature = %+v after revokes, want still one", got)
	}
	if l.live() != 0 || l.issued[kindAPIKey] != 1 || l.issued[kindServiceAccount] != 1 || l.revoked != 2 {
		t.Fatalf("live=%d issued=%v revoked=%d, want 0, one of each kind, 2", l.live(), l.issued, l.revoked)
	}
}

func TestClaimIsExclusive(t *testing.T) {
	l := newLedger()
	rng := rand.New(rand.NewPCG(3, 4))
	l.add(&lease{credID: "only"})
	first := l.claim(rng)
	if first == nil || l.claim(rng) != nil {
		t.Fatal("a claimed lease was handed out twice")
	}
	if l.live() != 1 {
		t.Fatalf("live = %d, want 1 (claimed leases are live)", l.live())
	}
	l.release(first)
	if l.claim(rng) != first {
		t.Fatal("a released lease cannot be claimed again")
	}
}
