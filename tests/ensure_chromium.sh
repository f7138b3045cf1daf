#!/usr/bin/env bash
# Finds Chromium for the browser tests (tests/e2e/test_survey_*), or installs Debian's package when it
# can (root or password-less sudo, apt-get). Prints the path to use on stdout; on failure one line on
# stderr saying what to install, and exit 1. `make test` runs it first and exports CHROMIUM.
set -euo pipefail
found() { for c in "${CHROMIUM:-}" chromium chromium-browser; do
            [ -n "$c" ] && p=$(command -v "$c" 2>/dev/null) && [ -x "$p" ] && { echo "$p"; return 0; }; done
          return 1; }
found && exit 0
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
  else echo "make test: the browser tests need Chromium; install it (sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2; exit 1; fi
  echo "make test: installing Debian's chromium for the browser tests (apt-get, once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq chromium; } >/tmp/ensure_chromium.$$.log 2>&1; then
    echo "make test: apt-get could not install chromium (log: /tmp/ensure_chromium.$$.log); install Chromium or set CHROMIUM=/path/to/chromium" >&2
    exit 1
  fi
  rm -f /tmp/ensure_chromium.$$.log
  found && exit 0
fi
echo "make test: the browser tests need Chromium, and this machine has no apt-get to install it; install Chromium (or Google Chrome) and set CHROMIUM=/path/to/it" >&2
exit 1
