#!/usr/bin/env bash
# End-to-end suites of our plugin in a real Vault and a real OpenBao, driven
# through their own CLI (`vault` / `bao`) and HTTP API, against the Atlas
# simulator (target/release/atlas-sim). For each server:
#
#   main     `server -dev` with a plugin directory: plugin register -sha256
#            -version, secrets enable; config write/read; roles create, merge,
#            read, list, delete; creds for every role mode (org, project,
#            org + project, with access lists) checked in the simulator and
#            with the issued key itself; lease lookup/renew/revoke, revoke
#            -prefix, expiry on its own; TTLs against role and mount tuning;
#            path-help of every path; the paths in sys/internal/specs/openapi;
#            two mounts served by one plugin process; plugin reload; plugin
#            debug logs in the server log at [DEBUG]; no private key in the log.
#   restart  persistent (raft) server: leases issued, server restarted, leases
#            still known and revoked afterwards, their keys gone; before and
#            after the restart and at the end the simulator holds exactly the
#            keys of the live leases, none irrevocable; the plugin at its
#            default log level writes no debug lines.
#
# Usage: scripts/e2e.sh [vault|bao]...   (default: vault bao)
# Builds target/release/{vault-plugin-secrets-mongodbatlas,atlas-sim} unless
# E2E_SKIP_BUILD=1. Servers come from scripts/servers.sh. Every wait is
# bounded; servers and simulators are stopped on exit. Exits non-zero when any
# suite fails, after printing the time each suite took.
#
# E2E_LOG_DIR=<dir> (secret-hygiene mode, used by scripts/faults-vault.sh):
# the server logs at trace level, the plugin (suite main) at trace, the plugin
# reaches the simulator through scripts/lib/capture-relay.py (which records
# every private key and Digest response on the wire), and each suite's state
# directory (logs, seen and captured secrets) is kept under <dir>.
#
# Sourcing this file (instead of running it) only defines its functions, for
# scripts that build other suites from them.
set -euo pipefail
shopt -s inherit_errexit

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly PLUGIN_NAME="vault-plugin-secrets-mongodbatlas"
readonly MOUNT="mongodbatlas"
readonly MOUNT_B="mongodbatlas-b"
E2E_NAME="e2e"
E2E_LOG_DIR="${E2E_LOG_DIR:-}"

# shellcheck source=scripts/lib/vault-dev.sh
source "$repo_root/scripts/lib/vault-dev.sh"
# shellcheck source=scripts/lib/atlas-sim.sh
source "$repo_root/scripts/lib/atlas-sim.sh"
# shellcheck source=scripts/lib/e2e-common.sh
source "$repo_root/scripts/lib/e2e-common.sh"

VERSION="v$(release_version "$repo_root")"
e2e_release_binaries "$repo_root"
PLUGIN_FILE=""

# The binary's file name in the plugin directory. go-plugin names the
# plugin's own log lines "<...>.<catalog name>.<file name>: <message>".
use_plugin_file() { # <file name>
    PLUGIN_FILE="$1"
    E2E_PLUGIN_LOG_MATCH=".$PLUGIN_NAME.$PLUGIN_FILE:"
}
PLUGIN_SHA256=""
SERVER=""

server_is_bao() { [[ "$SERVER" == bao ]]; }

# The given level, or trace in secret-hygiene mode.
log_level() { # <level>
    if [[ -n "$E2E_LOG_DIR" ]]; then echo trace; else echo "$1"; fi
}

# ---------------------------------------------------------------- set-up ----

# Starts the simulator and a server with our binary in its plugin directory.
# The server logs at debug level, so the log shows whatever the plugin emits.
start_servers() { # <state dir> [vdev_start options...]
    local state="$1"
    shift
    sim_start "$sim_binary" "$state/sim"
    if [[ -n "$E2E_LOG_DIR" ]]; then
        capture_start "$SIM_BASE_URL" "$state/wire-secrets"
        SIM_BASE_URL="$CAPTURE_URL"
    fi
    mkdir -p "$state/plugins"
    cp "$plugin_build" "$state/plugins/$PLUGIN_FILE"
    PLUGIN_SHA256="$(sha256sum "$state/plugins/$PLUGIN_FILE" | cut -d' ' -f1)"
    local level_env=VAULT_LOG_LEVEL
    server_is_bao && level_env=BAO_LOG_LEVEL
    vdev_start "$("$repo_root/scripts/servers.sh" "$SERVER")" "$state" \
        --plugin-dir "$state/plugins" --env "$level_env=$(log_level debug)" "$@"
    e2e_log "$("$VDEV_CLI" version)"
}

# The binary as the server runs it (for process counting).
plugin_path() { printf '%s/%s' "$VDEV_PLUGIN_DIR" "$PLUGIN_FILE"; }

