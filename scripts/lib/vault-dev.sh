# shellcheck shell=bash
# Start, restart and stop a throwaway Vault or OpenBao server for e2e tests.
# Source this file; it needs bash, curl and python3.
#
#   source scripts/lib/vault-dev.sh
#   trap vdev_stop EXIT
#   vdev_start "$(scripts/servers.sh vault)" "$state_dir" [options]
#   vault plugin register ...      # VAULT_ADDR / VAULT_TOKEN are exported
#   vdev_restart                   # --persistent only: same storage, leases kept
#   vdev_stop
#
# Options of vdev_start:
#   --plugin-dir DIR    plugin directory (default: STATE_DIR/plugins, created);
#                       in dev mode both servers auto-register every file in it
#                       as an unversioned plugin named after the file
#   --persistent        raft storage under STATE_DIR/data instead of dev mode's
#                       memory; the server is initialised (1 key share) and
#                       unsealed by this library, so vdev_restart keeps mounts,
#                       the plugin catalog and outstanding leases
#   --token ID          root token id in dev mode (default: root); in
#                       persistent mode the token is the one `init` returned
#   --env NAME=VALUE    extra environment for the server, and so for the
#                       plugins it launches (e.g. HTTPS_PROXY, SSL_CERT_FILE);
#                       repeatable
#
# After vdev_start: VDEV_ADDR, VDEV_TOKEN, VDEV_PID, VDEV_LOG, VDEV_PLUGIN_DIR,
# and exported VAULT_ADDR/VAULT_TOKEN (plus BAO_ADDR/BAO_TOKEN for OpenBao,
# whose CLI reads BAO_*). One server per shell: call these functions from the
# shell that will stop the server (not inside $( ) or a pipeline), since
# vdev_stop waits for its own child.
#
# Timeouts (seconds, overridable): VDEV_START_TIMEOUT (60), VDEV_STOP_TIMEOUT (15).

VDEV_CLI=""
VDEV_STATE_DIR=""
VDEV_PLUGIN_DIR=""
VDEV_MODE=""
VDEV_PORT=""
VDEV_ADDR=""
VDEV_TOKEN=""
VDEV_PID=""
VDEV_LOG=""
VDEV_ENV=()

_vdev_log() { printf 'vault-dev: %s\n' "$*" >&2; }

# Prints a loopback port P such that P and P+1 are both free right now: in dev
# mode Vault opens its cluster listener on the API port + 1. Another process
# can still take them before the server binds; vdev_start retries then.
_vdev_free_port_pair() {
    python3 - <<'PY'
import socket
for _ in range(100):
    with socket.socket() as api:
        api.bind(("127.0.0.1", 0))
        port = api.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as cluster:
            try:
                cluster.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
    print(port)
    break
else:
    raise SystemExit("no free pair of loopback ports found")
PY
}

_vdev_is_bao() { [[ "$(basename "$VDEV_CLI")" == bao* ]]; }

_vdev_export_client_env() {
    export VAULT_ADDR="$VDEV_ADDR" VAULT_TOKEN="$VDEV_TOKEN"
    if _vdev_is_bao; then
        export BAO_ADDR="$VDEV_ADDR" BAO_TOKEN="$VDEV_TOKEN"
    fi
}

# HTTP status of GET sys/health, or 000 while nothing answers. 200 means
# initialised, unsealed and active; 501 not initialised; 503 sealed.
_vdev_health_status() {
    curl --silent --output /dev/null --max-time 2 --write-out '%{http_code}' \
        "$VDEV_ADDR/v1/sys/health" 2>/dev/null || true
}

_vdev_alive() { [[ -n "$VDEV_PID" ]] && kill -0 "$VDEV_PID" 2>/dev/null; }

_vdev_show_log_tail() {
    [[ -f "$VDEV_LOG" ]] && tail -n 30 "$VDEV_LOG" | sed 's/^/    | /' >&2
    return 0
}

