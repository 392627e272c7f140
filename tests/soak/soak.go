package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/conformance"
	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

// login is a credential the engine's config can log in to Atlas with: an API key
// (publicKey, privateKey) or a service account (clientID, clientSecret).
type login struct {
	publicKey, privateKey  string
	clientID, clientSecret string
}

func (l login) serviceAccount() bool { return l.clientID != "" }

// config is one soak run's parameters.
type config struct {
	engine   string // production plugin binary
	simBin   string // atlas-sim binary
	seed     uint64
	ops      int
	duration time.Duration
	workers  int
	maxLive  int  // live leases above which workers revoke instead of issuing
	selfTest bool // inject out-of-band deletes and creates, of a key and of a service account
	// unsafeRollback runs immediate rollbacks during issuances, which can delete keys about
	// to be leased: a demonstration that premature_deletes catches what the plugin does.
	unsafeRollback bool
	logs           io.Writer
	progress       io.Writer // periodic progress lines (nil: none)
	// The plugin's RSS is sampled every rssEvery (0: 10s); after rssWarmup, it may grow by
	// at most rssLimitPct percent (0: reported, not judged).
	rssEvery    time.Duration
	rssWarmup   time.Duration
	rssLimitPct float64
}

// Plugin knobs: short Atlas timeouts so faults cost little time. The WAL min age must
// exceed the longest issuance (create, access list, assign or invite and a compensating
// delete, each bounded by the call timeout), or a periodic rollback could delete the
// credential of an issuance still running.
const (
	attemptTimeout   = "1s"
	callTimeout      = "4s"
	issueTimeout     = "20s"
	walRollbackAge   = "30s"
	maxIssuance      = 4*4*time.Second + 5*time.Second
	requestBound     = 90 * time.Second // a request slower than this is a hang
	finalRevokeTries = 6
)

// result is what a soak run found.
type result struct {
	operations  int
	faults      int
	leaked      []credential
	premature   []prematureDelete
	unexpected  []string // first messages of unexpected error classes
	unexpectedN int
	irrevocable int
	counts      map[string]*opCount
	issued      map[string]int // by credential kind
	revoked     int
	maxIssue    time.Duration
	// leakedGrants: roles people hold after every lease ended that they did not hold before
	// the soak, or original roles they lost.
	leakedGrants []string
	// The plugin's resident memory while the operations ran (see rss.go).
	rss                    []rssSample
	rssReadErrors          int
	rssStartKiB, rssEndKiB int64
	rssGrowthPct           float64
	rssMeasured            bool
	rssLimitPct            float64
}

func (r *result) failed() bool {
	return len(r.leaked) > 0 || len(r.premature) > 0 || r.unexpectedN > 0 || r.irrevocable > 0 || len(r.leakedGrants) > 0 ||
		r.rssTooHigh()
}

// rssTooHigh: with a limit, the memory grew beyond it after warm-up, or too few samples
// were taken after warm-up to tell.
func (r *result) rssTooHigh() bool {
	return r.rssLimitPct > 0 && (!r.rssMeasured || r.rssGrowthPct > r.rssLimitPct)
}

// line is the last line of output: leaked_credentials and premature_deletes count API keys
// and service accounts alike (the summary before it splits them).
func (r *result) line() string {
	rss := "rss_growth_pct=n/a"
	if r.rssMeasured {
		rss = fmt.Sprintf("rss_start_mib=%.1f rss_end_mib=%.1f rss_growth_pct=%.1f", float64(r.rssStartKiB)/1024, float64(r.rssEndKiB)/1024, r.rssGrowthPct)
	}
	return fmt.Sprintf("operations=%d faults=%d leaked_credentials=%d premature_deletes=%d leaked_grants=%d %s", r.operations, r.faults, len(r.leaked), len(r.premature), len(r.leakedGrants), rss)
}

// opCount tallies one kind of operation: succeeded, failed as faults can make it fail
// (Atlas errors), refused for a reason the soak expects (e.g. a role deleted meanwhile).
type opCount struct {
	ok, failed, refused int
}

type soak struct {
	cfg    config
	sim    *atlassim.Sim
	host   *conformance.Host
	mount  *conformance.Mount
	ledger *ledger

	// Issuances hold it shared; an immediate rollback holds it exclusively, since it
	// would delete the key of an issuance in flight.
	issuing sync.RWMutex

	// logins: the seeded API key, a second ORG_OWNER key, the seeded service account and a
	// second ORG_OWNER service account; config writes alternate between the two kinds.
	logins       [4]login
	secondKeyID  string
	configWrites atomic.Int64
	projects     []string
	roleNames    []string
	// user_access roles, the people they grant, and those people's roles before the soak.
	grantRoles []string
	people     []string
	before     map[string]string

	ops      atomic.Int64
	deadline time.Time

	mu          sync.Mutex
	counts      map[string]*opCount
	unexpected  []string
	unexpectedN int
	maxIssue    time.Duration
}

const maxUnexpectedKept = 20

func (s *soak) count(kind string, f func(*opCount)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[kind]
	if c == nil {
		c = &opCount{}
		s.counts[kind] = c
	}
	f(c)
}

func (s *soak) unexpectedf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unexpectedN++
	if len(s.unexpected) < maxUnexpectedKept {
		s.unexpected = append(s.unexpected, fmt.Sprintf(format, args...))
	}
}

