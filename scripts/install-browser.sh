#!/usr/bin/env bash
# Installs the headless browser the dashboard's browser test drives: Debian's `chromium` and
# `chromium-driver` (chromedriver). Nothing else downloads a browser; run this once per machine.
# Idempotent: does nothing when both are already installed.
set -euo pipefail

say() { printf '[install-browser] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  say "chromium and chromedriver are installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
  exit 0
fi

say "installing Debian packages chromium and chromium-driver"
as_root apt-get update
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
say "installed: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium (version unknown)')"
