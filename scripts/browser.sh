#!/usr/bin/env bash
# Installs, once, the Debian packages two tests drive: chromium for the browser tests
# (tests/test_web_browser.py; Playwright drives it through executable_path, and
# `playwright install`, a browser download, is never run) and tmux for the terminal
# test of `prefer` (tests/test_prefer_tmux.py).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