// run starts the simulator and the plugin, runs the workers, then settles every lease and
// computes the counters. err is for setup failures only; findings are in the result.
func run(ctx context.Context, cfg config) (*result, error) {
	if cfg.logs == nil {
		cfg.logs = io.Discard
	}
	panics := &panicWatch{w: cfg.logs}
	cfg.logs = panics
	sm, err := startSim(ctx, cfg.simBin, cfg.logs)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := sm.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		}
	}()

	host, err := conformance.NewHost(conformance.HostConfig{
		Name:    "mongodbatlas",
		Command: cfg.engine,
		Env: []string{
			"MONGODBATLAS_ATTEMPT_TIMEOUT=" + attemptTimeout,
			"MONGODBATLAS_CALL_TIMEOUT=" + callTimeout,
			"MONGODBATLAS_ISSUE_TIMEOUT=" + issueTimeout,
			"MONGODBATLAS_WAL_ROLLBACK_MIN_AGE=" + walRollbackAge,
		},
		System: logical.StaticSystemView{
			DefaultLeaseTTLVal: time.Hour,
			MaxLeaseTTLVal:     24 * time.Hour,
			VersionString:      "1.21.1",
			PluginEnvironment:  &logical.PluginEnvironment{VaultVersion: "1.21.1"},
		},
		Logs: cfg.logs,
	})
	if err != nil {
		return nil, err
	}
	defer host.Close()
	mountCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	mount, err := host.Mount(mountCtx, "mongodbatlas")
	if err != nil {
		return nil, fmt.Errorf("mount the engine: %w", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mount.Cleanup(c)
	}()

	s := &soak{cfg: cfg, sim: sm, host: host, mount: mount, ledger: newLedger(), counts: map[string]*opCount{}}
	if err := s.setup(ctx); err != nil {
		return nil, err
	}
	if cfg.selfTest {
		if err := s.injectOutOfBand(ctx); err != nil {
			return nil, fmt.Errorf("self-test injection: %w", err)
		}
	}

	reattach := mount.Process().ReattachConfig()
	if reattach == nil || reattach.Pid <= 0 {
		return nil, fmt.Errorf("the plugin process has no pid to sample its memory")
	}
	every := cfg.rssEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	s.deadline = time.Now().Add(cfg.duration)
	sampler := startRSSSampler(reattach.Pid, every, &s.ops)
	stopProgress := s.reportProgress()
	var wg sync.WaitGroup
	for w := 0; w < cfg.workers; w++ {
		wg.Add(1)
		rng := rand.New(rand.NewPCG(cfg.seed, uint64(w)+1))
		go func() {
			defer wg.Done()
			s.worker(ctx, rng)
		}()
	}
	wg.Wait()
	stopProgress()
	samples, rssErrs := sampler.stop()
	res, err := s.settle(ctx)
	if err == nil {
		res.rss, res.rssReadErrors, res.rssLimitPct = samples, rssErrs, cfg.rssLimitPct
		res.rssStartKiB, res.rssEndKiB, res.rssGrowthPct, res.rssMeasured = rssGrowth(samples, cfg.rssWarmup)
	}
	if err == nil && panics.seen.Load() > 0 {
		res.unexpectedN++
		res.unexpected = append(res.unexpected, fmt.Sprintf("%d panics in the plugin or simulator log", panics.seen.Load()))
	}
	return res, err
}

// panicWatch passes logs through and counts Rust panic messages in them (a panic inside a
// request must not take the process down, but it is still a bug the soak reports).
type panicWatch struct {
	w    io.Writer
	seen atomic.Int64
}

func (p *panicWatch) Write(b []byte) (int, error) {
	if n := strings.Count(string(b), "panicked at"); n > 0 {
		p.seen.Add(int64(n))
	}
	return p.w.Write(b)
}

// setup writes the config (the seeded key), makes a second ORG_OWNER key and a second
// ORG_OWNER service account for config edits (beside the seeded ones) and a second project,
// and creates every role.
func (s *soak) setup(ctx context.Context) error {
	if s.sim.SAClientID == "" || s.sim.SAClientSecret == "" {
		return errors.New("the simulator's startup line has no sa_client_id/sa_client_secret")
	}
	second, err := s.sim.CreateKey(ctx, "soak second config key", []string{"ORG_OWNER"}, nil)
	if err != nil {
		return err
	}
	// Made through the admin API, so the inventory marks it seeded (never counted as leaked).
	secondSA, err := s.sim.CreateServiceAccount(ctx, "soak second config account", []string{"ORG_OWNER"})
	if err != nil {
		return err
	}
	s.secondKeyID = second.ID
	s.logins = [4]login{
		{publicKey: s.sim.PublicKey, privateKey: s.sim.PrivateKey},
		{publicKey: second.PublicKey, privateKey: second.PrivateKey},
		{clientID: s.sim.SAClientID, clientSecret: s.sim.SAClientSecret},
		{clientID: secondSA.ClientID, clientSecret: secondSA.ClientSecret},
	}
	project, err := s.sim.CreateProject(ctx, "soak-second-project")
	if err != nil {
		return err
	}
	s.projects = []string{s.sim.ProjectID, project}
	if status, err := s.do(ctx, logical.UpdateOperation, "config", s.configData(s.logins[0])); status != 0 || err != nil {
		return fmt.Errorf("write config: Vault would answer %d: %v", status, err)
	}
	if err := s.setupPeople(ctx); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(s.cfg.seed, 0))
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("r%d", i)
		s.roleNames = append(s.roleNames, name)
		if status, err := s.do(ctx, logical.UpdateOperation, "roles/"+name, s.randomRole(rng)); status != 0 || err != nil {
			return fmt.Errorf("write role %s: %d %v", name, status, err)
		}
	}
	return nil
}

