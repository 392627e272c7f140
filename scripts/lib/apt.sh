# shellcheck shell=bash
# Installs Debian packages a script needs (apt-get, with `sudo -n` when not root: fail at
# once rather than wait for a password no one will type). A fresh image may have no package
# lists yet: the install is retried once after an update. Each apt-get call is bounded.

# apt_install <caller name> <package...>
apt_install() {
  local caller="$1"; shift
  if ! command -v apt-get >/dev/null; then
    echo "$caller: missing $*, and there is no apt-get to install it" >&2
    return 1
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    sudo=(sudo -n)
  fi
  echo "$caller: installing $* from Debian's packages" >&2
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  if ! timeout 600 "${apt[@]}" install -y --no-install-recommends "$@"; then
    timeout 300 "${apt[@]}" update
    timeout 600 "${apt[@]}" install -y --no-install-recommends "$@"
  fi
}
