#!/usr/bin/env bash
# Drop-in migration test: a Vault mount of the BUILTIN `mongodbatlas` secrets
# engine (the official Go plugin v0.16.0 compiled into Vault) is switched to
# our binary in place, then back, without losing config, roles or leases.
#
# The builtin engine only talks to https://cloud.mongodb.com, so the Atlas
# simulator runs with --tls --proxy and Vault gets HTTPS_PROXY (the
# simulator's CONNECT proxy, which terminates cloud.mongodb.com locally) and
# SSL_CERT_FILE (the simulator's CA). Our plugin inherits both from the
# server and must honour them too, since the config has no base_url.
#
#   1. builtin: secrets enable mongodbatlas; config (public/private key only);
#      roles in org, project and org + project mode with access lists; leases.
#   2. plugin register -version=v<ours> secret mongodbatlas; secrets tune
#      -plugin-version=v<ours>; plugin reload -plugin=mongodbatlas;
#      secrets list -detailed shows our version and sha256.
#   3. our plugin: reads the builtin's config and roles, issues keys through
#      the proxy, renews and revokes the builtin's leases.
#   4. Vault restarted: the mount still runs our version; reloading just
#      this mount (write sys/plugins/reload/backend mounts=...) works too.
#   5. rollback: secrets tune -plugin-version=<builtin version>, reload; the
#      builtin revokes the leases our plugin issued; no key is left in Atlas.
#
# Usage: scripts/migration.sh [vault]   (OpenBao has no builtin mongodbatlas)
# Builds target/release/{vault-plugin-secrets-mongodbatlas,atlas-sim} unless
# E2E_SKIP_BUILD=1. Every wait is bounded; Vault and the simulator are
# stopped on exit.
set -euo pipefail
shopt -s inherit_errexit

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly NAME="mongodbatlas"   # the builtin's catalog name, which ours takes over
readonly MOUNT="mongodbatlas"
E2E_NAME="migration"


# shellcheck source=scripts/lib/vault-dev.sh
source "$repo_root/scripts/lib/vault-dev.sh"
# shellcheck source=scripts/lib/atlas-sim.sh
source "$repo_root/scripts/lib/atlas-sim.sh"
# shellcheck source=scripts/lib/e2e-common.sh
source "$repo_root/scripts/lib/e2e-common.sh"

VERSION="v$(release_version "$repo_root")"
e2e_release_binaries "$repo_root"
PLUGIN_FILE="vault-plugin-secrets-mongodbatlas-$VERSION"
# go-plugin names the plugin's own log lines "<...>.<catalog name>.<file name>: ".
E2E_PLUGIN_LOG_MATCH=".$NAME.$PLUGIN_FILE:"
PLUGIN_SHA256=""

mount_field() { # <field of `secrets list -detailed` for the mount>
    cli secrets list -detailed -format=json | json_get "d['$MOUNT/']['$1']"
}

issue() { # <role>; prints the creds response, remembers the private key
    local response
    response="$(cli read -format=json "$MOUNT/creds/$1")"
    remember_secret "$(json_get 'd["data"]["private_key"]' <<<"$response")"
    assert_key_live "$(public_key_of "$response")" "creds/$1 just issued"
    printf '%s\n' "$response"
}

public_key_of() { json_get 'd["data"]["public_key"]' <<<"$1"; }
lease_of() { json_get 'd["lease_id"]' <<<"$1"; }

# Journal entries since <seq> as "route public_key" lines (Atlas API calls only).
journal_routes_since() { # <seq>
    sim_admin_get "/journal?since=$1" | json_get '[e["route"] for e in d]'
}

journal_last_seq() {
    sim_admin_get /journal | json_get 'max([e["seq"] for e in d] or [0])'
}

# Role data as read through the current engine, minus nothing: both engines
# must answer the same for the same stored role.
role_data() { # <role>
    cli read -format=json "$MOUNT/roles/$1" | json_get 'd["data"]'
}

