package atlassim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFaultExhaustion(t *testing.T) {
	two, three := 2, 3
	var nth, times, forever Fault
	nth.Rule.Nth, nth.Matched = &two, 2
	times.Rule.Times, times.Fired = &three, 2
	forever.Matched, forever.Fired = 9, 9
	if !nth.Exhausted() || times.Exhausted() || forever.Exhausted() {
		t.Fatalf("exhausted: nth %v times %v unlimited %v, want true false false", nth.Exhausted(), times.Exhausted(), forever.Exhausted())
	}
	// With skip, nth counts after the skipped matches.
	one := 1
	skipped := nth
	skipped.Rule.Skip = &one
	if skipped.Exhausted() {
		t.Fatal("nth 2 after skip 1 is exhausted after 2 matches; want it to wait for the third")
	}
	skipped.Matched = 3
	if !skipped.Exhausted() {
		t.Fatal("nth 2 after skip 1 is not exhausted after 3 matches")
	}
}

// fakeSim writes a shell script standing in for atlas-sim.
func fakeSim(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "atlas-sim")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLaunchFailures: a simulator that dies, prints garbage or an incomplete line is
// reported, and none is left running.
func TestLaunchFailures(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"exits":      {`echo "no port" >&2; exit 3`, "exited before printing its startup line"},
		"garbage":    {`echo 'not json'; exec sleep 60`, "startup line"},
		"incomplete": {`echo '{"base_url":"http://127.0.0.1:1"}'; exec sleep 60`, "lacks a field"},
	} {
		t.Run(name, func(t *testing.T) {
			stderr := &Buffer{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sim, err := Launch(ctx, fakeSim(t, tc.body), Config{Stderr: stderr})
			if err == nil {
				_ = sim.Stop()
				t.Fatal("Launch succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if name == "exits" && !strings.Contains(stderr.String(), "no port") {
				t.Errorf("stderr %q was not passed on", stderr.String())
			}
		})
	}
}

// TestLaunchReadsTheStartupLine: the flags follow --listen, the line fills Info, and Stop
// ends the process.
func TestLaunchReadsTheStartupLine(t *testing.T) {
	args := filepath.Join(t.TempDir(), "args")
	line := `{"base_url":"http://127.0.0.1:1","admin_url":"http://127.0.0.1:1/admin","org_id":"o","project_id":"p","public_key":"pub","private_key":"priv","key_id":"k","sa_client_id":"mdb_sa_id_c","sa_client_secret":"mdb_sa_sk_s"}`
	bin := fakeSim(t, `echo "$@" >`+args+`; echo '`+line+`'; exec sleep 60`)
	sim, err := Launch(context.Background(), bin, Config{Flags: []string{"--no-rate-limit"}})
	if err != nil {
		t.Fatal(err)
	}
	if sim.OrgID != "o" || sim.ProjectID != "p" || sim.KeyID != "k" || sim.PrivateKey != "priv" ||
		sim.SAClientID != "mdb_sa_id_c" || sim.SAClientSecret != "mdb_sa_sk_s" || !sim.Alive() {
		t.Errorf("info %+v, alive %v", sim.Info, sim.Alive())
	}
	if err := sim.Stop(); err != nil {
		t.Fatal(err)
	}
	if sim.Alive() {
		t.Error("still alive after Stop")
	}
	got, err := os.ReadFile(args)
	if err != nil {
		t.Fatal(err)
	}
	if want := "--listen 127.0.0.1:0 --no-rate-limit\n"; string(got) != want {
		t.Errorf("arguments %q, want %q", got, want)
	}
}

// TestInventoryServiceAccounts: the inventory's service accounts decode, and the issued ones
// are those not seeded (as for keys).
func TestInventoryServiceAccounts(t *testing.T) {
	raw := `{"api_keys":[{"id":"k1","public_key":"seeded","seeded":true},{"id":"k2","public_key":"issued","roles":[{"orgId":"o","roleName":"ORG_MEMBER"}],"access_list":["127.0.0.1/32"]}],
"service_accounts":[{"client_id":"mdb_sa_id_1","org_id":"o","name":"root","roles":["ORG_OWNER"],"project_roles":{},"secrets":[{"id":"s","created_at":"x","expires_at":"2027-12-01T00:25:01Z","last_used_at":null,"expired":false}],"access_list":[],"active_tokens":2,"seeded":true,"created":"x"},
{"client_id":"mdb_sa_id_2","org_id":"o","name":"vault-r-x","roles":["ORG_MEMBER"],"project_roles":{"p":["GROUP_READ_ONLY"]},"secrets":[],"access_list":["127.0.0.1/32"],"active_tokens":0,"seeded":false}]}`
	var inv Inventory
	if err := json.Unmarshal([]byte(raw), &inv); err != nil {
		t.Fatal(err)
	}
	keys, accounts := inv.IssuedKeys(), inv.IssuedServiceAccounts()
	if len(keys) != 1 || keys[0].PublicKey != "issued" || keys[0].Roles[0].RoleName != "ORG_MEMBER" {
		t.Errorf("issued keys %+v", keys)
	}
	if len(accounts) != 1 || accounts[0].ClientID != "mdb_sa_id_2" || accounts[0].ProjectRoles["p"][0] != "GROUP_READ_ONLY" ||
		accounts[0].AccessList[0] != "127.0.0.1/32" {
		t.Errorf("issued service accounts %+v", accounts)
	}
	if inv.ServiceAccounts[0].ActiveTokens != 2 || inv.ServiceAccounts[0].Secrets[0].ExpiresAt == "" {
		t.Errorf("seeded account %+v", inv.ServiceAccounts[0])
	}
}
