#!/usr/bin/env bash
# Faults that need a real Vault (1.21.1 from scripts/servers.sh), and the
# secret-hygiene search of all logs. Each fault suite ends with the invariant
# "the simulator holds exactly the keys of the live leases, none irrevocable".
#
#   sigkill  the plugin process is SIGKILLed while an issuance is in flight
#            (the key exists in Atlas, its access-list call is held by the
#            simulator): Vault relaunches the plugin on the next request, and
#            the WAL rollback (MONGODBATLAS_WAL_ROLLBACK_MIN_AGE=8s) deletes
#            the orphan key on its next pass (Vault runs one a minute).
#   outage   Atlas resets every connection while leases expire and are
#            revoked (`lease revoke`, `lease revoke -prefix`: both queued):
#            every revocation fails at least once, then Atlas is back and
#            Vault's own retries revoke them all, none marked irrevocable.
#            `lease revoke -sync` during the outage fails and keeps the lease.
#   hygiene  a full `scripts/e2e.sh vault` run in its secret-hygiene mode
#            (server and plugin at trace level, a relay recording every
#            private key and Digest response on the wire): its server logs,
#            simulator logs and script output contain none of them.
#
# After every suite, the same search runs over that suite's server log,
# simulator log and output (the scanner is first shown to catch a planted
# key). Usage: scripts/faults-vault.sh [sigkill|outage|hygiene]...  (default:
# all). Builds the release binaries unless E2E_SKIP_BUILD=1. Logs are kept
# under FAULTS_LOG_DIR (default: a fresh temporary directory, removed after a
# passing run unless E2E_KEEP_STATE=1). Every wait is bounded.
set -euo pipefail
shopt -s inherit_errexit

faults_script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/e2e.sh
source "$(dirname "$faults_script")/e2e.sh"

# Vault's rollback manager runs every 60 s; its retries of a failed
# revocation come 10-30 s, then 20-60 s after the previous failure.
readonly ROLLBACK_WAIT=150
readonly REVOKE_RETRY_WAIT=150
readonly OUTAGE_SECONDS=30

secret_scan() { python3 "$repo_root/scripts/lib/secret-scan.py" "$@"; }

# A dev Vault at trace level with our plugin registered (extra -env flags
# given) and mounted, configured against the simulator (through the relay).
start_vault_stack() { # <state dir> [plugin register flags...]
    local state="$1"
    shift
    use_plugin_file "$PLUGIN_NAME-$VERSION"
    start_servers "$state"
    register_plugin "-env=PLUGIN_LOG_LEVEL=trace" "$@"
    enable_mount "$MOUNT"
    write_config "$MOUNT"
}

sim_key_id() { # <public key>
    sim_key_json "$1" | json_get 'd["id"]'
}

# ----------------------------------------------------------- sigkill ----

# Adds a fault rule; prints its id.
add_fault() { # <rule json>
    sim_admin_send POST /faults "$1" | json_get 'd["id"]' || fail "could not add a fault to the simulator" "$1"
}

fault_matched() { # <fault id>
    sim_admin_get /faults | json_get 'sum(f["matched"] for f in d if f["id"] == '"$1"')'
}

