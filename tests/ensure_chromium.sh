#!/usr/bin/env bash
# Finds Chromium for the browser tests (tests/e2e/test_survey_*), or installs Debian's package when it
# can (tests/apt_install.sh). Prints the path to use on stdout; on failure one line on stderr saying
# what to install, and exit 1. `make test` runs it first and exports CHROMIUM.
set -euo pipefail
found() { for c in "${CHROMIUM:-}" chromium chromium-browser; do
            [ -n "$c" ] && p=$(command -v "$c" 2>/dev/null) && [ -x "$p" ] && { echo "$p"; return 0; }; done
          return 1; }
found && exit 0
source "${0%/*}/apt_install.sh"
apt_install "the browser tests need Chromium" "set CHROMIUM=/path/to/chromium (or Google Chrome)" chromium || exit 1
found && exit 0
echo "make test: chromium was installed but is not on PATH; set CHROMIUM=/path/to/chromium" >&2
exit 1
