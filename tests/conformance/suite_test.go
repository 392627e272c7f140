package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Environment of a run:
//
//	PLUGIN_BINARY   absolute path of the plugin under test (required; tests skip without it)
//	PLUGIN_VERSION  its version ("0.1.0" or "v0.1.0"); the Version rpc must return "v"+version
//	PLUGIN_PROFILE  "example" (default): the project's example plugin contract, all paths;
//	                "sdkmock": Vault's sdk/plugin/mock backend, to check the harness itself
//	                (contract-only tests skip).
const (
	profileExample = "example"
	profileSDKMock = "sdkmock"
)

// Values the static system view hands the plugin; distinctive so they cannot match by accident.
const (
	hostVaultVersion = "1.21.4"
	defaultLeaseTTL  = 67 * time.Minute
	maxLeaseTTL      = 50 * time.Hour
)

type suite struct {
	binary  string
	version string // canonical, with the leading "v"; empty when PLUGIN_VERSION is unset
	profile string
}

func loadSuite(t *testing.T) *suite {
	t.Helper()
	bin := os.Getenv("PLUGIN_BINARY")
	if bin == "" {
		t.Skip("PLUGIN_BINARY is not set: point it at the plugin binary to test (see scripts/conformance.sh)")
	}
	if !filepath.IsAbs(bin) {
		t.Fatalf("PLUGIN_BINARY must be an absolute path, got %q", bin)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("PLUGIN_BINARY %q is not an executable file (%v)", bin, err)
	}
	s := &suite{binary: bin, profile: os.Getenv("PLUGIN_PROFILE")}
	if v := os.Getenv("PLUGIN_VERSION"); v != "" {
		s.version = "v" + strings.TrimPrefix(v, "v")
	}
	switch s.profile {
	case "":
		s.profile = profileExample
	case profileExample, profileSDKMock:
	default:
		t.Fatalf("PLUGIN_PROFILE %q: want %q or %q", s.profile, profileExample, profileSDKMock)
	}
	return s
}

// requireContract skips tests that need the example plugin's paths.
func (s *suite) requireContract(t *testing.T) {
	t.Helper()
	if s.profile != profileExample {
		t.Skipf("needs the example plugin contract paths; PLUGIN_PROFILE=%s", s.profile)
	}
}

func staticSystem() logical.StaticSystemView {
	return logical.StaticSystemView{
		DefaultLeaseTTLVal: defaultLeaseTTL,
		MaxLeaseTTLVal:     maxLeaseTTL,
		VersionString:      hostVaultVersion,
		PluginEnvironment: &logical.PluginEnvironment{
			VaultVersion:           hostVaultVersion,
			VaultVersionPrerelease: "",
			VaultVersionMetadata:   "conformance",
		},
	}
}

// newHost registers command (the binary or a wrapper of it) with a fresh host; the host and
// plugin log is printed only when the test fails.
func (s *suite) newHost(t *testing.T, command string) *Host {
	t.Helper()
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host and plugin log:\n%s", logs.String())
		}
	})
	h, err := NewHost(HostConfig{
		Name:    "example",
		Command: command,
		Version: s.version,
		System:  staticSystem(),
		Logs:    logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// within runs f, giving up when ctx ends (for SDK calls that take no context).
func within[T any](ctx context.Context, what string, f func() T) (T, error) {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%s did not return: %w", what, ctx.Err())
	}
}

// mustMount mounts the plugin at path or fails the test.
func mustMount(t *testing.T, ctx context.Context, h *Host, path string) *Mount {
	t.Helper()
	m, err := h.Mount(ctx, path)
	if err != nil {
		t.Fatalf("mount %s: %v", path, err)
	}
	return m
}

// storageCodec says how the profile's kv path stores a written value.
type storageCodec struct {
	write  func(value string) map[string]any         // request data that stores value
	encode func(value string) []byte                 // storage bytes for value
	read   func(data map[string]any) (string, error) // value back out of a read response
}

func (s *suite) kvCodec() storageCodec {
	if s.profile == profileSDKMock {
		// sdk mock: stores the "value" field's raw bytes; read returns {"value": ...}.
		return storageCodec{
			write:  func(v string) map[string]any { return map[string]any{"value": v} },
			encode: func(v string) []byte { return []byte(v) },
			read: func(d map[string]any) (string, error) {
				v, ok := d["value"].(string)
				if !ok {
					return "", fmt.Errorf("read data %v has no string \"value\"", d)
				}
				return v, nil
			},
		}
	}
	// example contract: stores the request data as JSON; read returns that map.
	return storageCodec{
		write: func(v string) map[string]any { return map[string]any{"value": v, "n": 7} },
		encode: func(v string) []byte {
			b, _ := json.Marshal(map[string]any{"value": v, "n": 7})
			return b
		},
		read: func(d map[string]any) (string, error) {
			v, ok := d["value"].(string)
			if !ok {
				return "", fmt.Errorf("read data %v has no string \"value\"", d)
			}
			if n, err := jsonInt(d, "n"); err != nil || n != 7 {
				return "", fmt.Errorf("read data %v: \"n\" = %#v, want the number 7", d, d["n"])
			}
			return v, nil
		},
	}
}

// sameStored compares storage bytes: JSON-equal for the contract, byte-equal otherwise.
func sameStored(got, want []byte) bool {
	var g, w any
	if json.Unmarshal(got, &g) == nil && json.Unmarshal(want, &w) == nil {
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		return string(gb) == string(wb)
	}
	return string(got) == string(want)
}

// listKeys reads the "keys" of a list response.
func listKeys(resp *logical.Response) ([]string, error) {
	if resp == nil {
		return nil, nil
	}
	raw, ok := resp.Data["keys"]
	if !ok || raw == nil {
		return nil, nil
	}
	items, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("keys is %T, want a list", raw)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("key %#v is not a string", it)
		}
		out = append(out, s)
	}
	return out, nil
}

// jsonInt reads an integer response field. Vault decodes the plugin's JSON with
// encoding/json into any, so numbers arrive as float64; they must be integral.
func jsonInt(data map[string]any, key string) (int64, error) {
	switch n := data[key].(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, fmt.Errorf("%q = %v, want an integer", key, n)
		}
		return int64(n), nil
	case json.Number:
		return n.Int64()
	default:
		return 0, fmt.Errorf("%q = %#v (%T), want a JSON number", key, data[key], data[key])
	}
}
