#!/usr/bin/env bash
# Runs shellcheck over every shell script under scripts/ (files named *.sh or
# with a sh/bash shebang) and .ci/run, following `source`d files (-x; the
# `# shellcheck source=` directives are relative to the repository root).
# If shellcheck is missing, installs it from Debian's packages (apt-get, with
# sudo when not root), each apt-get call bounded.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

install_shellcheck() {
  if ! command -v apt-get >/dev/null; then
    echo "shellcheck.sh: shellcheck is not installed and there is no apt-get to install it" >&2
    return 1
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    # -n: fail at once rather than wait for a password no one will type.
    sudo=(sudo -n)
  fi
  echo "shellcheck.sh: installing shellcheck from Debian's packages" >&2
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  # A fresh image may have no package lists yet: update, then retry once.
  if ! timeout 300 "${apt[@]}" install -y --no-install-recommends shellcheck; then
    timeout 300 "${apt[@]}" update
    timeout 300 "${apt[@]}" install -y --no-install-recommends shellcheck
  fi
}

if ! command -v shellcheck >/dev/null; then
  install_shellcheck
fi

scripts=(.ci/run)
while IFS= read -r -d '' file; do
  if [[ "$file" == *.sh ]] || head -n 1 "$file" | grep -Eq '^#!.*[/ ](ba)?sh([[:space:]]|$)'; then
    scripts+=("$file")
  fi
done < <(find scripts -type f -print0 | sort -z)

echo "shellcheck.sh: $(shellcheck --version | awk '/^version:/ { print $2 }'), ${#scripts[@]} scripts" >&2
shellcheck -x "${scripts[@]}"
