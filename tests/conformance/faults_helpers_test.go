package conformance

// Helpers of the fault tests (faults_test.go): a host whose plugin process gets extra
// environment, fault counters, simulator keys with their private half, leases of either
// credential type, and the invariant "the simulator holds exactly the credentials (API keys
// and service accounts) of the live leases".

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

// saSecretType is the lease secret_type (and WAL kind) of service accounts.
const saSecretType = "service_account"

type simServiceAccount = atlassim.ServiceAccount

// isServiceAccount reports whether the lease holds a service account (else an API key).
func (l *lease) isServiceAccount() bool {
	return l.secret.InternalData["secret_type"] == saSecretType
}

// credID is the id of the lease's credential: the API key's id, or the service account's
// client id.
func (l *lease) credID() string {
	if l.isServiceAccount() {
		s, _ := l.secret.InternalData["client_id"].(string)
		return s
	}
	return l.keyID()
}

// issuedServiceAccounts are the service accounts created through the Atlas API.
func (s *atlasSim) issuedServiceAccounts(t *testing.T, ctx context.Context) []simServiceAccount {
	t.Helper()
	accounts, err := s.IssuedServiceAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return accounts
}

func (s *atlasSim) serviceAccount(t *testing.T, ctx context.Context, clientID string) (simServiceAccount, bool) {
	t.Helper()
	for _, a := range s.inventory(t, ctx).ServiceAccounts {
		if a.ClientID == clientID {
			return a, true
		}
	}
	return simServiceAccount{}, false
}

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

// requireLiveLeases checks the invariant of every fault test: the credentials in the
// simulator (API keys and service accounts), apart from the seeded ones and the given config
// keys, are exactly the credentials of live.
func (s *atlasSim) requireLiveLeases(t *testing.T, ctx context.Context, when string, live []*lease, configKeys ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, l := range live {
		want[l.credID()] = true
	}
	inv := s.inventory(t, ctx)
	var extraKeys []simKey
	var extraAccounts []simServiceAccount
	have := map[string]bool{}
	for _, k := range inv.APIKeys {
		if k.Seeded || slices.Contains(configKeys, k.ID) {
			continue
		}
		have[k.ID] = true
		if !want[k.ID] {
			extraKeys = append(extraKeys, k)
		}
	}
	for _, a := range inv.ServiceAccounts {
		if a.Seeded {
			continue
		}
		have[a.ClientID] = true
		if !want[a.ClientID] {
			extraAccounts = append(extraAccounts, a)
		}
	}
	var missing []string
	for id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(extraKeys) > 0 {
		t.Errorf("%s: the simulator holds %d keys no live lease names (leaked): %s", when, len(extraKeys), describeKeys(extraKeys))
	}
	if len(extraAccounts) > 0 {
		t.Errorf("%s: the simulator holds %d service accounts no live lease names (leaked): %s", when, len(extraAccounts), atlassim.DescribeServiceAccounts(extraAccounts))
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%s: live leases name credentials the simulator no longer holds (deleted prematurely): %s", when, strings.Join(missing, ", "))
	}
}

// walRecord is one write-ahead-log entry as the plugin stores it.
type walRecord struct {
	Kind string         `json:"type"`
	Data map[string]any `json:"data"`
}

// walRecords reads the mount's write-ahead-log entries.
func (m *engineMount) walRecords(t *testing.T, ctx context.Context) []walRecord {
	t.Helper()
	ids, err := m.Storage.List(ctx, "wal/")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]walRecord, 0, len(ids))
	for _, id := range ids {
		entry, err := m.Storage.Get(ctx, "wal/"+id)
		if err != nil || entry == nil {
			t.Fatalf("WAL entry %s: %v", id, err)
		}
		var r walRecord
		if err := json.Unmarshal(entry.Value, &r); err != nil {
			t.Fatalf("WAL entry %s: %v", id, err)
		}
		out = append(out, r)
	}
	return out
}

// walEntries counts the mount's write-ahead-log entries.
func (m *engineMount) walEntries(t *testing.T, ctx context.Context) int {
	t.Helper()
	ids, err := m.Storage.List(ctx, "wal/")
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// requireNoWAL fails unless every write-ahead-log entry of the mount is gone.
func (m *engineMount) requireNoWAL(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	if ids, err := m.Storage.List(ctx, "wal/"); err != nil || len(ids) != 0 {
		t.Errorf("%s: WAL entries left: %v (%v)", when, ids, err)
	}
}

// leaseFrom checks an issue response as m.issue does (for either credential type) and
// returns its lease, or explains why it is not one.
func leaseFrom(path string, resp *logical.Response) (*lease, string) {
	if resp == nil || resp.Secret == nil {
		return nil, "no secret in the response"
	}
	fields := []string{"public_key", "private_key", "description"}
	if resp.Secret.InternalData["secret_type"] == saSecretType {
		fields = []string{"client_id", "client_secret", "name", "description", "secret_expires_at"}
	}
	for _, field := range fields {
		if s, _ := resp.Data[field].(string); s == "" {
			return nil, "data has no " + field
		}
	}
	l := &lease{path: path, secret: resp.Secret, data: resp.Data, issueTime: time.Now()}
	switch {
	case l.credID() == "" && l.isServiceAccount():
		return nil, "internal data has no client_id"
	case l.credID() == "":
		return nil, "internal data has no programmatic_api_key_id"
	case l.isServiceAccount() && l.credID() != resp.Data["client_id"]:
		return nil, "internal data and data name different client ids"
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
		if a.lease.isServiceAccount() {
			return "lease for service account " + a.lease.credID()
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

// mustIssue reads creds/<role> and fails the test unless it returns a lease (either type).
func (m *engineMount) mustIssue(t *testing.T, ctx context.Context, role string) *lease {
	t.Helper()
	got := m.tryIssue(ctx, role)
	if got.status != 0 || got.lease == nil {
		t.Fatalf("read creds/%s: %v", role, got)
	}
	return got.lease
}
