#!/usr/bin/env bash
# Installs the promptfoo that tests/test_exports.py runs into .tools/promptfoo, once:
# `npm ci` from tools/promptfoo/package-lock.json (the versions pinned there), without
# optional dependencies (tools/promptfoo/package.json says why) and without install
# scripts (one of them downloads a Chromium). Only this script fetches; the test runs
# .tools/promptfoo/node_modules/.bin/promptfoo offline. Quiet unless it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
src=tools/promptfoo
dest=.tools/promptfoo
stamp=$dest/.installed  # a copy of the lockfile it was installed from

if [ -x "$dest/node_modules/.bin/promptfoo" ] && cmp -s "$src/package-lock.json" "$stamp"; then
  exit 0
fi
command -v npm >/dev/null || { echo "scripts/promptfoo.sh: npm not found (promptfoo needs Node 20.20+ and npm)" >&2; exit 1; }

rm -f "$stamp"
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci --prefix "$dest" --omit=optional --ignore-scripts --no-audit --no-fund >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
# It must start on this Node: a version that cannot fails here, not in the test.
version=$(PROMPTFOO_CONFIG_DIR="$dest/.promptfoo" PROMPTFOO_DISABLE_TELEMETRY=1 \
  PROMPTFOO_DISABLE_UPDATE=1 PROMPTFOO_DISABLE_RUNTIME_WARNINGS=1 \
  "$dest/node_modules/.bin/promptfoo" --version 2>"$log") || { cat "$log" >&2; exit 1; }
want=$(node -p "require('./$src/package.json').dependencies.promptfoo")
if [ "$version" != "$want" ]; then
  echo "scripts/promptfoo.sh: installed promptfoo says version '$version', expected $want" >&2
  cat "$log" >&2
  exit 1
fi
cp "$src/package-lock.json" "$stamp"
