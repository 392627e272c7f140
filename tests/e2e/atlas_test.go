package e2e

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The calls below prove issued credentials against the simulator, as a user of them would:
// a service account gets a token (OAuth 2.0 client credentials) and reads Atlas with it;
// an API key reads Atlas with HTTP Digest.

// atlasAccept is the versioned media type of the organization and project reads.
const atlasAccept = "application/vnd.atlas.2023-01-01+json"

// atlasHTTP reaches the simulator directly: no proxy from the environment, bounded calls.
var atlasHTTP = &http.Client{
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4},
	Timeout:   15 * time.Second,
}

// oauthToken obtains an access token for a service account: POST /api/oauth/token with
// Basic client_id:client_secret and grant_type=client_credentials. It returns the token and,
// on failure, the status (0 for a transport error).
func oauthToken(ctx context.Context, baseURL, clientID, clientSecret string) (string, int, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.SetBasicAuth(clientID, clientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, body, err := do(req)
	if err != nil {
		return "", 0, err
	}
	if status != http.StatusOK {
		// An OAuth error body names no secret; it is safe to show.
		return "", status, fmt.Errorf("POST /api/oauth/token for %s: status %d: %s", clientID, status, body)
	}
	var answer struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return "", status, fmt.Errorf("POST /api/oauth/token for %s: %w", clientID, err)
	}
	if answer.AccessToken == "" || !strings.EqualFold(answer.TokenType, "bearer") || answer.ExpiresIn <= 0 {
		return "", status, fmt.Errorf("POST /api/oauth/token for %s: token_type %q, expires_in %d, access token set %v",
			clientID, answer.TokenType, answer.ExpiresIn, answer.AccessToken != "")
	}
	return answer.AccessToken, status, nil
}

// bearerGet reads an Atlas resource (a path below /api/atlas/v2) with a bearer token and
// returns the status and body.
func bearerGet(ctx context.Context, baseURL, path, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/api/atlas/v2"+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", atlasAccept)
	return do(req)
}

// digestGet reads an Atlas resource (a path below /api/atlas/v2) with an API key over HTTP
// Digest (RFC 7616, qop=auth): an unauthenticated request for the challenge, then the
// answer. It returns the final status and body, and the Digest response value sent (a
// secret derived from the private key, for the log scan).
func digestGet(ctx context.Context, baseURL, path, publicKey, privateKey string) (int, []byte, string, error) {
	target := baseURL + "/api/atlas/v2" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Accept", atlasAccept)
	resp, err := atlasHTTP.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return resp.StatusCode, nil, "", fmt.Errorf("GET %s without credentials: status %d, want a 401 challenge", path, resp.StatusCode)
	}
	challenge, err := parseDigestChallenge(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		return 0, nil, "", err
	}
	cnonce := make([]byte, 8)
	if _, err := rand.Read(cnonce); err != nil {
		return 0, nil, "", err
	}
	uri := req.URL.RequestURI()
	header, response, err := digestAuthorization(challenge, http.MethodGet, uri, publicKey, privateKey, hex.EncodeToString(cnonce), 1)
	if err != nil {
		return 0, nil, "", err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Accept", atlasAccept)
	req.Header.Set("Authorization", header)
	status, body, err := do(req)
	return status, body, response, err
}

// parseDigestChallenge reads the parameters of a `WWW-Authenticate: Digest ...` header.
func parseDigestChallenge(header string) (map[string]string, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Digest") {
		return nil, fmt.Errorf("not a Digest challenge: %q", header)
	}
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("Digest challenge %q: a parameter without a value", header)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var value string
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("Digest challenge %q: an unterminated quoted value", header)
			}
			value, after = after[1:1+end], after[2+end:]
		} else {
			value, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		params[name] = strings.TrimSpace(value)
		after = strings.TrimSpace(after)
		after = strings.TrimPrefix(after, ",")
		rest = strings.TrimSpace(after)
	}
	if params["realm"] == "" || params["nonce"] == "" {
		return nil, fmt.Errorf("Digest challenge %q lacks realm or nonce", header)
	}
	return params, nil
}

