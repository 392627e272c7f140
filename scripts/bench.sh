#!/usr/bin/env bash
# Benchmarks our plugin against the official Go plugin (v0.16.0) in one run: same
# atlas-sim, same Vault-like host (tests/bench, built on the conformance harness),
# the two plugins interleaved round by round, medians over the rounds.
#
#   scripts/bench.sh            # full mode (numbers for the README; bounded, < 25 min)
#   scripts/bench.sh --quick    # quick mode for CI (a few minutes)
#
# Writes $BENCH_OUT (default target/bench): summary.json, summary.md, ratios.svg,
# latency.svg, storm.svg, raw.json (every sample) and logs/. Exits non-zero only if
# the benchmark itself broke or our plugin leaked Atlas keys; missed targets are
# reported, never fatal (the numbers are noisy on shared machines).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mode=full
for arg in "$@"; do
    case "$arg" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (see --help)" ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
out="${BENCH_OUT:-$target_dir/bench}"
case "$out" in /*) ;; *) out="$root/$out" ;; esac
mkdir -p "$out"

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required"

log "building our plugin and atlas-sim (release)"
source "$root/scripts/lib/release.sh"
build_release_plugin "$root"
cargo build --release --locked -p atlas-sim >&2
ours="$(release_plugin_path "$root")"
sim="$target_dir/release/atlas-sim"
[[ -x "$ours" && -x "$sim" ]] || die "release binaries not found under $target_dir/release"

official="$("$root/scripts/servers.sh" official-plugin)"
[[ -x "$official" ]] || die "official plugin not found at $official"
# The end-to-end phase runs a real Vault server: ours against its builtin engine.
vault="$("$root/scripts/servers.sh" vault)"
[[ -x "$vault" ]] || die "vault not found at $vault"

log "building the benchmark driver (tests/bench)"
(cd tests && go build -o "$out/bench-driver" ./bench) >&2

version="$(release_version "$root")" || die "no [package] version in Cargo.toml"

case "$mode" in
quick) limit=900 ;;
full) limit=1500 ;;
esac
log "running the $mode benchmark (bounded at ${limit}s); results in $out"
status=0
timeout --signal=TERM --kill-after=30 "$limit" "$out/bench-driver" \
    -mode "$mode" -ours "$ours" -official "$official" -ours-version "v$version" \
    -sim "$sim" -vault "$vault" -out "$out" -rustc "$(rustc --version)" -timeout "$((limit - 20))s" || status=$?
case "$status" in
0) log "done: $out/summary.json, $out/summary.md" ;;
2) log "FAILED: our plugin leaked Atlas keys (see $out/summary.json)" ;;
124) log "FAILED: the benchmark did not finish within ${limit}s" ;;
*) log "FAILED: the benchmark broke (exit $status); logs in $out/logs" ;;
esac
exit "$status"
