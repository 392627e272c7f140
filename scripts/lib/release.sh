# shellcheck shell=bash
# The plugin binary as released, for every script that builds, tests, measures or ships it.
#
# On Linux with glibc it is a static PIE: glibc is linked in (as Go links its runtime), so
# one binary runs on any distribution, RHEL 8 included, where a dynamically linked build
# needs the build host's glibc (2.34+ here). Static linking also drops the shared-library
# pages from every plugin process, and packed relative relocations (RELR) shrink the
# relocation table from ~470 KB to ~6 KB. Name lookups use glibc's built-in `files` and
# `dns` sources (what Go's resolver reads); other NSS modules are not loaded.
#
# It is built with `cargo auditable`, which embeds the dependency list (a compressed JSON
# section, `.dep-v0`) that `cargo audit bin` and other scanners read, and reproducibly: the
# checkout, target and cargo-home paths are remapped to fixed names in Rust and C code alike,
# and nothing in it records the build's time, so two checkouts of one commit in different
# directories build byte-identical binaries (scripts/release.sh --verify checks it, with
# builds at different times). No SOURCE_DATE_EPOCH is set for cargo: aws-lc-sys' build
# script would rebuild on every commit, and the check shows the binary does not need one.
#
# The flags go through CARGO_TARGET_<triple>_RUSTFLAGS with an explicit --target, so build
# scripts and proc-macros (which cannot be static) are built normally. Output:
# <target dir>/<triple>/release/vault-plugin-secrets-mongodbatlas.

RELEASE_BINARY_NAME="vault-plugin-secrets-mongodbatlas"
CARGO_AUDITABLE_VERSION="0.7.7"
# The platforms scripts/release.sh ships: Rust target triple and Go/HashiCorp platform name.
# shellcheck disable=SC2034  # read by scripts that source this file
RELEASE_TRIPLES=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)

# Prints the [package] version of Cargo.toml, the one source of the plugin's version. <repo root>
release_version() {
    local version
    version="$(awk -F'"' '/^\[package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version[[:space:]]*=/ { print $2; exit }' "$1/Cargo.toml")"
    [[ -n "$version" ]] || { echo "release.sh: no [package] version in $1/Cargo.toml" >&2; return 1; }
    printf '%s\n' "$version"
}

# Prints the platform name of a target triple (linux_amd64, linux_arm64). <triple>
release_platform() {
    case "$1" in
        x86_64-unknown-linux-gnu) echo linux_amd64 ;;
        aarch64-unknown-linux-gnu) echo linux_arm64 ;;
        *) echo "release.sh: no platform name for $1" >&2; return 1 ;;
    esac
}

