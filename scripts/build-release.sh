#!/usr/bin/env bash
# Builds the plugin binary to install in Vault's plugin directory (a static PIE on
# Linux with glibc: see scripts/lib/release.sh). Prints its path on stdout, and on
# stderr its SHA-256 (the value `vault plugin register -sha256=...` needs).
#
#   PLUGIN=$(scripts/build-release.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/release.sh
source "$root/scripts/lib/release.sh"

build_release_plugin "$root"
binary="$(release_plugin_path "$root")"
[[ -x "$binary" ]] || { echo "build-release.sh: $binary was not built" >&2; exit 1; }
printf 'build-release.sh: %s\nbuild-release.sh: sha256 %s\n' "$binary" "$(sha256sum "$binary" | cut -d' ' -f1)" >&2
printf '%s\n' "$binary"
