package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The secret scan: every secret the suite saw (logins, issued credentials, derived
// Authorization values, tokens it fetched) searched for as a plain substring in the server's
// log, plus the shapes of credentials whatever their value (as scripts/lib/secret-scan.py
// does for the bash suites). A hit names the file, the line and which secret it was, and
// shows the line with the secret replaced: never the secret itself.

// minSecretLen: shorter strings are not secrets the suite records and would only give false
// hits (the secrets here are 32 characters or more).
const minSecretLen = 16

// credentialShapes match a credential whatever its value.
var credentialShapes = []*regexp.Regexp{
	regexp.MustCompile(`(?i)authorization\s*[:=]\s*"?(digest|bearer|basic)\s`),
	regexp.MustCompile(`(?i)digest\s+username="`),
	regexp.MustCompile(`(?i)\bresponse="[0-9a-f]{32,}"`),
	regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}`),
	// An Atlas service-account secret (the simulator's too): mdb_sa_sk_ and its value.
	regexp.MustCompile(`mdb_sa_sk_[A-Za-z0-9]{8,}`),
}

// secrets is every secret the suite saw, by value, with a label that says what it was.
type secrets struct {
	labels map[string]string
}

func newSecrets() *secrets { return &secrets{labels: map[string]string{}} }

// add records a secret; an empty or too short one fails the test (it would prove nothing or
// give false hits).
func (s *secrets) add(t testing.TB, label, value string) {
	t.Helper()
	if len(value) < minSecretLen {
		t.Fatalf("secret scan: %s has %d characters, fewer than %d: not a secret the scan can look for", label, len(value), minSecretLen)
	}
	if _, ok := s.labels[value]; !ok {
		s.labels[value] = label
	}
}

// addServiceAccount records a client secret and the Basic credentials built from it.
func (s *secrets) addServiceAccount(t testing.TB, label, clientID, clientSecret string) {
	t.Helper()
	s.add(t, label+" client_secret", clientSecret)
	s.add(t, label+" Basic credentials", base64.StdEncoding.EncodeToString([]byte(clientID+":"+clientSecret)))
}

func (s *secrets) count() int { return len(s.labels) }

// values are the secrets, longest first (so a secret inside a longer one is redacted after it).
func (s *secrets) values() []string {
	out := make([]string, 0, len(s.labels))
	for v := range s.labels {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) || len(out[i]) == len(out[j]) && out[i] < out[j] })
	return out
}

// redact replaces every secret in text by <secret>.
func (s *secrets) redact(text string) string {
	for _, v := range s.values() {
		text = strings.ReplaceAll(text, v, "<secret>")
	}
	return text
}

// scanHit is one line of a log with a secret or a credential's shape.
type scanHit struct {
	File  string
	Line  int
	What  string // the labels of the secrets found, or the shape
	Shown string // the line, secrets redacted, at most 300 characters
}

func (h scanHit) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", h.File, h.Line, h.What, h.Shown)
}

// scanResult sums up a scan.
type scanResult struct {
	Hits  []scanHit
	Lines int
	Bytes int64
}

// scan searches a file line by line for every secret and every credential shape.
func (s *secrets) scan(path string) (scanResult, error) {
	var res scanResult
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	values := s.values()
	for number := 1; ; number++ {
		line, err := r.ReadString('\n')
		if line != "" {
			res.Lines++
			res.Bytes += int64(len(line))
			var what []string
			for _, v := range values {
				if strings.Contains(line, v) {
					what = append(what, s.labels[v])
				}
			}
			if len(what) == 0 {
				for _, shape := range credentialShapes {
					if shape.MatchString(line) {
						what = append(what, "credential shape "+shape.String())
						break
					}
				}
			}
			if len(what) > 0 {
				shown := strings.TrimSpace(s.redact(line))
				// A credential's shape hides the rest of its line: its value follows it.
				for _, shape := range credentialShapes {
					if loc := shape.FindStringIndex(shown); loc != nil {
						shown = shown[:loc[0]] + "<credential and the rest of the line>"
					}
				}
				if len(shown) > 300 {
					shown = shown[:300] + "..."
				}
				res.Hits = append(res.Hits, scanHit{File: path, Line: number, What: strings.Join(what, ", "), Shown: shown})
			}
		}
		if err != nil {
			break
		}
	}
	return res, nil
}

// TestScanFindsPlantedSecrets: the scan must be able to fail. Planted secrets, derived Basic
// credentials and credential shapes are found, reported without the secret, and a clean
// log gives no hit.
func TestScanFindsPlantedSecrets(t *testing.T) {
	s := newSecrets()
	const (
		privateKey   = "9212f3c3-84bf-4625-ae0a-8c25a80c8714"
		clientID     = "mdb_sa_id_368233388577574466c442ce"
		clientSecret = "mdb_sa_sk_QFE27OgK2ShUnUL8GiDTCv6ATcIQJXtvrwb1R7EC"
		token        = "eyJhbGciOi.planted-access-token.sig"
	)
	s.add(t, "login private_key", privateKey)
	s.addServiceAccount(t, "issued account", clientID, clientSecret)
	s.add(t, "bearer token", token)
	basic := base64.StdEncoding.EncodeToString([]byte(clientID + ":" + clientSecret))
	clean := strings.Join([]string{
		`2026-12-01T00:25:16.091Z [DEBUG] secrets.vault-plugin-secrets-mongodbatlas.vault-plugin-secrets-mongodbatlas: issued Atlas service account: role=sa-org key_id=` + clientID,
		`2026-12-01T00:25:16.092Z [TRACE] core: request: path=mongodbatlas/creds/sa-org operation=read`,
		`2026-12-01T00:25:16.093Z [DEBUG] secrets.x: Atlas exchange: method=POST path=/api/oauth/token status=200`,
		``,
	}, "\n")
	planted := map[string]string{
		"private key":         "x [DEBUG] plugin: private_key=" + privateKey + " issued\n",
		"client secret":       `{"@message":"answer","body":"{\"secret\":\"` + clientSecret + `\"}"}` + "\n",
		"basic credentials":   "authorization header value " + basic + "\n",
		"bearer token":        "token=" + token + "\n",
		"digest header":       `Authorization: Digest username="abcdefgh", realm="MMS Public API", response="0123456789abcdef0123456789abcdef"` + "\n",
		"bearer header":       "headers: authorization=Bearer abcdefghijklmnopqrstuvwxyz0123\n",
		"other client secret": "secret mdb_sa_sk_SomeoneElsesSecretValue1234 logged\n",
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	res, err := s.scan(write("clean.log", clean))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 0 || res.Lines != 3 {
		t.Fatalf("clean log: %d lines, hits %v; want 3 lines and no hit", res.Lines, res.Hits)
	}
	for name, line := range planted {
		res, err := s.scan(write(strings.ReplaceAll(name, " ", "-")+".log", clean+line))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != 1 || res.Hits[0].Line != 4 {
			t.Errorf("%s planted on line 4: hits %v", name, res.Hits)
			continue
		}
		for _, v := range append(s.values(), "0123456789abcdef0123456789abcdef", "SomeoneElsesSecretValue1234", "abcdefghijklmnopqrstuvwxyz0123") {
			if strings.Contains(res.Hits[0].String(), v) {
				t.Errorf("%s: the report shows the secret: %s", name, res.Hits[0])
			}
		}
	}
	if got := s.redact("a " + clientSecret + " b " + privateKey); got != "a <secret> b <secret>" {
		t.Errorf("redact: %q", got)
	}
}

// TestScanRejectsShortSecrets: an empty or short value cannot be scanned for.
func TestScanRejectsShortSecrets(t *testing.T) {
	probe := &fatalProbe{TB: t}
	func() {
		defer func() { _ = recover() }()
		newSecrets().add(probe, "empty", "")
	}()
	if !probe.fatal {
		t.Error("an empty secret was accepted")
	}
}

// fatalProbe records a Fatalf instead of ending the test.
type fatalProbe struct {
	testing.TB
	fatal bool
}

func (p *fatalProbe) Helper() {}
func (p *fatalProbe) Fatalf(string, ...any) {
	p.fatal = true
	panic("fatal")
}
