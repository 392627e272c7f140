#!/usr/bin/env bash
# Runs the aarch64 plugin binary under qemu user-mode emulation (Debian's qemu-user, installed
# when missing) through the conformance harness (tests/conformance), hosted by Vault's own
# go-plugin client code as on an arm64 Vault node:
#   - the launch contract: without Vault's magic cookie it prints go-plugin's "This binary
#     is a plugin" message and exits 1; with it, a valid v5 gRPC handshake line;
#   - the handshake, health ping, mTLS refusal, registration probe, Version rpc, shutdown,
#     malformed protobuf and socket garbage;
#   - the engine against atlas-sim (the host's build): config, every role mode, the official
#     plugin's storage and leases, the fault matrix, rotation (about 3 minutes in all).
#
#   scripts/arm64-emulated.sh [--quick] <aarch64 binary>   (scripts/release.sh --verify calls it)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"

log() { printf 'arm64-emulated.sh: %s\n' "$*" >&2; }
quick=0
if [[ "${1:-}" == --quick ]]; then quick=1; shift; fi
[[ $# -eq 1 && -x "$1" ]] || { log "usage: scripts/arm64-emulated.sh [--quick] <aarch64 plugin binary>"; exit 2; }
binary="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

if ! command -v qemu-aarch64 >/dev/null; then
  # shellcheck source=scripts/lib/apt.sh
  source "$root/scripts/lib/apt.sh"
  apt_install arm64-emulated.sh qemu-user
fi
file_type="$(od -An -tx1 -j18 -N2 "$binary" | tr -d ' ')"
[[ "$file_type" == "b700" ]] || { log "$binary is not an aarch64 ELF (e_machine $file_type)"; exit 1; }

cargo build --release --locked -p atlas-sim >&2
sim="$(release_target_dir "$root")/release/atlas-sim"

# Vault execs the plugin command directly; the wrapper makes that command the emulated binary
# (exec: the process Vault waits for and signals is qemu running the plugin).
work="$(mktemp -d "${TMPDIR:-/tmp}/vpsm-arm64.XXXXXX")"
trap 'rm -rf "$work"' EXIT
wrapper="$work/$RELEASE_BINARY_NAME-arm64"
printf '#!/bin/sh\nexec qemu-aarch64 %q "$@"\n' "$binary" >"$wrapper"
chmod 755 "$wrapper"
log "$(qemu-aarch64 --version | head -n 1); plugin $binary"

cd tests
# Every conformance test but the seven that need the example plugin's own paths
# (examples/example_plugin: storage, system view, data round trips, a path that panics), which
# is not built for arm64: the engine's tests (the Atlas fault matrix included) and the
# protocol tests that hold for any plugin, with the engine as the plugin. --quick: the launch
# contract, the protocol basics and the engine's basic tests (about 10 s instead of 2 min).
example_only=" TestSetupWithBrokerDialBack TestStorageRoundTrip TestSystemViewReachesPlugin TestMultiplexedMountsShareOneProcess TestCleanupOneMountLeavesOther TestDataWarningsErrorsRoundTrip TestPanicInOneRequestFailsOnlyThatRequest "
if [[ "$quick" == 1 ]]; then
  tests=(TestLaunchRefusals TestHandshakeLineFormat TestHandshakeAndPing TestMTLSRefusesOtherClients
    TestPluginVersion TestShutdownEndsProcess TestEngineConfig TestEngineRoleModesIssueRenewRevoke
    TestEngineMultiplexedMounts)
else
  tests=()
  while read -r t; do
    [[ "$example_only" == *" $t "* ]] || tests+=("$t")
  done < <(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing.T).*/\1/p' conformance/*_test.go)
fi
pattern="^($(IFS='|'; echo "${tests[*]}"))\$"
PLUGIN_BINARY="$wrapper" PLUGIN_VERSION="$(release_version "$root")" PLUGIN_PROFILE=example \
ENGINE_BINARY="$wrapper" ATLAS_SIM_BINARY="$sim" \
  go test -count=1 -v -timeout 900s -run "$pattern" ./conformance/ | tee "$work/go-test.log" >&2
# A test that skipped itself (or a name that matched nothing) would pass silently: each must
# have passed.
for t in "${tests[@]}"; do
  grep -q -- "^--- PASS: $t " "$work/go-test.log" || { log "FAILED: $t did not pass under emulation"; exit 1; }
done
log "ok: the aarch64 binary passed ${#tests[@]} conformance tests under qemu: $(tr ' ' ',' <<<"${tests[*]}")"
