#!/usr/bin/env bash
# Dependency audit with cargo-deny (policy: scripts/deny.toml): known vulnerabilities,
# unmaintained and yanked crates (RustSec advisory database), banned crates,
# licenses and sources.
#
#   scripts/audit.sh
#
# cargo-deny is installed from crates.io (pinned) on first use. The advisory database is
# a git repository on GitHub: the script fetches it when it can; otherwise it uses the
# copy cached by an earlier run; RUSTSEC_ADVISORY_DB names a local clone to use instead. With no
# database at all (a machine that reaches crates.io but not GitHub) the advisory check
# is reported as NOT RUN and the other checks still gate; AUDIT_REQUIRE_ADVISORIES=1
# makes that a failure.
set -euo pipefail

readonly CARGO_DENY_VERSION="0.20.2"
readonly ADVISORY_DB_URL="https://github.com/rustsec/advisory-db"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="$root/scripts/deny.toml"
# cargo-deny names the database directory after its URL; keep in step with db-path in deny.toml.
db_dir="$HOME/.cache/vault-plugin-secrets-mongodbatlas/advisory-dbs/advisory-db-3157b0e258782691"

log() { printf 'audit.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
    log "installing cargo-deny $CARGO_DENY_VERSION from crates.io (a few minutes, once)"
    cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" >&2 ||
        die "could not install cargo-deny"
fi

# The advisory database: a given clone, else fresh from GitHub, else the cached copy.
if [[ -n "${RUSTSEC_ADVISORY_DB:-}" ]]; then
    [[ -d "$RUSTSEC_ADVISORY_DB/crates" ]] || die "RUSTSEC_ADVISORY_DB=$RUSTSEC_ADVISORY_DB is not an advisory-db clone"
    rm -rf "$db_dir"
    mkdir -p "$(dirname "$db_dir")"
    git clone --quiet "$RUSTSEC_ADVISORY_DB" "$db_dir" || die "could not copy $RUSTSEC_ADVISORY_DB"
    log "advisory database copied from $RUSTSEC_ADVISORY_DB"
else
    # cargo-deny also succeeds, quietly, when it only has its cached copy.
    timeout 120 cargo deny --config "$config" fetch db >/dev/null 2>&1 || true
fi

checks=(bans licenses sources)
if [[ -d "$db_dir/crates" ]]; then
    checks=(advisories "${checks[@]}")
    dated="$(git -C "$db_dir" log -1 --format=%ct 2>/dev/null || echo 0)"
    age_days=$(( ($(date +%s) - dated) / 86400 ))
    log "advisory database: commit $(git -C "$db_dir" log -1 --format=%h 2>/dev/null) of $(date -u -d "@$dated" +%F), $age_days days old"
    ((age_days <= 30)) || log "warning: the advisory database is over 30 days old ($ADVISORY_DB_URL unreachable?)"
elif [[ "${AUDIT_REQUIRE_ADVISORIES:-0}" == 1 ]]; then
    die "no advisory database: $ADVISORY_DB_URL is unreachable and RUSTSEC_ADVISORY_DB is not set"
else
    log "advisories: NOT RUN ($ADVISORY_DB_URL is unreachable from this machine and no copy is cached;"
    log "  set RUSTSEC_ADVISORY_DB to a clone of it). Bans, licenses and sources are still checked."
fi

cargo deny --offline --locked --config "$config" check "${checks[@]}"
log "passed: ${checks[*]}"
