// Package openapi checks that what atlas-sim serves (and what its clients send it) conforms
// to the official MongoDB Atlas Administration API OpenAPI spec.
//
// The test starts the atlas-sim binary, drives every v2 endpoint it implements (successes
// and errors) with a small digest client, dumps the simulator's request journal, and
// validates each v2 exchange with kin-openapi's openapi3filter: request parameters and body,
// response status, content type and body. Set ATLAS_SIM_JOURNAL to a journal JSON file
// (an array of atlas-sim journal entries, e.g. dumped by a Rust test from
// SimHandle::journal) to validate that traffic as well.
//
// Environment:
//
//	ATLAS_SIM_BIN      atlas-sim binary (default ../../target/debug/atlas-sim)
//	ATLAS_OPENAPI_SPEC spec file (default: the first of ../../../shared/atlas/openapi/
//	                   atlas-admin-api-v2.multi-version.yml and the atlas-sdk module's
//	                   openapi/atlas-api.yaml in the Go module cache, if present)
//	ATLAS_SIM_JOURNAL  optional extra journal file to validate
package openapi

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/example/vault-plugin-secrets-mongodbatlas/tests/internal/atlassim"
)

const (
	v2Keys  = "application/vnd.atlas.2023-01-01+json"
	v2SA    = "application/vnd.atlas.2024-08-05+json"
	v2Users = "application/vnd.atlas.2025-02-19+json"
)

type journalEntry struct {
	Seq                 uint64  `json:"seq"`
	Method              string  `json:"method"`
	Path                string  `json:"path"`
	Route               string  `json:"route"`
	PublicKey           *string `json:"public_key"`
	RequestContentType  *string `json:"request_content_type"`
	RequestBody         string  `json:"request_body"`
	Status              int     `json:"status"`
	ResponseContentType *string `json:"response_content_type"`
	ResponseBody        string  `json:"response_body"`
}

// ---- spec -------------------------------------------------------------------------------