// setupPeople adds two organization members (one with a project role of her own) and two
// user_access roles granting them organization and project roles, overlapping.
func (s *soak) setupPeople(ctx context.Context) error {
	members := map[string]map[string][]string{
		"alice@soak.example": {s.projects[0]: {"GROUP_READ_ONLY"}},
		"bob@soak.example":   nil,
	}
	for username, projectRoles := range members {
		if _, err := s.sim.AddOrgMember(ctx, username, []string{"ORG_MEMBER"}, projectRoles); err != nil {
			return err
		}
		s.people = append(s.people, username)
	}
	sort.Strings(s.people)
	roles := map[string]map[string]any{
		"jit-oncall": {"credential_type": "user_access", "organization_id": s.sim.OrgID, "roles": "ORG_BILLING_ADMIN",
			"project_ids": strings.Join(s.projects, ","), "project_roles": "GROUP_OWNER", "allowed_users": "*@soak.example"},
		"jit-reader": {"credential_type": "user_access", "project_id": s.projects[0],
			"project_roles": "GROUP_OWNER,GROUP_DATA_ACCESS_READ_ONLY", "allowed_users": "*@soak.example", "ttl": "10m"},
	}
	for _, name := range []string{"jit-oncall", "jit-reader"} {
		if status, err := s.do(ctx, logical.UpdateOperation, "roles/"+name, roles[name]); status != 0 || err != nil {
			return fmt.Errorf("write role %s: %d %v", name, status, err)
		}
		s.grantRoles = append(s.grantRoles, name)
	}
	before, err := s.peopleRoles(ctx)
	s.before = before
	return err
}

// peopleRoles describes each person's organization and project roles, sorted, by username.
func (s *soak) peopleRoles(ctx context.Context) (map[string]string, error) {
	inv, err := s.sim.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, username := range s.people {
		u := inv.OrgUser(s.sim.OrgID, username)
		if u == nil {
			return nil, fmt.Errorf("%s is gone from the organization", username)
		}
		parts := []string{"org:" + strings.Join(slices.Sorted(slices.Values(u.OrgRoles)), ",")}
		for project, roles := range u.ProjectRoles {
			parts = append(parts, project+":"+strings.Join(slices.Sorted(slices.Values(roles)), ","))
		}
		sort.Strings(parts)
		out[username] = strings.Join(parts, " ")
	}
	return out, nil
}

// leakedGrants compares people's roles after every lease ended with theirs before the soak.
func (s *soak) leakedGrants(ctx context.Context) ([]string, error) {
	after, err := s.peopleRoles(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, username := range s.people {
		if after[username] != s.before[username] {
			out = append(out, fmt.Sprintf("%s holds %q, held %q before the soak", username, after[username], s.before[username]))
		}
	}
	return out, nil
}

// configData is the config write of a login.
func (s *soak) configData(l login) map[string]any {
	if l.serviceAccount() {
		return map[string]any{"client_id": l.clientID, "client_secret": l.clientSecret, "base_url": s.sim.BaseURL}
	}
	return map[string]any{"public_key": l.publicKey, "private_key": l.privateKey, "base_url": s.sim.BaseURL}
}

// randomRole is a valid role of one of the four modes (organization, project, organization
// with roles in one project, or in every project through project_ids), with or without an
// access list and TTLs, issuing API keys or (half of the time) service accounts.
func (s *soak) randomRole(rng *rand.Rand) map[string]any {
	project := s.projects[rng.IntN(len(s.projects))]
	// An update keeps the fields it does not name, so every field is given.
	role := map[string]any{"credential_type": "api_key", "organization_id": "", "project_id": "", "project_ids": "", "project_roles": "", "ip_addresses": "", "cidr_blocks": "", "ttl": 0, "max_ttl": 0}
	if rng.IntN(2) == 0 {
		role["credential_type"] = "service_account"
	}
	switch rng.IntN(4) {
	case 0:
		role["organization_id"] = s.sim.OrgID
		role["roles"] = pick(rng, "ORG_MEMBER", "ORG_READ_ONLY", "ORG_MEMBER,ORG_BILLING_ADMIN")
	case 1:
		role["project_id"] = project
		role["roles"] = pick(rng, "GROUP_READ_ONLY", "GROUP_DATA_ACCESS_READ_ONLY", "GROUP_READ_ONLY,GROUP_DATA_ACCESS_READ_WRITE")
	case 2:
		role["organization_id"], role["project_id"] = s.sim.OrgID, project
		role["roles"] = "ORG_MEMBER"
		role["project_roles"] = pick(rng, "GROUP_READ_ONLY", "GROUP_DATA_ACCESS_ADMIN")
	default:
		role["organization_id"], role["project_ids"] = s.sim.OrgID, strings.Join(s.projects, ",")
		role["roles"] = "ORG_MEMBER"
		role["project_roles"] = pick(rng, "GROUP_READ_ONLY", "GROUP_DATA_ACCESS_ADMIN")
	}
	if rng.IntN(2) == 0 {
		role["ip_addresses"] = fmt.Sprintf("192.0.2.%d", 1+rng.IntN(250))
		if rng.IntN(2) == 0 {
			role["cidr_blocks"] = "198.51.100.0/24,203.0.113.0/25"
		}
	}
	if rng.IntN(2) == 0 {
		role["ttl"] = pick(rng, "1m", "10m", "1h", "3600")
		role["max_ttl"] = pick(rng, "2h", "24h")
	}
	return role
}

func pick(rng *rand.Rand, options ...string) string { return options[rng.IntN(len(options))] }

// injectOutOfBand issues a key and a service account (from roles of their own, which the
// workers never edit), deletes both behind the soak's back, and creates a key and a service
// account no lease holds: the counters must then show premature_deletes=2 and
// leaked_credentials=2, one of each kind.
func (s *soak) injectOutOfBand(ctx context.Context) error {
	roles := map[string]map[string]any{
		"self-test-key": {"organization_id": s.sim.OrgID, "roles": "ORG_MEMBER"},
		"self-test-sa":  {"credential_type": "service_account", "project_id": s.sim.ProjectID, "roles": "GROUP_READ_ONLY"},
	}
	for _, name := range []string{"self-test-key", "self-test-sa"} {
		if status, err := s.do(ctx, logical.UpdateOperation, "roles/"+name, roles[name]); status != 0 || err != nil {
			return fmt.Errorf("write role %s: %d %v", name, status, err)
		}
		resp, status, err := s.doResp(ctx, logical.ReadOperation, "creds/"+name, nil)
		if status != 0 || err != nil {
			return fmt.Errorf("issue %s: %d %v", name, status, err)
		}
		ls, err := leaseFrom("creds/"+name, resp)
		if err != nil {
			return err
		}
		s.ledger.add(ls)
		if ls.kind == kindServiceAccount {
			err = s.sim.DeleteServiceAccount(ctx, ls.credID)
		} else {
			err = s.sim.DeleteKey(ctx, ls.credID)
		}
		if err != nil {
			return err
		}
	}
	if _, err := s.sim.CreateKey(ctx, "out-of-band key", []string{"ORG_MEMBER"}, nil); err != nil {
		return err
	}
	return createAccountThroughAtlas(ctx, s.sim, "out-of-band-account")
}

// createAccountThroughAtlas makes a service account as an Atlas client would (the admin API
// would mark it seeded, and the soak never counts seeded credentials): a token for the
// seeded service account, then POST orgs/{org}/serviceAccounts with it.
func createAccountThroughAtlas(ctx context.Context, sim *atlassim.Sim, name string) error {
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 20 * time.Second}
	call := func(req *http.Request, want int, out any) error {
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, body)
		}
		return json.Unmarshal(body, out)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sim.BaseURL+"/api/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.SetBasicAuth(sim.SAClientID, sim.SAClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(req, http.StatusOK, &token); err != nil {
		return err
	}
	const media = "application/vnd.atlas.2024-08-05+json"
	body, err := json.Marshal(map[string]any{"name": name, "description": "out-of-band service account", "roles": []string{"ORG_MEMBER"}, "secretExpiresAfterHours": 8})
	if err != nil {
		return err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, sim.BaseURL+"/api/atlas/v2/orgs/"+sim.OrgID+"/serviceAccounts", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token.AccessToken)
	req.Header.Set("Content-Type", media)
	req.Header.Set("Accept", media)
	var created struct {
		ClientID string `json:"clientId"`
	}
	if err := call(req, http.StatusCreated, &created); err != nil {
		return err
	}
	if created.ClientID == "" {
		return errors.New("the out-of-band service account was created without a client id")
	}
	return nil
}

