package main

import (
	"math/rand/v2"
	"testing"
)

func TestLeakedKeysAreTheUnleasedOnes(t *testing.T) {
	alive := map[string]simKey{
		"seeded":  {ID: "seeded", Seeded: true},
		"config2": {ID: "config2"},
		"leased":  {ID: "leased"},
		"orphan":  {ID: "orphan", Desc: "vault-r1-x"},
	}
	live := []*lease{{keyID: "leased"}, {keyID: "gone-already"}}
	got := leakedKeys(alive, live, map[string]bool{"config2": true})
	if len(got) != 1 || got[0].ID != "orphan" {
		t.Fatalf("leaked = %+v, want only the orphan", got)
	}
	if got := leakedKeys(map[string]simKey{"seeded": {ID: "seeded", Seeded: true}}, nil, nil); len(got) != 0 {
		t.Fatalf("leaked = %+v with only the seeded key alive", got)
	}
}

func TestPrematureDeleteOnlyBeforeTheFirstRevoke(t *testing.T) {
	l := newLedger()
	rng := rand.New(rand.NewPCG(1, 2))
	present := &lease{keyID: "present", path: "creds/a"}
	missing := &lease{keyID: "missing", path: "creds/b"}
	l.add(present)
	l.add(missing)
	alive := map[string]simKey{"present": {ID: "present"}}
	for _, ls := range []*lease{l.claim(rng), l.claim(rng)} {
		l.beforeRevoke(ls, alive)
		l.release(ls)
	}
	got := l.prematureDeletes()
	if len(got) != 1 || got[0].KeyID != "missing" {
		t.Fatalf("premature = %+v, want the missing key once", got)
	}
	// Once a revoke was sent, the key may be gone (that revoke may have deleted it and failed).
	for _, ls := range l.claimAll() {
		l.beforeRevoke(ls, map[string]simKey{})
		l.revokedOK(ls)
	}
	if got := l.prematureDeletes(); len(got) != 1 {
		t.Fatalf("premature = %+v after revokes, want still one", got)
	}
	if l.live() != 0 || l.issued != 2 || l.revoked != 2 {
		t.Fatalf("live=%d issued=%d revoked=%d, want 0 2 2", l.live(), l.issued, l.revoked)
	}
}

func TestClaimIsExclusive(t *testing.T) {
	l := newLedger()
	rng := rand.New(rand.NewPCG(3, 4))
	l.add(&lease{keyID: "only"})
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
