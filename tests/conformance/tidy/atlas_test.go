package tidy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mongodb-forks/digest"
)

// Calls to the simulator's Atlas API, as a tool other than the plugin (the decoys) or a user
// of an issued credential would make them.

const (
	keyMediaType = "application/vnd.atlas.2023-01-01+json"
	saMediaType  = "application/vnd.atlas.2024-08-05+json"
)

// direct reaches the simulator without any proxy from the environment.
func direct() *http.Transport {
	return &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}
}

// digestClient is an HTTP client that signs with an API key (HTTP Digest).
func digestClient(publicKey, privateKey string) (*http.Client, error) {
	c, err := digest.NewTransportWithHTTPTransport(publicKey, privateKey, direct()).Client()
	if err != nil {
		return nil, err
	}
	c.Timeout = 15 * time.Second
	return c, nil
}

// call sends one request below /api/atlas/v2 and returns the status and body.
func call(ctx context.Context, client *http.Client, method, baseURL, path, mediaType string, body any, header http.Header) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+"/api/atlas/v2"+path, reader)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", mediaType)
	if body != nil {
		req.Header.Set("Content-Type", mediaType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw, err
}

// createKeyViaAPI makes an organization API key through the Atlas API, as the plugin does.
func createKeyViaAPI(ctx context.Context, admin *http.Client, baseURL, orgID, desc string) (string, error) {
	status, body, err := call(ctx, admin, http.MethodPost, baseURL, "/orgs/"+orgID+"/apiKeys", keyMediaType,
		map[string]any{"desc": desc, "roles": []string{"ORG_MEMBER"}}, nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return "", fmt.Errorf("create API key %q: status %d: %s", desc, status, body)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("create API key %q: no id in %s (%v)", desc, body, err)
	}
	return out.ID, nil
}

// createServiceAccountViaAPI makes an organization service account through the Atlas API.
func createServiceAccountViaAPI(ctx context.Context, admin *http.Client, baseURL, orgID, name string) (string, error) {
	status, body, err := call(ctx, admin, http.MethodPost, baseURL, "/orgs/"+orgID+"/serviceAccounts", saMediaType,
		map[string]any{"name": name, "description": "made by hand", "roles": []string{"ORG_READ_ONLY"}, "secretExpiresAfterHours": 8}, nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return "", fmt.Errorf("create service account %q: status %d: %s", name, status, body)
	}
	var out struct {
		ClientID string `json:"clientId"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.ClientID == "" {
		return "", fmt.Errorf("create service account %q: no clientId in %s (%v)", name, body, err)
	}
	return out.ClientID, nil
}

// keyWorks: the API key reads its organization over HTTP Digest.
func keyWorks(ctx context.Context, baseURL, orgID, publicKey, privateKey string) error {
	client, err := digestClient(publicKey, privateKey)
	if err != nil {
		return err
	}
	status, body, err := call(ctx, client, http.MethodGet, baseURL, "/orgs/"+orgID, keyMediaType, nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET /orgs/%s with API key %s: status %d: %s", orgID, publicKey, status, body)
	}
	return nil
}

// serviceAccountWorks: the service account gets a token (OAuth 2.0 client credentials) and
// reads its organization with it.
func serviceAccountWorks(ctx context.Context, baseURL, orgID, clientID, clientSecret string) error {
	client := &http.Client{Transport: direct(), Timeout: 15 * time.Second}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.SetBasicAuth(clientID, clientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		// An OAuth error names no secret.
		return fmt.Errorf("token for %s: status %d: %s", clientID, resp.StatusCode, raw)
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &token); err != nil || token.AccessToken == "" {
		return fmt.Errorf("token for %s: no access_token (%v)", clientID, err)
	}
	status, body, err := call(ctx, client, http.MethodGet, baseURL, "/orgs/"+orgID, keyMediaType, nil,
		http.Header{"Authorization": {"Bearer " + token.AccessToken}})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET /orgs/%s with the token of %s: status %d: %s", orgID, clientID, status, body)
	}
	return nil
}