register_plugin() { # [extra plugin register flags...]
    local command=()
    # -command defaults to the catalog name.
    [[ "$PLUGIN_FILE" == "$PLUGIN_NAME" ]] || command=(-command="$PLUGIN_FILE")
    cli plugin register -sha256="$PLUGIN_SHA256" -version="$VERSION" \
        ${command[@]+"${command[@]}"} "$@" secret "$PLUGIN_NAME" >&2
    local info
    info="$(cli plugin info -format=json -version="$VERSION" secret "$PLUGIN_NAME")"
    assert_eq "$(json_get 'd["version"]' <<<"$info")" "$VERSION" "catalog version of $PLUGIN_NAME"
    assert_eq "$(json_get 'd["sha256"]' <<<"$info")" "$PLUGIN_SHA256" "catalog sha256 of $PLUGIN_NAME"
    e2e_log "registered $PLUGIN_NAME $VERSION (sha256 ${PLUGIN_SHA256:0:12}…)"
}

enable_mount() { # <path>
    cli secrets enable -path="$1" "$PLUGIN_NAME" >&2
    local mounts
    mounts="$(cli secrets list -detailed -format=json)"
    assert_eq "$(json_get "d['$1/']['type']" <<<"$mounts")" "$PLUGIN_NAME" "type of mount $1/"
    assert_eq "$(json_get "d['$1/']['plugin_version']" <<<"$mounts")" "$VERSION" "plugin_version of mount $1/"
    assert_eq "$(json_get "d['$1/']['running_plugin_version']" <<<"$mounts")" "$VERSION" "running_plugin_version of mount $1/"
    assert_eq "$(json_get "d['$1/']['running_sha256']" <<<"$mounts")" "$PLUGIN_SHA256" "running_sha256 of mount $1/"
    e2e_log "mount $1/ runs $PLUGIN_NAME $VERSION"
}

write_config() { # <mount>
    cli write "$1/config" public_key="$SIM_PUBLIC_KEY" private_key="$SIM_PRIVATE_KEY" \
        base_url="$SIM_BASE_URL" >&2
    remember_secret "$SIM_PRIVATE_KEY"
}

# Reads creds/<role> through the CLI; prints the JSON response and remembers
# the private key. Checks the lease and the response shape.
issue_creds() { # <mount> <role>
    local response lease_id
    response="$(cli read -format=json "$1/creds/$2")"
    remember_secret "$(json_get 'd["data"]["private_key"]' <<<"$response")"
    lease_id="$(json_get 'd["lease_id"]' <<<"$response")"
    track_lease "$lease_id" "$(json_get 'd["data"]["public_key"]' <<<"$response")"
    assert_contains "$lease_id" "$1/creds/$2/" "lease id of creds/$2"
    assert_eq "$(json_get 'd["renewable"]' <<<"$response")" true "renewable of creds/$2"
    assert_contains "$(json_get 'd["data"]["description"]' <<<"$response")" "vault-$2-" "description of creds/$2"
    [[ -n "$(json_get 'd["data"]["public_key"]' <<<"$response")" ]] || fail "creds/$2 returned no public_key" "$response"
    printf '%s\n' "$response"
}

public_key_of() { json_get 'd["data"]["public_key"]' <<<"$1"; }
private_key_of() { json_get 'd["data"]["private_key"]' <<<"$1"; }
lease_of() { json_get 'd["lease_id"]' <<<"$1"; }

# The issued key itself against the simulator's Atlas API (HTTP digest):
# prints the HTTP status and Atlas error code of GET <path>.
atlas_get_as() { # <public key> <private key> <api path>
    local body_file status code
    body_file="$(mktemp)"
    status="$(curl --silent --max-time 10 --digest --user "$1:$2" \
        --header 'Accept: application/vnd.atlas.2023-01-01+json' \
        --output "$body_file" --write-out '%{http_code}' "$SIM_BASE_URL/api/atlas/v2$3")" || status="curl-error"
    code="$(python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1])).get("errorCode", ""))
except Exception:
    print("")' "$body_file")"
    rm -f "$body_file"
    printf '%s %s\n' "$status" "$code"
}

# ------------------------------------------------------------ main suite ----

check_config() {
    cli_fails "private_key is required" write "$MOUNT/config" public_key="$SIM_PUBLIC_KEY" >/dev/null
    write_config "$MOUNT"
    local config
    config="$(cli read -format=json "$MOUNT/config")"
    assert_eq "$(json_get 'd["data"]["public_key"]' <<<"$config")" "$SIM_PUBLIC_KEY" "config public_key"
    assert_eq "$(json_get 'd["data"]["base_url"]' <<<"$config")" "$SIM_BASE_URL" "config base_url"
    assert_eq "$(json_get '"private_key" in d["data"]' <<<"$config")" false "config read hides private_key"
    assert_not_contains "$config" "$SIM_PRIVATE_KEY" "config read output"
    e2e_log "config: write needs both keys, read shows public_key and base_url only"
}