# Starts `vault read creds/<role>` with the given faults in place, waits
# (bounded) until a new key exists in the simulator and the held request
# (the latency fault, added last) has arrived, then SIGKILLs the plugin
# process. Waits for the read to end and for a new plugin process to serve
# the next request. Sets ORPHAN (public key) and ORPHAN_ID.
kill_mid_issuance() { # <what> <role> <fault json>... (the last one the latency fault)
    local what="$1" role="$2" before fault_id="" rule deadline read_pid out="$STATE/inflight-$RANDOM"
    shift 2
    for rule in "$@"; do
        fault_id="$(add_fault "$rule")"
    done
    before="$(sim_issued_public_keys)"
    "$VDEV_CLI" read -format=json "$MOUNT/creds/$role" >"$out.out" 2>"$out.err" </dev/null &
    read_pid=$!
    ORPHAN=""
    deadline=$((SECONDS + 20))
    until [[ -n "$ORPHAN" && "$(fault_matched "$fault_id")" -ge 1 ]]; do
        ((SECONDS < deadline)) || fail "$what: no new key held mid-issuance 20s after the read started" "$(sim_admin_get /faults)"
        sleep 0.1
        ORPHAN="$(comm -13 <(printf '%s\n' "$before") <(sim_issued_public_keys) | head -n 1)"
    done
    ORPHAN_ID="$(sim_key_id "$ORPHAN")"
    local old_pid new_pid
    old_pid="$(plugin_pids "$(plugin_path)")"
    assert_eq "$(wc -w <<<"$old_pid")" 1 "plugin processes before the kill (pids: $old_pid)"
    kill -KILL "$old_pid"
    e2e_log "$what: key $ORPHAN (id $ORPHAN_ID) exists, request held: SIGKILLed plugin process $old_pid"

    # The in-flight read ends (bounded). Vault's PluginBackend would retry a
    # request once on a relaunched plugin if it saw the plugin shut down;
    # either outcome is checked.
    deadline=$((SECONDS + 90))
    while kill -0 "$read_pid" 2>/dev/null; do
        ((SECONDS < deadline)) || {
            kill -KILL "$read_pid" 2>/dev/null || true
            fail "$what: the in-flight read did not end 90s after the kill"
        }
        sleep 0.2
    done
    local read_rc=0 retried
    wait "$read_pid" || read_rc=$?
    if ((read_rc == 0)); then
        retried="$(cat "$out.out")"
        remember_secret "$(private_key_of "$retried")"
        track_lease "$(lease_of "$retried")" "$(public_key_of "$retried")"
        [[ "$(public_key_of "$retried")" != "$ORPHAN" ]] ||
            fail "$what: the in-flight read returned the orphan key itself"
        e2e_log "$what: Vault retried the read on a relaunched plugin; it got another key"
    else
        e2e_log "$what: the in-flight read failed (exit $read_rc): $(grep -v '^$' "$out.err" | tail -n 1 | sed 's/^[*[:space:]]*//' | _e2e_redact)"
    fi
    sim_admin_send DELETE /faults >/dev/null || fail "could not clear the simulator's faults"

    # The next request runs on a new plugin process; config reads still hide
    # the private key.
    local config
    config="$(cli read -format=json "$MOUNT/config")"
    assert_eq "$(json_get '"private_key" in d["data"]' <<<"$config")" false "config read hides private_key after the relaunch"
    assert_not_contains "$config" "$SIM_PRIVATE_KEY" "config read output after the relaunch"
    new_pid="$(plugin_pids "$(plugin_path)")"
    assert_eq "$(wc -w <<<"$new_pid")" 1 "plugin processes after the kill (pids: $new_pid)"
    [[ "$new_pid" != "$old_pid" ]] || fail "$what: the killed plugin process $old_pid still serves"
    e2e_log "$what: plugin relaunched, process $new_pid serves $MOUNT/config"
    if grep -qF " $ORPHAN" "$E2E_LEASES_FILE"; then
        fail "$what: the orphan key $ORPHAN has a lease"
    fi
    assert_key_live "$ORPHAN" "$what: orphaned by the kill, before any rollback"
}

# Waits (bounded) for the WAL rollback to delete an orphan key; checks the
# simulator saw one successful DELETE of it.
wait_rolled_back() { # <what> <public key> <key id> <killed at (SECONDS)>
    wait_key_gone "$2" "$1: the plugin was killed mid-issuance (WAL rollback)" "$ROLLBACK_WAIT"
    local deletes
    # (401s are digest challenges.)
    deletes="$(sim_admin_get /journal | json_get \
        'sorted({e["status"] for e in d if e["method"] == "DELETE" and e["status"] != 401 and e["path"].endswith("/apiKeys/'"$3"'")})')"
    assert_eq "$deletes" 204 "$1: statuses of the DELETE of the orphan key in the simulator's journal"
    e2e_log "$1: orphan key $2 deleted by the WAL rollback $((SECONDS - $4))s after the kill"
}

