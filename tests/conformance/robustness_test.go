package conformance

// Robustness: a panicking request handler fails only its own request; garbage on the
// plugin's socket, malformed protobuf and plaintext connections are refused or answered with
// an error; and after each, the same process (same pid) still serves normal requests.
//
// TestPanic* use the example plugin's `panic` path (a test aid of the example plugin only);
// TestEngine* use the production binary (ENGINE_BINARY; they skip when it is unset).

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin/pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// panicMessage is what the plugin answers for a request whose handler panicked.
const panicMessage = "internal error: the plugin failed while handling this request"

// A panicking handler fails its own request with a generic 500 (no panic text), is logged
// at error level, and neither the process nor requests in flight on the same connection
// (other mounts included) are affected.
func TestPanicInOneRequestFailsOnlyThatRequest(t *testing.T) {
	s := loadSuite(t)
	s.requireContract(t)
	ctx := testContext(t, 90*time.Second)

	dir := t.TempDir()
	launches := filepath.Join(dir, "launches")
	wrapper := filepath.Join(dir, "plugin-wrapper")
	script := "#!/bin/sh\necho \"$$\" >> '" + launches + "'\nexec '" + s.binary + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host and plugin log:\n%s", logs.String())
		}
	})
	h, err := NewHost(HostConfig{Name: "example", Command: wrapper, Version: s.version, System: staticSystem(), Logs: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	a := mustMount(t, ctx, h, "alpha")
	b := mustMount(t, ctx, h, "beta")
	codec := s.kvCodec()

	_, err = a.Do(ctx, logical.ReadOperation, "panic", nil)
	if err == nil || !strings.Contains(err.Error(), panicMessage) {
		t.Fatalf("read panic: err %v; want the plugin's generic %q", err, panicMessage)
	}
	if strings.Contains(err.Error(), "deliberate") {
		t.Errorf("the panic's own text reached the caller: %v", err)
	}

	// Normal traffic on both mounts runs continuously while handlers panic on alpha.
	var (
		done     = make(chan struct{})
		ok       atomic.Int64
		failures = make(chan error, 64)
		started  sync.WaitGroup
		traffic  sync.WaitGroup
	)
	for i, m := range []*Mount{a, b, a, b} {
		started.Add(1)
		traffic.Add(1)
		go func() {
			defer traffic.Done()
			first := true
			for n := 0; ; n++ {
				key := fmt.Sprintf("kv/t%d-%d", i, n)
				value := fmt.Sprintf("v%d-%d", i, n)
				_, err := m.Do(ctx, logical.UpdateOperation, key, codec.write(value))
				if err == nil {
					var resp *logical.Response
					resp, err = m.Do(ctx, logical.ReadOperation, key, nil)
					if err == nil {
						var got string
						if resp == nil {
							err = errors.New("read back nothing")
						} else if got, err = codec.read(resp.Data); err == nil && got != value {
							err = fmt.Errorf("read back %q, want %q", got, value)
						}
					}
				}
				if err != nil {
					failures <- fmt.Errorf("%s %s: %w", m.Path, key, err)
				} else {
					ok.Add(1)
				}
				if first {
					first = false
					started.Done()
				}
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				default:
				}
			}
		}()
	}
	started.Wait()
	before := ok.Load()

	const panics = 6
	panicErrs := make(chan error, panics)
	for i := 0; i < panics; i++ {
		go func() {
			_, err := a.Do(ctx, logical.UpdateOperation, "panic", map[string]any{"after": "300ms"})
			panicErrs <- err
		}()
	}
	for i := 0; i < panics; i++ {
		if err := <-panicErrs; err == nil || !strings.Contains(err.Error(), panicMessage) {
			t.Errorf("delayed panic %d: err %v; want %q", i, err, panicMessage)
		}
	}
	during := ok.Load() - before
	close(done)
	traffic.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("normal request failed while others panicked: %v", err)
	}
	if during == 0 {
		t.Errorf("no normal request completed while the panicking requests were in flight")
	}
	t.Logf("%d normal write+read pairs completed while %d handlers panicked (%d in total)", during, panics, ok.Load())

	// Same process, still serving both mounts.
	pids := readLaunches(t, launches)
	if len(pids) != 1 || h.Spawned() != 1 {
		t.Fatalf("plugin launched %d times (pids %v), want once", len(pids), pids)
	}
	if a.Process().Exited() {
		t.Fatal("the plugin process exited")
	}
	if err := syscall.Kill(pids[0], 0); err != nil {
		t.Fatalf("pid %d is gone: %v", pids[0], err)
	}
	for _, m := range []*Mount{a, b} {
		if _, err := m.Do(ctx, logical.UpdateOperation, "kv/after", codec.write("after")); err != nil {
			t.Errorf("%s after the panics: %v", m.Path, err)
		}
	}
	if !hasLogLine(logs.String(), "[ERROR]", "a request handler panicked", "deliberate panic") {
		t.Errorf("no error-level log line reports the panic")
	}
}