// do sends a request as Vault's router would and returns the HTTP status Vault would
// answer (0 = success) with its error.
func (s *soak) do(ctx context.Context, op logical.Operation, path string, data map[string]any) (int, error) {
	_, status, err := s.doResp(ctx, op, path, data)
	return status, err
}

// errTransport marks a failure below Vault's error mapping: the plugin did not answer.
var errTransport = errors.New("plugin transport failure")

func (s *soak) doResp(ctx context.Context, op logical.Operation, path string, data map[string]any) (*logical.Response, int, error) {
	ctx, cancel := context.WithTimeout(ctx, requestBound)
	defer cancel()
	req := s.mount.Request(op, path, data)
	resp, err := s.mount.Handle(ctx, req)
	return s.judge(ctx, req, resp, err)
}

// send is for requests built by hand (renew, revoke, rollback): no existence check.
func (s *soak) send(ctx context.Context, req *logical.Request) (*logical.Response, int, error) {
	ctx, cancel := context.WithTimeout(ctx, requestBound)
	defer cancel()
	id, _ := uuid.GenerateUUID()
	req.ID = id
	req.Storage = s.mount.Storage
	req.MountPoint = s.mount.Path + "/"
	req.MountType = "plugin"
	resp, err := s.mount.Backend.HandleRequest(ctx, req)
	return s.judge(ctx, req, resp, err)
}

func (s *soak) judge(ctx context.Context, req *logical.Request, resp *logical.Response, err error) (*logical.Response, int, error) {
	if ctx.Err() != nil {
		return resp, -1, fmt.Errorf("%w: no answer to %s %s within %v", errTransport, req.Operation, req.Path, requestBound)
	}
	status, verr := logical.RespondErrorCommon(req, resp, err)
	if err != nil && status == http.StatusInternalServerError && strings.Contains(err.Error(), "rpc error") {
		return resp, -1, fmt.Errorf("%w: %s %s: %v", errTransport, req.Operation, req.Path, err)
	}
	if verr == nil && status == 0 && err != nil {
		verr = err
		status = http.StatusInternalServerError
	}
	return resp, status, verr
}