suite_sigkill() {
    STATE="$1"
    start_vault_stack "$STATE" "-env=MONGODBATLAS_ISSUE_TIMEOUT=6s" "-env=MONGODBATLAS_WAL_ROLLBACK_MIN_AGE=8s"
    cli write "$MOUNT/roles/org-role" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER \
        ip_addresses=192.0.2.10 ttl=1h >&2
    local kept
    kept="$(issue_creds "$MOUNT" org-role)"
    assert_inventory_matches_leases "one lease before the kills" "$MOUNT"

    # A: the key was created and its id is in the WAL; the access-list call
    # is held when the plugin dies.
    local a_key a_id a_at=$SECONDS
    kill_mid_issuance "kill during the access list" org-role \
        '{"method":"POST","path":"/accessList$","action":"latency","latency_ms":30000,"nth":1}'
    a_key="$ORPHAN" a_id="$ORPHAN_ID"
    # The invariant check sees the orphan (so it can fail).
    if (assert_inventory_matches_leases "orphan present" "$MOUNT") >/dev/null 2>&1; then
        fail "the invariant check passed with an orphan key in the simulator"
    fi
    # B: Atlas created the key but the answer was lost, so the WAL holds only
    # its description; the plugin dies while listing keys to remove it.
    local b_key b_id b_at=$SECONDS
    kill_mid_issuance "kill during create recovery" org-role \
        '{"method":"POST","path":"/orgs/[^/]+/apiKeys$","action":"reset_after","nth":1}' \
        '{"method":"GET","path":"/orgs/[^/]+/apiKeys$","action":"latency","latency_ms":30000,"nth":1}'
    b_key="$ORPHAN" b_id="$ORPHAN_ID"

    wait_rolled_back "kill during the access list (WAL entry with the key id)" "$a_key" "$a_id" "$a_at"
    wait_rolled_back "kill during create recovery (WAL entry with the description only)" "$b_key" "$b_id" "$b_at"

    # The lease issued before the kills is intact.
    assert_key_live "$(public_key_of "$kept")" "its lease predates the kills"
    cli lease lookup "$(lease_of "$kept")" >/dev/null
    assert_inventory_matches_leases "after the kills and the rollbacks" "$MOUNT"
    cli lease revoke -prefix "$MOUNT/creds/" >&2
    wait_no_issued_keys "lease revoke -prefix after the kills"
    assert_inventory_matches_leases "end of the sigkill suite" "$MOUNT"
}

# ------------------------------------------------------------ outage ----

# Lines of Vault's expiration manager about a failed revocation of a lease.
revoke_failures() { # <lease id>
    grep -F "expiration: failed to revoke lease: lease_id=$1 " "$VDEV_LOG" || true
}

suite_outage() {
    local state="$1"
    start_vault_stack "$state" "-env=MONGODBATLAS_CALL_TIMEOUT=3s" "-env=MONGODBATLAS_ATTEMPT_TIMEOUT=1s"
    # Long enough to outlive the issuances below on a loaded machine, short enough to expire
    # during the outage (which lasts until every queued revocation has failed once).
    cli write "$MOUNT/roles/short" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER ttl=20s max_ttl=20s >&2
    cli write "$MOUNT/roles/long" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER ttl=1h >&2
    cli write "$MOUNT/roles/prefixed" project_id="$SIM_PROJECT_ID" roles=GROUP_READ_ONLY ttl=1h >&2
    local short1 short2 long1 long2 prefixed
    long1="$(issue_creds "$MOUNT" long)"
    long2="$(issue_creds "$MOUNT" long)"
    prefixed="$(issue_creds "$MOUNT" prefixed)"
    short1="$(issue_creds "$MOUNT" short)"
    short2="$(issue_creds "$MOUNT" short)"
    assert_inventory_matches_leases "5 leases before the outage" "$MOUNT"

    # Atlas unreachable: every connection is dropped, digest challenges too.
    sim_admin_send POST /faults '{"path":"^/api/atlas/","action":"reset","before_auth":true}' >/dev/null ||
        fail "could not add a fault to the simulator"
    local outage_started=$SECONDS
    e2e_log "outage: Atlas drops every connection"
    # Queued revocations (the CLI's default) and expiries are Vault's to retry.
    cli lease revoke "$(lease_of "$long1")" >&2
    cli lease revoke -prefix "$MOUNT/creds/prefixed/" >&2
    # A synchronous revocation fails, and the lease stays.
    cli_fails "failed to revoke" lease revoke -sync "$(lease_of "$long2")" >/dev/null
    cli lease lookup "$(lease_of "$long2")" >/dev/null
    assert_key_live "$(public_key_of "$long2")" "its synchronous revocation failed"
    e2e_log "outage: lease revoke -sync failed and kept the lease"

    # Hold the outage for OUTAGE_SECONDS and until every queued revocation
    # has failed at least once. Vault's second attempt comes 10-30 s after
    # the first failure, its third 20-60 s after the second: some leases fail
    # twice, none three times, and all are retried within a minute of the end.
    local pending=("$short1" "$short2" "$long1" "$prefixed") response deadline=$((SECONDS + 60))
    for response in "${pending[@]}"; do
        while [[ -z "$(revoke_failures "$(lease_of "$response")")" ]]; do
            ((SECONDS < deadline)) || fail "Vault logged no failed revocation of $(lease_of "$response") within 60s of the outage"
            sleep 0.5
        done
    done
    while ((SECONDS - outage_started < OUTAGE_SECONDS)); do
        sleep 0.5
    done
    for response in "${pending[@]}" "$long2"; do
        assert_key_live "$(public_key_of "$response")" "Atlas is unreachable"
    done
    sim_admin_send DELETE /faults >/dev/null || fail "could not clear the simulator's faults"
    local outage=$((SECONDS - outage_started)) restored=$SECONDS
    e2e_log "outage over after ${outage}s; each of the 4 queued revocations failed at least once"

    for response in "${pending[@]}"; do
        wait_key_gone "$(public_key_of "$response")" "Atlas came back (Vault's revocation retries)" "$REVOKE_RETRY_WAIT"
    done
    local recovered=$((SECONDS - restored)) failures=0 most=0 n
    for response in "${pending[@]}"; do
        n="$(revoke_failures "$(lease_of "$response")" | grep -c . || true)"
        failures=$((failures + n))
        ((n > most)) && most=$n
        # Vault deletes the lease once its revocation succeeded.
        deadline=$((SECONDS + 15))
        while [[ -n "$(live_lease_ids "$MOUNT/creds/" | grep -xF "$(lease_of "$response")" || true)" ]]; do
            ((SECONDS < deadline)) || fail "lease $(lease_of "$response") still exists 15s after its key was deleted"
            sleep 0.2
        done
    done
    if grep -q "marking lease as irrevocable" "$VDEV_LOG"; then
        fail "Vault marked a lease irrevocable" "$(grep "marking lease as irrevocable" "$VDEV_LOG")"
    fi
    e2e_log "after the outage: 4 revocations retried by Vault succeeded ${recovered}s after Atlas came back ($failures failed attempts in all, at most $most for one lease); none irrevocable"

    assert_inventory_matches_leases "after the outage" "$MOUNT"
    cli lease revoke -sync "$(lease_of "$long2")" >&2
    wait_key_gone "$(public_key_of "$long2")" "lease revoke -sync after the outage"
    assert_inventory_matches_leases "end of the outage suite" "$MOUNT"
}