func hasLogLine(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// engineBinary is the production binary under test, or skips.
func engineBinary(t *testing.T) (string, string) {
	t.Helper()
	bin := os.Getenv("ENGINE_BINARY")
	if bin == "" {
		t.Skip("ENGINE_BINARY is not set: point it at target/release/vault-plugin-secrets-mongodbatlas (see scripts/conformance.sh)")
	}
	if !filepath.IsAbs(bin) {
		t.Fatalf("ENGINE_BINARY must be an absolute path, got %q", bin)
	}
	version := ""
	if v := os.Getenv("PLUGIN_VERSION"); v != "" {
		version = "v" + strings.TrimPrefix(v, "v")
	}
	return bin, version
}

// rawCodec passes bytes through untouched, so a test can send what no generated client
// would. Its name is "proto" so the content type is the one Vault sends.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// malformedPayloads: random bytes, every truncation and many bit flips of a valid request,
// protobuf that claims absurd lengths, invalid UTF-8 in string fields, and valid protobuf
// carrying nonsense (bad JSON data, unknown operation, huge numbers).
func malformedPayloads(t *testing.T, rng *mrand.Rand) [][]byte {
	t.Helper()
	valid, err := proto.Marshal(&pb.HandleRequestArgs{Request: &pb.Request{
		ID: "req", Operation: "update", Path: "roles/fuzzed", MountPoint: "mongodbatlas/",
		Data: `{"organization_id":"5f0c4f2b8c1e4a3d2b1a0f9e","roles":"ORG_MEMBER","ttl":1e400}`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 0; i < 100; i++ {
		b := make([]byte, rng.IntN(512)+1)
		_, _ = rand.Read(b)
		out = append(out, b)
	}
	for n := 0; n < len(valid); n++ {
		out = append(out, slices.Clone(valid[:n]))
	}
	for i := 0; i < 200; i++ {
		b := slices.Clone(valid)
		for f := rng.IntN(4) + 1; f > 0; f-- {
			b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
		}
		out = append(out, b)
	}
	out = append(out,
		[]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},             // field 1, length 4 GiB
		[]byte{0x0a, 0x05, 0x12, 0x03, 0xff, 0xfe, 0xfd},       // a request string field: invalid UTF-8
		[]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // unterminated varint
		[]byte{0x0f}, // field 1 with wire type 7
	)
	for _, req := range []*pb.Request{
		{Operation: "update", Path: "roles/x", Data: "{not json"},
		{Operation: "update", Path: "roles/x", Data: "[1,2]"},
		{Operation: "update", Path: "roles/x", Data: strings.Repeat("[", 100000)},
		{Operation: "no-such-operation", Path: "config"},
		{Operation: "read", Path: strings.Repeat("roles/", 10000)},
		{Operation: "renew", Path: "creds/x", Secret: &pb.Secret{InternalData: "{bad"}},
		{Operation: "revoke", Path: "creds/x", Secret: &pb.Secret{InternalData: `{"secret_type":"programmatic_api_key"}`}},
		{Operation: "renew", Path: "creds/x", Secret: &pb.Secret{InternalData: `{"secret_type":"programmatic_api_key","role":"x"}`,
			LeaseOptions: &pb.LeaseOptions{TTL: -1, MaxTTL: -1 << 63, Increment: 1<<63 - 1}}},
		{Operation: "rollback", Path: "", Data: `{"immediate":true}`},
		{Operation: "update", Path: "config", Data: `{"public_key":{"a":1},"private_key":1e999}`},
	} {
		b, err := proto.Marshal(&pb.HandleRequestArgs{Request: req})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// Malformed protobuf on every pb.Backend method of a mounted production engine: each call
// gets an answer (an error status or a reply), none hangs or breaks the connection, and the
// same process then serves the mount normally.
func TestEngineMalformedProtobuf(t *testing.T) {
	bin, version := engineBinary(t)
	ctx := testContext(t, 120*time.Second)
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host and plugin log:\n%s", logs.String())
		}
	})
	h, err := NewHost(HostConfig{Name: "mongodbatlas", Command: bin, Version: version, System: staticSystem(), Logs: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	m := mustMount(t, ctx, h, "mongodbatlas")
	rc := m.Process().ReattachConfig()
	if rc == nil {
		t.Fatal("no reattach config (pid) for the plugin process")
	}
	role := map[string]any{"organization_id": "5f0c4f2b8c1e4a3d2b1a0f9e", "roles": "ORG_MEMBER"}
	if _, err := m.Do(ctx, logical.UpdateOperation, "roles/control", role); err != nil {
		t.Fatalf("control role write: %v", err)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 7))
	payloads := malformedPayloads(t, rng)
	// Cleanup and Setup are left out: a payload that happens to decode would really unmount
	// or re-set-up the mount, which is not malformed input.
	methods := []string{
		"/pb.Backend/HandleRequest", "/pb.Backend/HandleExistenceCheck", "/pb.Backend/InvalidateKey",
		"/pb.Backend/Initialize", "/pb.Backend/SpecialPaths", "/pb.Backend/Type", "/pb.Backend/NoSuchMethod",
	}
	callCtx := metadata.AppendToOutgoingContext(ctx, "multiplex_id", m.MultiplexID())
	codesSeen := map[string]int{}
	for _, method := range methods {
		for _, payload := range payloads {
			c, cancel := context.WithTimeout(callCtx, 5*time.Second)
			var reply []byte
			err := m.RawConn().Invoke(c, method, &payload, &reply, grpc.ForceCodec(rawCodec{}))
			cancel()
			code := status.Code(err)
			codesSeen[method+" "+code.String()]++
			if code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled {
				t.Fatalf("%s with %d malformed bytes %x: %v; the plugin stopped answering", method, len(payload), payload[:min(len(payload), 32)], err)
			}
		}
	}
	keys := make([]string, 0, len(codesSeen))
	for k := range codesSeen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%5d × %s", codesSeen[k], k)
	}
	t.Logf("%d payloads × %d methods answered", len(payloads), len(methods))

	if m.Process().Exited() {
		t.Fatal("the plugin process exited")
	}
	if err := syscall.Kill(rc.Pid, 0); err != nil {
		t.Fatalf("pid %d is gone: %v", rc.Pid, err)
	}
	resp, err := m.Do(ctx, logical.ReadOperation, "roles/control", nil)
	if err != nil || resp == nil || resp.Data["organization_id"] != role["organization_id"] {
		t.Fatalf("normal read after the malformed calls: %+v, %v", resp, err)
	}
	if after := m.Process().ReattachConfig(); after == nil || after.Pid != rc.Pid {
		t.Fatalf("plugin pid changed: %v -> %v", rc.Pid, after)
	}
}

// readUntilClosed reads what the server sends until it closes the connection; an error
// if it neither closes nor answers within the deadline.
func readUntilClosed(conn net.Conn, d time.Duration) ([]byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(conn)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return got, fmt.Errorf("connection still open after %v (%d bytes received)", d, len(got))
	}
	return got, nil // EOF, reset or a TLS close: all mean closed
}

func tlsDial(ctx context.Context, p *RawPlugin) (*tls.Conn, error) {
	d := &tls.Dialer{Config: clientTLS(p, &p.Client.Cert)}
	conn, err := d.DialContext(ctx, p.Handshake.Network, p.Handshake.Address)
	if err != nil {
		return nil, err
	}
	return conn.(*tls.Conn), nil
}

// expectAlive checks the raw-launched process is the same and still serves gRPC: health
// and a pb.Backend call.
func expectAlive(t *testing.T, ctx context.Context, p *RawPlugin, pid int) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("the plugin process exited: %v; stderr:\n%s", p.waitErr, p.Stderr())
	default:
	}
	if p.Cmd.Process.Pid != pid {
		t.Fatalf("pid changed: %d -> %d", pid, p.Cmd.Process.Pid)
	}
	if err := grpcHealth(ctx, p, &p.Client.Cert); err != nil {
		t.Fatalf("gRPC health after the garbage: %v", err)
	}
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, p.Handshake.Network, p.Handshake.Address)
		}),
		grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(p, &p.Client.Cert))),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := pb.NewBackendClient(conn).Type(c, &pb.Empty{})
	if err != nil || reply.Type != 1 {
		t.Fatalf("Backend.Type after the garbage: %v, %v; want logical (1)", reply, err)
	}
}