phase_builtin() {
    local builtin_version
    cli secrets enable -path="$MOUNT" "$NAME" >&2
    builtin_version="$(mount_field running_plugin_version)"
    [[ "$builtin_version" == *+builtin ]] || fail "mount $MOUNT/ does not run the builtin engine (running_plugin_version '$builtin_version')"
    BUILTIN_VERSION="$builtin_version"
    e2e_log "builtin engine $BUILTIN_VERSION mounted at $MOUNT/"

    # The builtin knows only public_key and private_key (cloud.mongodb.com).
    cli write "$MOUNT/config" public_key="$SIM_PUBLIC_KEY" private_key="$SIM_PRIVATE_KEY" >&2
    remember_secret "$SIM_PRIVATE_KEY"
    cli write "$MOUNT/roles/org-role" organization_id="$SIM_ORG_ID" roles=ORG_MEMBER \
        ip_addresses=192.0.2.10 ttl=1h max_ttl=24h >&2
    cli write "$MOUNT/roles/project-role" project_id="$SIM_PROJECT_ID" roles=GROUP_READ_ONLY \
        cidr_blocks=203.0.113.0/24 >&2
    cli write "$MOUNT/roles/org-project-role" organization_id="$SIM_ORG_ID" \
        project_id="$SIM_PROJECT_ID" roles=ORG_READ_ONLY \
        project_roles=GROUP_DATA_ACCESS_READ_ONLY ip_addresses=192.0.2.20 >&2
    local role
    for role in org-role project-role org-project-role; do
        ROLES_BEFORE["$role"]="$(role_data "$role")"
    done

    local seq
    seq="$(journal_last_seq)"
    OLD_ORG="$(issue org-role)"
    OLD_PROJECT="$(issue project-role)"
    OLD_BOTH="$(issue org-project-role)"
    local routes
    routes="$(journal_routes_since "$seq")"
    assert_contains "$routes" "/api/atlas/v1.0/" "the builtin's Atlas calls (through the proxy)"
    e2e_log "builtin issued 3 keys through the proxy as cloud.mongodb.com (Atlas API v1.0 routes)"
}

phase_switch() {
    cp "$plugin_build" "$VDEV_PLUGIN_DIR/$PLUGIN_FILE"
    PLUGIN_SHA256="$(sha256sum "$VDEV_PLUGIN_DIR/$PLUGIN_FILE" | cut -d' ' -f1)"
    cli plugin register -sha256="$PLUGIN_SHA256" -version="$VERSION" \
        -command="$PLUGIN_FILE" secret "$NAME" >&2
    cli secrets tune -plugin-version="$VERSION" "$MOUNT/" >&2
    # Tuned but not reloaded: the builtin still serves the mount.
    assert_eq "$(mount_field plugin_version)" "$VERSION" "configured plugin_version after tune"
    assert_eq "$(mount_field running_plugin_version)" "$BUILTIN_VERSION" "running version after tune, before reload"
    cli plugin reload -plugin="$NAME" >&2
    assert_eq "$(mount_field running_plugin_version)" "$VERSION" "running_plugin_version after reload"
    assert_eq "$(mount_field running_sha256)" "$PLUGIN_SHA256" "running_sha256 after reload"
    e2e_log "mount $MOUNT/ switched from $BUILTIN_VERSION to $VERSION (sha256 ${PLUGIN_SHA256:0:12}…)"

    # With a versioned `mongodbatlas` in the catalog, a new mount that names
    # no version gets the newest registered version, not the builtin.
    cli secrets enable -path=mongodbatlas-new "$NAME" >&2
    assert_eq "$(cli secrets list -detailed -format=json | json_get "d['mongodbatlas-new/']['running_plugin_version']")" \
        "$VERSION" "running version of a mount enabled after the registration"
    cli secrets disable mongodbatlas-new/ >&2
}

