#!/usr/bin/env bash
# Checks the release binary's hardening with readelf (binutils): position-independent
# (ELF type DYN, PIE flag), full RELRO (a GNU_RELRO segment and immediate binding: BIND_NOW
# or FLAGS_1 NOW) and a non-executable stack (GNU_STACK without E). Fails naming every
# missing property.
#   scripts/hardening.sh            builds (if needed) and checks the release plugin binary
#   scripts/hardening.sh <binary>   checks that binary
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v readelf >/dev/null 2>&1; then
  echo "hardening: FAILED: readelf not found (install binutils)" >&2
  exit 1
fi

if [[ $# -ge 1 ]]; then
  binary="$1"
else
  # The binary as shipped (a static PIE on Linux with glibc).
  source "$root/scripts/lib/release.sh"
  build_release_plugin "$root"
  binary="$(release_plugin_path "$root")"
fi
if [[ ! -f "$binary" ]]; then
  echo "hardening: FAILED: $binary does not exist" >&2
  exit 1
fi

header="$(readelf -hW "$binary")"
segments="$(readelf -lW "$binary")"
dynamic="$(readelf -dW "$binary")"
missing=()

# PIE: a DYN executable (a shared object would have no interpreter and no PIE flag).
if ! grep -Eq '^[[:space:]]*Type:[[:space:]]+DYN' <<<"$header"; then
  missing+=("PIE: ELF type is $(awk '/Type:/ { print $2; exit }' <<<"$header"), want DYN")
fi
if ! grep -Eq '\(FLAGS_1\).*\bPIE\b' <<<"$dynamic"; then
  missing+=("PIE: no PIE in the FLAGS_1 dynamic entry")
fi
# Full RELRO: the relocation-read-only segment plus binding everything at load time.
if ! grep -Eq '^[[:space:]]*GNU_RELRO[[:space:]]' <<<"$segments"; then
  missing+=("RELRO: no GNU_RELRO program header")
fi
if ! grep -Eq '\(FLAGS\).*\bBIND_NOW\b|\(FLAGS_1\).*\bNOW\b|\(BIND_NOW\)' <<<"$dynamic"; then
  missing+=("full RELRO: no BIND_NOW / FLAGS_1 NOW in the dynamic section (only partial RELRO)")
fi
# Non-executable stack: GNU_STACK present, flags without E.
stack="$(grep -E '^[[:space:]]*GNU_STACK[[:space:]]' <<<"$segments" || true)"
if [[ -z "$stack" ]]; then
  missing+=("NX stack: no GNU_STACK program header (the loader would make the stack executable)")
else
  # Flags are the field before the alignment (last field): e.g. "RW" or "RWE".
  stack_flags="$(awk '{ print $(NF-1) }' <<<"$stack")"
  if [[ "$stack_flags" == *E* ]]; then
    missing+=("NX stack: GNU_STACK flags are $stack_flags (executable)")
  fi
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "hardening: FAILED for $binary:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "hardening: ok: $binary is PIE, full RELRO (GNU_RELRO + BIND_NOW), non-executable stack"