// Garbage on the production binary's socket: random bytes and broken HTTP/2 over a valid
// mutual-TLS session, plaintext on the TLS socket, and malformed protobuf to an unmounted
// process. Each connection is closed or answered with an error; the same process then
// serves normally.
func TestEngineSocketGarbage(t *testing.T) {
	bin, _ := engineBinary(t)
	ctx := testContext(t, 90*time.Second)
	p, err := StartRaw(ctx, bin, hostVaultVersion, t.TempDir())
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", p.Stderr())
		}
	})
	pid := p.Cmd.Process.Pid
	expectAlive(t, ctx, p, pid)

	garbage := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	for _, tc := range []struct {
		name  string
		send  []byte
		close bool // half-close after sending (the client gives up mid-preface)
	}{
		{"random bytes instead of the preface", garbage(4096), false},
		{"truncated preface", []byte("PRI * HTTP/2.0\r\n"), true},
		{"preface then random frames", append(slices.Clone(http2Preface), garbage(2048)...), false},
		{"preface then a frame claiming 16 MiB", append(slices.Clone(http2Preface), 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01), true},
		{"nothing at all", nil, true},
	} {
		t.Run("mTLS "+tc.name, func(t *testing.T) {
			conn, err := tlsDial(ctx, p)
			if err != nil {
				t.Fatalf("TLS with Vault's certificate: %v", err)
			}
			defer conn.Close()
			if len(tc.send) > 0 {
				_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Write(tc.send); err != nil {
					t.Logf("write: %v (the server may close first)", err)
				}
			}
			if tc.close {
				_ = conn.CloseWrite()
			}
			got, err := readUntilClosed(conn, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("server sent %d bytes, then closed", len(got))
			expectAlive(t, ctx, p, pid)
		})
	}

	t.Run("plaintext on the TLS socket", func(t *testing.T) {
		for _, send := range [][]byte{http2Preface, garbage(1024), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")} {
			conn, err := (&net.Dialer{}).DialContext(ctx, p.Handshake.Network, p.Handshake.Address)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = conn.Write(send)
			got, err := readUntilClosed(conn, 15*time.Second)
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			// At most a TLS alert record (content type 21); never HTTP/2 or HTTP/1.
			if len(got) > 0 && got[0] != 21 {
				t.Fatalf("plaintext client got %d bytes starting %x; want nothing or a TLS alert", len(got), got[:min(len(got), 16)])
			}
		}
		conn, err := grpc.NewClient("passthrough:///localhost",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, p.Handshake.Network, p.Handshake.Address)
			}),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := grpc_health_v1.NewHealthClient(conn).Check(c, &grpc_health_v1.HealthCheckRequest{Service: "plugin"}); err == nil {
			t.Fatal("a plaintext gRPC client was served")
		} else {
			t.Logf("plaintext gRPC refused: %v", err)
		}
		expectAlive(t, ctx, p, pid)
	})

	t.Run("malformed protobuf before any Setup", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///localhost",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, p.Handshake.Network, p.Handshake.Address)
			}),
			grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(p, &p.Client.Cert))),
		)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 11))
		payloads := malformedPayloads(t, rng)
		for _, method := range []string{"/pb.Backend/HandleRequest", "/pb.Backend/HandleExistenceCheck", "/pb.Backend/Cleanup", "/pb.Backend/Initialize", "/plugin.GRPCController/Shutdown/x", "/logical.PluginVersion/Version"} {
			for i, payload := range payloads {
				md := metadata.Pairs("multiplex_id", "m"+strconv.Itoa(i%3))
				c, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), 5*time.Second)
				var reply []byte
				err := conn.Invoke(c, method, &payload, &reply, grpc.ForceCodec(rawCodec{}))
				cancel()
				if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
					t.Fatalf("%s: %v; the plugin stopped answering", method, err)
				}
			}
		}
		expectAlive(t, ctx, p, pid)
	})
}

