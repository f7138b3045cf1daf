# Sourced by tests/ensure_chromium.sh and tests/ensure_slurm.sh: `apt_install NEED HINT PACKAGE...` installs Debian
# packages for make test when it can (root or password-less sudo, apt-get). On failure one line on stderr saying
# what to install (NEED: what the tests need; HINT: the other way, e.g. an environment variable), and return 1.
apt_install() {
  local need=$1 hint=$2; shift 2
  local sudo=()
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "make test: $need, and this machine has no apt-get to install it; install $* by hand or $hint" >&2; return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n)
    else echo "make test: $need; install it (sudo apt-get install $*) or $hint" >&2; return 1; fi
  fi
  echo "make test: installing Debian's $* for the tests (apt-get, once)" >&2
  local log=/tmp/apt_install.$$.log
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "$@"; } >"$log" 2>&1; then
    echo "make test: apt-get could not install $* (log: $log); $need: install them by hand or $hint" >&2
    return 1
  fi
  rm -f "$log"
}