check_roles() {
    local role list
    cli write "$MOUNT/roles/org-role" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER \
        ip_addresses=192.0.2.10 >&2
    # A write merges into the stored role: fields not given are kept.
    cli write "$MOUNT/roles/org-role" roles=ORG_MEMBER,ORG_BILLING_ADMIN \
        cidr_blocks=198.51.100.0/24 >&2
    role="$(cli read -format=json "$MOUNT/roles/org-role")"
    assert_eq "$(json_get 'd["data"]["organization_id"]' <<<"$role")" "$SIM_ORG_ID" "merged role keeps organization_id"
    assert_eq "$(json_get 'd["data"]["roles"]' <<<"$role")" $'ORG_MEMBER\nORG_BILLING_ADMIN' "merged role roles"
    assert_eq "$(json_get 'd["data"]["ip_addresses"]' <<<"$role")" "192.0.2.10" "merged role keeps ip_addresses"
    assert_eq "$(json_get 'd["data"]["cidr_blocks"]' <<<"$role")" "198.51.100.0/24" "merged role cidr_blocks"
    assert_eq "$(json_get 'd["data"]["ttl"]' <<<"$role")" 0 "role ttl"

    cli write "$MOUNT/roles/project-role" project_id="$SIM_PROJECT_ID" roles=GROUP_READ_ONLY \
        cidr_blocks=203.0.113.0/24 >&2
    # 127.0.0.1 on the access list lets this suite call Atlas with the issued key.
    cli write "$MOUNT/roles/org-project-role" organization_id="$SIM_ORG_ID" \
        project_id="$SIM_PROJECT_ID" roles=ORG_READ_ONLY \
        project_roles=GROUP_DATA_ACCESS_READ_ONLY ip_addresses=127.0.0.1,192.0.2.20 >&2

    cli_fails "not an Atlas organization role" write "$MOUNT/roles/bad-role" \
        organization_id="$SIM_ORG_ID" roles=GROUP_READ_ONLY >/dev/null
    cli_fails "project_roles is required" write "$MOUNT/roles/bad-role" \
        organization_id="$SIM_ORG_ID" project_id="$SIM_PROJECT_ID" roles=ORG_MEMBER >/dev/null

    cli write "$MOUNT/roles/scratch-role" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER >&2
    list="$(cli list -format=json "$MOUNT/roles")"
    assert_eq "$(json_get 'sorted(d)' <<<"$list")" \
        $'org-project-role\norg-role\nproject-role\nscratch-role' "role list"
    cli delete "$MOUNT/roles/scratch-role" >&2
    # `read` of a missing path prints nothing useful and exits 2.
    local rc=0
    "$VDEV_CLI" read "$MOUNT/roles/scratch-role" >/dev/null 2>&1 </dev/null || rc=$?
    assert_eq "$rc" 2 "exit status of reading a deleted role"
    list="$(cli list -format=json "$MOUNT/roles")"
    assert_eq "$(json_get 'sorted(d)' <<<"$list")" \
        $'org-project-role\norg-role\nproject-role' "role list after delete"
    e2e_log "roles: create, merge on update, read, list, delete, validation"
}