// leaseFrom checks an issue response, of either credential kind, and makes its lease.
func leaseFrom(path string, resp *logical.Response) (*lease, error) {
	if resp == nil || resp.Secret == nil {
		return nil, fmt.Errorf("read %s returned no secret", path)
	}
	kind, _ := resp.Secret.InternalData["secret_type"].(string)
	idField, fields := "programmatic_api_key_id", []string{"public_key", "private_key", "description"}
	switch kind {
	case kindAPIKey:
	case kindServiceAccount:
		idField, fields = "client_id", []string{"client_id", "client_secret", "name", "description", "secret_expires_at"}
	case kindUserAccess:
		idField, fields = "grant_id", []string{"username", "user_id", "expires_at"}
	default:
		return nil, fmt.Errorf("read %s: the secret's type is %q", path, kind)
	}
	id, _ := resp.Secret.InternalData[idField].(string)
	if id == "" {
		return nil, fmt.Errorf("read %s: the secret has no %s", path, idField)
	}
	for _, field := range fields {
		if v, _ := resp.Data[field].(string); v == "" {
			return nil, fmt.Errorf("read %s: the response has no %s", path, field)
		}
	}
	return &lease{path: path, secret: resp.Secret, data: resp.Data, issueTime: time.Now(), kind: kind, credID: id}, nil
}

// worker runs random operations until the operation count or the wall time is used up.
func (s *soak) worker(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil && time.Now().Before(s.deadline) {
		if s.ops.Add(1) > int64(s.cfg.ops) {
			s.ops.Add(-1)
			return
		}
		s.operation(ctx, rng)
	}
}

// operation weights (out of 100).
func (s *soak) operation(ctx context.Context, rng *rand.Rand) {
	n := rng.IntN(100)
	switch {
	case n < 36:
		if s.ledger.live() >= s.cfg.maxLive {
			s.revoke(ctx, rng)
			return
		}
		s.issue(ctx, rng)
	case n < 52:
		s.renew(ctx, rng)
	case n < 76:
		s.revoke(ctx, rng)
	case n < 84:
		s.editRole(ctx, rng)
	case n < 85:
		s.deleteRole(ctx, rng)
	case n < 89:
		s.editConfig(ctx, rng)
	case n < 90:
		s.readConfig(ctx)
	case n < 91:
		s.tidy(ctx, rng)
	case n < 95:
		s.rollback(ctx, rng)
	default:
		s.injectFault(ctx, rng)
	}
}

func (s *soak) issue(ctx context.Context, rng *rand.Rand) {
	path := "creds/" + s.roleNames[rng.IntN(len(s.roleNames))]
	var data map[string]any
	if rng.IntN(5) == 0 {
		path = "creds/" + s.grantRoles[rng.IntN(len(s.grantRoles))]
		data = map[string]any{"username": s.people[rng.IntN(len(s.people))]}
	}
	s.issuing.RLock()
	start := time.Now()
	resp, status, err := s.doResp(ctx, logical.UpdateOperation, path, data)
	took := time.Since(start)
	s.issuing.RUnlock()
	s.mu.Lock()
	s.maxIssue = max(s.maxIssue, took)
	s.mu.Unlock()
	if took > maxIssuance {
		s.unexpectedf("issue %s took %v, longer than the bound the WAL min age relies on (%v)", path, took, maxIssuance)
	}
	switch {
	case status == 0 && err == nil:
		ls, lerr := leaseFrom(path, resp)
		if lerr != nil {
			s.unexpectedf("%v", lerr)
			return
		}
		s.ledger.add(ls)
		s.count("issue", func(c *opCount) { c.ok++ })
	case status == http.StatusBadRequest && strings.Contains(err.Error(), "does not exist"):
		s.count("issue", func(c *opCount) { c.refused++ })
	case status == http.StatusInternalServerError && atlasFailure(err):
		s.count("issue", func(c *opCount) { c.failed++ })
	default:
		s.unexpectedf("issue %s: status %d: %v", path, status, err)
	}
}

// atlasFailure is an internal error caused by Atlas (the faults), not by the plugin itself.
func atlasFailure(err error) bool {
	msg := err.Error()
	return !errors.Is(err, errTransport) && !strings.Contains(msg, "panic") &&
		(strings.Contains(msg, "Atlas") || strings.Contains(msg, "WAL rollback failed"))
}

func (s *soak) renew(ctx context.Context, rng *rand.Rand) {
	ls := s.ledger.claim(rng)
	if ls == nil {
		s.count("renew", func(c *opCount) { c.refused++ })
		return
	}
	defer s.ledger.release(ls)
	secret := *ls.secret
	secret.IssueTime = ls.issueTime
	secret.Increment = []time.Duration{0, 10 * time.Minute, time.Hour}[rng.IntN(3)]
	secret.LeaseID = ""
	resp, status, err := s.send(ctx, logical.RenewRequest(ls.path, &secret, ls.data))
	switch {
	case status == 0 && err == nil:
		if resp == nil || resp.Secret == nil || resp.Secret.TTL <= 0 {
			s.unexpectedf("renew %s: no secret or no TTL in the answer", ls.path)
			return
		}
		s.count("renew", func(c *opCount) { c.ok++ })
	case status == http.StatusBadRequest && strings.Contains(err.Error(), "no longer exists"):
		s.count("renew", func(c *opCount) { c.refused++ })
	default:
		s.unexpectedf("renew %s: status %d: %v", ls.path, status, err)
	}
}

func (s *soak) revoke(ctx context.Context, rng *rand.Rand) {
	ls := s.ledger.claim(rng)
	if ls == nil {
		s.count("revoke", func(c *opCount) { c.refused++ })
		return
	}
	if ok := s.revokeLease(ctx, ls); ok {
		s.ledger.revokedOK(ls)
	} else {
		s.ledger.release(ls)
	}
}