# ----------------------------------------------------------- hygiene ----

# Secrets files and log files of suite state directories, as secret-scan
# arguments (the seen and captured secrets; server, simulator and extra logs).
scan_args() { # <extra log file> <state dir>...
    local extra="$1" dir
    shift
    for dir in "$@"; do
        [[ -s "$dir/private-keys-seen" ]] && printf -- '--secrets\n%s\n' "$dir/private-keys-seen"
        [[ -s "$dir/wire-secrets" ]] && printf -- '--secrets\n%s\n' "$dir/wire-secrets"
    done
    printf '%s\n' "$extra"
    for dir in "$@"; do
        printf '%s\n' "$dir/server.log" "$dir/sim/atlas-sim.log"
    done
}

# The scanner must find a planted private key and a planted Digest header,
# or a clean result would prove nothing.
scan_self_test() { # <state dir>
    local dir="$1" planted secret rc
    planted="$(mktemp)"
    secret="$(grep -m 1 -E '^[0-9a-f-]{36}$' "$dir/wire-secrets")" ||
        fail "the relay recorded no private key in $dir/wire-secrets"
    { cat "$dir/server.log"; printf 'planted: %s\n' "$secret"; } >"$planted"
    rc=0
    secret_scan --secrets "$dir/wire-secrets" "$planted" >/dev/null 2>&1 || rc=$?
    assert_eq "$rc" 1 "secret-scan exit status on a log with a planted private key"
    printf 'Authorization: Digest username="abcdefgh", response="%s"\n' "$(printf x | md5sum | cut -c1-32)" >"$planted"
    rc=0
    secret_scan --secrets "$dir/wire-secrets" "$planted" >/dev/null 2>&1 || rc=$?
    assert_eq "$rc" 1 "secret-scan exit status on a log with a planted Digest header"
    rm -f "$planted"
}

# Searches a finished suite's logs and output; prints the scanner's summary.
scan_suite() { # <output file> <state dir>...
    local args
    mapfile -t args < <(scan_args "$@")
    scan_self_test "$2"
    secret_scan "${args[@]}"
}

