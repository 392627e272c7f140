# shellcheck shell=bash
# shellcheck disable=SC2034  # the SIM_* variables are for the sourcing script
# Start and stop the Atlas simulator (target/release/atlas-sim) for e2e tests,
# and read its admin API. Source this file; it needs bash, curl and python3.
#
#   source scripts/lib/atlas-sim.sh
#   trap sim_stop EXIT
#   sim_start target/release/atlas-sim "$state_dir" [atlas-sim flags...]
#   echo "$SIM_BASE_URL $SIM_ORG_ID $SIM_PUBLIC_KEY"
#   sim_issued_public_keys        # public keys of the live, non-seeded keys
#   sim_stop
#
# sim_start adds `--listen 127.0.0.1:0` and waits (bounded) for the one JSON
# line atlas-sim prints, then sets SIM_PID, SIM_LOG, SIM_INFO (that line's
# file) and SIM_BASE_URL, SIM_ADMIN_URL, SIM_ORG_ID, SIM_PROJECT_ID,
# SIM_PUBLIC_KEY, SIM_PRIVATE_KEY, SIM_PROXY_URL, SIM_CA_PATH (the last two
# empty unless --proxy / --ca-out were given). One simulator per shell, for
# the same reason as vault-dev.sh: sim_stop waits for its own child.
#
# Timeouts (seconds, overridable): SIM_START_TIMEOUT (30), SIM_STOP_TIMEOUT (10).

SIM_PID=""
SIM_LOG=""
SIM_INFO=""
SIM_BASE_URL=""
SIM_ADMIN_URL=""
SIM_ORG_ID=""
SIM_PROJECT_ID=""
SIM_PUBLIC_KEY=""
SIM_PRIVATE_KEY=""
SIM_PROXY_URL=""
SIM_CA_PATH=""

_sim_log() { printf 'atlas-sim.sh: %s\n' "$*" >&2; }

_sim_field() { # <field> ; from SIM_INFO, "" for null
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' \
        "$SIM_INFO" "$1"
}

_sim_read_fields() {
    SIM_BASE_URL="$(_sim_field base_url)" || return 1
    SIM_ADMIN_URL="$(_sim_field admin_url)" || return 1
    SIM_ORG_ID="$(_sim_field org_id)" || return 1
    SIM_PROJECT_ID="$(_sim_field project_id)" || return 1
    SIM_PUBLIC_KEY="$(_sim_field public_key)" || return 1
    SIM_PRIVATE_KEY="$(_sim_field private_key)" || return 1
    SIM_PROXY_URL="$(_sim_field proxy_url)" || return 1
    SIM_CA_PATH="$(_sim_field ca_path)" || return 1
    [[ -n "$SIM_BASE_URL" && -n "$SIM_ORG_ID" && -n "$SIM_PRIVATE_KEY" ]]
}

sim_start() { # <atlas-sim binary> <state dir> [flags...]
    if [[ -n "$SIM_PID" ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        _sim_log "a simulator is already running (pid $SIM_PID); call sim_stop first"
        return 1
    fi
    local binary="$1" state="$2"
    shift 2
    mkdir -p "$state" || return 1
    SIM_LOG="$state/atlas-sim.log"
    SIM_INFO="$state/atlas-sim.json"
    : >"$SIM_INFO"
    "$binary" --listen 127.0.0.1:0 "$@" >"$SIM_INFO" 2>>"$SIM_LOG" &
    SIM_PID=$!
    local deadline=$((SECONDS + ${SIM_START_TIMEOUT:-30}))
    # The line is complete once its newline is written.
    until (($(wc -l <"$SIM_INFO") >= 1)); do
        if ! kill -0 "$SIM_PID" 2>/dev/null; then
            _sim_log "atlas-sim exited before printing its startup line; log:"
            tail -n 20 "$SIM_LOG" | sed 's/^/    | /' >&2
            SIM_PID=""
            return 1
        fi
        if ((SECONDS >= deadline)); then
            _sim_log "atlas-sim printed no startup line within ${SIM_START_TIMEOUT:-30}s"
            sim_stop
            return 1
        fi
        sleep 0.05
    done
    if ! _sim_read_fields; then
        _sim_log "unreadable startup line: $(cat "$SIM_INFO")"
        sim_stop
        return 1
    fi
    _sim_log "simulator at $SIM_BASE_URL (pid $SIM_PID${SIM_PROXY_URL:+, proxy $SIM_PROXY_URL})"
}

# The admin API's GET <path> (e.g. /inventory) on stdout.
sim_admin_get() { # <path>
    curl --silent --show-error --fail --max-time 10 ${SIM_CA_PATH:+--cacert "$SIM_CA_PATH"} "$SIM_ADMIN_URL$1"
}

# The admin API's <method> <path> with a JSON body; prints the answer.
sim_admin_send() { # <method> <path> [json body]
    local args=(--silent --show-error --fail --max-time 10 --request "$1")
    [[ -z "$SIM_CA_PATH" ]] || args+=(--cacert "$SIM_CA_PATH")
    [[ $# -lt 3 ]] || args+=(--header 'Content-Type: application/json' --data "$3")
    curl "${args[@]}" "$SIM_ADMIN_URL$2"
}

# Public keys of the live keys other than the seeded one, one a line, sorted.
sim_issued_public_keys() {
    local inventory
    inventory="$(sim_admin_get /inventory)" || return 1
    python3 -c 'import json, sys
for k in json.loads(sys.argv[1])["api_keys"]:
    if not k["seeded"]:
        print(k["public_key"])' "$inventory" | sort
}

# The inventory entry of the key with this public key as JSON ("" if none).
sim_key_json() { # <public key>
    local inventory
    inventory="$(sim_admin_get /inventory)" || return 1
    python3 -c 'import json, sys
for k in json.loads(sys.argv[1])["api_keys"]:
    if k["public_key"] == sys.argv[2]:
        print(json.dumps(k))' "$inventory" "$1"
}

sim_stop() {
    [[ -n "$SIM_PID" ]] || return 0
    local pid="$SIM_PID" deadline
    SIM_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${SIM_STOP_TIMEOUT:-10}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 0
}
