#!/usr/bin/env bash
# Cancellation storm through a real Vault (tests/conformance/storm, issue 11): the release
# plugin in Vault 1.21.1 (scripts/servers.sh), single node and a three-node raft cluster,
# against atlas-sim adding 150 ms to every Atlas call. Six clients fire `creds` reads and
# hang up after a random time around one issuance; afterwards the simulator must hold
# exactly as many keys as Vault holds leases, every credential a client received must
# still be live, and `revoke-prefix` of every lease must leave no key in Atlas.
#
#   scripts/storm.sh                     # quick: 60 reads single node, 45 in the cluster
#   STORM_REQUESTS=300 scripts/storm.sh  # a bigger storm (per mode)
#
# Extra arguments go to `go test` (e.g. -run 'TestStorm/single_node'). Builds the release
# binaries unless STORM_SKIP_BUILD=1. The servers' logs (plugin lines included) are kept
# in STORM_LOG_DIR (default target/storm); on failure their tails are printed.
# STORM_TIMEOUT bounds `go test` (default 700s).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'storm.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"
release_suite_binaries "$root" "${STORM_SKIP_BUILD:-}" || die "the release binaries are not available"
vault="$("$root/scripts/servers.sh" vault)"
[[ -x "$vault" ]] || die "scripts/servers.sh vault printed no executable ($vault)"
logs="$(release_suite_log_dir "$root" "${STORM_LOG_DIR:-}" storm)"

# The plugin's own lines in Vault's log carry go-plugin's "<catalog name>.<file name>".
readonly plugin_match="vault-plugin-secrets-mongodbatlas.vault-plugin-secrets-mongodbatlas"

show_logs() {
    local file
    for file in "$logs"/*/*.log; do
        [[ -f "$file" ]] || continue
        log "Vault log tail without plugin lines ($file):"
        grep -vF -- "$plugin_match" "$file" | tail -n 25 | sed 's/^/    | /' >&2 || true
        log "last plugin lines ($file):"
        grep -F -- "$plugin_match" "$file" | tail -n 25 | sed 's/^/    | /' >&2 || true
    done
}

log "$("$vault" version); plugin $plugin (v$version); simulator $sim; logs in $logs"
# tests/ is one Go module; fetch its modules before the bounded test run.
cd tests
go mod download
rc=0
VAULT_BINARY="$vault" PLUGIN_BINARY="$plugin" PLUGIN_VERSION="v$version" ATLAS_SIM_BINARY="$sim" \
    STORM_LOG_DIR="$logs" go test -count=1 -v -timeout "${STORM_TIMEOUT:-700s}" -run TestStorm ./conformance/storm/ "$@" || rc=$?
if ((rc != 0)); then
    show_logs
    log "FAIL (go test exited $rc); full logs in $logs"
    exit "$rc"
fi
log "passed"
