#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, Rust unit and
# integration tests, the Go conformance harness (Vault's own plugin client
# code hosting our binaries), and the real-Vault/OpenBao end-to-end suites.
# Installs nothing system-wide but shellcheck, from Debian's packages when it
# is missing (scripts/shellcheck.sh): Go modules and server builds are cached
# under $HOME (see scripts/servers.sh). Each step is bounded.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() {
  local name="$1"; shift
  local started=$SECONDS
  echo "==> $name" >&2
  "$@"
  echo "<== $name ($((SECONDS - started)) s)" >&2
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
# `timeout` runs programs, not shell functions: the functions below are exported to a child bash.
export root
# The Go test code is one module (tests/go.mod): fetch its modules, then gofmt and go vet
# over every package of it.
go_checks() {
  cd "$root/tests" && go mod download || return
  local unformatted
  unformatted="$(gofmt -l .)" || return
  if [[ -n "$unformatted" ]]; then
    printf 'gofmt: not formatted (run gofmt -w in tests/):\n%s\n' "$unformatted" >&2
    return 1
  fi
  go vet ./...
}
export -f go_checks
step "Go test module: gofmt and go vet (tests/)" timeout 900 bash -c go_checks
# --workspace: the plugin and the Atlas simulator (tests/atlas-sim), with its own tests.
step "shellcheck over scripts/ and .ci/run (scripts/shellcheck.sh)" timeout 900 scripts/shellcheck.sh
step "cargo test" timeout 1800 cargo test --locked --workspace --all-targets
step "dependency audit (cargo-deny: RustSec advisories, bans, licenses, sources)" timeout 1800 scripts/audit.sh
openapi_check() {
  local journal="$root/target/openapi/client-journal.json"
  mkdir -p "$(dirname "$journal")"
  ATLAS_CLIENT_JOURNAL_OUT="$journal" cargo test --locked --test atlas_client every_call_works
  cargo build --locked -p atlas-sim
  (cd tests && ATLAS_SIM_JOURNAL="$journal" go test -count=1 ./openapi/)
}
export -f openapi_check
step "OpenAPI conformance of our client's requests and the simulator's answers" timeout 900 bash -c openapi_check
# Includes the first cold release build (the plugin, the example plugin, atlas-sim).
step "conformance harness (Go, Vault SDK client)" timeout 1800 scripts/conformance.sh
step "release binary hardening: PIE, full RELRO, non-executable stack (scripts/hardening.sh)" timeout 900 scripts/hardening.sh
step "release archives for linux amd64 and arm64: reproducible, hardened, audited, arm64 under emulation (scripts/release.sh --verify --quick)" \
  timeout 2400 scripts/release.sh --verify --quick
step "randomized soak, quick mode (issue/renew/revoke/roles/config/rollback under random Atlas faults)" timeout 900 scripts/soak.sh --quick
# A cold build of Vault takes several minutes on 2 cores; after that the
# servers come from the cache and the suites below are bounded on their own.
step "real servers: Vault and OpenBao (built or cached)" timeout 3600 \
  bash -c 'scripts/servers.sh vault >/dev/null && scripts/servers.sh bao >/dev/null'
step "demo (README's main command)" timeout 1800 scripts/demo.sh
step "end-to-end suites in Vault and OpenBao (scripts/e2e.sh)" timeout 1200 scripts/e2e.sh
step "service accounts end to end in Vault and OpenBao, with a secret scan of the trace-level logs (scripts/e2e-sa.sh)" timeout 600 scripts/e2e-sa.sh
step "faults with a real Vault (SIGKILL mid-issuance, Atlas outage) and secret hygiene of all logs (scripts/faults-vault.sh)" timeout 900 scripts/faults-vault.sh
step "cancellation storm through a real Vault, single node and 3-node raft cluster (scripts/storm.sh)" timeout 900 scripts/storm.sh
step "3-node raft cluster under failover in Vault and OpenBao; leaks told from handover losses by the plugin's record (scripts/cluster.sh)" \
  timeout 1500 scripts/cluster.sh
step "tidy after a raft snapshot restore in Vault and OpenBao: exactly the orphans deleted, nothing else touched (scripts/tidy-restore.sh)" \
  timeout 1200 scripts/tidy-restore.sh
step "drop-in migration from Vault's builtin engine (scripts/migration.sh)" timeout 600 scripts/migration.sh
step "fuzzing request decoding, 30 s per target (scripts/fuzz.sh; skipped without a nightly toolchain)" \
  timeout 1500 env FUZZ_SECONDS=30 scripts/fuzz.sh
step "benchmark against the official plugin, quick mode (kept working, not a timed test)" timeout 1500 scripts/bench.sh --quick
echo "all tests passed" >&2