# Prints the absolute cargo target directory. <repo root>
release_target_dir() {
    local dir="${CARGO_TARGET_DIR:-target}"
    [[ "$dir" == /* ]] || dir="$1/$dir"
    printf '%s\n' "$dir"
}

_release_host_triple() { rustc -vV | sed -n 's/^host: //p'; }

# Prints the path of the release plugin binary. <repo root> [triple, default the host's]
release_plugin_path() {
    local triple="${2:-$(_release_host_triple)}"
    printf '%s/%s/release/%s\n' "$(release_target_dir "$1")" "$triple" "$RELEASE_BINARY_NAME"
}

# Installs a cargo tool at a pinned version from crates.io unless `cargo install` already
# did (some tools print no version of their own). Unoptimised (--debug): these tools run for
# a second, and a cold CI machine compiles cargo-audit in 2 minutes instead of 5. <crate> <version>
ensure_cargo_tool() {
    cargo install --list | grep -qxF "$1 v$2:" && return 0
    echo "release.sh: installing $1 $2 from crates.io (once)" >&2
    cargo install --locked --quiet --debug "$1" --version "$2" >&2
}

# Installs what a cross build for <triple> needs: the Rust standard library for it (rustup)
# and a C cross toolchain with glibc's static libraries (Debian's packages). <triple>
ensure_cross_toolchain() {
    local triple="$1"
    [[ "$triple" == "$(_release_host_triple)" ]] && return 0
    rustup target list --installed | grep -qx "$triple" || rustup target add "$triple" >&2
    case "$triple" in
        aarch64-unknown-linux-gnu)
            if ! command -v aarch64-linux-gnu-gcc >/dev/null || [[ ! -f /usr/aarch64-linux-gnu/lib/libc.a ]]; then
                # shellcheck source=scripts/lib/apt.sh
                source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
                apt_install release.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross
            fi
            ;;
        *) echo "release.sh: no cross toolchain known for $triple" >&2; return 1 ;;
    esac
}

# Builds the release plugin binary for each triple, by default the host's (cargo's output on
# stderr). <repo root> [triple...]
build_release_plugin() {
    local root="$1"; shift
    local triples=("$@")
    [[ ${#triples[@]} -gt 0 ]] || triples=("$(_release_host_triple)")
    ensure_cargo_tool cargo-auditable "$CARGO_AUDITABLE_VERSION" ||
        { echo "release.sh: could not install cargo-auditable" >&2; return 1; }

    local target cargo_home
    target="$(release_target_dir "$root")"
    cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd)"
    # The last matching remap wins: the target directory may lie inside the checkout.
    local remap="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$root=/build --remap-path-prefix=$target=/build/target"
    local prefix_map="-ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$root=/build -ffile-prefix-map=$target=/build/target"
    local env_vars=() args=() triple upper lower
    for triple in "${triples[@]}"; do
        ensure_cross_toolchain "$triple" || { echo "release.sh: no toolchain for $triple" >&2; return 1; }
        upper="$(tr 'a-z-' 'A-Z_' <<<"$triple")"
        lower="${triple//-/_}"
        if [[ "$triple" == *-linux-gnu ]]; then
            env_vars+=("CARGO_TARGET_${upper}_RUSTFLAGS=-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs $remap")
        else
            env_vars+=("CARGO_TARGET_${upper}_RUSTFLAGS=$remap")
        fi
        env_vars+=("CFLAGS_${lower}=$prefix_map")
        if [[ "$triple" == aarch64-unknown-linux-gnu && "$triple" != "$(_release_host_triple)" ]]; then
            env_vars+=("CARGO_TARGET_${upper}_LINKER=$root/scripts/lib/static-pie-cc.sh"
                "CC_FOR_STATIC_PIE=aarch64-linux-gnu-gcc"
                "CC_${lower}=aarch64-linux-gnu-gcc" "AR_${lower}=aarch64-linux-gnu-ar")
        fi
        args+=(--target "$triple")
    done
    (cd "$root" && env -u SOURCE_DATE_EPOCH "${env_vars[@]}" cargo auditable build --release --locked "${args[@]}" \
        --bin "$RELEASE_BINARY_NAME" >&2)
}

# For the suites that run the release binaries against real servers (cluster, storm,
# tidy-restore, e2e-sa): builds the plugin and atlas-sim unless <skip build> is 1, then sets
# target_dir, plugin, sim and version. Fails with a message if either binary is missing.
# <repo root> <skip build: 1 to skip>
# shellcheck disable=SC2034  # target_dir, plugin, sim and version are read by the caller
release_suite_binaries() {
    local root="$1" skip="$2" built
    target_dir="$(release_target_dir "$root")"
    plugin="$(release_plugin_path "$root")"
    sim="$target_dir/release/atlas-sim"
    if [[ "$skip" != 1 ]]; then
        printf '%s: building the plugin and atlas-sim (release)\n' "$(basename "$0")" >&2
        build_release_plugin "$root" || return 1
        (cd "$root" && cargo build --release --locked -p atlas-sim >&2) || return 1
    fi
    for built in "$plugin" "$sim"; do
        [[ -x "$built" ]] || { printf '%s: %s was not built\n' "$(basename "$0")" "$built" >&2; return 1; }
    done
    version="$(release_version "$root")" ||
        { printf '%s: no [package] version in Cargo.toml\n' "$(basename "$0")" >&2; return 1; }
}

# Empties and prints a suite's log directory: <dir> if given (relative to the repo root),
# else <target dir>/<name>. <repo root> <dir or ""> <name>
release_suite_log_dir() {
    local dir="${2:-$(release_target_dir "$1")/$3}"
    [[ "$dir" == /* ]] || dir="$1/$dir"
    rm -rf "$dir" && mkdir -p "$dir" && printf '%s\n' "$dir"
}