phase_ours() {
    local config
    config="$(cli read -format=json "$MOUNT/config")"
    assert_eq "$(json_get 'd["data"]["public_key"]' <<<"$config")" "$SIM_PUBLIC_KEY" "config public_key read by our plugin"
    assert_eq "$(json_get 'd["data"]["base_url"]' <<<"$config")" "https://cloud.mongodb.com" "config base_url (default)"
    assert_eq "$(json_get '"private_key" in d["data"]' <<<"$config")" false "config read hides private_key"
    local role
    for role in org-role project-role org-project-role; do
        assert_eq "$(role_data "$role")" "${ROLES_BEFORE[$role]}" "role $role as our plugin reads it vs the builtin"
    done
    assert_eq "$(cli list -format=json "$MOUNT/roles" | json_get 'sorted(d)')" \
        $'org-project-role\norg-role\nproject-role' "role list read by our plugin"
    e2e_log "our plugin reads the builtin's config and roles identically"

    # Our plugin reaches "https://cloud.mongodb.com" only through HTTPS_PROXY,
    # trusting the simulator's CA only through SSL_CERT_FILE.
    local pids environ seq routes
    seq="$(journal_last_seq)"
    NEW_ORG="$(issue org-role)"
    NEW_PROJECT="$(issue project-role)"
    NEW_BOTH="$(issue org-project-role)"
    routes="$(journal_routes_since "$seq")"
    assert_contains "$routes" "POST /api/atlas/v2/orgs/{orgId}/apiKeys" "our plugin's Atlas calls (through the proxy)"
    assert_not_contains "$routes" "/api/atlas/v1.0/" "Atlas calls after the switch"
    pids="$(plugin_pids "$VDEV_PLUGIN_DIR/$PLUGIN_FILE")"
    assert_eq "$(wc -w <<<"$pids")" 1 "our plugin processes"
    environ="$(tr '\0' '\n' <"/proc/$pids/environ")"
    assert_contains "$environ" "HTTPS_PROXY=$SIM_PROXY_URL" "our plugin's environment"
    assert_contains "$environ" "SSL_CERT_FILE=$SIM_CA_PATH" "our plugin's environment"
    e2e_log "our plugin (pid $pids) issued 3 keys via HTTPS_PROXY + SSL_CERT_FILE (Atlas API v2 routes)"

    # The builtin's leases renew and revoke through our plugin.
    local old renewed
    renewed="$(cli lease renew -format=json "$(lease_of "$OLD_ORG")")"
    assert_eq "$(json_get 'd["lease_duration"]' <<<"$renewed")" 3600 "renewal of the builtin's org lease (role ttl 1h)"
    for old in "$OLD_PROJECT" "$OLD_BOTH"; do
        renewed="$(cli lease renew -format=json -increment=2h "$(lease_of "$old")")"
        assert_eq "$(json_get 'd["lease_duration"]' <<<"$renewed")" 7200 "renewal of $(lease_of "$old")"
    done
    for old in "$OLD_ORG" "$OLD_PROJECT" "$OLD_BOTH"; do
        cli lease revoke "$(lease_of "$old")" >&2
        wait_key_gone "$(public_key_of "$old")" "revoking the builtin's lease $(lease_of "$old") through our plugin"
    done
    e2e_log "the builtin's leases (org, project, org+project) renewed and revoked by our plugin"
}

phase_restart() {
    vdev_restart
    assert_eq "$(mount_field running_plugin_version)" "$VERSION" "running_plugin_version after a Vault restart"
    local lookup
    lookup="$(cli lease lookup -format=json "$(lease_of "$NEW_ORG")")"
    assert_between "$(json_get 'd["data"]["ttl"]' <<<"$lookup")" 3000 3600 "ttl of our lease after restart"
    AFTER_RESTART="$(issue project-role)"
    e2e_log "after a Vault restart the mount runs $VERSION and issues keys"

    # Reloading one mount rather than every mount of the plugin. Vault
    # 1.21.1's `plugin reload -mounts=...` fails in the root namespace (it
    # sends the request to sys/plugins/reload/unknown), so write the endpoint.
    local before after deadline
    before="$(plugin_pids "$VDEV_PLUGIN_DIR/$PLUGIN_FILE")"
    cli write sys/plugins/reload/backend mounts="$MOUNT/" >&2
    deadline=$((SECONDS + 30))
    while :; do
        after="$(plugin_pids "$VDEV_PLUGIN_DIR/$PLUGIN_FILE")"
        [[ -n "$after" && "$after" != "$before" ]] && break
        ((SECONDS < deadline)) || fail "no new plugin process 30s after reloading mount $MOUNT/ (before: $before, now: ${after:-none})"
        sleep 0.2
    done
    assert_eq "$(mount_field running_plugin_version)" "$VERSION" "running_plugin_version after reloading the mount"
    e2e_log "reloading mount $MOUNT/ replaced plugin process $before by $after"
}