# Checks the relay saw every issued private key the suites saw: its record
# is the complete list (keys of failed issuances included).
check_wire_capture() { # <state dir>...
    local dir seen missing wire
    for dir in "$@"; do
        wire="$(grep -cE '^[0-9a-f-]{36}$' "$dir/wire-secrets" || true)"
        seen="$(sort -u "$dir/private-keys-seen" | grep -vxF "$SIM_PRIVATE_KEY_OF_DIR" || true)"
        missing="$(comm -23 <(sort -u <<<"$seen" | grep .) <(sort -u "$dir/wire-secrets") || true)"
        [[ -z "$missing" ]] || fail "$(wc -l <<<"$missing") private keys seen by $dir were not recorded by the relay"
        e2e_log "$(basename "$dir"): the relay recorded $wire private keys from Atlas and $(($(wc -l <"$dir/wire-secrets") - wire)) Digest responses; $(grep -c . <<<"$seen" || true) issued keys seen by the suite, all among them"
    done
}

# A full e2e run of Vault in its secret-hygiene mode; then the scan.
run_hygiene() { # <log dir> <output file>
    local dir="$1/hygiene" out="$2" rc=0
    E2E_LOG_DIR="$dir" E2E_SKIP_BUILD=1 bash "$repo_root/scripts/e2e.sh" vault >"$out" 2>&1 || rc=$?
    cat "$out" >&2
    ((rc == 0)) || return "$rc"
    E2E_NAME="faults-vault[hygiene]"
    local dirs=("$dir"/e2e-vault-*)
    [[ ${#dirs[@]} -eq 2 ]] || fail "expected the main and restart state directories under $dir, found: ${dirs[*]}"
    for d in "${dirs[@]}"; do
        SIM_PRIVATE_KEY_OF_DIR="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["private_key"])' "$d/sim/atlas-sim.json")"
        check_wire_capture "$d"
        grep -q '\[TRACE\]' "$d/server.log" || fail "no [TRACE] line in $d/server.log: not a trace-level log"
    done
    grep -qF '[TRACE] secrets.' "${dirs[0]}/server.log" "${dirs[1]}/server.log" ||
        fail "no plugin line at [TRACE] in the hygiene run's server logs"
    scan_suite "$out" "${dirs[@]}"
}

# ------------------------------------------------------------------ main ----

faults_main() {
    if [[ "${1:-}" == --suite ]]; then
        run_suite vault "$2"
        return
    fi
    local suites=("$@") suite started results=() failed=0 rc out
    [[ ${#suites[@]} -gt 0 ]] || suites=(sigkill outage hygiene)
    for suite in "${suites[@]}"; do
        [[ "$suite" == sigkill || "$suite" == outage || "$suite" == hygiene ]] || {
            echo "usage: scripts/faults-vault.sh [sigkill|outage|hygiene]..." >&2
            exit 2
        }
    done
    build
    "$repo_root/scripts/servers.sh" vault >/dev/null
    local log_dir="${FAULTS_LOG_DIR:-}"
    [[ -n "$log_dir" ]] || log_dir="$(mktemp -d "${TMPDIR:-/tmp}/faults-vault.XXXXXX")"
    mkdir -p "$log_dir"
    for suite in "${suites[@]}"; do
        e2e_log "---- $suite"
        started=$SECONDS
        out="$log_dir/$suite.out"
        rc=0
        if [[ "$suite" == hygiene ]]; then
            (run_hygiene "$log_dir" "$out") || rc=$?
        else
            set +e
            E2E_LOG_DIR="$log_dir" bash "$faults_script" --suite "$suite" 2>&1 | tee "$out" >&2
            rc=${PIPESTATUS[0]}
            set -e
            if ((rc == 0)); then
                (
                    E2E_NAME="faults-vault[$suite]"
                    dirs=("$log_dir/e2e-vault-$suite".*)
                    scan_suite "$out" "${dirs[@]}"
                ) || rc=$?
            fi
        fi
        if ((rc == 0)); then
            results+=("$suite: ok ($((SECONDS - started)) s)")
        else
            results+=("$suite: FAILED ($((SECONDS - started)) s)")
            failed=$((failed + 1))
        fi
    done
    printf 'faults-vault: %s\n' "${results[@]}"
    if ((failed == 0)) && [[ -z "${E2E_KEEP_STATE:-}" && -z "${FAULTS_LOG_DIR:-}" ]]; then
        rm -rf "$log_dir"
    else
        echo "faults-vault: logs kept in $log_dir" >&2
    fi
    ((failed == 0))
}

faults_main "$@"