// revokeLease checks the credential is still there if the lease was never revoked, then
// revokes.
func (s *soak) revokeLease(ctx context.Context, ls *lease) bool {
	if !ls.revokeSent {
		alive, err := liveCredentials(ctx, s.sim)
		if err != nil {
			s.unexpectedf("inventory before revoke: %v", err)
			return false
		}
		s.ledger.beforeRevoke(ls, alive)
	}
	secret := *ls.secret
	secret.IssueTime = ls.issueTime
	_, status, err := s.send(ctx, logical.RevokeRequest(ls.path, &secret, ls.data))
	switch {
	case status == 0 && err == nil:
		s.count("revoke", func(c *opCount) { c.ok++ })
		return true
	case status == http.StatusInternalServerError && atlasFailure(err):
		s.count("revoke", func(c *opCount) { c.failed++ })
	default:
		s.unexpectedf("revoke %s (%s %s): status %d: %v", ls.path, ls.kind, ls.credID, status, err)
	}
	return false
}

func (s *soak) editRole(ctx context.Context, rng *rand.Rand) {
	name := s.roleNames[rng.IntN(len(s.roleNames))]
	s.simpleOp(ctx, "role_write", logical.UpdateOperation, "roles/"+name, s.randomRole(rng))
}

func (s *soak) deleteRole(ctx context.Context, rng *rand.Rand) {
	// r0 stays, so the self-test lease and most renewals keep a role.
	name := s.roleNames[1+rng.IntN(len(s.roleNames)-1)]
	s.simpleOp(ctx, "role_delete", logical.DeleteOperation, "roles/"+name, nil)
}

// editConfig rewrites the config, alternately with an API key and a service account (either
// of the two of each kind).
func (s *soak) editConfig(ctx context.Context, rng *rand.Rand) {
	kind, which := "config_write_api_key", rng.IntN(2)
	if s.configWrites.Add(1)%2 == 1 {
		kind, which = "config_write_service_account", 2+rng.IntN(2)
	}
	s.simpleOp(ctx, kind, logical.UpdateOperation, "config", s.configData(s.logins[which]))
}

// readConfig also checks that the private key never comes back.
func (s *soak) readConfig(ctx context.Context) {
	resp, status, err := s.doResp(ctx, logical.ReadOperation, "config", nil)
	if status != 0 || err != nil {
		s.unexpectedf("read config: status %d: %v", status, err)
		return
	}
	if resp == nil || resp.Data == nil {
		s.unexpectedf("read config: no data")
		return
	}
	if _, ok := resp.Data["private_key"]; ok {
		s.unexpectedf("read config returned private_key")
		return
	}
	s.count("config_read", func(c *opCount) { c.ok++ })
}

// tidy runs the orphan sweeper with no safety margin while issuances, revocations and
// rollbacks are in flight: every credential then is in a lease, the WAL or the plugin's
// record, so it must find no orphan and nothing expired (the ledger's premature-delete check
// would also catch one it deleted). A listing or a delete that Atlas fails is reported in
// the answer, not as an error.
func (s *soak) tidy(ctx context.Context, rng *rand.Rand) {
	data := map[string]any{"safety_margin": "0s", "dry_run": rng.IntN(2) == 0}
	resp, status, err := s.doResp(ctx, logical.UpdateOperation, "tidy", data)
	if status != 0 || err != nil || resp == nil {
		s.unexpectedf("tidy: status %d: %v", status, err)
		return
	}
	for _, field := range []string{"orphaned", "expired"} {
		if n := fmt.Sprint(resp.Data[field]); n != "0" {
			s.unexpectedf("tidy with in-flight operations found %s %s credentials: %v", n, field, resp.Data["credentials"])
		}
	}
	s.count("tidy", func(c *opCount) { c.ok++ })
}

// simpleOp is a request that involves no Atlas call: anything but success is unexpected.
func (s *soak) simpleOp(ctx context.Context, kind string, op logical.Operation, path string, data map[string]any) {
	status, err := s.do(ctx, op, path, data)
	if status != 0 || err != nil {
		s.unexpectedf("%s %s: status %d: %v", op, path, status, err)
		return
	}
	s.count(kind, func(c *opCount) { c.ok++ })
}

// rollback is Vault's periodic rollback, or (half of the time) an immediate one, which
// waits until no issuance is in flight.
func (s *soak) rollback(ctx context.Context, rng *rand.Rand) {
	kind := "rollback"
	req := logical.RollbackRequest("")
	if rng.IntN(2) == 0 {
		kind = "rollback_immediate"
		req.Data["immediate"] = true
		if !s.cfg.unsafeRollback {
			s.issuing.Lock()
			defer s.issuing.Unlock()
		}
	}
	_, status, err := s.send(ctx, req)
	switch {
	case status == 0 && err == nil:
		s.count(kind, func(c *opCount) { c.ok++ })
	case status == http.StatusInternalServerError && atlasFailure(err):
		s.count(kind, func(c *opCount) { c.failed++ })
	default:
		s.unexpectedf("%s: status %d: %v", kind, status, err)
	}
}

