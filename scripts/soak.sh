#!/usr/bin/env bash
# Randomized soak: the production plugin, hosted as Vault hosts it (the Go harness of
# tests/conformance, through Vault's SDK plugin client), against a real atlas-sim with
# random Atlas faults (429 + Retry-After, 500, 503, resets before and after the request ran,
# latency beyond the attempt timeout) while several workers issue, renew and revoke leases of
# API keys and service accounts, edit and delete roles, rewrite the config (alternately an
# API-key and a service-account login) and run WAL rollbacks. See tests/soak/README.md.
#
#   scripts/soak.sh                  # full: 30000 operations, at most 13 min of operations
#   scripts/soak.sh --quick          # CI: 3000 operations, at most 100 s of operations
#   scripts/soak.sh --long           # an hour of operations (at most 400000); the plugin's
#                                    # RSS may grow by at most 10% after the first 10 minutes
#   scripts/soak.sh --seed N --ops N --duration 5m --workers N --self-test --rss-limit PCT
#
# The last line of output is `operations=N faults=N leaked_credentials=N premature_deletes=N
# leaked_grants=N rss_start_mib=X rss_end_mib=X rss_growth_pct=X` (API keys and service
# accounts together; the plugin's resident memory after warm-up, sampled throughout: the series
# is printed above it); the exit status is non-zero if a credential leaked, one was deleted
# while its lease lived, a lease could not be revoked, an unexpected error (crash, hang, wrong
# status) occurred, or the RSS grew beyond the limit (--long, --rss-limit).
# SOAK_PROFILE=debug hosts target/debug binaries (default: release, what users run);
# SOAK_OUT (default target/soak) receives soak.log (host, plugin and simulator logs).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'soak.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

args=()
quick=false
duration=""
while (($#)); do
    case "$1" in
    --quick) quick=true; args+=("$1") ;;
    --long) duration=60m; args+=(--duration 60m --ops 400000 --workers 16 --rss-limit 10) ;;
    --self-test) args+=("$1") ;;
    --seed | --ops | --duration | --workers | --max-live | --rss-limit | --rss-every | --rss-warmup)
        (($# >= 2)) || die "$1 needs a value"
        [[ "$1" == --duration ]] && duration="$2"
        args+=("$1" "$2"); shift ;;
    --seed=* | --ops=* | --workers=* | --max-live=* | --rss-limit=* | --rss-every=* | --rss-warmup=*) args+=("$1") ;;
    --duration=*) duration="${1#--duration=}"; args+=("$1") ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required"
profile="${SOAK_PROFILE:-release}"
case "$profile" in
release) cargo_profile=(--release) ;;
debug) cargo_profile=() ;;
*) die "SOAK_PROFILE must be release or debug, not $profile" ;;
esac
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
out="${SOAK_OUT:-$target_dir/soak}"
case "$out" in /*) ;; *) out="$root/$out" ;; esac
mkdir -p "$out"

log "building the plugin and atlas-sim ($profile)"
cargo build --locked "${cargo_profile[@]}" -p atlas-sim >&2
sim="$target_dir/$profile/atlas-sim"
if [[ "$profile" == release ]]; then
    # The binary as shipped (static PIE): see scripts/lib/release.sh.
    source "$root/scripts/lib/release.sh"
    build_release_plugin "$root"
    engine="$(release_plugin_path "$root")"
else
    cargo build --locked --bin vault-plugin-secrets-mongodbatlas >&2
    engine="$target_dir/debug/vault-plugin-secrets-mongodbatlas"
fi
for built in "$engine" "$sim"; do
    [[ -x "$built" ]] || die "$built was not built"
done

log "building the soak driver and running its own tests (bookkeeping, self-test of the counters)"
(cd tests && go build -o "$out/soak" ./soak >&2)
(cd tests && ENGINE_BINARY="$engine" ATLAS_SIM_BINARY="$sim" go test -count=1 -timeout 300s ./soak >&2) ||
    die "the soak driver's own tests failed"

# Bound the whole run: the operations' wall time plus time to settle every lease.
seconds_of() { # Go duration (e.g. 90s, 5m, 1m30s, 1h) -> whole seconds
    python3 -c '
import re, sys
total = 0.0
for n, u in re.findall(r"([0-9.]+)(h|ms|m|s|us|ns)", sys.argv[1]):
    total += float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[u]
print(int(total) + 1)' "$1"
}
if [[ -n "$duration" ]]; then
    bound=$(($(seconds_of "$duration") + 300))
elif $quick; then
    bound=$((100 + 300))
else
    bound=$((13 * 60 + 300))
fi

# Own session, so the driver, atlas-sim and the plugin go down together whatever happens.
setsid --wait "$out/soak" --engine "$engine" --sim "$sim" --logs "$out/soak.log" "${args[@]}" &
soak_pid=$!
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { kill -KILL -- "-$soak_pid" 2>/dev/null || true; }
trap cleanup EXIT
(
    # The watchdog: wait the bound out unless the driver ends first.
    for ((i = 0; i < bound; i++)); do
        kill -0 "$soak_pid" 2>/dev/null || exit 0
        sleep 1
    done
    log "the soak exceeded ${bound}s: stopping it"
    kill -TERM -- "-$soak_pid" 2>/dev/null || true
) &
watchdog=$!
rc=0
wait "$soak_pid" || rc=$?
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
exit "$rc"