# Every role mode issues the key it describes, checked in the simulator.
check_creds_modes() {
    local org project both key
    org="$(issue_creds "$MOUNT" org-role)"
    key="$(sim_key_json "$(public_key_of "$org")")"
    [[ -n "$key" ]] || fail "the org key is not in the simulator" "$org"
    assert_eq "$(json_get 'd["seeded"]' <<<"$key")" false "org key seeded flag"
    assert_eq "$(json_get 'd["desc"]' <<<"$key")" "$(json_get 'd["data"]["description"]' <<<"$org")" "org key description"
    assert_eq "$(json_get 'sorted(r["roleName"] for r in d["roles"] if r.get("orgId"))' <<<"$key")" \
        $'ORG_BILLING_ADMIN\nORG_MEMBER' "org key organization roles"
    assert_eq "$(json_get 'sorted(d["access_list"])' <<<"$key")" \
        $'192.0.2.10/32\n198.51.100.0/24' "org key access list"

    project="$(issue_creds "$MOUNT" project-role)"
    key="$(sim_key_json "$(public_key_of "$project")")"
    [[ -n "$key" ]] || fail "the project key is not in the simulator" "$project"
    assert_eq "$(json_get '[r["roleName"] for r in d["roles"] if r.get("groupId") == "'"$SIM_PROJECT_ID"'"]' <<<"$key")" \
        GROUP_READ_ONLY "project key project roles"
    assert_eq "$(json_get 'd["access_list"]' <<<"$key")" "203.0.113.0/24" "project key access list"

    both="$(issue_creds "$MOUNT" org-project-role)"
    key="$(sim_key_json "$(public_key_of "$both")")"
    [[ -n "$key" ]] || fail "the org+project key is not in the simulator" "$both"
    assert_eq "$(json_get '[r["roleName"] for r in d["roles"] if r.get("orgId")]' <<<"$key")" \
        ORG_READ_ONLY "org+project key organization roles"
    assert_eq "$(json_get '[r["roleName"] for r in d["roles"] if r.get("groupId") == "'"$SIM_PROJECT_ID"'"]' <<<"$key")" \
        GROUP_DATA_ACCESS_READ_ONLY "org+project key project roles"
    assert_eq "$(json_get 'sorted(d["access_list"])' <<<"$key")" \
        $'127.0.0.1/32\n192.0.2.20/32' "org+project key access list"

    # The issued private keys are real: Atlas authenticates them, and applies
    # their access lists (this suite calls from 127.0.0.1).
    assert_eq "$(atlas_get_as "$(public_key_of "$both")" "$(private_key_of "$both")" "/orgs/$SIM_ORG_ID")" \
        "200 " "GET org with the org+project key (127.0.0.1 on its access list)"
    assert_eq "$(atlas_get_as "$(public_key_of "$org")" "$(private_key_of "$org")" "/orgs/$SIM_ORG_ID")" \
        "403 IP_ADDRESS_NOT_ON_ACCESS_LIST" "GET org with the org key (127.0.0.1 not on its access list)"
    e2e_log "creds: org, project and org+project keys exist in Atlas with their roles and access lists"

    # Each lease revoked on its own deletes its key.
    local response
    for response in "$org" "$project" "$both"; do
        cli lease revoke "$(lease_of "$response")" >&2
        wait_key_gone "$(public_key_of "$response")" "lease revoke $(lease_of "$response")"
    done
    e2e_log "lease revoke deleted each key"
}

check_http_api() {
    local response lease
    response="$(http_api GET "$MOUNT/creds/org-project-role")"
    remember_secret "$(private_key_of "$response")"
    lease="$(lease_of "$response")"
    assert_key_live "$(public_key_of "$response")" "issued through the HTTP API"
    http_api PUT sys/leases/revoke "{\"lease_id\":\"$lease\"}" >/dev/null
    wait_key_gone "$(public_key_of "$response")" "PUT sys/leases/revoke"
    e2e_log "HTTP API: GET creds and PUT sys/leases/revoke"
}

# Atlas failures as the user and the log see them.
check_atlas_failures() {
    # An organization Atlas does not know: the error reaches the CLI, no key.
    cli write "$MOUNT/roles/unknown-org" organization_id=0123456789abcdef01234567 roles=ORG_MEMBER >&2
    local error
    error="$(cli_fails "creating the Atlas API key" read "$MOUNT/creds/unknown-org")"
    # Atlas' 404 for the role's organization is the caller's mistake: a 400.
    assert_contains "$error" "Code: 400" "HTTP status of creds for an unknown organization"
    e2e_log "creds for an unknown organization: $(grep -F 'creating the Atlas API key' <<<"$error" | head -n 1 | sed 's/^[*[:space:]]*//')"
    cli delete "$MOUNT/roles/unknown-org" >&2
    # The connection drops during the create: the plugin cannot know whether
    # Atlas made the key, removes any such key, retries, and warns in the log.
    local warned_before response warned_after
    warned_before="$(grep -cF -- "$E2E_PLUGIN_LOG_MATCH Atlas API key create may have taken effect" "$VDEV_LOG" || true)"
    sim_admin_send POST /faults '{"method":"POST","path":"/apiKeys$","action":"reset","nth":1}' >/dev/null ||
        fail "could not add a fault to the simulator"
    response="$(issue_creds "$MOUNT" org-role)"
    sim_admin_send DELETE /faults >/dev/null || fail "could not clear the simulator's faults"
    assert_eq "$(sim_issued_public_keys)" "$(public_key_of "$response")" "live keys after a create whose connection dropped"
    warned_after="$(grep -F -- "$E2E_PLUGIN_LOG_MATCH Atlas API key create may have taken effect" "$VDEV_LOG" || true)"
    (($(grep -c . <<<"$warned_after") > warned_before)) ||
        fail "no plugin warning about the interrupted create in the server log"
    assert_contains "$(tail -n 1 <<<"$warned_after")" "[WARN]" "level of the plugin's interrupted-create line"
    cli lease revoke "$(lease_of "$response")" >&2
    wait_no_issued_keys "revoking the key issued after a dropped connection"
    e2e_log "Atlas failures: unknown org reported to the CLI; dropped create retried, one key, [WARN] in the log"
}