// faultEndpoints are the Atlas calls of issuance, revocation and rollback, of both credential
// kinds, and the token endpoint of the service-account login.
var faultEndpoints = []struct{ method, path string }{
	{"POST", `^/api/atlas/v2/orgs/[^/]+/apiKeys$`},                                   // create org key
	{"POST", `^/api/atlas/v2/groups/[^/]+/apiKeys$`},                                 // create project key
	{"POST", `^/api/atlas/v2/orgs/[^/]+/apiKeys/[^/]+/accessList$`},                  // access list
	{"POST", `^/api/atlas/v2/groups/[^/]+/apiKeys/[^/]+$`},                           // assign to project
	{"DELETE", `^/api/atlas/v2/orgs/[^/]+/apiKeys/[^/]+$`},                           // delete (revoke, cleanup)
	{"GET", `^/api/atlas/v2/(orgs|groups)/[^/]+/apiKeys$`},                           // listings (recovery, rollback)
	{"POST", `^/api/atlas/v2/(orgs|groups)/[^/]+/serviceAccounts$`},                  // create org or project account
	{"GET", `^/api/atlas/v2/groups/[^/]+$`},                                          // a project account's organization
	{"POST", `^/api/atlas/v2/(orgs|groups)/[^/]+/serviceAccounts/[^/]+/accessList$`}, // access list
	{"POST", `^/api/atlas/v2/groups/[^/]+/serviceAccounts/[^/]+:invite$`},            // invite to project
	{"DELETE", `^/api/atlas/v2/(orgs|groups)/[^/]+/serviceAccounts/[^/]+$`},          // delete, remove from project
	{"GET", `^/api/atlas/v2/(orgs|groups)/[^/]+/serviceAccounts$`},                   // find by name (cleanup, rollback)
	{"POST", `^/api/oauth/token$`},                                                   // service-account login
	{"GET", `^/api/atlas/v2/(orgs|groups)/[^/]+/users(/[^/:]+)?$`},                   // a person's roles
	{"POST", `^/api/atlas/v2/(orgs|groups)/[^/]+/users(/[^/]+:(add|remove)Role)?$`},  // grant or take one role, add to a project
	{"DELETE", `^/api/atlas/v2/groups/[^/]+/users/[^/]+$`},                           // remove from a project
	{"", `^/api/`}, // anything
}

func (s *soak) injectFault(ctx context.Context, rng *rand.Rand) {
	ep := faultEndpoints[rng.IntN(len(faultEndpoints))]
	rule := map[string]any{"path": ep.path}
	if ep.method != "" {
		rule["method"] = ep.method
	}
	switch rng.IntN(6) {
	case 0:
		rule["action"], rule["status"], rule["retry_after"] = "status", 429, 1
	case 1:
		rule["action"], rule["status"] = "status", 500
	case 2:
		rule["action"], rule["status"] = "status", 503
	case 3:
		rule["action"] = "reset"
	case 4:
		rule["action"] = "reset_after"
	default:
		// Some beyond the attempt timeout, some within.
		rule["action"], rule["latency_ms"] = "latency", 100+rng.IntN(2400)
	}
	// Mostly a few failures the client's retries absorb; sometimes more than its six attempts.
	switch rng.IntN(4) {
	case 0, 1:
		rule["nth"] = 1 + rng.IntN(6)
	case 2:
		rule["times"] = 1 + rng.IntN(3)
	default:
		rule["times"] = 4 + rng.IntN(6)
	}
	if _, err := s.sim.AddFault(ctx, rule); err != nil {
		s.unexpectedf("add fault %v: %v", rule, err)
		return
	}
	s.count("fault", func(c *opCount) { c.ok++ })
	s.pruneFaults(ctx)
}

// pruneFaults removes rules that can no longer fire, so the simulator's rule list stays short.
func (s *soak) pruneFaults(ctx context.Context) {
	list, err := s.sim.Faults(ctx)
	if err != nil || len(list) < 16 {
		return
	}
	for _, f := range list {
		if f.Exhausted() {
			_ = s.sim.RemoveFault(ctx, f.ID)
		}
	}
}

// settle ends the run as an operator would: no more faults, every lease revoked (retried a
// bounded number of times), an immediate rollback pass; then counts what is left, API keys
// and service accounts alike.
func (s *soak) settle(ctx context.Context) (*result, error) {
	if err := s.sim.ClearFaults(ctx); err != nil {
		return nil, err
	}
	for _, ls := range s.ledger.claimAll() {
		ok := false
		for try := 0; try < finalRevokeTries && !ok; try++ {
			if try > 0 {
				wait(ctx, time.Duration(try)*200*time.Millisecond)
			}
			ok = s.revokeLease(ctx, ls)
		}
		if ok {
			s.ledger.revokedOK(ls)
		} else {
			s.ledger.release(ls)
		}
	}
	irrevocable := s.ledger.live()
	rolledBack := false
	for try := 0; try < 3 && !rolledBack; try++ {
		req := logical.RollbackRequest("")
		req.Data["immediate"] = true
		_, status, err := s.send(ctx, req)
		rolledBack = status == 0 && err == nil
		if !rolledBack {
			s.unexpectedf("final rollback (try %d, no faults active): status %d: %v", try+1, status, err)
		}
	}
	alive, err := liveCredentials(ctx, s.sim)
	if err != nil {
		return nil, err
	}
	leakedGrants, err := s.leakedGrants(ctx)
	if err != nil {
		return nil, err
	}
	// The seeded key and accounts (the second config account included) are marked seeded.
	excluded := map[string]bool{s.secondKeyID: true}
	stats, err := s.sim.Stats(ctx)
	if err != nil {
		return nil, err
	}
	if p := s.mount.Process(); p == nil || p.Exited() {
		s.unexpectedf("the plugin process exited during the soak")
	}
	if !s.sim.Alive() {
		s.unexpectedf("atlas-sim exited during the soak")
	}
	s.checkCoverage()
	s.mu.Lock()
	defer s.mu.Unlock()
	return &result{
		operations:   int(s.ops.Load()),
		faults:       int(stats.FaultsFired),
		leaked:       leakedCredentials(alive, s.ledger.all(), excluded),
		premature:    s.ledger.prematureDeletes(),
		unexpected:   s.unexpected,
		unexpectedN:  s.unexpectedN,
		irrevocable:  irrevocable,
		counts:       s.counts,
		issued:       s.ledger.issued,
		revoked:      s.ledger.revoked,
		maxIssue:     s.maxIssue,
		leakedGrants: leakedGrants,
	}, nil
}

