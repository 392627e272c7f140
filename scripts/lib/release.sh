# shellcheck shell=bash
# The plugin binary as released, for every script that builds, tests or measures it.
#
# On Linux with glibc it is a static PIE: glibc is linked in (as Go links its runtime), so
# one binary runs on any distribution, RHEL 8 included, where a dynamically linked build
# needs the build host's glibc (2.34+ here). Static linking also drops the shared-library
# pages from every plugin process, and packed relative relocations (RELR) shrink the
# relocation table from ~470 KB to ~6 KB. Name lookups use glibc's built-in `files` and
# `dns` sources (what Go's resolver reads); other NSS modules are not loaded.
#
# The flags go through CARGO_TARGET_<triple>_RUSTFLAGS with an explicit --target, so build
# scripts and proc-macros (which cannot be static) are built normally. Output:
# <target dir>/<host triple>/release/vault-plugin-secrets-mongodbatlas.

# Prints the absolute cargo target directory. <repo root>
release_target_dir() {
    local dir="${CARGO_TARGET_DIR:-target}"
    [[ "$dir" == /* ]] || dir="$1/$dir"
    printf '%s\n' "$dir"
}

_release_host_triple() { rustc -vV | sed -n 's/^host: //p'; }

# Prints the path of the release plugin binary. <repo root>
release_plugin_path() {
    printf '%s/%s/release/vault-plugin-secrets-mongodbatlas\n' "$(release_target_dir "$1")" "$(_release_host_triple)"
}

# Builds the release plugin binary (cargo's output on stderr). <repo root>
build_release_plugin() {
    local triple flags=()
    triple="$(_release_host_triple)"
    [[ -n "$triple" ]] || { echo "release.sh: cannot tell the host triple (rustc -vV)" >&2; return 1; }
    if [[ "$triple" == *-linux-gnu ]]; then
        flags=("CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_RUSTFLAGS=-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs")
    fi
    (cd "$1" && env "${flags[@]}" cargo build --release --locked --target "$triple" \
        --bin vault-plugin-secrets-mongodbatlas >&2)
}
