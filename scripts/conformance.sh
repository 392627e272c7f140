#!/usr/bin/env bash
# Builds the example plugin in release mode and runs the Go conformance harness
# (tests/conformance) against it, the way Vault would host it.
# Extra arguments go to `go test` (e.g. -run TestHandshake). CONFORMANCE_TIMEOUT bounds the run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
  /*) ;;
  *) target_dir="$root/$target_dir" ;;
esac

cargo build --release --example example_plugin
binary="$target_dir/release/examples/example_plugin"
if [[ ! -x "$binary" ]]; then
  echo "conformance: example plugin not found at $binary" >&2
  exit 1
fi

# The [package] version of Cargo.toml; the plugin must report "v" + this.
version="$(awk -F'"' '/^\[package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version[[:space:]]*=/ { print $2; exit }' Cargo.toml)"
if [[ -z "$version" ]]; then
  echo "conformance: no [package] version in Cargo.toml" >&2
  exit 1
fi

echo "conformance: $binary (v$version)" >&2
cd tests/conformance
PLUGIN_BINARY="$binary" PLUGIN_VERSION="$version" PLUGIN_PROFILE=example \
  go test -count=1 -v -timeout "${CONFORMANCE_TIMEOUT:-300s}" ./... "$@"