// With Vault's client certificate in the environment the production binary listens on
// exactly one socket, the handshake's unix socket, which speaks only mutual TLS pinned to
// that certificate: no TCP listener, no second (plaintext) socket.
func TestEngineTLSOnlyListener(t *testing.T) {
	bin, _ := engineBinary(t)
	ctx := testContext(t, 60*time.Second)
	p, err := StartRaw(ctx, bin, hostVaultVersion, t.TempDir())
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", p.Stderr())
		}
	})
	expectServed(t, ctx, p, &p.Client.Cert)
	stranger, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no client certificate", func(t *testing.T) { expectRefused(t, ctx, p, nil) })
	t.Run("wrong client certificate", func(t *testing.T) { expectRefused(t, ctx, p, &stranger.Cert) })

	unix, tcp, err := listeningSockets(p.Cmd.Process.Pid)
	if err != nil {
		t.Skipf("cannot read the process's sockets from /proc: %v", err)
	}
	if len(tcp) != 0 {
		t.Errorf("listening on TCP %v; want no TCP listener", tcp)
	}
	if !slices.Equal(unix, []string{p.Handshake.Address}) {
		t.Errorf("listening unix sockets %v; want exactly the handshake's %q", unix, p.Handshake.Address)
	}
	expectServed(t, ctx, p, &p.Client.Cert)
}

// listeningSockets lists the unix socket paths and TCP addresses pid listens on (Linux /proc).
func listeningSockets(pid int) (unix []string, tcp []string, err error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	// /proc/<pid>/net/unix: Num RefCount Protocol Flags Type St Inode [Path]; Flags 00010000 = listening.
	if err := scanProc(fmt.Sprintf("/proc/%d/net/unix", pid), func(f []string) {
		if len(f) >= 8 && f[3] == "00010000" && inodes[f[6]] {
			unix = append(unix, f[7])
		}
	}); err != nil {
		return nil, nil, err
	}
	// /proc/<pid>/net/tcp{,6}: sl local rem st ... inode (field 9); st 0A = LISTEN.
	for _, file := range []string{"tcp", "tcp6"} {
		_ = scanProc(fmt.Sprintf("/proc/%d/net/%s", pid, file), func(f []string) {
			if len(f) >= 10 && f[3] == "0A" && inodes[f[9]] {
				tcp = append(tcp, f[1])
			}
		})
	}
	return unix, tcp, nil
}

func scanProc(path string, row func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		row(strings.Fields(sc.Text()))
	}
	return sc.Err()
}
