#!/usr/bin/env bash
# Builds the release archives the way Vault operators install plugins, under target/dist/:
#
#   vault-plugin-secrets-mongodbatlas_<version>_linux_amd64.zip     the binary, LICENSE, README.txt
#   vault-plugin-secrets-mongodbatlas_<version>_linux_arm64.zip
#   vault-plugin-secrets-mongodbatlas_<version>_SHA256SUMS          sha256sum -c over the zips
#   vault-plugin-secrets-mongodbatlas_<version>_linux_<arch>.plugin.sha256
#        the binary's SHA-256, the value `vault plugin register -sha256=` pins
#   vault-plugin-secrets-mongodbatlas_<version>_linux_<arch>.cdx.json
#        a CycloneDX SBOM, read from the dependency list embedded in the binary
#
#   scripts/release.sh            build both platforms and write the archives
#   scripts/release.sh --verify   also prove what the archives promise: a second build from a
#                                 copy of the tree in another directory, later, with another
#                                 time zone, gives byte-identical binaries and archives; the
#                                 version is the same in Cargo.toml, the archives and the
#                                 README; the arm64 binary passes the launch contract and the
#                                 conformance tests under qemu user-mode emulation; both
#                                 binaries are hardened and pass `cargo audit bin`.
#   scripts/release.sh --verify --quick   the same, but the second build is for amd64 only
#                                 and the emulated run is the launch contract and the engine's
#                                 basic tests (9 of 22); the test command runs this mode.
#
# Installs what it needs when missing: the aarch64 Rust target (rustup), Debian's
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user, and pinned cargo-auditable and
# auditable2cdx from crates.io. The version is Cargo.toml's [package] version.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"

readonly AUDITABLE2CDX_VERSION="0.1.0"

log() { printf 'release.sh: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

verify=0 quick=0
for arg in "$@"; do
  case "$arg" in
    --verify) verify=1 ;;
    --quick) quick=1 ;;
    *) die "unknown argument '$arg' (usage: scripts/release.sh [--verify [--quick]])" ;;
  esac
done

version="$(release_version "$root")" || die "no [package] version in Cargo.toml"
# The time of every archive member: the commit's (the build itself records no time).
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

ensure_cargo_tool auditable2cdx "$AUDITABLE2CDX_VERSION" || die "could not install auditable2cdx"

# Builds the platforms in <tree> (one cargo run: the link steps overlap) and writes their
# archives into <tree>'s target/dist. <tree> <triple>...
build_dist() {
  local tree="$1" dist triple platform binary sha base
  shift
  dist="$(release_target_dir "$tree")/dist"
  build_release_plugin "$tree" "$@" || die "the release build in $tree failed"
  rm -rf "$dist"
  mkdir -p "$dist"
  for triple in "$@"; do
    platform="$(release_platform "$triple")"
    binary="$(release_plugin_path "$tree" "$triple")"
    [[ -x "$binary" ]] || die "$binary was not built"
    sha="$(sha256sum "$binary" | cut -d' ' -f1)"
    base="${RELEASE_BINARY_NAME}_${version}_${platform}"
    printf '%s  %s\n' "$sha" "$RELEASE_BINARY_NAME" >"$dist/$base.plugin.sha256"
    write_archive_readme "$platform" "$sha" >"$dist/README.txt"
    python3 "$root/scripts/lib/reproducible-zip.py" "$dist/$base.zip" "$epoch" \
      "$RELEASE_BINARY_NAME=$binary:755" "LICENSE=$tree/LICENSE" "README.txt=$dist/README.txt"
    rm "$dist/README.txt"
    auditable2cdx "$binary" >"$dist/$base.cdx.json" || die "auditable2cdx could not read $binary"
  done
  (cd "$dist" && sha256sum -- *.zip >"${RELEASE_BINARY_NAME}_${version}_SHA256SUMS")
}

