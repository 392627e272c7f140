// Package e2e drives the release plugin through real servers with Vault's Go API client
// (github.com/hashicorp/vault/api): service accounts end to end, in Vault and in OpenBao.
//
// For each server (VAULT_BINARY, BAO_BINARY; either or both) TestServiceAccounts starts
// atlas-sim and one raft node (internal/vaultserver) with the server and the plugin at trace
// level, registers the plugin with its SHA-256 and version, and mounts it three times:
//
//   - sa-login-key-role: a service-account login (config client_id/client_secret, the
//     simulator's seeded ORG_OWNER account) with an API-key role;
//   - key-login-sa-role: an API-key login (public_key/private_key) with a service-account
//     role;
//   - sa-login-sa-roles: a service-account login with three service-account roles: an
//     organization account with an access list (127.0.0.1 and a CIDR block), an organization
//     account invited to the simulator's project with project_roles, and a project account.
//
// Every issued credential is checked in the simulator's inventory (roles, project roles,
// access list) and used: a service account gets a token (POST /api/oauth/token, client
// credentials) and reads its organization or project with it; an API key reads its
// organization over HTTP Digest. One lease per mount is renewed through sys/leases/renew,
// then every lease is revoked through sys/leases/revoke: no issued key or service account
// may remain in the simulator, their tokens and keys are refused, the seeded logins survive.
// Reading <mount>/config never returns private_key or client_secret, nor any secret value.
//
// A fourth mount (API-key login) has roles across three projects (project_ids): an API key and
// a service account, each holding its project roles in all three projects and in no other.
//
// Just-in-time access (user_access_test.go): Alice, an organization member with GROUP_READ_ONLY
// in the simulator's project, logs in with userpass; her identity entity's metadata holds her
// MongoDB Cloud username (email). A role with username_from_entity grants her GROUP_OWNER on her
// own request (the plugin reads her username through the server's SystemView EntityInfo) and
// refuses to name anyone else; an operator's role (allowed_users) grants an overlapping lease.
// Revoking hers leaves GROUP_OWNER (the other needs it); revoking both leaves exactly
// GROUP_READ_ONLY.
//
// Then rotate-root under each login (rotation_test.go), on mounts of their own (first, a
// config write with a rotation schedule must be left to the plugin: these servers have no
// rotation manager): afterwards
// the old credential is refused, a lease from before renews and revokes, and Atlas holds
// exactly one login credential of that kind. And the plugin killed mid-rotation
// (sigkill_test.go): two more mounts log in with fresh credentials made in the simulator for
// this (an Organization Owner key, an ORG_OWNER service account: the seeded logins belong to
// the other mounts) and each issues a lease; both rotate at once, the simulator holds each
// rotation at a call after its new credential exists (the API key's verification with the new
// key, before config stores it; the service account's delete of its old secret, after config
// stores the new secret), and the plugin process (the server's child running the plugin
// binary, found in /proc) gets SIGKILL. Requests relaunch it (the first ones may fail until
// the server has seen the process exit); the server runs the plugin with
// MONGODBATLAS_WAL_ROLLBACK_MIN_AGE=8s (and MONGODBATLAS_ISSUE_TIMEOUT=6s, which the engine
// requires below it), so Vault's next periodic rollback (once a minute) undoes both rotations:
// polled in the simulator's inventory (bounded, 150 s), exactly one login credential of each
// kind is left, the one config holds (the old key; the new secret). Each config then issues
// and revokes a lease, and the lease from before the kill revokes.
//
// Last, with the server stopped, its log (the plugin's lines included) is searched for every
// secret the test saw: the logins' private key and client secret, each issued private key
// and client secret, the Basic credentials built from client ids and secrets, the Digest
// responses and the bearer tokens the test fetched; and for credential shapes (Authorization
// headers, Digest parameters, mdb_sa_sk_ secrets) whatever their value. Any hit fails the
// test, reported without the secret. The scan proves it can fail: TestScanFindsPlantedSecrets
// plants secrets and shapes in a synthetic log, and the suite plants one real secret in a
// copy of the real log and wants exactly one more hit.
//
// Each server ends with one line on stdout:
//
//	e2e-sa: server=vault combos=3 issued=13 renewed=5 revoked=5 leaked=0 rotations=2 rotation_failures=0 killed_rotations=2 kill_failures=0 secrets=29 secret_hits=0 ...
//
// It also needs PLUGIN_BINARY (the release plugin), ATLAS_SIM_BINARY and PLUGIN_VERSION (the
// plugin's version, v + Cargo.toml's); E2E_SA_LOG_DIR keeps the server logs there
// (<dir>/<server>/node1.log) instead of in a temporary directory. scripts/e2e-sa.sh builds
// and locates everything and runs it. Without the binaries the test skips; the unit tests
// of the scan and the Digest client run anyway.
package e2e
