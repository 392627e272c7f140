package openapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mongodb-forks/digest"
	"go.mongodb.org/atlas/mongodbatlas"
)

// TestOfficialGoClientThroughProxy drives the simulator with the client the official Go
// plugin (and Vault's builtin engine) uses: go.mongodb.org/atlas on the v1.0 API, with
// mongodb-forks/digest, talking to https://cloud.mongodb.com through the simulator's
// CONNECT proxy and trusting its CA, exactly as HTTPS_PROXY + SSL_CERT_FILE would set up.
func TestOfficialGoClientThroughProxy(t *testing.T) {
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	info := startSim(t, "--proxy", "--ca-out", caPath)
	if info.ProxyURL == "" || info.CAPath != caPath {
		t.Fatalf("startup line lacks proxy_url/ca_path: %+v", info)
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	proxyURL, _ := url.Parse(info.ProxyURL)
	transport := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: roots}}
	httpClient, err := digest.NewTransportWithHTTPTransport(info.PublicKey, info.PrivateKey, transport).Client()
	if err != nil {
		t.Fatal(err)
	}
	httpClient.Timeout = 10 * time.Second
	client := mongodbatlas.NewClient(httpClient) // base URL https://cloud.mongodb.com/
	ctx := context.Background()
	org, group := info.OrgID, info.ProjectID

	orgKey, _, err := client.APIKeys.Create(ctx, org, &mongodbatlas.APIKeyInput{Desc: "vault-go-org", Roles: []string{"ORG_MEMBER"}})
	if err != nil {
		t.Fatalf("create org key: %v", err)
	}
	if len(orgKey.PublicKey) != 8 || len(orgKey.PrivateKey) != 36 {
		t.Fatalf("unexpected key shape: %+v", orgKey)
	}
	entries := []*mongodbatlas.AccessListAPIKeysReq{{CidrBlock: "10.0.0.0/24"}, {IPAddress: "192.168.1.1"}}
	list, _, err := client.AccessListAPIKeys.Create(ctx, org, orgKey.ID, entries)
	if err != nil || list.TotalCount != 2 {
		t.Fatalf("access list: %v %+v", err, list)
	}
	if _, err := client.ProjectAPIKeys.Assign(ctx, group, orgKey.ID, &mongodbatlas.AssignAPIKey{Roles: []string{"GROUP_READ_ONLY"}}); err != nil {
		t.Fatalf("assign: %v", err)
	}

	projectKey, _, err := client.ProjectAPIKeys.Create(ctx, group, &mongodbatlas.APIKeyInput{Desc: "vault-go-project", Roles: []string{"GROUP_OWNER"}})
	if err != nil {
		t.Fatalf("create project key: %v", err)
	}
	var keyOrg string
	for _, r := range projectKey.Roles {
		if r.OrgID != "" {
			keyOrg = r.OrgID
		}
	}
	if keyOrg != org {
		t.Fatalf("project key roles lack the org: %+v", projectKey.Roles)
	}
	keys, _, err := client.ProjectAPIKeys.List(ctx, group, &mongodbatlas.ListOptions{ItemsPerPage: 500})
	if err != nil || len(keys) != 2 {
		t.Fatalf("list project keys: %v (%d keys)", err, len(keys))
	}

	// Revocation as the Go plugin does it.
	for _, id := range []string{orgKey.ID, projectKey.ID} {
		if _, err := client.ProjectAPIKeys.Unassign(ctx, group, id); err != nil {
			t.Fatalf("unassign %s: %v", id, err)
		}
		if _, err := client.APIKeys.Delete(ctx, org, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	_, resp, err := client.APIKeys.Get(ctx, org, orgKey.ID)
	var apiErr *mongodbatlas.ErrorResponse
	if !errors.As(err, &apiErr) || resp == nil || resp.StatusCode != http.StatusNotFound || apiErr.ErrorCode != "API_KEY_NOT_FOUND" {
		t.Fatalf("get deleted key: err=%v resp=%v", err, resp)
	}

	// The Go client re-does the digest challenge on every call: two round trips per call.
	stats := adminJSON(t, info.AdminURL+"/stats")
	total, challenges := stats["requests_total"].(float64), stats["challenges"].(float64)
	if total != 2*challenges || challenges != 10 {
		t.Fatalf("expected 10 calls at 2 round trips each, got %v requests / %v challenges", total, challenges)
	}
	inventory := adminJSON(t, info.AdminURL+"/inventory")
	if n := len(inventory["api_keys"].([]any)); n != 1 {
		t.Fatalf("%d keys left, want only the seeded one", n)
	}
}

func adminJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
