package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// http2Preface is a client connection preface plus an empty SETTINGS frame: a server that
// accepted the TLS session answers it with its own SETTINGS.
var http2Preface = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)

// clientTLS is Vault's client side of AutoMTLS: trust exactly the handshake certificate.
func clientTLS(p *RawPlugin, cert *tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.Handshake.Certificate)
	cfg := &tls.Config{
		RootCAs:    roots,
		ServerName: "localhost",
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

func grpcHealth(ctx context.Context, p *RawPlugin, cert *tls.Certificate) error {
	addr := p.Handshake.Address
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, p.Handshake.Network, addr)
		}),
		grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(p, cert))),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "plugin"})
	if err != nil {
		return err
	}
	if resp.Status != grpc_health_v1.HealthCheckResponse_SERVING {
		return errors.New("health status " + resp.Status.String())
	}
	return nil
}

// rawExchange opens a TLS session, sends the HTTP/2 preface and reads the first bytes back.
// It returns how many bytes the server sent, the negotiated ALPN protocol and the first
// error met.
func rawExchange(ctx context.Context, p *RawPlugin, cert *tls.Certificate) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: clientTLS(p, cert)}
	conn, err := d.DialContext(ctx, p.Handshake.Network, p.Handshake.Address)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	alpn := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(http2Preface); err != nil {
		return 0, alpn, err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	return n, alpn, err
}

func expectServed(t *testing.T, ctx context.Context, p *RawPlugin, cert *tls.Certificate) {
	t.Helper()
	n, alpn, err := rawExchange(ctx, p, cert)
	if err != nil || n == 0 {
		t.Fatalf("raw TLS with Vault's client certificate: got %d bytes, %v; want the server's HTTP/2 SETTINGS", n, err)
	}
	if alpn != "h2" {
		t.Errorf("server negotiated ALPN %q, want \"h2\" (grpc-go refuses TLS connections without it)", alpn)
	}
	if err := grpcHealth(ctx, p, cert); err != nil {
		t.Fatalf("gRPC health with Vault's client certificate: %v", err)
	}
}

func expectRefused(t *testing.T, ctx context.Context, p *RawPlugin, cert *tls.Certificate) {
	t.Helper()
	n, _, err := rawExchange(ctx, p, cert)
	var netErr net.Error
	switch {
	case err == nil || n > 0:
		t.Errorf("raw TLS: the server sent %d bytes to this client (err %v); want the session refused", n, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		t.Errorf("raw TLS: the server neither refused nor answered within 5 s (%v); want an alert or a close", err)
	default:
		t.Logf("raw TLS refused: %v", err)
	}
	if err := grpcHealth(ctx, p, cert); err == nil {
		t.Error("gRPC health check succeeded for this client; want it refused")
	} else {
		t.Logf("gRPC refused: %v", err)
	}
}

func checkHandshake(t *testing.T, hs *Handshake) {
	t.Helper()
	t.Logf("handshake: %.120s...", hs.Line)
	if len(hs.Fields) != 6 {
		t.Errorf("handshake has %d fields, want 6 without PLUGIN_MULTIPLEX_GRPC: %q", len(hs.Fields), hs.Line)
	}
	if hs.Core != "1" || hs.App != "5" || hs.Network != "unix" || hs.Protocol != "grpc" {
		t.Errorf("handshake core %q app %q network %q protocol %q, want 1 5 unix grpc", hs.Core, hs.App, hs.Network, hs.Protocol)
	}
	if !filepath.IsAbs(hs.Address) {
		t.Errorf("socket address %q is not an absolute path", hs.Address)
	} else if st, err := os.Stat(hs.Address); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket address %q is not a unix socket (%v)", hs.Address, err)
	}
	if strings.ContainsAny(hs.CertBase64, "=\r\n \t-_") {
		t.Errorf("certificate field is not unpadded standard base64 on one line")
	}
	cert := hs.Certificate
	if cert == nil {
		t.Fatal("no parsable certificate in the handshake")
	}
	key, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		t.Errorf("certificate key is %T, want ECDSA P-256 or stronger", cert.PublicKey)
	} else if bits := key.Curve.Params().BitSize; bits < 256 {
		t.Errorf("certificate key is ECDSA %s, want P-256 or stronger", key.Curve.Params().Name)
	} else {
		t.Logf("certificate key: ECDSA %s", key.Curve.Params().Name)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Errorf("certificate SAN does not cover localhost: %v", err)
	}
	now := time.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		t.Errorf("certificate valid %v..%v, not now", cert.NotBefore, cert.NotAfter)
	}
	// Vault trusts exactly this certificate as a server (main connection) and as a client
	// (the plugin's broker dial-back); Go's verifier must accept it for both.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("Go rejects the certificate for key usage %v: %v", usage, err)
		}
	}
}
