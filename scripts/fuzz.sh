#!/usr/bin/env bash
# Fuzzes request decoding (tests/fuzz): each cargo-fuzz target runs for a bounded time.
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_TARGETS     space-separated targets (default: every target of tests/fuzz)
#   FUZZ_SANITIZER   none (default: panics are what safe Rust can hit, and it runs ~2x
#                    faster) or address
# Needs the nightly toolchain (skipped with a message and exit 0 when absent); installs
# cargo-fuzz from crates.io if missing. A crash leaves its input in
# tests/fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/tests/fuzz"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: the nightly Rust toolchain is not installed (rustup toolchain install nightly)" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

cd "$root"
fuzz() { cargo +nightly fuzz "$1" --fuzz-dir "$fuzz_dir" "${@:2}"; }
targets="${FUZZ_TARGETS:-$(fuzz list)}"
# One build for every target, outside the timed runs.
# Debug assertions on: integer overflow panics, as it does in the release profile.
fuzz build --sanitizer "$sanitizer" --debug-assertions >&2

status=0
for target in $targets; do
  corpus_dir="$fuzz_dir/corpus/$target"
  mkdir -p "$corpus_dir"
  log="$(mktemp)"
  echo "fuzz: $target for ${seconds}s (sanitizer $sanitizer)" >&2
  if fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" "$corpus_dir" -- \
      -max_total_time="$seconds" -dict="$fuzz_dir/dict/request.dict" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -n 60 "$log" >&2
  fi
  # libFuzzer's final stats, for the summary line.
  runs="$(awk '/stat::number_of_executed_units:/ { s += $2 } END { print s + 0 }' "$log")"
  rate="$(awk '/stat::average_exec_per_sec:/ { s += $2 } END { print s + 0 }' "$log")"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | awk '{ print $2 }')"
  corpus="$(find "$corpus_dir" -type f | wc -l)"
  crashes="$(find "$fuzz_dir/artifacts/$target" -type f 2>/dev/null | wc -l)"
  echo "fuzz: target=$target result=$result seconds=$seconds execs=$runs execs_per_sec=$rate coverage=${cov:-0} corpus=$corpus crashes=$crashes"
  rm -f "$log"
done
exit "$status"