# Polls sys/health until its status is one of the given codes; fails when the
# server process exits or VDEV_START_TIMEOUT passes.
_vdev_wait_health() {
    local wanted=" $* " deadline=$((SECONDS + ${VDEV_START_TIMEOUT:-60})) status
    while ((SECONDS < deadline)); do
        status="$(_vdev_health_status)"
        [[ "$wanted" == *" $status "* ]] && return 0
        if ! _vdev_alive; then
            _vdev_log "server exited before becoming ready (log: $VDEV_LOG)"
            return 1
        fi
        sleep 0.1
    done
    _vdev_log "server not ready after ${VDEV_START_TIMEOUT:-60}s (last sys/health status $status, log: $VDEV_LOG)"
    return 1
}

# Integrated storage (raft, one node): OpenBao 2.x no longer has the "file"
# backend, and raft works the same on both servers.
_vdev_write_config() { # <api port>
    local port="$1" mlock=""
    mkdir -p "$VDEV_STATE_DIR/data"
    # Vault insists on an explicit choice with raft; OpenBao dropped the option.
    _vdev_is_bao || mlock="disable_mlock    = true"
    cat >"$VDEV_STATE_DIR/server.hcl" <<EOF
storage "raft" {
  path    = "$VDEV_STATE_DIR/data"
  node_id = "vault-dev"
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$((port + 1))"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:$port"
cluster_addr     = "https://127.0.0.1:$((port + 1))"
plugin_directory = "$VDEV_PLUGIN_DIR"
$mlock
EOF
}

# Launches the server process on VDEV_PORT (a fresh port when empty).
_vdev_spawn() {
    [[ -n "$VDEV_PORT" ]] || VDEV_PORT="$(_vdev_free_port_pair)" || return 1
    VDEV_ADDR="http://127.0.0.1:$VDEV_PORT"
    local args
    if [[ "$VDEV_MODE" == dev ]]; then
        args=(server -dev -dev-no-store-token
            "-dev-root-token-id=$VDEV_TOKEN"
            "-dev-listen-address=127.0.0.1:$VDEV_PORT"
            "-dev-plugin-dir=$VDEV_PLUGIN_DIR")
    else
        _vdev_write_config "$VDEV_PORT"
        args=(server "-config=$VDEV_STATE_DIR/server.hcl")
    fi
    printf '\n==== vault-dev: %s %s on %s\n' "$(date -u +%FT%TZ)" "$VDEV_MODE" "$VDEV_ADDR" >>"$VDEV_LOG"
    env ${VDEV_ENV[@]+"${VDEV_ENV[@]}"} "$VDEV_CLI" "${args[@]}" >>"$VDEV_LOG" 2>&1 &
    VDEV_PID=$!
}

_vdev_lost_port_race() {
    ! _vdev_alive && [[ "$(tail -n 20 "$VDEV_LOG")" == *'address already in use'* ]]
}

# Spawns the server and waits until it answers; retries on a fresh port when
# another process took the chosen one first.
_vdev_spawn_until_answering() { # <health codes that count as answering...>
    local attempt
    for attempt in 1 2 3; do
        _vdev_spawn || return 1
        if _vdev_wait_health "$@"; then
            return 0
        fi
        if _vdev_lost_port_race && ((attempt < 3)); then
            _vdev_log "port $VDEV_PORT was taken before the server bound it; retrying on another"
            wait "$VDEV_PID" 2>/dev/null || true
            VDEV_PID=""
            VDEV_PORT=""
            continue
        fi
        _vdev_show_log_tail
        vdev_stop
        return 1
    done
}

_vdev_json_field() { # <field> ; reads JSON on stdin
    python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(v[0] if isinstance(v, list) else v)' "$1"
}

_vdev_init() {
    local response
    response="$(curl --silent --show-error --fail --max-time 30 --request PUT \
        --data '{"secret_shares":1,"secret_threshold":1}' "$VDEV_ADDR/v1/sys/init")" || {
        _vdev_log "sys/init failed"
        return 1
    }
    (umask 077 && printf '%s\n' "$response" >"$VDEV_STATE_DIR/init.json")
}

_vdev_unseal() {
    local key
    key="$(_vdev_json_field keys_base64 <"$VDEV_STATE_DIR/init.json")" || return 1
    printf '{"key":"%s"}' "$key" | curl --silent --show-error --fail --max-time 30 \
        --request PUT --data @- --output /dev/null "$VDEV_ADDR/v1/sys/unseal" || {
        _vdev_log "sys/unseal failed"
        return 1
    }
    VDEV_TOKEN="$(_vdev_json_field root_token <"$VDEV_STATE_DIR/init.json")"
}

# Brings a spawned persistent server to initialised, unsealed and active.
_vdev_init_and_unseal() {
    if [[ "$(_vdev_health_status)" == 501 ]]; then
        _vdev_init || return 1
    fi
    _vdev_unseal || return 1
    _vdev_wait_health 200
}

vdev_start() { # <cli> <state dir> [options]
    if _vdev_alive; then
        _vdev_log "a server is already running (pid $VDEV_PID); call vdev_stop first"
        return 1
    fi
    [[ $# -ge 2 ]] || {
        _vdev_log "usage: vdev_start <vault|bao binary> <state dir> [--plugin-dir DIR] [--persistent] [--token ID] [--env NAME=VALUE]..."
        return 2
    }
    VDEV_CLI="$1"
    VDEV_STATE_DIR="$2"
    shift 2
    VDEV_PLUGIN_DIR="$VDEV_STATE_DIR/plugins"
    VDEV_MODE=dev
    VDEV_TOKEN=root
    VDEV_ENV=()
    VDEV_PORT=""
    VDEV_PID=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --plugin-dir) VDEV_PLUGIN_DIR="$2" && shift 2 ;;
        --persistent) VDEV_MODE=persistent && shift ;;
        --token) VDEV_TOKEN="$2" && shift 2 ;;
        --env) VDEV_ENV+=("$2") && shift 2 ;;
        *)
            _vdev_log "vdev_start: unknown option $1"
            return 2
            ;;
        esac
    done
    mkdir -p "$VDEV_STATE_DIR" "$VDEV_PLUGIN_DIR" || return 1
    VDEV_STATE_DIR="$(cd "$VDEV_STATE_DIR" && pwd)"
    VDEV_PLUGIN_DIR="$(cd "$VDEV_PLUGIN_DIR" && pwd)"
    VDEV_LOG="$VDEV_STATE_DIR/server.log"

    if [[ "$VDEV_MODE" == dev ]]; then
        _vdev_spawn_until_answering 200 || return 1
    else
        # 501 = not initialised (first start), 503 = sealed (existing data).
        _vdev_spawn_until_answering 200 501 503 || return 1
        _vdev_init_and_unseal || {
            _vdev_show_log_tail
            vdev_stop
            return 1
        }
    fi
    _vdev_export_client_env
    _vdev_log "$(basename "$VDEV_CLI") $VDEV_MODE server ready at $VDEV_ADDR (pid $VDEV_PID, log $VDEV_LOG)"
}

