#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/test_web_browser.py), once.
# Playwright drives it through executable_path; `playwright install` (a browser
# download) is never run.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
