#!/usr/bin/env bash
# The whole job on embedded defaults, in one command: builds the plugin, starts
# the Atlas simulator and a dev Vault, registers and enables the plugin, writes
# a config and a role, issues a credential, shows its lease and the key in
# "Atlas", revokes it, and shows the key gone. Everything stops on exit.
#
#   scripts/demo.sh          # uses a `vault` on PATH, else builds one (first run: ~15 min)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/vault-dev.sh
source scripts/lib/vault-dev.sh
# shellcheck source=scripts/lib/atlas-sim.sh
source scripts/lib/atlas-sim.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" >&2; "$@"; }

state="$(mktemp -d "${TMPDIR:-/tmp}/mongodbatlas-demo.XXXXXX")"
cleanup() {
  vdev_stop || true
  sim_stop
  rm -rf "$state"
}
trap cleanup EXIT

say "Building the plugin and the Atlas simulator"
source scripts/lib/release.sh
build_release_plugin "$root"
cargo build --release --locked -p atlas-sim
target_dir="$(release_target_dir "$root")"
plugin_bin="$(release_plugin_path "$root")"
version="v$(release_version "$root")"
vault_bin="$(scripts/servers.sh vault)"
vault() { "$vault_bin" "$@"; }

say "Starting the Atlas simulator (a local, stateful MongoDB Atlas)"
sim_start "$target_dir/release/atlas-sim" "$state/sim"
issued_keys() { # <expected count>
  sim_admin_get /inventory | python3 -c '
import json, sys
keys = [k for k in json.load(sys.stdin)["api_keys"] if not k["seeded"]]
if len(keys) != int(sys.argv[1]):
    sys.exit(f"expected {sys.argv[1]} issued key(s), found {len(keys)}")
print(f"{len(keys)} issued key(s) in Atlas")
for k in keys:
    roles = [r["roleName"] for r in k["roles"]]
    print("  public_key=%s desc=%s roles=%s access_list=%s" % (k["public_key"], k["desc"], roles, k["access_list"]))' "$1"
}
echo "simulator at $SIM_BASE_URL, organization $SIM_ORG_ID"

say "Starting a dev Vault with a plugin directory"
vdev_start "$vault_bin" "$state/vault"
echo "Vault at $VAULT_ADDR"

say "Registering and enabling the plugin"
cp "$plugin_bin" "$VDEV_PLUGIN_DIR/vault-plugin-secrets-mongodbatlas"
sha="$(sha256sum "$VDEV_PLUGIN_DIR/vault-plugin-secrets-mongodbatlas" | cut -d' ' -f1)"
show vault plugin register -sha256="$sha" -version="$version" secret vault-plugin-secrets-mongodbatlas
show vault secrets enable -path=mongodbatlas vault-plugin-secrets-mongodbatlas

say "Configuring Atlas credentials and a role"
show vault write mongodbatlas/config public_key="$SIM_PUBLIC_KEY" private_key="$SIM_PRIVATE_KEY" base_url="$SIM_BASE_URL"
show vault read mongodbatlas/config
show vault write mongodbatlas/roles/demo organization_id="$SIM_ORG_ID" roles=ORG_READ_ONLY \
  ip_addresses=192.0.2.10 cidr_blocks=198.51.100.0/24 ttl=1h max_ttl=24h
show vault read mongodbatlas/roles/demo

say "Issuing a credential"
show vault read -format=json mongodbatlas/creds/demo | tee "$state/creds.json"
lease_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lease_id"])' "$state/creds.json")"

say "The lease in Vault, the key in Atlas"
show vault lease lookup "$lease_id"
issued_keys 1

say "Renewing, then revoking the lease"
show vault lease renew "$lease_id"
show vault lease revoke -sync "$lease_id"
issued_keys 0

say "Done: the key was created on demand and deleted when its lease ended."