phase_rollback() {
    cli secrets tune -plugin-version="$BUILTIN_VERSION" "$MOUNT/" >&2
    cli plugin reload -plugin="$NAME" >&2
    assert_eq "$(mount_field running_plugin_version)" "$BUILTIN_VERSION" "running version after rolling back"
    # The builtin revokes what our plugin issued.
    local lease seq routes
    seq="$(journal_last_seq)"
    for lease in "$NEW_ORG" "$NEW_PROJECT" "$NEW_BOTH" "$AFTER_RESTART"; do
        cli lease revoke "$(lease_of "$lease")" >&2
        wait_key_gone "$(public_key_of "$lease")" "the builtin revoking our lease $(lease_of "$lease")"
    done
    routes="$(journal_routes_since "$seq")"
    assert_contains "$routes" "DELETE /api/atlas/v1.0/" "Atlas calls after rolling back (the builtin's)"
    assert_not_contains "$routes" "/api/atlas/v2/" "Atlas calls after rolling back"
    local back
    back="$(issue org-project-role)"
    cli lease revoke -prefix "$MOUNT/creds/" >&2
    wait_key_gone "$(public_key_of "$back")" "lease revoke -prefix under the builtin"
    wait_no_issued_keys "the migration round trip"
    e2e_log "rolled back to $BUILTIN_VERSION: our leases revoked by the builtin; the simulator holds no issued key"
}

run_migration() {
    state="$(mktemp -d "${TMPDIR:-/tmp}/migration.XXXXXX")"
    e2e_init_secrets "$state"
    trap 'rc=$?; vdev_stop; sim_stop; if ((rc == 0)) && [[ -z "${E2E_KEEP_STATE:-}" ]]; then rm -rf "$state"; else e2e_log "state kept in $state"; fi' EXIT

    sim_start "$sim_binary" "$state/sim" --tls --ca-out "$state/sim/ca.pem" --proxy
    [[ -n "$SIM_PROXY_URL" && -s "$SIM_CA_PATH" ]] || fail "the simulator reported no proxy_url or ca_path"
    # NO_PROXY keeps loopback traffic direct for programs that do not exempt
    # it on their own (Go already does).
    vdev_start "$("$repo_root/scripts/servers.sh" vault)" "$state" --persistent \
        --env "HTTPS_PROXY=$SIM_PROXY_URL" --env "SSL_CERT_FILE=$SIM_CA_PATH" \
        --env "NO_PROXY=127.0.0.1,localhost" --env VAULT_LOG_LEVEL=debug
    e2e_log "$("$VDEV_CLI" version)"
    # Go's HTTP client never proxies loopback: a CLI with the proxy in its
    # environment still reaches Vault at 127.0.0.1.
    HTTPS_PROXY="$SIM_PROXY_URL" HTTP_PROXY="$SIM_PROXY_URL" NO_PROXY="" cli status >/dev/null

    declare -gA ROLES_BEFORE=()
    phase_builtin
    phase_switch
    phase_ours
    phase_restart
    phase_rollback
    assert_no_secret_in_log
    vdev_stop
    sim_stop
    e2e_log "ok"
}

build() { e2e_build "$repo_root"; }

main() {
    if [[ "${1:-}" == --run ]]; then
        run_migration
        return
    fi
    local server
    for server in "$@"; do
        [[ "$server" == vault ]] || {
            echo "usage: scripts/migration.sh [vault]   (OpenBao has no builtin mongodbatlas engine to migrate from)" >&2
            exit 2
        }
    done
    build
    "$repo_root/scripts/servers.sh" vault >/dev/null
    local started=$SECONDS rc=0
    bash "${BASH_SOURCE[0]}" --run || rc=$?
    if ((rc == 0)); then
        echo "migration: vault: ok ($((SECONDS - started)) s)"
    else
        echo "migration: vault: FAILED ($((SECONDS - started)) s)"
    fi
    return "$rc"
}

main "$@"
