#!/usr/bin/env bash
# Runs the aarch64 plugin binary under qemu user-mode emulation (Debian's qemu-user, installed
# when missing) through the conformance harness (tests/conformance), hosted by Vault's own
# go-plugin client code as on an arm64 Vault node:
#   - the launch contract: without Vault's magic cookie it prints go-plugin's "This binary
#     is a plugin" message and exits 1; with it, a valid v5 gRPC handshake line;
#   - the handshake, health ping, mTLS refusal, Version rpc and shutdown;
#   - the engine: config, every role mode issuing, renewing and revoking against atlas-sim
#     (the host's build), and two multiplexed mounts.
#
#   scripts/arm64-emulated.sh <aarch64 binary>    (scripts/release.sh --verify calls it)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"

log() { printf 'arm64-emulated.sh: %s\n' "$*" >&2; }
[[ $# -eq 1 && -x "$1" ]] || { log "usage: scripts/arm64-emulated.sh <aarch64 plugin binary>"; exit 2; }
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

# The example-plugin profile's generic protocol tests that need no example-only paths, with
# the engine as the plugin; then the engine tests.
tests='^(TestLaunchRefusals|TestHandshakeLineFormat|TestHandshakeAndPing|TestMTLSRefusesOtherClients|TestPluginVersion|TestShutdownEndsProcess|TestEngineConfig|TestEngineRoleModesIssueRenewRevoke|TestEngineMultiplexedMounts)$'
cd tests
PLUGIN_BINARY="$wrapper" PLUGIN_VERSION="$(release_version "$root")" PLUGIN_PROFILE=example \
ENGINE_BINARY="$wrapper" ATLAS_SIM_BINARY="$sim" \
  go test -count=1 -v -timeout 600s -run "$tests" ./conformance/ | tee "$work/go-test.log" >&2
# -run silently matching nothing would pass: every test named must have run and passed.
for t in $(tr -d '^()$' <<<"$tests" | tr '|' ' '); do
  grep -q -- "^--- PASS: $t " "$work/go-test.log" || { log "FAILED: $t did not pass under emulation"; exit 1; }
done
log "ok: the aarch64 binary passed the launch contract and $(tr '|' '\n' <<<"$tests" | wc -l) conformance tests under qemu"
