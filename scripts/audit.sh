#!/usr/bin/env bash
# Dependency audit with cargo-deny (policy: scripts/deny.toml): known vulnerabilities,
# unmaintained and yanked crates (RustSec advisory database), banned crates,
# licenses and sources; then the release binary as built, with `cargo audit bin`, which
# reads the dependency list cargo-auditable embeds (what a scanner sees in production).
#
#   scripts/audit.sh                          the sources, then the host's release binary
#   scripts/audit.sh --binaries <binary>...   only those binaries
#
# cargo-deny and cargo-audit are installed from crates.io (pinned) on first use. The advisory database is
# a git repository on GitHub: the script fetches it when it can; otherwise it clones the
# offline snapshot beside the project (../shared/rustsec/advisory-db.bundle), else uses
# the copy cached by an earlier run; RUSTSEC_ADVISORY_DB names a local clone (or bundle)
# to use instead. The advisory check always runs: with no database at all the audit
# fails. The database's date is printed, with a warning when it is over 30 days old.
set -euo pipefail

readonly CARGO_DENY_VERSION="0.20.2"
readonly CARGO_AUDIT_VERSION="0.22.2"
readonly ADVISORY_DB_URL="https://github.com/rustsec/advisory-db"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="$root/scripts/deny.toml"
# cargo-deny names the database directory after its URL; keep in step with db-path in deny.toml.
db_dir="$HOME/.cache/vault-plugin-secrets-mongodbatlas/advisory-dbs/advisory-db-3157b0e258782691"

log() { printf 'audit.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

binaries=()
if [[ "${1:-}" == --binaries ]]; then
    shift
    [[ $# -gt 0 ]] || die "--binaries needs at least one binary"
    binaries=("$@")
elif [[ $# -gt 0 ]]; then
    die "unknown argument '$1' (usage: scripts/audit.sh [--binaries <binary>...])"
fi

if [[ ${#binaries[@]} -eq 0 && "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
    log "installing cargo-deny $CARGO_DENY_VERSION from crates.io (a few minutes, once)"
    cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" >&2 ||
        die "could not install cargo-deny"
fi

# The advisory database: a given clone, else fresh from GitHub, else the offline
# snapshot, else the cached copy.
seed_db() { # <git source: a clone or a bundle>
    rm -rf "$db_dir"
    mkdir -p "$(dirname "$db_dir")"
    git clone --quiet "$1" "$db_dir"
}
snapshot="$root/../shared/rustsec/advisory-db.bundle"
if [[ -n "${RUSTSEC_ADVISORY_DB:-}" ]]; then
    seed_db "$RUSTSEC_ADVISORY_DB" || die "could not copy the advisory database from $RUSTSEC_ADVISORY_DB"
    log "advisory database copied from $RUSTSEC_ADVISORY_DB"
elif timeout 120 cargo deny --config "$config" fetch db >/dev/null 2>&1 && [[ -d "$db_dir/crates" ]]; then
    log "advisory database fetched from $ADVISORY_DB_URL"
elif [[ -f "$snapshot" ]]; then
    # cargo-deny "succeeds" quietly with a stale cache; the snapshot may be newer.
    seed_db "$snapshot" || die "could not clone the advisory database snapshot $snapshot"
    log "advisory database: $ADVISORY_DB_URL unreachable, using the offline snapshot $snapshot"
fi
[[ -d "$db_dir/crates" ]] ||
    die "no advisory database: $ADVISORY_DB_URL is unreachable, $snapshot is missing and RUSTSEC_ADVISORY_DB is not set"
dated="$(git -C "$db_dir" log -1 --format=%ct 2>/dev/null || echo 0)"
age_days=$(( ($(date +%s) - dated) / 86400 ))
log "advisory database: commit $(git -C "$db_dir" log -1 --format=%h 2>/dev/null) of $(date -u -d "@$dated" +%F), $age_days days old"
((age_days <= 30)) || log "warning: the advisory database is over 30 days old ($ADVISORY_DB_URL unreachable?)"

# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"
if [[ ${#binaries[@]} -eq 0 ]]; then
    checks=(advisories bans licenses sources)
    # cargo-deny reads the metadata of every crate in Cargo.lock, for every target, offline:
    # a fresh machine has downloaded only the host's, so fetch them all first.
    cargo fetch --locked --quiet || die "could not fetch the crates of Cargo.lock"
    # --workspace: the Atlas simulator (tests/atlas-sim) and its dependencies are audited too.
    cargo deny --offline --locked --workspace --config "$config" check "${checks[@]}"
    log "passed: ${checks[*]}"
    build_release_plugin "$root" || die "could not build the release binary"
    binaries=("$(release_plugin_path "$root")")
fi

ensure_cargo_tool cargo-audit "$CARGO_AUDIT_VERSION" || die "could not install cargo-audit"
# --deny warnings: unmaintained, unsound and yanked fail too, as they do for cargo-deny.
# A binary without the embedded list would be audited from its panic strings only (a
# guess): refuse it instead.
for binary in "${binaries[@]}"; do
    [[ -f "$binary" ]] || die "no binary at $binary"
    grep -q --text 'dep-v0' <(readelf -SW "$binary") ||
        die "$binary carries no dependency list (.dep-v0): build it with scripts/lib/release.sh"
done
cargo audit --no-fetch --db "$db_dir" --deny warnings bin "${binaries[@]}"
log "passed: cargo audit bin over ${binaries[*]}"
