# shellcheck shell=bash
# Helpers shared by scripts/e2e.sh and scripts/migration.sh: assertions that
# fail loudly with context (command output, server log tail, plugin log
# lines, simulator log), CLI wrappers, JSON access, and bounded polling of the
# simulator's inventory. Source after vault-dev.sh and atlas-sim.sh.
#
# The sourcing script sets E2E_NAME (log prefix) and may set
# E2E_PLUGIN_LOG_MATCH (a fixed string that marks our plugin's lines in the
# server log; default: the binary's file name).

E2E_NAME="${E2E_NAME:-e2e}"
# Private keys seen during the run, one a line: none of them may ever reach
# the server log. A file, because most are seen inside $( ) subshells.
E2E_SECRETS_FILE=""

e2e_log() { printf '%s: %s\n' "$E2E_NAME" "$*" >&2; }

# shellcheck source=scripts/lib/release.sh
source "$(dirname "${BASH_SOURCE[0]}")/release.sh"

# Sets plugin_build and sim_binary: the release binaries under test.
# shellcheck disable=SC2034  # plugin_build and sim_binary are read by the sourcing script
e2e_release_binaries() { # <repo root>
    plugin_build="$(release_plugin_path "$1")"
    sim_binary="$(release_target_dir "$1")/release/atlas-sim"
}

# Builds both (skipped with E2E_SKIP_BUILD=1).
e2e_build() { # <repo root>
    [[ "${E2E_SKIP_BUILD:-}" == 1 ]] && return 0
    e2e_log "building the plugin and the simulator (release)"
    build_release_plugin "$1"
    (cd "$1" && cargo build --release --locked -p atlas-sim)
}

_e2e_indent() { sed 's/^/    | /' >&2; }

