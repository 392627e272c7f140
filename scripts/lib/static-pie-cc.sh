#!/usr/bin/env bash
# The linker for aarch64-unknown-linux-gnu release builds: a static PIE, as on x86-64.
# Rust's aarch64 glibc target does not declare static-PIE support (x86-64's does), so with
# +crt-static rustc asks the C compiler for a static non-PIE executable (`-static -no-pie`),
# which has no ASLR for its own code and no dynamic section to carry full RELRO. Its objects
# are position-independent either way and glibc supports static PIE on aarch64 (rcrt1.o), so
# this turns that request into `-static-pie`. CC_FOR_STATIC_PIE names the real compiler.
set -euo pipefail
args=()
for arg in "$@"; do
  case "$arg" in
    -no-pie) ;;
    -static) args+=(-static-pie) ;;
    *) args+=("$arg") ;;
  esac
done
exec "${CC_FOR_STATIC_PIE:?the C compiler to link with}" "${args[@]}"
