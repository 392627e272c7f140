#!/usr/bin/env bash
# Service accounts end to end through a real Vault and a real OpenBao (tests/e2e, Go, Vault's
# API client): for each server, one raft node with the release plugin registered by SHA-256
# and version, against atlas-sim, three mounts: a service-account login issuing API keys, an
# API-key login issuing service accounts, a service-account login issuing organization
# (with an access list), invited and project service accounts, and an API-key login whose
# roles span three projects (project_ids: a key and a service account with project roles in
# each, and in no other). Every credential is used
# against the simulator (OAuth token + bearer read, or HTTP Digest), one lease of each type
# renewed, every lease revoked and its credential gone; config reads never show a secret.
# Just-in-time access: a person logged in with userpass, whose identity entity holds her
# username, grants herself GROUP_OWNER (username_from_entity: the plugin reads it through the
# server's EntityInfo) and can name nobody else; an operator's overlapping grant keeps what it
# needs when hers is revoked, and after both her roles are exactly her original ones.
# rotate-root under each login, after a rotation schedule the server leaves to the plugin
# (no rotation manager in Community Edition or OpenBao). Then, on two more mounts with fresh logins (an Organization
# Owner key, an ORG_OWNER service account), both rotations are held in the simulator after
# their new credential exists and the plugin process is SIGKILLed: the next request relaunches
# it, and Vault's next periodic WAL rollback (once a minute; the plugin runs with
# MONGODBATLAS_WAL_ROLLBACK_MIN_AGE=8s) leaves exactly one login credential of each, the one
# config holds, which issues and revokes (this waits for the rollback pass: about a minute
# per server, bounded at 150 s). Last, the server's trace-level log (plugin at trace too)
# holds none of the secrets the suite saw.
#
#   scripts/e2e-sa.sh                # both servers
#   scripts/e2e-sa.sh vault          # or: bao
#
# Builds the release binaries unless E2E_SA_SKIP_BUILD=1; servers come from
# scripts/servers.sh. The servers' logs stay in E2E_SA_LOG_DIR (default target/e2e-sa,
# <dir>/<server>/node1.log) and the test output in <dir>/go-test.log. E2E_SA_TIMEOUT bounds
# `go test` (default 600s). Prints one summary line per server at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'e2e-sa.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

servers=("$@")
[[ ${#servers[@]} -gt 0 ]] || servers=(vault bao)
for server in "${servers[@]}"; do
    [[ "$server" == vault || "$server" == bao ]] || die "usage: scripts/e2e-sa.sh [vault|bao]... (got '$server')"
done

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"
release_suite_binaries "$root" "${E2E_SA_SKIP_BUILD:-}" || die "the release binaries are not available"

# VAULT_BINARY / BAO_BINARY select the servers the test runs against.
server_env=()
for server in "${servers[@]}"; do
    binary="$("$root/scripts/servers.sh" "$server")"
    [[ -x "$binary" ]] || die "scripts/servers.sh $server printed no executable ($binary)"
    log "$("$binary" version)"
    if [[ "$server" == vault ]]; then
        server_env+=("VAULT_BINARY=$binary")
    else
        server_env+=("BAO_BINARY=$binary")
    fi
done

logs="$(release_suite_log_dir "$root" "${E2E_SA_LOG_DIR:-}" e2e-sa)"
log "plugin $plugin (v$version); simulator $sim; logs in $logs"

# tests/ is one Go module; fetch its modules before the bounded test run.
cd tests
go mod download
rc=0
# The package's unit tests (the scan finds planted secrets, Digest) run first, then one
# subtest per server. On failure the test prints the server's log tail, secrets redacted.
env "${server_env[@]}" PLUGIN_BINARY="$plugin" PLUGIN_VERSION="v$version" ATLAS_SIM_BINARY="$sim" \
    E2E_SA_LOG_DIR="$logs" go test -count=1 -v -timeout "${E2E_SA_TIMEOUT:-600s}" ./e2e/ 2>&1 |
    tee "$logs/go-test.log" || rc=$?
summaries="$(grep -E '^e2e-sa: server=' "$logs/go-test.log" || true)"
if ((rc != 0)); then
    [[ -z "$summaries" ]] || printf '%s\n' "$summaries" >&2
    log "FAIL (go test exited $rc); logs in $logs"
    exit "$rc"
fi
count="$(grep -c . <<<"$summaries" || true)"
((count == ${#servers[@]})) || die "expected ${#servers[@]} summary lines (one per server), found $count"
printf '%s\n' "$summaries" >&2
log "passed"
