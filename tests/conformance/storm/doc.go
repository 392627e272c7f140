// Package storm is an end-to-end test of the engine through a real Vault server: a storm of
// `creds` reads whose clients hang up at random moments of the issuance (issue 11), on one
// node and on a three-node raft cluster, followed by a check of the engine's invariant:
// every key that exists in Atlas is held by a Vault lease, and none outlives its lease.
//
// It needs VAULT_BINARY (a vault server), PLUGIN_BINARY (the release plugin) and
// ATLAS_SIM_BINARY; scripts/storm.sh builds them and runs it. STORM_REQUESTS sets the number
// of reads per mode (default: 60 single node, 45 in the cluster). PLUGIN_VERSION, when set,
// registers the plugin under that version. STORM_LOG_DIR keeps the servers' logs there
// (<dir>/<mode>/nodeN.log) instead of in a temporary directory.
package storm
