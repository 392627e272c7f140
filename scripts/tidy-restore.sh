#!/usr/bin/env bash
# The plugin's tidy after a raft snapshot restore (tests/conformance/tidy), once with Vault
# 1.21.1 and once with OpenBao 2.7.2 (scripts/servers.sh), each one raft node with the release
# plugin registered by SHA-256 and version and mounted twice against one simulator (an API-key
# role and a service-account role each). Credentials are issued on both mounts, decoys made
# beside them (the plugin's name shape with another tag, without a tag, with the tag inside
# the name; credentials made by hand), a snapshot taken, more credentials issued, the
# snapshot restored (force): tidy must then count, in a dry run, and delete exactly the
# credentials issued after the snapshot, one mount at a time, touching nothing else; an
# orphan younger than the default safety margin is counted too_recent and kept; every
# credential of a lease in the restored state still works (an API key over HTTP Digest, a
# service account through its OAuth token), renews and revokes. Each server prints a line:
#   tidy: mounts=2 orphans_deleted=N untouched=K too_recent_kept=N restored_checked=N decoys=N server=S (T)
#
#   scripts/tidy-restore.sh [vault|bao]...   # default: both
#
# Builds the release binaries unless TIDY_SKIP_BUILD=1. The servers' logs are kept in
# TIDY_LOG_DIR (default target/tidy-restore/<vault|bao>); TIDY_TIMEOUT bounds each `go test`
# (default 480s).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'tidy-restore.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

servers=("$@")
[[ ${#servers[@]} -gt 0 ]] || servers=(vault bao)
for server in "${servers[@]}"; do
    [[ "$server" == vault || "$server" == bao ]] || die "usage: scripts/tidy-restore.sh [vault|bao]... (got '$server')"
done

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"
release_suite_binaries "$root" "${TIDY_SKIP_BUILD:-}" || die "the release binaries are not available"
logs="$(release_suite_log_dir "$root" "${TIDY_LOG_DIR:-}" tidy-restore)"

log "plugin $plugin (v$version); simulator $sim; logs in $logs"
cd tests
go mod download
for server in "${servers[@]}"; do
    binary="$("$root/scripts/servers.sh" "$server")"
    [[ -x "$binary" ]] || die "scripts/servers.sh $server printed no executable ($binary)"
    log "$("$binary" version)"
    mkdir -p "$logs/$server"
    out="$logs/$server/go-test.log"
    rc=0
    VAULT_BINARY="$binary" PLUGIN_BINARY="$plugin" PLUGIN_VERSION="$version" ATLAS_SIM_BINARY="$sim" \
        TIDY_LOG_DIR="$logs/$server" go test -count=1 -v -timeout "${TIDY_TIMEOUT:-480s}" -run TestTidyAfterRestore ./conformance/tidy/ \
        >"$out" 2>&1 || rc=$?
    grep -v '^tidy: ' "$out" >&2 || true
    line="$(grep '^tidy: ' "$out" | tail -n 1 || true)"
    if ((rc != 0)); then
        [[ -z "$line" ]] || printf '%s\n' "$line"
        die "FAIL with $server (go test exited $rc); the server's log is in $logs/$server"
    fi
    [[ -n "$line" ]] || die "the $server run printed no summary line"
    printf '%s\n' "$line"
done