// startSim launches atlas-sim (its stderr to logs) without its rate limit (the soak injects
// its own 429s) and without its journal (the soak reads the inventory).
func startSim(ctx context.Context, binary string, logs io.Writer) (*atlassim.Sim, error) {
	return atlassim.Launch(ctx, binary, atlassim.Config{
		Flags:        []string{"--no-rate-limit", "--journal-capacity", "0"},
		Stderr:       logs,
		AdminTimeout: 20 * time.Second,
	})
}

// checkCoverage reports a run long enough to mix everything (1000 operations or more) that
// did not issue both credential kinds or write the config with both logins: its zero
// counters would prove less than they say.
func (s *soak) checkCoverage() {
	if s.ops.Load() < 1000 {
		return
	}
	s.ledger.mu.Lock()
	issued := map[string]int{kindAPIKey: s.ledger.issued[kindAPIKey], kindServiceAccount: s.ledger.issued[kindServiceAccount], kindUserAccess: s.ledger.issued[kindUserAccess]}
	s.ledger.mu.Unlock()
	for kind, n := range issued {
		if n == 0 {
			s.unexpectedf("no %s lease was issued in %d operations", kind, s.ops.Load())
		}
	}
	for _, kind := range []string{"config_write_api_key", "config_write_service_account"} {
		s.mu.Lock()
		c := s.counts[kind]
		s.mu.Unlock()
		if c == nil || c.ok == 0 {
			s.unexpectedf("no %s succeeded in %d operations", kind, s.ops.Load())
		}
	}
}

// liveCredentials are the API keys and service accounts alive in the simulator, by id.
func liveCredentials(ctx context.Context, sim *atlassim.Sim) (map[string]credential, error) {
	inv, err := sim.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]credential, len(inv.APIKeys)+len(inv.ServiceAccounts))
	for _, k := range inv.APIKeys {
		out[k.ID] = credential{Kind: kindAPIKey, ID: k.ID, Desc: k.Desc, Seeded: k.Seeded}
	}
	for _, a := range inv.ServiceAccounts {
		out[a.ClientID] = credential{Kind: kindServiceAccount, ID: a.ClientID, Desc: a.Name, Seeded: a.Seeded}
	}
	return out, nil
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// reportProgress prints a line every 10 s until the returned stop is called.
func (s *soak) reportProgress() (stop func()) {
	if s.cfg.progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(s.cfg.progress, "soak: %3.0fs operations=%d live_leases=%d\n", time.Since(start).Seconds(), s.ops.Load(), s.ledger.live())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// summary describes the run in a few lines (before the final line).
func (r *result) summary(w io.Writer) {
	kinds := make([]string, 0, len(r.counts))
	for k := range r.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		c := r.counts[k]
		fmt.Fprintf(w, "soak: %-28s ok=%d failed=%d refused=%d\n", k, c.ok, c.failed, c.refused)
	}
	fmt.Fprintf(w, "soak: leases issued=%d (api_keys=%d service_accounts=%d user_access=%d) revoked=%d irrevocable=%d; slowest issuance %v\n",
		r.issued[kindAPIKey]+r.issued[kindServiceAccount]+r.issued[kindUserAccess], r.issued[kindAPIKey], r.issued[kindServiceAccount], r.issued[kindUserAccess], r.revoked, r.irrevocable, r.maxIssue.Round(time.Millisecond))
	leakedKind := func(c credential) string { return c.Kind }
	prematureKind := func(p prematureDelete) string { return p.Kind }
	fmt.Fprintf(w, "soak: leaked api_keys=%d service_accounts=%d; premature deletes api_keys=%d service_accounts=%d\n",
		countKind(r.leaked, leakedKind, kindAPIKey), countKind(r.leaked, leakedKind, kindServiceAccount),
		countKind(r.premature, prematureKind, kindAPIKey), countKind(r.premature, prematureKind, kindServiceAccount))
	for _, c := range r.leaked {
		fmt.Fprintf(w, "soak: LEAKED %s\n", c)
	}
	for _, g := range r.leakedGrants {
		fmt.Fprintf(w, "soak: LEAKED GRANT %s\n", g)
	}
	for _, p := range r.premature {
		fmt.Fprintf(w, "soak: PREMATURE delete of %s %s (lease of %s still live)\n", p.Kind, p.ID, p.Path)
	}
	fmt.Fprintf(w, "soak: plugin RSS, %d samples (seconds/operations/MiB): %s\n", len(r.rss), rssSeries(r.rss, 40))
	if r.rssReadErrors > 0 {
		fmt.Fprintf(w, "soak: %d RSS samples could not be read\n", r.rssReadErrors)
	}
	if r.rssTooHigh() {
		if r.rssMeasured {
			fmt.Fprintf(w, "soak: RSS GREW %.1f%% after warm-up (%.1f -> %.1f MiB), over the %.0f%% limit\n", r.rssGrowthPct, float64(r.rssStartKiB)/1024, float64(r.rssEndKiB)/1024, r.rssLimitPct)
		} else {
			fmt.Fprintf(w, "soak: RSS not judged: fewer than %d samples after warm-up\n", 2*rssGrowthWindow)
		}
	}
	for _, u := range r.unexpected {
		fmt.Fprintf(w, "soak: UNEXPECTED %s\n", u)
	}
	if r.unexpectedN > len(r.unexpected) {
		fmt.Fprintf(w, "soak: ... %d unexpected errors in all\n", r.unexpectedN)
	}
}