# Stops the server and starts it again on the same storage and, when still
# free, the same port (VAULT_ADDR is re-exported either way). Only persistent
# servers keep their state; a dev server would come back empty, so that is
# refused rather than silently losing leases.
vdev_restart() {
    if [[ "$VDEV_MODE" != persistent ]]; then
        _vdev_log "vdev_restart needs a server started with --persistent (dev mode keeps everything in memory)"
        return 1
    fi
    vdev_stop || return 1
    _vdev_spawn_until_answering 503 200 || return 1
    _vdev_init_and_unseal || {
        _vdev_show_log_tail
        vdev_stop
        return 1
    }
    _vdev_export_client_env
    _vdev_log "$(basename "$VDEV_CLI") restarted at $VDEV_ADDR (pid $VDEV_PID)"
}

# Stops the server: SIGTERM, bounded wait, then SIGKILL for it and any plugin
# processes it left. Safe to call twice and from an EXIT trap.
vdev_stop() {
    [[ -n "$VDEV_PID" ]] || return 0
    local pid="$VDEV_PID" children deadline
    VDEV_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        children="$(pgrep -P "$pid" || true)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + ${VDEV_STOP_TIMEOUT:-15}))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            _vdev_log "server pid $pid ignored SIGTERM for ${VDEV_STOP_TIMEOUT:-15}s; killing it and its plugins"
            kill -KILL "$pid" 2>/dev/null || true
            # A clean shutdown ends the plugins (the server's children); after
            # SIGKILL they would linger, orphaned.
            local child
            for child in $children; do
                kill -KILL "$child" 2>/dev/null || true
            done
        fi
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}
