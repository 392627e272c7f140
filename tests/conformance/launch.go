package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	bplugin "github.com/hashicorp/vault/sdk/plugin"
)

// DatabaseCookie is the magic cookie of Vault's database plugins; Vault may probe a binary
// with it during registration, and a secrets engine must refuse it.
const (
	DatabaseCookieKey   = "VAULT_DATABASE_PLUGIN"
	DatabaseCookieValue = "926a0820-aea2-be28-51d6-83cdf00e8edb"
)

// Identity is a one-off certificate shaped like the ones go-plugin generates for AutoMTLS.
type Identity struct {
	Cert    tls.Certificate
	CertPEM []byte
	Leaf    *x509.Certificate
}

// NewIdentity generates an ECDSA P-521, self-signed, CA:TRUE certificate for "localhost",
// the shape Vault's client certificate has (which is what trips strict verifiers).
func NewIdentity() (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"HashiCorp"}},
		DNSNames:              []string{"localhost"},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{
		Cert:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Leaf:    leaf,
	}, nil
}

// VaultEnv is the environment Vault's SDK and go-plugin give a v5 AutoMTLS plugin.
func VaultEnv(client *Identity, vaultVersion string) []string {
	return []string{
		bplugin.HandshakeConfig.MagicCookieKey + "=" + bplugin.HandshakeConfig.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=5",
		"PLUGIN_CLIENT_CERT=" + string(client.CertPEM),
		"VAULT_VERSION=" + vaultVersion,
		"VAULT_PLUGIN_METADATA_MODE=false",
		"VAULT_PLUGIN_AUTOMTLS_ENABLED=true",
	}
}

// hostEnv is this process's environment without anything that would change how the plugin
// starts, so a test controls the cookies and protocol variables alone.
func hostEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == bplugin.HandshakeConfig.MagicCookieKey, name == DatabaseCookieKey, name == "TMPDIR",
			strings.HasPrefix(name, "PLUGIN_"), strings.HasPrefix(name, "VAULT_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Handshake is the parsed first stdout line of a go-plugin server.
type Handshake struct {
	Line        string
	Core        string
	App         string
	Network     string
	Address     string
	Protocol    string
	CertBase64  string
	Fields      []string
	Certificate *x509.Certificate
}

// ParseHandshake splits and decodes the handshake line strictly (go-plugin's format).
func ParseHandshake(line string) (*Handshake, error) {
	fields := strings.Split(line, "|")
	if len(fields) < 6 {
		return nil, fmt.Errorf("handshake %q has %d fields, want 6 (CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT)", line, len(fields))
	}
	h := &Handshake{Line: line, Fields: fields, Core: fields[0], App: fields[1], Network: fields[2],
		Address: fields[3], Protocol: fields[4], CertBase64: fields[5]}
	if h.CertBase64 == "" {
		return h, errors.New("handshake carries no server certificate (AutoMTLS needs one)")
	}
	der, err := base64.RawStdEncoding.DecodeString(h.CertBase64)
	if err != nil {
		return h, fmt.Errorf("server certificate is not unpadded standard base64: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return h, fmt.Errorf("server certificate is not DER X.509: %w", err)
	}
	h.Certificate = cert
	return h, nil
}

// RawPlugin is a plugin process started by hand, outside go-plugin's client.
type RawPlugin struct {
	Cmd       *exec.Cmd
	Handshake *Handshake
	Client    *Identity
	stderr    *lockedBuffer
	done      chan struct{}
	waitErr   error
}

// Stderr is what the plugin has written to stderr so far.
func (p *RawPlugin) Stderr() string { return p.stderr.String() }

// Stop kills the process, waits (bounded) for it, and removes the socket a killed process
// could not.
func (p *RawPlugin) Stop() {
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	if hs := p.Handshake; hs != nil && hs.Network == "unix" {
		if st, err := os.Lstat(hs.Address); err == nil && st.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(hs.Address)
		}
	}
}

// StartRaw launches the binary with Vault's environment (TMPDIR set to tmpDir, where Go
// plugins put their socket) and reads the handshake line.
func StartRaw(ctx context.Context, binary, vaultVersion, tmpDir string) (*RawPlugin, error) {
	client, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary)
	cmd.Env = append(hostEnv(), VaultEnv(client, vaultVersion)...)
	cmd.Env = append(cmd.Env, "TMPDIR="+tmpDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &RawPlugin{Cmd: cmd, Client: client, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}

	lines := make(chan string, 1)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err != nil {
			readErr <- fmt.Errorf("reading handshake line: %w (got %q)", err, line)
			return
		}
		lines <- line
		_, _ = r.WriteTo(discard{}) // go-plugin drains later stdout too
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	select {
	case line := <-lines:
		if !strings.HasSuffix(line, "\n") {
			p.Stop()
			return nil, fmt.Errorf("handshake line not newline-terminated: %q", line)
		}
		hs, err := ParseHandshake(strings.TrimSuffix(line, "\n"))
		p.Handshake = hs
		if err != nil {
			p.Stop()
			return nil, err
		}
		return p, nil
	case err := <-readErr:
		p.Stop()
		return nil, fmt.Errorf("%w; stderr: %s", err, p.Stderr())
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("no handshake line: %w; stderr: %s", ctx.Err(), p.Stderr())
	}
}

// RunResult is the outcome of a launch that is expected to end by itself.
type RunResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// RunToExit launches the binary with env and waits, bounded by ctx, for it to exit.
func RunToExit(ctx context.Context, binary string, env []string) (*RunResult, error) {
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = env
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := &RunResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("binary still running when the deadline passed (%w); stdout %q stderr %q", ctx.Err(), res.Stdout, res.Stderr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		return res, err
	}
	return res, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