# Prints everything that helps explain a failure, then exits the suite.
fail() { # <message> [details...]
    e2e_log "FAIL: $1"
    shift
    if [[ $# -gt 0 ]]; then
        printf '%s\n' "$@" | _e2e_redact | _e2e_indent
    fi
    if [[ -n "${VDEV_LOG:-}" && -f "$VDEV_LOG" ]]; then
        local match="${E2E_PLUGIN_LOG_MATCH:-}"
        if [[ -n "$match" ]]; then
            e2e_log "server log tail without plugin lines ($VDEV_LOG):"
            grep -vF -- "$match" "$VDEV_LOG" | tail -n 20 | _e2e_redact | _e2e_indent || true
            e2e_log "last plugin lines in the server log (matching '$match'):"
            grep -F -- "$match" "$VDEV_LOG" | tail -n 20 | _e2e_redact | _e2e_indent || true
        else
            e2e_log "server log tail ($VDEV_LOG):"
            tail -n 30 "$VDEV_LOG" | _e2e_redact | _e2e_indent
        fi
    fi
    if [[ -n "${SIM_LOG:-}" && -s "$SIM_LOG" ]]; then
        e2e_log "simulator log tail ($SIM_LOG):"
        tail -n 15 "$SIM_LOG" | _e2e_indent
    fi
    exit 1
}

# Replaces every private key seen so far by <redacted> (for failure output).
_e2e_redact() {
    python3 -c 'import sys
secrets = []
if sys.argv[1]:
    try:
        secrets = [l.strip() for l in open(sys.argv[1]) if l.strip()]
    except OSError:
        pass
for line in sys.stdin:
    for s in secrets:
        line = line.replace(s, "<redacted>")
    sys.stdout.write(line)' "$E2E_SECRETS_FILE"
}

# Call once per suite, with a directory only this suite uses.
e2e_init_secrets() { # <state dir>
    E2E_SECRETS_FILE="$1/private-keys-seen"
    (umask 077 && : >"$E2E_SECRETS_FILE")
}

remember_secret() {
    [[ -n "$1" ]] || return 0
    printf '%s\n' "$1" >>"$E2E_SECRETS_FILE"
}

# A command line for messages, with values of *private_key= arguments hidden.
show_cmd() {
    local arg out=()
    for arg in "$@"; do
        [[ "$arg" == *private_key=* ]] && arg="${arg%%=*}=<redacted>"
        out+=("$arg")
    done
    printf '%s' "${out[*]}"
}

# Runs the server's CLI; stdout goes to the caller, and a failure ends the
# suite with the command, its stderr and the logs.
cli() {
    local out err_file rc=0
    err_file="$(mktemp)"
    out="$("$VDEV_CLI" "$@" </dev/null 2>"$err_file")" || rc=$?
    if ((rc != 0)); then
        local err
        err="$(cat "$err_file")"
        rm -f "$err_file"
        fail "\`$(basename "$VDEV_CLI") $(show_cmd "$@")\` exited $rc" "$out" "$err"
    fi
    rm -f "$err_file"
    [[ -z "$out" ]] || printf '%s\n' "$out"
}

# Runs the CLI expecting failure; prints its combined output. Ends the suite
# if it succeeds or if the output lacks the expected text.
cli_fails() { # <expected text> <cli args...>
    local expected="$1" out rc=0
    shift
    out="$("$VDEV_CLI" "$@" </dev/null 2>&1)" || rc=$?
    ((rc != 0)) || fail "\`$(basename "$VDEV_CLI") $(show_cmd "$@")\` succeeded; expected a failure mentioning '$expected'" "$out"
    [[ "$out" == *"$expected"* ]] ||
        fail "\`$(basename "$VDEV_CLI") $(show_cmd "$@")\` failed without mentioning '$expected'" "$out"
    printf '%s\n' "$out"
}

# Evaluates a Python expression over the JSON document on stdin (`d`).
# Lists print one item a line, booleans as true/false, None as "".
json_get() { # <expression>
    python3 -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
if isinstance(v, (list, tuple)):
    print("\n".join(str(x) for x in v))
elif isinstance(v, bool):
    print("true" if v else "false")
elif v is None:
    print("")
elif isinstance(v, (dict,)):
    print(json.dumps(v))
else:
    print(v)' "$1"
}

assert_eq() { # <actual> <expected> <what>
    [[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"
}

assert_contains() { # <haystack> <needle> <what>
    [[ "$1" == *"$2"* ]] || fail "$3: '$2' not found in:" "$1"
}

assert_not_contains() { # <haystack> <needle> <what>
    [[ "$1" != *"$2"* ]] || fail "$3: '$2' unexpectedly found in:" "$1"
}

assert_between() { # <actual> <low> <high> <what>
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < $2 || $1 > $3)); then
        fail "$4: got '$1', want $2..$3"
    fi
}

# Waits (bounded) until a key with this public key is gone from the simulator.
wait_key_gone() { # <public key> <why> [timeout seconds]
    local deadline=$((SECONDS + ${3:-30}))
    while ((SECONDS < deadline)); do
        [[ -n "$(sim_key_json "$1")" ]] || return 0
        sleep 0.2
    done
    fail "Atlas key $1 still exists ${3:-30}s after $2" "$(sim_key_json "$1")"
}

assert_key_live() { # <public key> <why>
    [[ -n "$(sim_key_json "$1")" ]] || fail "Atlas key $1 is not in the simulator's inventory ($2)"
}

# Waits (bounded) until the simulator holds no key but the seeded one.
wait_no_issued_keys() { # <why> [timeout seconds]
    local deadline=$((SECONDS + ${2:-30})) left
    while ((SECONDS < deadline)); do
        left="$(sim_issued_public_keys)"
        [[ -n "$left" ]] || return 0
        sleep 0.2
    done
    fail "issued Atlas keys still exist ${2:-30}s after $1:" "$left"
}

# PIDs of the server's child processes running this binary (real path).
plugin_pids() { # <binary path>
    local want child exe
    want="$(readlink -f "$1")"
    for child in $(pgrep -P "$VDEV_PID" || true); do
        exe="$(readlink "/proc/$child/exe" 2>/dev/null)" || continue
        [[ "$exe" == "$want" ]] && echo "$child"
    done
    return 0
}

# No private key seen in this run may appear in the server log.
assert_no_secret_in_log() {
    local count leaked
    count="$(sort -u "$E2E_SECRETS_FILE" | grep -c . || true)"
    ((count > 0)) || fail "no private key was recorded in this run; the log check would prove nothing"
    # grep -f: any line of the file, as a fixed string.
    leaked="$(grep -cFf "$E2E_SECRETS_FILE" "$VDEV_LOG" || true)"
    ((leaked == 0)) || fail "$leaked server log lines contain one of this run's private keys ($VDEV_LOG)"
    e2e_log "none of the $count private keys of this run appears in the server log"
}

# A request to the server's HTTP API with the token; prints the body, and
# ends the suite with the status and body unless the status is 2xx.
http_api() { # <method> <path under /v1/> [json body]
    local body_file status
    body_file="$(mktemp)"
    local args=(--silent --show-error --max-time 30 --request "$1" --output "$body_file"
        --write-out '%{http_code}' --header "X-Vault-Token: $VDEV_TOKEN")
    [[ $# -lt 3 ]] || args+=(--header 'Content-Type: application/json' --data "$3")
    status="$(curl "${args[@]}" "$VDEV_ADDR/v1/$2")" || status="curl error $?"
    if [[ "$status" != 2?? ]]; then
        local body
        body="$(cat "$body_file")"
        rm -f "$body_file"
        fail "$1 /v1/$2 answered $status" "$body"
    fi
    cat "$body_file"
    rm -f "$body_file"
}

# ------------------------------------------------- leases vs. inventory ----

# "lease_id public_key" lines of every lease a suite issued through
# issue_creds (set by the suite runner; empty: not tracked).
E2E_LEASES_FILE="${E2E_LEASES_FILE:-}"

track_lease() { # <lease id> <public key>
    [[ -n "$E2E_LEASES_FILE" ]] || return 0
    printf '%s %s\n' "$1" "$2" >>"$E2E_LEASES_FILE"
}

# Ids of the live leases under a prefix (e.g. mongodbatlas/creds/), one a
# line, from the server's sys/leases/lookup listing (recursive).
live_lease_ids() { # <prefix ending in />
    local body status key
    body="$(mktemp)"
    status="$(curl --silent --show-error --max-time 30 --request LIST --output "$body" \
        --write-out '%{http_code}' --header "X-Vault-Token: $VDEV_TOKEN" \
        "$VDEV_ADDR/v1/sys/leases/lookup/$1")" || status="curl error $?"
    case "$status" in
    404) rm -f "$body" && return 0 ;; # nothing under this prefix
    200) ;;
    *) fail "LIST sys/leases/lookup/$1 answered $status" "$(cat "$body")" ;;
    esac
    for key in $(json_get 'd["data"]["keys"]' <"$body"); do
        if [[ "$key" == */ ]]; then
            live_lease_ids "$1$key"
        else
            printf '%s%s\n' "$1" "$key"
        fi
    done
    rm -f "$body"
}

# The issue's invariant: the simulator holds exactly the keys of the live
# leases of these mounts, every live lease is one this suite issued, and no
# lease is irrevocable.
assert_inventory_matches_leases() { # <why> <mount>...
    local why="$1" mount lease key live="" expected="" actual irrevocable
    shift
    [[ -n "$E2E_LEASES_FILE" ]] || fail "assert_inventory_matches_leases needs E2E_LEASES_FILE"
    for mount in "$@"; do
        live+="$(live_lease_ids "$mount/creds/")"$'\n'
    done
    for lease in $live; do
        key="$(awk -v l="$lease" '$1 == l { print $2; exit }' "$E2E_LEASES_FILE")"
        [[ -n "$key" ]] || fail "live lease $lease ($why) was not issued by this suite"
        expected+="$key"$'\n'
    done
    expected="$(grep . <<<"$expected" | sort || true)"
    actual="$(sim_issued_public_keys)"
    [[ "$actual" == "$expected" ]] ||
        fail "simulator inventory != keys of live leases ($why)" "inventory:" "$actual" "keys of live leases:" "$expected"
    irrevocable="$(http_api GET 'sys/leases/count?type=irrevocable' | json_get 'd["data"]["lease_count"]')"
    assert_eq "$irrevocable" 0 "irrevocable leases ($why)"
    e2e_log "invariant ($why): $(grep -c . <<<"$expected" || true) live leases, the same keys in the simulator, 0 irrevocable"
}

# ------------------------------------------------------ secret capture ----

# A relay between the plugin and the simulator that records every private
# key Atlas returns and every Digest response the plugin sends
# (scripts/lib/capture-relay.py). Sets CAPTURE_URL: use it as base_url.
CAPTURE_PID=""
CAPTURE_URL=""
CAPTURE_SECRETS=""

capture_start() { # <upstream base url> <secrets file>
    local info deadline=$((SECONDS + 15))
    CAPTURE_SECRETS="$2"
    info="$(mktemp)"
    python3 "$(dirname "${BASH_SOURCE[0]}")/capture-relay.py" --upstream "${1#http://}" \
        --secrets "$CAPTURE_SECRETS" >"$info" &
    CAPTURE_PID=$!
    until [[ -s "$info" ]]; do
        kill -0 "$CAPTURE_PID" 2>/dev/null || fail "the capture relay exited at start"
        ((SECONDS < deadline)) || fail "the capture relay printed no address within 15s"
        sleep 0.05
    done
    CAPTURE_URL="$(head -n 1 "$info")"
    rm -f "$info"
    e2e_log "capture relay at $CAPTURE_URL -> $1 (pid $CAPTURE_PID)"
}

capture_stop() {
    [[ -n "$CAPTURE_PID" ]] || return 0
    kill -TERM "$CAPTURE_PID" 2>/dev/null || true
    wait "$CAPTURE_PID" 2>/dev/null || true
    CAPTURE_PID=""
}
