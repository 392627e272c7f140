package conformance

// Helpers of the fault tests (faults_test.go): a host whose plugin process gets extra
// environment, fault counters, simulator keys with their private half, and the invariant
// "the simulator holds exactly the keys of the live leases".

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// fault is one rule's counters (zero when the rule is gone).
func (s *atlasSim) fault(t *testing.T, ctx context.Context, id int) simFault {
	t.Helper()
	for _, f := range s.faults(t, ctx) {
		if f.ID == id {
			return f
		}
	}
	return simFault{}
}

// waitFaultMatched waits, bounded by within, until rule id has matched at least n requests.
func (s *atlasSim) waitFaultMatched(t *testing.T, ctx context.Context, id, n int, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if s.fault(t, ctx, id).Matched >= n {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createOwnerKey makes a second Organization Owner key of the seeded org (another valid
// config for the engine).
func (s *atlasSim) createOwnerKey(t *testing.T, ctx context.Context, desc string) simCreatedKey {
	t.Helper()
	return s.createKey(t, ctx, desc, []string{"ORG_OWNER"}, nil)
}

// requireLiveLeases checks the invariant of every fault test: the keys in the simulator,
// apart from the seeded one and the given config keys, are exactly the keys of live.
func (s *atlasSim) requireLiveLeases(t *testing.T, ctx context.Context, when string, live []*lease, configKeys ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, l := range live {
		want[l.keyID()] = true
	}
	var extra []simKey
	have := map[string]bool{}
	for _, k := range s.issuedKeys(t, ctx) {
		if slices.Contains(configKeys, k.ID) {
			continue
		}
		have[k.ID] = true
		if !want[k.ID] {
			extra = append(extra, k)
		}
	}
	var missing []string
	for id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(extra) > 0 {
		t.Errorf("%s: the simulator holds %d keys no live lease names (leaked): %s", when, len(extra), describeKeys(extra))
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%s: live leases name keys the simulator no longer holds (deleted prematurely): %s", when, strings.Join(missing, ", "))
	}
}

// requireNoWAL fails unless every write-ahead-log entry of the mount is gone.
func (m *engineMount) requireNoWAL(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	if ids, err := m.Storage.List(ctx, "wal/"); err != nil || len(ids) != 0 {
		t.Errorf("%s: WAL entries left: %v (%v)", when, ids, err)
	}
}

// leaseFrom checks an issue response as m.issue does and returns its lease, or explains why
// it is not one.
func leaseFrom(path string, resp *logical.Response) (*lease, string) {
	if resp == nil || resp.Secret == nil {
		return nil, "no secret in the response"
	}
	for _, field := range []string{"public_key", "private_key", "description"} {
		if s, _ := resp.Data[field].(string); s == "" {
			return nil, "data has no " + field
		}
	}
	l := &lease{path: path, secret: resp.Secret, data: resp.Data, issueTime: time.Now()}
	if l.keyID() == "" {
		return nil, "internal data has no programmatic_api_key_id"
	}
	return l, ""
}

// attempt is the outcome of one creds read as Vault would answer it.
type attempt struct {
	status int // 0: success
	err    error
	lease  *lease
	why    string // why a successful answer is not a usable lease
}

// tryIssue reads creds/<role> once and classifies the answer.
func (m *engineMount) tryIssue(ctx context.Context, role string) attempt {
	path := "creds/" + role
	req := m.Request(logical.ReadOperation, path, nil)
	resp, err := m.Handle(ctx, req)
	status, verr := vaultStatus(req, resp, err)
	if status != 0 || verr != nil {
		if status == 0 {
			status = http.StatusInternalServerError
		}
		a := attempt{status: status, err: verr}
		if resp != nil && resp.Secret != nil {
			a.why = "an error response carries a secret"
		}
		return a
	}
	l, why := leaseFrom(path, resp)
	return attempt{lease: l, why: why}
}

func (a attempt) String() string {
	if a.status == 0 {
		if a.lease == nil {
			return "success without a lease (" + a.why + ")"
		}
		return "lease for key " + a.lease.keyID()
	}
	return "HTTP " + strconv.Itoa(a.status) + ": " + errString(a.err)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