// digestAuthorization computes the Authorization header for a challenge (MD5 or SHA-256,
// qop=auth) and returns it with its response value.
func digestAuthorization(challenge map[string]string, method, uri, user, password, cnonce string, nc int) (string, string, error) {
	algorithm := challenge["algorithm"]
	var newHash func() hash.Hash
	switch strings.ToUpper(algorithm) {
	case "", "MD5":
		newHash = md5.New
	case "SHA-256":
		newHash = sha256.New
	default:
		return "", "", fmt.Errorf("Digest algorithm %q is not supported here", algorithm)
	}
	h := func(parts ...string) string {
		d := newHash()
		d.Write([]byte(strings.Join(parts, ":")))
		return hex.EncodeToString(d.Sum(nil))
	}
	if qop := challenge["qop"]; !containsToken(qop, "auth") {
		return "", "", fmt.Errorf("Digest qop %q does not offer auth", qop)
	}
	ncHex := fmt.Sprintf("%08x", nc)
	ha1 := h(user, challenge["realm"], password)
	ha2 := h(method, uri)
	response := h(ha1, challenge["nonce"], ncHex, cnonce, "auth", ha2)
	header := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", qop=auth, nc=%s, cnonce="%s", response="%s"`,
		user, challenge["realm"], challenge["nonce"], uri, ncHex, cnonce, response)
	if algorithm != "" {
		header += ", algorithm=" + algorithm
	}
	if opaque, ok := challenge["opaque"]; ok {
		header += fmt.Sprintf(`, opaque="%s"`, opaque)
	}
	return header, response, nil
}

func containsToken(list, token string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// do sends a request and reads the answer's body (bounded).
func do(req *http.Request) (int, []byte, error) {
	resp, err := atlasHTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the body: %w", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, body, nil
}

// atlasID reads the "id" of an Atlas resource.
func atlasID(body []byte) (string, error) {
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", err
	}
	if r.ID == "" {
		return "", errors.New("no id in the answer")
	}
	return r.ID, nil
}

// TestDigestRFC2617Example: the challenge parser and the response computation reproduce the
// example of RFC 2617, section 3.5.
func TestDigestRFC2617Example(t *testing.T) {
	challenge, err := parseDigestChallenge(`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`)
	if err != nil {
		t.Fatal(err)
	}
	header, response, err := digestAuthorization(challenge, http.MethodGet, "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b", 1)
	if err != nil {
		t.Fatal(err)
	}
	if response != "6629fae49393a05397450978507c4ef1" {
		t.Errorf("response %s, want RFC 2617's 6629fae49393a05397450978507c4ef1", response)
	}
	for _, part := range []string{`username="Mufasa"`, `nc=00000001`, `cnonce="0a4f113b"`, `opaque="5ccc069c403ebaf9f0171e9517f40e41"`, `uri="/dir/index.html"`} {
		if !strings.Contains(header, part) {
			t.Errorf("header %s lacks %s", header, part)
		}
	}
	// Unquoted parameters, as Atlas sends algorithm and stale.
	challenge, err = parseDigestChallenge(`Digest realm="MMS Public API", domain="", nonce="abc", algorithm=MD5, qop="auth", stale=false`)
	if err != nil {
		t.Fatal(err)
	}
	if challenge["algorithm"] != "MD5" || challenge["stale"] != "false" || challenge["domain"] != "" || challenge["qop"] != "auth" {
		t.Errorf("parsed %v", challenge)
	}
	for _, bad := range []string{`Basic realm="x"`, `Digest realm="x"`, `Digest realm="x, nonce="y`} {
		if _, err := parseDigestChallenge(bad); err == nil {
			t.Errorf("%s: parsed without an error", bad)
		}
	}
}