check_lease_lookup_renew() {
    local response lease lookup renewed
    response="$(issue_creds "$MOUNT" org-role)"
    lease="$(lease_of "$response")"
    lookup="$(cli lease lookup -format=json "$lease")"
    assert_eq "$(json_get 'd["data"]["id"]' <<<"$lookup")" "$lease" "lease lookup id"
    assert_eq "$(json_get 'd["data"]["renewable"]' <<<"$lookup")" true "lease lookup renewable"
    assert_between "$(json_get 'd["data"]["ttl"]' <<<"$lookup")" 1 "$(json_get 'd["lease_duration"]' <<<"$response")" "lease lookup ttl"
    renewed="$(cli lease renew -format=json -increment=30m "$lease")"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$renewed")" 1800 "lease renew -increment=30m"
    lookup="$(cli lease lookup -format=json "$lease")"
    assert_between "$(json_get 'd["data"]["ttl"]' <<<"$lookup")" 1780 1800 "ttl after renew"
    [[ -n "$(json_get 'd["data"]["last_renewal"]' <<<"$lookup")" ]] || fail "lease lookup shows no last_renewal after renew" "$lookup"
    cli lease revoke "$lease" >&2
    wait_key_gone "$(public_key_of "$response")" "lease revoke"
    cli_fails "invalid lease" lease lookup "$lease" >/dev/null
    e2e_log "lease lookup, renew -increment, revoke; the lease is gone afterwards"
}

# TTLs as the user sees them: role ttl/max_ttl against the mount's tuning.
check_ttls() {
    cli secrets tune -default-lease-ttl=2h -max-lease-ttl=4h "$MOUNT/" >&2
    local tune
    tune="$(cli read -format=json "sys/mounts/$MOUNT/tune")"
    assert_eq "$(json_get 'd["data"]["default_lease_ttl"]' <<<"$tune")" 7200 "tuned default_lease_ttl"
    assert_eq "$(json_get 'd["data"]["max_lease_ttl"]' <<<"$tune")" 14400 "tuned max_lease_ttl"

    cli write "$MOUNT/roles/ttl-default" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER >&2
    cli write "$MOUNT/roles/ttl-capped" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER ttl=1h max_ttl=90m >&2
    cli write "$MOUNT/roles/ttl-too-long" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER ttl=10h max_ttl=20h >&2
    local role
    role="$(cli read -format=json "$MOUNT/roles/ttl-capped")"
    assert_eq "$(json_get 'd["data"]["ttl"], d["data"]["max_ttl"]' <<<"$role")" $'3600\n5400' "role ttl/max_ttl read back in seconds"

    local default capped too_long renewed
    default="$(issue_creds "$MOUNT" ttl-default)"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$default")" 7200 "lease of a role without ttl (mount default 2h)"
    # Renewal asks for more than the mount allows: capped at max_lease_ttl.
    renewed="$(cli lease renew -format=json -increment=10h "$(lease_of "$default")")"
    assert_between "$(json_get 'd["lease_duration"]' <<<"$renewed")" 14370 14400 "renew -increment=10h capped by the mount's 4h"

    capped="$(issue_creds "$MOUNT" ttl-capped)"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$capped")" 3600 "lease of a role with ttl=1h"
    renewed="$(cli lease renew -format=json -increment=3h "$(lease_of "$capped")")"
    assert_between "$(json_get 'd["lease_duration"]' <<<"$renewed")" 5370 5400 "renew -increment=3h capped by the role's max_ttl=90m"
    assert_contains "$(json_get 'd["warnings"]' <<<"$renewed")" "capped" "warning of a capped renewal"
    renewed="$(cli lease renew -format=json "$(lease_of "$capped")")"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$renewed")" 3600 "renew without increment gives the role ttl"

    too_long="$(issue_creds "$MOUNT" ttl-too-long)"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$too_long")" 14400 "role ttl=10h capped by the mount's max 4h"
    e2e_log "TTLs: mount default for roles without ttl, role ttl, renewals capped by role max_ttl and mount max"
}

# A lease that expires on its own deletes its key.
check_expiry() {
    cli write "$MOUNT/roles/short-lived" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER ttl=5s max_ttl=5s >&2
    local response started=$SECONDS
    response="$(issue_creds "$MOUNT" short-lived)"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$response")" 5 "lease of a role with ttl=5s"
    assert_key_live "$(public_key_of "$response")" "just issued"
    wait_key_gone "$(public_key_of "$response")" "its 5s lease was issued" 60
    cli_fails "invalid lease" lease lookup "$(lease_of "$response")" >/dev/null
    e2e_log "expiry: a 5s lease's key was deleted $((SECONDS - started))s after issue"
}