func specPath(t *testing.T) string {
	if p := os.Getenv("ATLAS_OPENAPI_SPEC"); p != "" {
		return p
	}
	candidates := []string{"../../../shared/atlas/openapi/atlas-admin-api-v2.multi-version.yml"}
	if gomod := os.Getenv("GOMODCACHE"); gomod != "" {
		matches, _ := filepath.Glob(filepath.Join(gomod, "go.mongodb.org", "atlas-sdk", "*", "openapi", "atlas-api.yaml"))
		candidates = append(candidates, matches...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		matches, _ := filepath.Glob(filepath.Join(home, "go", "pkg", "mod", "go.mongodb.org", "atlas-sdk", "*", "openapi", "atlas-api.yaml"))
		candidates = append(candidates, matches...)
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	t.Fatalf("no Atlas OpenAPI spec found; set ATLAS_OPENAPI_SPEC (tried %v)", candidates)
	return ""
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// loadRouter loads the spec once and relaxes the three places where the spec disagrees with
// what real Atlas sends (all recorded from live Atlas traffic):
//   - ApiError.parameters: the spec says array of objects; Atlas sends strings
//     (e.g. "parameters":["111111111111111111111111"] with GROUP_NOT_FOUND).
//   - UserAccessListResponse.count: the spec says minimum 1; Atlas sends 0 for unused entries.
//   - createGroup (POST /api/atlas/v2/groups): the spec lists 200; Atlas answers 201 Created
//     (with the same Group body), so 201 gets the 200 response's definition.
func loadRouter(t *testing.T) routers.Router {
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		var doc *openapi3.T
		doc, specErr = loader.LoadFromFile(specPath(t))
		if specErr != nil {
			return
		}
		schemas := doc.Components.Schemas
		if s, ok := schemas["ApiError"]; ok && s.Value != nil {
			if p, ok := s.Value.Properties["parameters"]; ok && p.Value != nil {
				p.Value.Items = openapi3.NewSchemaRef("", &openapi3.Schema{})
			}
		}
		if s, ok := schemas["UserAccessListResponse"]; ok && s.Value != nil {
			if c, ok := s.Value.Properties["count"]; ok && c.Value != nil {
				zero := 0.0
				c.Value.Min = &zero
			}
		}
		if item := doc.Paths.Value("/api/atlas/v2/groups"); item != nil && item.Post != nil && item.Post.Responses != nil {
			if ok := item.Post.Responses.Value("200"); ok != nil && item.Post.Responses.Value("201") == nil {
				item.Post.Responses.Set("201", ok)
			}
		}
		doc.Servers = openapi3.Servers{{URL: "https://cloud.mongodb.com"}}
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("loading spec: %v", specErr)
	}
	return specRouter
}

// ---- validation -------------------------------------------------------------------------

// The spec's patterns use lookahead (e.g. the ipAddress pattern), which Go's regexp lacks.
type regexp2Matcher struct{ re *regexp2.Regexp }

func (m regexp2Matcher) MatchString(s string) bool {
	ok, err := m.re.MatchString(s)
	return err == nil && ok
}

func compileRegex(expr string) (openapi3.RegexMatcher, error) {
	re, err := regexp2.Compile(expr, regexp2.None)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = time.Second
	return regexp2Matcher{re}, nil
}

var schemaOptions = []openapi3.SchemaValidationOption{openapi3.SetSchemaRegexCompiler(compileRegex)}

// checkErrorBody applies to every error answer, including statuses the spec does not list
// for an operation (Atlas sends them anyway, e.g. 400 INVALID_ROLE_FOR_ORG on createOrgApiKey):
// a JSON ApiError whose "error" equals the status.
func checkErrorBody(e journalEntry) error {
	if e.ResponseContentType == nil || !strings.HasPrefix(*e.ResponseContentType, "application/json") {
		return fmt.Errorf("error response content type %v, want application/json", e.ResponseContentType)
	}
	var body struct {
		Error     *int    `json:"error"`
		ErrorCode *string `json:"errorCode"`
		Detail    *string `json:"detail"`
		Reason    *string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(e.ResponseBody), &body); err != nil {
		return fmt.Errorf("error body is not JSON: %w", err)
	}
	if body.Error == nil || *body.Error != e.Status || body.ErrorCode == nil || *body.ErrorCode == "" || body.Detail == nil || body.Reason == nil {
		return fmt.Errorf("error body lacks error/errorCode/detail/reason or has the wrong status")
	}
	return nil
}

func validate(t *testing.T, router routers.Router, e journalEntry) error {
	if !strings.HasPrefix(e.Path, "/api/atlas/v2/") || strings.HasSuffix(e.Route, "<unmatched>") {
		return nil
	}
	u, err := url.Parse("https://cloud.mongodb.com" + e.Path)
	if err != nil {
		return fmt.Errorf("bad path: %w", err)
	}
	req, _ := http.NewRequest(e.Method, u.String(), strings.NewReader(e.RequestBody))
	if e.RequestContentType != nil {
		req.Header.Set("Content-Type", *e.RequestContentType)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("no spec operation for %s %s: %w", e.Method, e.Path, err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		MultiError:              true,
		RegexCompiler:           compileRegex,
		SchemaValidationOptions: schemaOptions,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	// Requests the simulator rejected on purpose (4xx) may carry invalid bodies; only
	// successful exchanges must have spec-valid requests.
	if e.Status >= 200 && e.Status < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return fmt.Errorf("request: %w", err)
		}
	}
	header := http.Header{}
	if e.ResponseContentType != nil {
		header.Set("Content-Type", *e.ResponseContentType)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 e.Status,
		Header:                 header,
		Body:                   io.NopCloser(strings.NewReader(e.ResponseBody)),
		Options: &openapi3filter.Options{
			// A success status must be one the spec defines for the operation.
			IncludeResponseStatus:   e.Status < 400,
			MultiError:              true,
			SchemaValidationOptions: schemaOptions,
		},
	}
	if e.Status >= 400 {
		if err := checkErrorBody(e); err != nil {
			return err
		}
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}

func validateAll(t *testing.T, entries []journalEntry) (checked int) {
	router := loadRouter(t)
	for _, e := range entries {
		if !strings.HasPrefix(e.Path, "/api/atlas/v2/") {
			continue
		}
		if err := validate(t, router, e); err != nil {
			t.Errorf("journal #%d %s %s -> %d: %v\nrequest: %s\nresponse: %s", e.Seq, e.Method, e.Path, e.Status, err, e.RequestBody, e.ResponseBody)
		}
		checked++
	}
	return checked
}

// ---- the simulator and a digest client ----------------------------------------------------

// startSim starts atlas-sim with its journal on (the test validates the journal) for this
// test; internal/atlassim stops it at the end and logs its stderr if the test fails.
func startSim(t *testing.T, extraArgs ...string) atlassim.Info {
	return startSimulator(t, extraArgs...).Info
}

// startSimulator is startSim with the admin API client.
func startSimulator(t *testing.T, extraArgs ...string) *atlassim.Sim {
	bin := os.Getenv("ATLAS_SIM_BIN")
	if bin == "" {
		bin = "../../target/debug/atlas-sim"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("atlas-sim binary not found at %s (run `cargo build -p atlas-sim` or set ATLAS_SIM_BIN)", bin)
	}
	return atlassim.Start(t, bin, append([]string{"--journal-capacity", "100000"}, extraArgs...)...)
}

type digestClient struct {
	base, user, pass string
	http             *http.Client
	nonce            string
	nc               int
}

var challengeNonce = regexp.MustCompile(`nonce="([^"]+)"`)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (c *digestClient) authorization(method, uri string) string {
	c.nc++
	nc := fmt.Sprintf("%08x", c.nc)
	raw := make([]byte, 8)
	_, _ = rand.Read(raw)
	cnonce := hex.EncodeToString(raw)
	ha1 := md5hex(c.user + ":MMS Public API:" + c.pass)
	ha2 := md5hex(method + ":" + uri)
	resp := md5hex(strings.Join([]string{ha1, c.nonce, nc, cnonce, "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username="%s", realm="MMS Public API", nonce="%s", uri="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s", response="%s"`,
		c.user, c.nonce, uri, nc, cnonce, resp)
}

type response struct {
	status int
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	var out map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("not a JSON object (%v): %s", err, r.body)
	}
	return out
}

func (c *digestClient) do(t *testing.T, method, path, accept string, body any) response {
	t.Helper()
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	for attempt := 0; attempt < 3; attempt++ {
		req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(payload))
		req.Header.Set("Accept", accept)
		if body != nil {
			req.Header.Set("Content-Type", accept)
		}
		if c.nonce != "" {
			req.Header.Set("Authorization", c.authorization(method, path))
		}
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			if m := challengeNonce.FindStringSubmatch(resp.Header.Get("WWW-Authenticate")); m != nil {
				c.nonce, c.nc = m[1], 0
				continue
			}
		}
		return response{resp.StatusCode, data}
	}
	t.Fatalf("%s %s: digest auth did not settle", method, path)
	return response{}
}

func expect(t *testing.T, r response, status int, what string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	return r
}

// ---- the test -----------------------------------------------------------------------------

func TestSimulatorTrafficConformsToSpec(t *testing.T) {
	sim := startSimulator(t)
	info := sim.Info
	c := &digestClient{base: info.BaseURL, user: info.PublicKey, pass: info.PrivateKey, http: &http.Client{Timeout: 10 * time.Second}}
	org, group := info.OrgID, info.ProjectID
	v2 := "/api/atlas/v2"
	keys := v2 + "/orgs/" + org + "/apiKeys"

	// Organization keys.
	created := expect(t, c.do(t, "POST", keys, v2Keys, map[string]any{"desc": "conformance", "roles": []string{"ORG_READ_ONLY", "ORG_MEMBER"}}), 200, "create org key").json(t)
	id := created["id"].(string)
	expect(t, c.do(t, "GET", keys+"/"+id, v2Keys, nil), 200, "get org key")
	expect(t, c.do(t, "GET", keys+"?itemsPerPage=1&pageNum=2&includeCount=true", v2Keys, nil), 200, "list org keys")
	expect(t, c.do(t, "PATCH", keys+"/"+id, v2Keys, map[string]any{"desc": "renamed", "roles": []string{"ORG_GROUP_CREATOR"}}), 200, "update org key")

	// Access list.
	al := keys + "/" + id + "/accessList"
	expect(t, c.do(t, "POST", al, v2Keys, []map[string]string{{"ipAddress": "192.168.0.229"}, {"cidrBlock": "10.1.0.0/16"}}), 200, "add access list")
	expect(t, c.do(t, "GET", al, v2Keys, nil), 200, "list access list")
	expect(t, c.do(t, "GET", al+"/192.168.0.229", v2Keys, nil), 200, "get IP entry")
	expect(t, c.do(t, "GET", al+"/10.1.0.0%2F16", v2Keys, nil), 200, "get CIDR entry")
	expect(t, c.do(t, "DELETE", al+"/10.1.0.0%2F16", v2Keys, nil), 204, "delete CIDR entry")
	expect(t, c.do(t, "POST", al, v2Keys, []map[string]string{{"ipAddress": "192.168.0.229"}}), 409, "duplicate entry")

	// Project keys.
	gkeys := v2 + "/groups/" + group + "/apiKeys"
	pkey := expect(t, c.do(t, "POST", gkeys, v2Keys, map[string]any{"desc": "project", "roles": []string{"GROUP_READ_ONLY"}}), 200, "create project key").json(t)
	expect(t, c.do(t, "GET", gkeys, v2Keys, nil), 200, "list project keys")
	expect(t, c.do(t, "POST", gkeys+"/"+id, v2Keys, []map[string]any{{"roles": []string{"GROUP_OWNER"}}}), 204, "assign org key")
	expect(t, c.do(t, "PATCH", gkeys+"/"+id, v2Keys, map[string]any{"roles": []string{"GROUP_DATA_ACCESS_READ_ONLY"}}), 200, "update project roles")
	expect(t, c.do(t, "DELETE", gkeys+"/"+id, v2Keys, nil), 204, "unassign")
	expect(t, c.do(t, "DELETE", keys+"/"+pkey["id"].(string), v2Keys, nil), 204, "delete project key")

	// Service accounts.
	sas := v2 + "/orgs/" + org + "/serviceAccounts"
	sa := expect(t, c.do(t, "POST", sas, v2SA, map[string]any{"name": "conformance", "description": "sa", "roles": []string{"ORG_MEMBER"}, "secretExpiresAfterHours": 8}), 201, "create SA").json(t)
	clientID := sa["clientId"].(string)
	expect(t, c.do(t, "GET", sas+"/"+clientID, v2SA, nil), 200, "get SA")
	expect(t, c.do(t, "GET", sas, v2SA, nil), 200, "list SAs")
	expect(t, c.do(t, "DELETE", sas+"/"+clientID, v2SA, nil), 204, "delete SA")

	// Organization and project reads.
	expect(t, c.do(t, "GET", v2+"/orgs/"+org, v2Keys, nil), 200, "get org")
	expect(t, c.do(t, "GET", v2+"/groups/"+group, v2Keys, nil), 200, "get group")

	// MongoDB Cloud users (2025-02-19) and projects: members come from the admin API.
	ctx := context.Background()
	if _, err := sim.AddOrgMember(ctx, "owner@example.com", []string{"ORG_OWNER"}, nil); err != nil {
		t.Fatal(err)
	}
	ada, err := sim.AddOrgMember(ctx, "ada@example.com", []string{"ORG_MEMBER"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	project := expect(t, c.do(t, "POST", v2+"/groups", v2Keys, map[string]any{"name": "conformance-users", "orgId": org}), 201, "create project").json(t)
	p := project["id"].(string)
	expect(t, c.do(t, "POST", v2+"/groups", v2Keys, map[string]any{"name": "conformance-users", "orgId": org}), 409, "duplicate project")
	expect(t, c.do(t, "GET", v2+"/groups", v2Keys, nil), 200, "list projects")
	ousers := v2 + "/orgs/" + org + "/users"
	expect(t, c.do(t, "GET", ousers+"?username=ada%40example.com", v2Users, nil), 200, "find org user")
	expect(t, c.do(t, "GET", ousers+"?itemsPerPage=1&pageNum=2", v2Users, nil), 200, "list org users")
	expect(t, c.do(t, "GET", ousers+"/"+ada.ID, v2Users, nil), 200, "get org user")
	expect(t, c.do(t, "GET", ousers+"/0123456789abcdef01234567", v2Users, nil), 404, "unknown org user")
	expect(t, c.do(t, "POST", ousers+"/"+ada.ID+":addRole", v2Users, map[string]string{"orgRole": "ORG_READ_ONLY"}), 200, "add org role")
	expect(t, c.do(t, "POST", ousers+"/"+ada.ID+":addRole", v2Users, map[string]string{"orgRole": "ORG_READ_ONLY"}), 409, "org role held")
	expect(t, c.do(t, "POST", ousers+"/"+ada.ID+":removeRole", v2Users, map[string]string{"orgRole": "ORG_READ_ONLY"}), 200, "remove org role")
	expect(t, c.do(t, "POST", ousers+"/"+ada.ID+":removeRole", v2Users, map[string]string{"orgRole": "ORG_MEMBER"}), 400, "last org role")
	gusers := v2 + "/groups/" + p + "/users"
	expect(t, c.do(t, "POST", gusers, v2Users, map[string]any{"username": "ada@example.com", "roles": []string{"GROUP_READ_ONLY"}}), 201, "add member to project")
	expect(t, c.do(t, "POST", gusers, v2Users, map[string]any{"username": "ada@example.com", "roles": []string{"GROUP_OWNER"}}), 409, "already in project")
	expect(t, c.do(t, "POST", gusers, v2Users, map[string]any{"username": "newcomer@example.com", "roles": []string{"GROUP_READ_ONLY"}}), 201, "invite non-member")
	expect(t, c.do(t, "GET", gusers, v2Users, nil), 200, "list project users")
	expect(t, c.do(t, "GET", gusers+"/"+ada.ID, v2Users, nil), 200, "get project user")
	expect(t, c.do(t, "POST", gusers+"/"+ada.ID+":addRole", v2Users, map[string]string{"groupRole": "GROUP_OWNER"}), 200, "add project role")
	expect(t, c.do(t, "POST", gusers+"/"+ada.ID+":removeRole", v2Users, map[string]string{"groupRole": "GROUP_OWNER"}), 200, "remove project role")
	expect(t, c.do(t, "POST", gusers+"/"+ada.ID+":removeRole", v2Users, map[string]string{"groupRole": "GROUP_OWNER"}), 409, "project role lacked")
	expect(t, c.do(t, "POST", gusers+"/"+ada.ID+":removeRole", v2Users, map[string]string{"groupRole": "GROUP_READ_ONLY"}), 400, "last project role")
	expect(t, c.do(t, "DELETE", gusers+"/"+ada.ID, v2Users, nil), 204, "remove from project")
	expect(t, c.do(t, "GET", gusers+"/"+ada.ID, v2Users, nil), 404, "not in project")
	// The deprecated endpoints these replace, past their sunset (2027-07-01).
	expect(t, c.do(t, "GET", ousers, v2Keys, nil), 410, "2023-01-01 org users")
	expect(t, c.do(t, "PUT", gusers+"/"+ada.ID+"/roles", v2Keys, map[string]any{"groupRoles": []string{"GROUP_READ_ONLY"}}), 410, "old project roles update")
	expect(t, c.do(t, "PUT", ousers+"/"+ada.ID+"/roles", v2Keys, map[string]any{"orgRoles": []string{"ORG_MEMBER"}}), 410, "old org roles update")
	expect(t, c.do(t, "GET", v2+"/users/byName/ada@example.com", v2Keys, nil), 410, "old user by name")
	inv, err := sim.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := inv.ProjectMembers(p); len(m) != 2 || m["owner@example.com"][0] != "GROUP_OWNER" || m["newcomer@example.com"] == nil {
		t.Fatalf("project members %v", m)
	}
	if u := inv.OrgUser(org, "newcomer@example.com"); u == nil || u.Status != "PENDING" {
		t.Fatalf("the non-member was not invited: %+v", u)
	}

	// Errors.
	expect(t, c.do(t, "POST", keys, v2Keys, map[string]any{"desc": strings.Repeat("x", 251), "roles": []string{"ORG_MEMBER"}}), 400, "long desc")
	expect(t, c.do(t, "POST", keys, v2Keys, map[string]any{"desc": "x", "roles": []string{"GROUP_OWNER"}}), 400, "bad role")
	expect(t, c.do(t, "GET", v2+"/groups/111111111111111111111111/apiKeys", v2Keys, nil), 404, "unknown group")
	expect(t, c.do(t, "GET", keys+"/aaaaaaaaaaaaaaaaaaaaaaaa", v2Keys, nil), 404, "unknown key")
	expect(t, c.do(t, "POST", al, v2Keys, []map[string]string{{"ipAddress": "300.1.1.1"}}), 400, "bad IP")
	expect(t, c.do(t, "DELETE", keys+"/"+id, v2Keys, nil), 204, "delete org key")

	// Dump the journal through the admin API and validate every v2 exchange.
	resp, err := http.Get(info.AdminURL + "/journal")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var entries []journalEntry
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		t.Fatal(err)
	}
	checked := validateAll(t, entries)
	if checked < 50 {
		t.Fatalf("validated only %d exchanges", checked)
	}
	t.Logf("validated %d exchanges against the spec", checked)
}

// TestExtraJournal validates a journal dumped elsewhere (ATLAS_SIM_JOURNAL).
func TestExtraJournal(t *testing.T) {
	path := os.Getenv("ATLAS_SIM_JOURNAL")
	if path == "" {
		t.Skip("ATLAS_SIM_JOURNAL not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []journalEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	t.Logf("validated %d exchanges from %s", validateAll(t, entries), path)
}

// TestValidatorRejectsNonConformingResponses guards the harness itself: a response that
// breaks the spec must be reported.
func TestValidatorRejectsNonConformingResponses(t *testing.T) {
	router := loadRouter(t)
	ct := v2Keys + ";charset=utf-8"
	bad := journalEntry{
		Method: "GET", Path: "/api/atlas/v2/orgs/a0123456789abcdef012345a/apiKeys/6a793f752c88faeba59bba49",
		Route: "GET /api/atlas/v2/orgs/{orgId}/apiKeys/{apiUserId}", Status: 200, ResponseContentType: &ct,
		ResponseBody: `{"id":"not-hex","publicKey":"toolongkey","roles":"ORG_OWNER"}`,
	}
	if err := validate(t, router, bad); err == nil {
		t.Fatal("a response breaking the schema passed validation")
	}
	good := bad
	good.ResponseBody = `{"desc":"d","id":"6a793f752c88faeba59bba49","links":[{"href":"https://x","rel":"self"}],"privateKey":"********-****-****-01bdd56c8977","publicKey":"gswvkocq","roles":[{"orgId":"a0123456789abcdef012345a","roleName":"ORG_READ_ONLY"}]}`
	if err := validate(t, router, good); err != nil {
		t.Fatalf("a recorded Atlas response failed validation: %v", err)
	}

	// The user schemas are oneOf with a discriminator: a broken active user must fail too.
	uct := v2Users + ";charset=utf-8"
	user := journalEntry{
		Method: "GET", Path: "/api/atlas/v2/groups/b0123456789abcdef012345b/users/5eed5eed5eed5eed5eed5eed",
		Route: "GET /api/atlas/v2/groups/{groupId}/users/{userId}", Status: 200, ResponseContentType: &uct,
		ResponseBody: `{"createdAt":"2026-01-02T03:04:05Z","firstName":"A","id":"5eed5eed5eed5eed5eed5eed","lastName":"B","orgMembershipStatus":"ACTIVE","roles":["GROUP_READ_ONLY"],"username":"a@example.com"}`,
	}
	if err := validate(t, router, user); err != nil {
		t.Fatalf("a valid project user failed validation: %v", err)
	}
	for _, broken := range []string{
		`{"id":"5eed5eed5eed5eed5eed5eed","orgMembershipStatus":"ACTIVE","roles":["GROUP_READ_ONLY"],"username":"a@example.com"}`,
		`{"createdAt":"2026-01-02T03:04:05Z","firstName":"A","id":"5eed","lastName":"B","orgMembershipStatus":"ACTIVE","roles":["GROUP_READ_ONLY"],"username":"a@example.com"}`,
		`{"id":"5eed5eed5eed5eed5eed5eed","orgMembershipStatus":"PENDING","roles":"GROUP_READ_ONLY","username":"a@example.com"}`,
	} {
		bad := user
		bad.ResponseBody = broken
		if err := validate(t, router, bad); err == nil {
			t.Errorf("a project user breaking the schema passed validation: %s", broken)
		}
	}
}