# The README inside each archive: what it is and how to install it. <platform> <binary sha256>
write_archive_readme() {
  cat <<EOF
$RELEASE_BINARY_NAME $version ($1)

A HashiCorp Vault (and OpenBao) secrets engine plugin for MongoDB Atlas, a drop-in
replacement for Vault's builtin mongodbatlas engine. Licensed under the MPL-2.0 (LICENSE).

Install: copy the binary into Vault's plugin_directory, register it with its SHA-256 and
version, and enable it:

    cp $RELEASE_BINARY_NAME <plugin_directory>/
    vault plugin register -sha256=$2 -version=v$version \\
        secret $RELEASE_BINARY_NAME
    vault secrets enable -path=mongodbatlas $RELEASE_BINARY_NAME

The binary is statically linked (any Linux distribution) and carries its dependency list
for \`cargo audit bin\`; the SBOM beside this archive lists the same.
EOF
}

log "building v$version for ${RELEASE_TRIPLES[*]} (archive times: $(date -u -d "@$epoch" +%FT%TZ))"
build_dist "$root" "${RELEASE_TRIPLES[@]}"
dist="$(release_target_dir "$root")/dist"
log "wrote $dist:"
(cd "$dist" && ls -l >&2 && cat ./*.plugin.sha256 >&2)
[[ "$verify" == 1 ]] || exit 0

# 1. The version has one source: what the README's commands say (-version=v<v>, the versioned
# plugin file <name>-v<v>, the archive names <name>_<v>_...; not Vault's builtin engine's
# <v>+builtin) is Cargo.toml's version. The binary's own report is checked by
# TestPluginVersion (conformance, and under emulation below).
readme_versions="$(perl -nE 'say $1 while /(?:-version=v|mongodbatlas-v|mongodbatlas_)([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*?)(?=[_\s"\x27\\`]|$)/g' README.md |
  grep -v '+builtin$' | sort -u)"
[[ -n "$readme_versions" ]] || die "the README names no -version=v<version>"
[[ "$readme_versions" == "$version" ]] ||
  die "the README names version(s) $(tr '\n' ' ' <<<"$readme_versions")but Cargo.toml says $version"
log "ok: Cargo.toml, the archive names and the README all say $version"

# 2. Reproducible: the same tree copied elsewhere and built again later, in another time zone.
copy_parent="$(mktemp -d "${TMPDIR:-/tmp}/vpsm-repro.XXXXXX")"
trap 'rm -rf "$copy_parent"' EXIT
copy="$copy_parent/elsewhere/$RELEASE_BINARY_NAME"
mkdir -p "$copy"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$copy"
second_triples=("${RELEASE_TRIPLES[@]}")
[[ "$quick" == 0 ]] || second_triples=(x86_64-unknown-linux-gnu)
log "second build (${second_triples[*]}), from a copy at $copy"
(unset CARGO_TARGET_DIR; export TZ=Pacific/Kiritimati; build_dist "$copy" "${second_triples[@]}")
mismatch=0
for triple in "${second_triples[@]}"; do
  first="$(release_plugin_path "$root" "$triple")"
  second="$copy/target/$triple/release/$RELEASE_BINARY_NAME"
  if cmp -s "$first" "$second"; then
    log "ok: $triple binary reproduced: $(sha256sum "$first" | cut -d' ' -f1)"
  else
    mismatch=1
    log "$triple binaries differ: $(sha256sum "$first" "$second" | tr '\n' ' ')"
    cmp -l "$first" "$second" | head -5 >&2 || true
  fi
  zip="${RELEASE_BINARY_NAME}_${version}_$(release_platform "$triple").zip"
  if cmp -s "$dist/$zip" "$copy/target/dist/$zip"; then
    log "ok: $zip reproduced"
  else
    mismatch=1
    log "$zip differs between the builds"
  fi
done
[[ "$mismatch" == 0 ]] || die "the two builds differ: the release is not reproducible"

# 3. Both shipped binaries are hardened (PIE, full RELRO, non-executable stack), and what is
# inside is declared: cargo audit bin reads the embedded dependency list.
for triple in "${RELEASE_TRIPLES[@]}"; do
  "$root/scripts/hardening.sh" "$(release_plugin_path "$root" "$triple")" >&2 || die "$triple binary is not hardened"
done
"$root/scripts/audit.sh" --binaries "$(release_plugin_path "$root" x86_64-unknown-linux-gnu)" \
  "$(release_plugin_path "$root" aarch64-unknown-linux-gnu)" || die "cargo audit bin found a problem"

# 4. arm64 runs, not only builds: under qemu user-mode emulation, the launch contract and
# the conformance tests, with Vault's own plugin client code as the host.
emulated=("$(release_plugin_path "$root" aarch64-unknown-linux-gnu)")
[[ "$quick" == 0 ]] || emulated=(--quick "${emulated[@]}")
"$root/scripts/arm64-emulated.sh" "${emulated[@]}" ||
  die "the arm64 binary failed under emulation"
log "verified"
