#!/usr/bin/env bash
# The plugin in a three-node raft cluster under failover (tests/conformance/cluster), once
# with Vault 1.21.1 and once with OpenBao 2.7.2 (scripts/servers.sh): the release plugin
# registered with its SHA-256 and version, API keys and service accounts issued and revoked
# through the active node and the standbys by six clients while the active node is
# SIGKILLed (its leases must be on the new active node, renew and revoke there, and the
# plugin must run there), the killed node restarts and rejoins, and the next active node
# steps down. After Vault's rollback pass (the mount's WAL empty) the simulator must hold
# exactly the credentials of the live leases, but for those lost in the handover, and
# revoking every lease must leave only those. Each cluster prints a line, and the last line
# adds them up:
#   cluster: issued=N failed_during_failover=N leaked=N premature_deletes=N recovery_s=X lost_in_handover=N stale_records=N
# The attribution comes from the active node's storage, read through sys/raw (the servers
# run with raw_storage_endpoint): each lease entry names its credential; a credential without
# a lease that the plugin's record (issued/<type>/<Atlas id>) holds was handed to a node
# that died or stepped down before storing the lease, lost_in_handover (the protocol's known
# limit: reported, not failed); one that neither the record nor the WAL holds is leaked (a
# plugin bug: must be 0); a lease whose credential is gone is a premature delete (must be 0);
# a record entry whose credential is gone and that no lease holds is stale (an issuance
# cleaned up after its node died mid-handover could not unrecord it: reported). tidy (no
# safety margin, the load over) must count as orphaned exactly the leaked credentials and
# as stale the stale entries, before and after revoke-prefix, and then prune them.
#
#   scripts/cluster.sh [--quick] [go test arguments]
#
# --quick: four clients and 4 s phases instead of six and 8 s (saves about 12 s per server:
# the wait for Vault's rollback pass, about a minute, dominates).
# Builds the release binaries unless CLUSTER_SKIP_BUILD=1. The servers' logs are kept in
# CLUSTER_LOG_DIR (default target/cluster/<vault|bao>).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

quick=0
if [[ "${1:-}" == --quick ]]; then
    quick=1
    shift
fi

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"
release_suite_binaries "$root" "${CLUSTER_SKIP_BUILD:-}" || die "the release binaries are not available"
logs="$(release_suite_log_dir "$root" "${CLUSTER_LOG_DIR:-}" cluster)"

log "plugin $plugin (v$version); simulator $sim; logs in $logs"
cd tests
go mod download
lines=()
for server in vault bao; do
    binary="$("$root/scripts/servers.sh" "$server")"
    [[ -x "$binary" ]] || die "scripts/servers.sh $server printed no executable ($binary)"
    log "$("$binary" version)"
    mkdir -p "$logs/$server"
    out="$logs/$server/go-test.log"
    rc=0
    VAULT_BINARY="$binary" PLUGIN_BINARY="$plugin" PLUGIN_VERSION="$version" ATLAS_SIM_BINARY="$sim" \
        CLUSTER_LOG_DIR="$logs/$server" CLUSTER_QUICK="$quick" go test -count=1 -v -timeout 600s -run TestClusterFailover ./conformance/cluster/ "$@" \
        >"$out" 2>&1 || rc=$?
    grep -v '^cluster: ' "$out" >&2 || true
    line="$(grep '^cluster: ' "$out" | tail -n 1 || true)"
    if ((rc != 0)); then
        [[ -z "$line" ]] || printf '%s\n' "$line"
        die "FAIL in the $server cluster (go test exited $rc); the servers' logs are in $logs/$server"
    fi
    [[ -n "$line" ]] || die "the $server suite printed no summary line"
    printf '%s\n' "$line"
    lines+=("$line")
done
# The last line: both clusters together (sums; the slowest recovery).
printf '%s\n' "${lines[@]}" | awk '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      issued += v["issued"]; failed += v["failed_during_failover"]; leaked += v["leaked"]
      premature += v["premature_deletes"]; lost += v["lost_in_handover"]; stale += v["stale_records"]
      if (v["recovery_s"] + 0 > recovery) recovery = v["recovery_s"] + 0 }
    END { printf "cluster: issued=%d failed_during_failover=%d leaked=%d premature_deletes=%d recovery_s=%.1f lost_in_handover=%d stale_records=%d\n",
          issued, failed, leaked, premature, recovery, lost, stale }'