check_revoke_prefix() {
    issue_creds "$MOUNT" org-role >/dev/null
    issue_creds "$MOUNT" project-role >/dev/null
    issue_creds "$MOUNT" org-project-role >/dev/null
    [[ "$(sim_issued_public_keys | wc -l)" -ge 3 ]] || fail "expected at least 3 live keys before revoke -prefix" "$(sim_issued_public_keys)"
    cli lease revoke -prefix "$MOUNT/creds/" >&2
    wait_no_issued_keys "lease revoke -prefix $MOUNT/creds/"
    e2e_log "lease revoke -prefix $MOUNT/creds/ deleted every key"
}

check_path_help() {
    local help
    help="$(cli path-help "$MOUNT/")"
    assert_contains "$help" "MongoDB Atlas secrets engine" "path-help $MOUNT/"
    assert_contains "$help" "^creds/" "path-help $MOUNT/ lists the paths"
    help="$(cli path-help "$MOUNT/config")"
    assert_contains "$help" "private_key" "path-help $MOUNT/config"
    assert_contains "$help" "base_url" "path-help $MOUNT/config"
    help="$(cli path-help "$MOUNT/roles/")"
    assert_contains "$help" "List the roles" "path-help $MOUNT/roles/"
    help="$(cli path-help "$MOUNT/roles/example")"
    assert_contains "$help" "project_roles" "path-help $MOUNT/roles/example"
    assert_contains "$help" "ip_addresses" "path-help $MOUNT/roles/example"
    help="$(cli path-help "$MOUNT/creds/example")"
    assert_contains "$help" "Issue an Atlas credential for a role" "path-help $MOUNT/creds/example"
    assert_contains "$help" "programmatic API key" "path-help $MOUNT/creds/example"
    help="$(cli path-help "$MOUNT/rotate-root")"
    assert_contains "$help" "Rotate the Atlas credential in config" "path-help $MOUNT/rotate-root"
    e2e_log "path-help: backend, config, roles/, roles/<name>, creds/<name>, rotate-root"
}

check_openapi() {
    local spec
    spec="$(http_api GET sys/internal/specs/openapi)"
    local paths
    paths="$(json_get 'sorted(p for p in d["paths"] if p.startswith("/'"$MOUNT"'/"))' <<<"$spec")"
    local want
    for want in "/$MOUNT/config" "/$MOUNT/creds/{name}" "/$MOUNT/roles/" "/$MOUNT/roles/{name}"; do
        assert_contains $'\n'"$paths"$'\n' $'\n'"$want"$'\n' "OpenAPI paths of $MOUNT/"
    done
    assert_eq "$(json_get 'sorted(d["paths"]["/'"$MOUNT"'/roles/{name}"].keys() & {"get", "post", "delete"})' <<<"$spec")" \
        $'delete\nget\npost' "OpenAPI operations of /$MOUNT/roles/{name}"
    e2e_log "OpenAPI document lists $(wc -l <<<"$paths") paths of $MOUNT/"
}

# Two mounts of the plugin are served by one (multiplexed) plugin process.
check_multiplexing() {
    enable_mount "$MOUNT_B"
    write_config "$MOUNT_B"
    cli write "$MOUNT_B/roles/b-role" project_id="$SIM_PROJECT_ID" roles=GROUP_READ_ONLY >&2
    # Each mount has its own storage.
    assert_eq "$(cli list -format=json "$MOUNT_B/roles" | json_get 'd')" b-role "roles of $MOUNT_B/"
    local a b pids
    a="$(issue_creds "$MOUNT" org-role)"
    b="$(issue_creds "$MOUNT_B" b-role)"
    assert_key_live "$(public_key_of "$a")" "issued on $MOUNT/"
    assert_key_live "$(public_key_of "$b")" "issued on $MOUNT_B/"
    pids="$(plugin_pids "$(plugin_path)")"
    assert_eq "$(wc -w <<<"$pids")" 1 "plugin processes serving $MOUNT/ and $MOUNT_B/ (pids: $pids)"
    e2e_log "multiplexing: $MOUNT/ and $MOUNT_B/ are both served by plugin process $pids"
    cli lease revoke "$(lease_of "$a")" >&2
    cli lease revoke "$(lease_of "$b")" >&2
    wait_no_issued_keys "revoking the leases of both mounts"
}

