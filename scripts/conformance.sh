#!/usr/bin/env bash
# Builds the example plugin and the release binaries (the engine and atlas-sim), then runs the
# Go conformance harness (tests/conformance): the protocol tests against the example plugin and
# the engine tests against the production binary driving a real atlas-sim, hosted as Vault does.
# Extra arguments go to `go test` (e.g. -run TestEngine). CONFORMANCE_TIMEOUT bounds the run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
  /*) ;;
  *) target_dir="$root/$target_dir" ;;
esac

source "$root/scripts/lib/release.sh"
build_release_plugin "$root"
cargo build --release --locked --example example_plugin
cargo build --release --locked -p atlas-sim
binary="$target_dir/release/examples/example_plugin"
engine="$(release_plugin_path "$root")"
sim="$target_dir/release/atlas-sim"
for built in "$binary" "$engine" "$sim"; do
  if [[ ! -x "$built" ]]; then
    echo "conformance: $built was not built" >&2
    exit 1
  fi
done

# The [package] version of Cargo.toml; the plugin must report "v" + this.
version="$(release_version "$root")"
if [[ -z "$version" ]]; then
  echo "conformance: no [package] version in Cargo.toml" >&2
  exit 1
fi

echo "conformance: $binary, $engine, $sim (v$version)" >&2
# The conformance packages and the launchers they share (tests/internal), all in the one Go
# module rooted at tests/.
cd tests
PLUGIN_BINARY="$binary" PLUGIN_VERSION="$version" PLUGIN_PROFILE=example \
ENGINE_BINARY="$engine" ATLAS_SIM_BINARY="$sim" \
  go test -count=1 -v -timeout "${CONFORMANCE_TIMEOUT:-600s}" ./conformance/... ./internal/... "$@"
