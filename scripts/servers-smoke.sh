#!/usr/bin/env bash
# Smoke test of the real servers from scripts/servers.sh and of
# scripts/lib/vault-dev.sh: for Vault and for OpenBao,
#   dev:        start a dev server, register the official Go plugin as secret
#               plugin `mongodbatlas-official` (-sha256), enable it, see it in
#               the mount list, disable it, stop;
#   persistent: the same on raft storage, plus a leased token, then
#               vdev_restart and check that mount, catalog entry and lease
#               all survived.
# Usage: scripts/servers-smoke.sh [vault|bao]...   (default: vault bao)
# Exits non-zero when any case fails.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly PLUGIN_NAME="mongodbatlas-official"
readonly MOUNT_PATH="atlas-official"

log() { printf 'servers-smoke: %s\n' "$*" >&2; }
fail() {
    log "FAIL: $*"
    exit 1
}

# Runs the server's CLI against the server vault-dev.sh started.
cli() { "$VDEV_CLI" "$@"; }

json_get() { # <python expression over `d`>; reads JSON on stdin
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

register_and_enable() { # <plugin binary in the plugin dir>
    local binary="$1" sha256 reported
    sha256="$(sha256sum "$VDEV_PLUGIN_DIR/$binary" | cut -d' ' -f1)"
    # v0.16.0 reports no version of its own (no RunningVersion), so no -version.
    cli plugin register -sha256="$sha256" -command="$binary" secret "$PLUGIN_NAME" >&2
    reported="$(cli plugin info -format=json secret "$PLUGIN_NAME" | json_get 'd.get("version", "")')"
    log "registered $PLUGIN_NAME (catalog version: '${reported}')"
    cli secrets enable -path="$MOUNT_PATH" "$PLUGIN_NAME" >&2
}

assert_mounted() {
    local mount_type
    mount_type="$(cli secrets list -format=json | json_get "d.get('$MOUNT_PATH/', {}).get('type', '')")"
    [[ "$mount_type" == "$PLUGIN_NAME" ]] ||
        fail "mount $MOUNT_PATH/ has type '$mount_type', want '$PLUGIN_NAME'"
    # Help for a path is answered by the plugin itself: proof it runs.
    # (Output captured first: `cmd | grep -q` can fail under pipefail when
    # grep exits before cmd has written everything.)
    local help
    help="$(cli path-help "$MOUNT_PATH/config")" ||
        fail "the plugin did not answer path-help for $MOUNT_PATH/config"
    [[ "$help" == *public_key* ]] ||
        fail "path-help for $MOUNT_PATH/config does not describe public_key"
    log "mount $MOUNT_PATH/ has type $mount_type and the plugin answers"
}

# vdev_start --env must reach the plugin processes (the drop-in migration
# test relies on it for HTTPS_PROXY and SSL_CERT_FILE).
assert_plugin_env() { # <NAME=VALUE>
    local child environ
    for child in $(pgrep -P "$VDEV_PID"); do
        environ="$(tr '\0' '\n' <"/proc/$child/environ")" || continue
        if [[ $'\n'"$environ"$'\n' == *$'\n'"$1"$'\n'* ]]; then
            log "plugin process $child has $1 in its environment"
            return 0
        fi
    done
    fail "no plugin process of server $VDEV_PID has $1 in its environment"
}

disable_and_deregister() {
    cli secrets disable "$MOUNT_PATH" >&2
    cli plugin deregister secret "$PLUGIN_NAME" >&2
    if [[ "$(cli secrets list -format=json | json_get "'$MOUNT_PATH/' in d")" == True ]]; then
        fail "mount $MOUNT_PATH/ still listed after disable"
    fi
}

# One case, run in its own bash process so that errexit and the EXIT trap
# apply fully (errexit is ignored inside functions called from `if`).
run_case() { # <server: vault|bao> <mode: dev|persistent>
    local server="$1" mode="$2" server_bin plugin_bin binary
    server_bin="$("$repo_root/scripts/servers.sh" "$server")"
    plugin_bin="$("$repo_root/scripts/servers.sh" official-plugin)"
    # Global: the EXIT trap runs after this function has returned.
    state="$(mktemp -d "${TMPDIR:-/tmp}/servers-smoke.XXXXXX")"
    # shellcheck source=scripts/lib/vault-dev.sh
    source "$repo_root/scripts/lib/vault-dev.sh"
    trap 'vdev_stop; rm -rf "$state"' EXIT

    binary="$(basename "$plugin_bin")"
    mkdir -p "$state/plugins"
    cp "$plugin_bin" "$state/plugins/$binary"

    local options=(--env SERVERS_SMOKE_MARK=passed-through)
    [[ "$mode" == persistent ]] && options+=(--persistent)
    vdev_start "$server_bin" "$state" --plugin-dir "$state/plugins" "${options[@]}"
    log "$("$VDEV_CLI" version)"

    register_and_enable "$binary"
    assert_mounted
    assert_plugin_env SERVERS_SMOKE_MARK=passed-through

    if [[ "$mode" == persistent ]]; then
        local accessor
        accessor="$(cli token create -ttl=1h -format=json | json_get 'd["auth"]["accessor"]')"
        vdev_restart
        assert_mounted
        cli token lookup -accessor "$accessor" >/dev/null ||
            fail "the 1h token lease did not survive the restart"
        log "token lease survived the restart"
    fi

    disable_and_deregister
    vdev_stop
    log "$server $mode: ok"
}

main() {
    if [[ "${1:-}" == --case ]]; then
        run_case "$2" "$3"
        return
    fi
    local servers=("$@") passed=0 failed=0 server mode
    [[ ${#servers[@]} -gt 0 ]] || servers=(vault bao)
    for server in "${servers[@]}"; do
        for mode in dev persistent; do
            log "---- $server $mode"
            if bash "${BASH_SOURCE[0]}" --case "$server" "$mode"; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
                log "$server $mode: FAILED"
            fi
        done
    done
    echo "servers-smoke: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

main "$@"