# `plugin reload` replaces the plugin process; both mounts keep working.
check_reload() {
    local before after deadline
    before="$(plugin_pids "$(plugin_path)")"
    cli plugin reload -plugin="$PLUGIN_NAME" >&2
    deadline=$((SECONDS + 30))
    while :; do
        after="$(plugin_pids "$(plugin_path)")"
        [[ -n "$after" && "$after" != "$before" ]] && break
        ((SECONDS < deadline)) || fail "no new plugin process 30s after plugin reload (before: $before, now: ${after:-none})"
        sleep 0.2
    done
    local a b
    a="$(issue_creds "$MOUNT" org-role)"
    b="$(issue_creds "$MOUNT_B" b-role)"
    after="$(plugin_pids "$(plugin_path)")"
    assert_eq "$(wc -w <<<"$after")" 1 "plugin processes after reload (pids: $after)"
    [[ "$after" != "$before" ]] || fail "plugin reload kept the old process $before"
    cli lease revoke -prefix "$MOUNT/creds/" >&2
    cli lease revoke -prefix "$MOUNT_B/creds/" >&2
    wait_no_issued_keys "revoking after plugin reload"
    e2e_log "plugin reload: process $before replaced by $after; both mounts issue and revoke"
}

# The plugin's hclog lines arrive in the server log at their own level.
check_logs_debug() {
    local issued revoked
    issued="$(grep -F -- "$E2E_PLUGIN_LOG_MATCH issued Atlas API key" "$VDEV_LOG" || true)"
    [[ -n "$issued" ]] || fail "no 'issued Atlas API key' line of the plugin in the server log"
    assert_contains "$(head -n 1 <<<"$issued")" "[DEBUG]" "level of the plugin's 'issued Atlas API key' line"
    assert_contains "$(head -n 1 <<<"$issued")" "secrets.$PLUGIN_NAME." "logger of the plugin's line"
    assert_contains "$(head -n 1 <<<"$issued")" "@module=mongodbatlas.engine.issuance" "module of the plugin's line"
    revoked="$(grep -cF -- "$E2E_PLUGIN_LOG_MATCH revoked Atlas API key" "$VDEV_LOG" || true)"
    ((revoked >= 1)) || fail "no 'revoked Atlas API key' line of the plugin in the server log"
    e2e_log "logs: $(wc -l <<<"$issued") 'issued' and $revoked 'revoked' plugin lines at [DEBUG] in the server log"
    assert_no_secret_in_log
}

suite_main() {
    local state="$1" register_env=() server_env=()
    # Vault's `plugin register -env` sets the plugin's environment in the
    # catalog; OpenBao's CLI has no -env, so there it is the server's.
    if server_is_bao; then
        server_env=(--env "PLUGIN_LOG_LEVEL=$(log_level debug)")
    else
        register_env=("-env=PLUGIN_LOG_LEVEL=$(log_level debug)")
    fi
    # Not the catalog name: a dev server registers every file of its plugin
    # directory unversioned under the file's name, and `secrets enable`
    # prefers an unversioned plugin to a versioned one.
    use_plugin_file "$PLUGIN_NAME-$VERSION"
    start_servers "$state" ${server_env[@]+"${server_env[@]}"}
    register_plugin ${register_env[@]+"${register_env[@]}"}
    enable_mount "$MOUNT"
    # Before any config: creds fail with advice.
    cli write "$MOUNT/roles/early" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER >&2
    cli_fails "no Atlas credentials configured" read "$MOUNT/creds/early" >/dev/null
    cli delete "$MOUNT/roles/early" >&2
    check_config
    check_roles
    check_creds_modes
    check_http_api
    check_atlas_failures
    check_lease_lookup_renew
    check_ttls
    check_expiry
    check_revoke_prefix
    check_path_help
    check_openapi
    check_multiplexing
    check_reload
    check_logs_debug
}

# --------------------------------------------------------- restart suite ----

