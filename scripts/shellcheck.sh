#!/usr/bin/env bash
# Runs shellcheck over every shell script under scripts/ (files named *.sh or
# with a sh/bash shebang) and .ci/run, following `source`d files (-x; the
# `# shellcheck source=` directives are relative to the repository root).
# If shellcheck is missing, installs it from Debian's packages (scripts/lib/apt.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v shellcheck >/dev/null; then
  # shellcheck source=scripts/lib/apt.sh
  source "$root/scripts/lib/apt.sh"
  apt_install shellcheck.sh shellcheck
fi

scripts=(.ci/run)
while IFS= read -r -d '' file; do
  if [[ "$file" == *.sh ]] || head -n 1 "$file" | grep -Eq '^#!.*[/ ](ba)?sh([[:space:]]|$)'; then
    scripts+=("$file")
  fi
done < <(find scripts -type f -print0 | sort -z)

echo "shellcheck.sh: $(shellcheck --version | awk '/^version:/ { print $2 }'), ${#scripts[@]} scripts" >&2
shellcheck -x "${scripts[@]}"