suite_restart() {
    local state="$1"
    # As on a real server: the file is named after the plugin, registered
    # without -command. No PLUGIN_LOG_LEVEL anywhere: the plugin logs at info.
    use_plugin_file "$PLUGIN_NAME"
    start_servers "$state" --persistent
    register_plugin
    enable_mount "$MOUNT"
    write_config "$MOUNT"
    cli write "$MOUNT/roles/org-role" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER ttl=1h >&2
    cli write "$MOUNT/roles/project-role" project_id="$SIM_PROJECT_ID" roles=GROUP_READ_ONLY \
        ip_addresses=192.0.2.10 ttl=1h >&2
    local org project other
    org="$(issue_creds "$MOUNT" org-role)"
    project="$(issue_creds "$MOUNT" project-role)"
    other="$(issue_creds "$MOUNT" org-role)"
    local old_pid
    old_pid="$VDEV_PID"

    assert_inventory_matches_leases "3 leases before the restart" "$MOUNT"
    vdev_restart
    e2e_log "server restarted (pid $old_pid -> $VDEV_PID) with 3 outstanding leases"
    assert_inventory_matches_leases "after the restart" "$MOUNT"
    local response lookup
    for response in "$org" "$project" "$other"; do
        lookup="$(cli lease lookup -format=json "$(lease_of "$response")")"
        assert_between "$(json_get 'd["data"]["ttl"]' <<<"$lookup")" 3000 3600 "ttl of $(lease_of "$response") after restart"
        assert_key_live "$(public_key_of "$response")" "its lease survived the restart"
    done
    assert_eq "$(cli read -format=json "$MOUNT/config" | json_get 'd["data"]["public_key"]')" \
        "$SIM_PUBLIC_KEY" "config after restart"
    local fresh
    fresh="$(issue_creds "$MOUNT" project-role)"
    cli lease renew "$(lease_of "$org")" >&2
    cli lease revoke "$(lease_of "$org")" >&2
    wait_key_gone "$(public_key_of "$org")" "lease revoke after the restart"
    cli lease revoke -prefix "$MOUNT/creds/" >&2
    wait_no_issued_keys "lease revoke -prefix after the restart"
    e2e_log "after restart: leases looked up, renewed and revoked; keys gone (fresh key $(public_key_of "$fresh") too)"

    # At the default level the plugin logs no debug lines, even to a debug
    # server, but still its warnings (provoked here by a dropped connection).
    sim_admin_send POST /faults '{"method":"POST","path":"/apiKeys$","action":"reset","nth":1}' >/dev/null ||
        fail "could not add a fault to the simulator"
    response="$(issue_creds "$MOUNT" org-role)"
    sim_admin_send DELETE /faults >/dev/null || fail "could not clear the simulator's faults"
    cli lease revoke "$(lease_of "$response")" >&2
    wait_no_issued_keys "revoking the key issued after a dropped connection"
    local plugin_lines
    plugin_lines="$(grep -F -- "$E2E_PLUGIN_LOG_MATCH" "$VDEV_LOG" || true)"
    assert_contains "$plugin_lines" "[WARN]  " "plugin lines at the default level (a warning expected)"
    assert_not_contains "$plugin_lines" "[DEBUG]" "plugin lines without PLUGIN_LOG_LEVEL"
    e2e_log "logs: at the default level the plugin's warning reached the server log, no debug line did"
    assert_inventory_matches_leases "end of the restart suite" "$MOUNT"
    assert_no_secret_in_log
}

# ------------------------------------------------------------------ main ----

# One suite in its own bash process (errexit and the EXIT trap apply fully).
run_suite() { # <server> <suite>
    SERVER="$1"
    E2E_NAME="e2e[$1 $2]"
    if [[ -n "$E2E_LOG_DIR" ]]; then
        mkdir -p "$E2E_LOG_DIR"
        state="$(mktemp -d "$E2E_LOG_DIR/e2e-$1-$2.XXXXXX")"
        E2E_KEEP_STATE=1
    else
        state="$(mktemp -d "${TMPDIR:-/tmp}/e2e-$1-$2.XXXXXX")"
    fi
    e2e_init_secrets "$state"
    E2E_LEASES_FILE="$state/leases"
    : >"$E2E_LEASES_FILE"
    trap 'rc=$?; vdev_stop; sim_stop; capture_stop; if ((rc == 0)) && [[ -z "${E2E_KEEP_STATE:-}" ]]; then rm -rf "$state"; else e2e_log "state kept in $state"; fi' EXIT
    "suite_$2" "$state"
    vdev_stop
    sim_stop
    capture_stop
    e2e_log "ok"
}

build() { e2e_build "$repo_root"; }

main() {
    if [[ "${1:-}" == --suite ]]; then
        run_suite "$2" "$3"
        return
    fi
    local servers=("$@") server suite started results=() failed=0
    [[ ${#servers[@]} -gt 0 ]] || servers=(vault bao)
    for server in "${servers[@]}"; do
        [[ "$server" == vault || "$server" == bao ]] || {
            echo "usage: scripts/e2e.sh [vault|bao]..." >&2
            exit 2
        }
    done
    build
    for server in "${servers[@]}"; do
        "$repo_root/scripts/servers.sh" "$server" >/dev/null
        for suite in main restart; do
            e2e_log "---- $server $suite"
            started=$SECONDS
            if bash "${BASH_SOURCE[0]}" --suite "$server" "$suite"; then
                results+=("$server $suite: ok ($((SECONDS - started)) s)")
            else
                results+=("$server $suite: FAILED ($((SECONDS - started)) s)")
                failed=$((failed + 1))
            fi
        done
    done
    printf 'e2e: %s\n' "${results[@]}"
    ((failed == 0))
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
