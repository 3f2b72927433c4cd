#!/usr/bin/env bash
# Supply-chain check: `cargo deny check licenses bans sources` against deny.toml (why each rule and
# exception exists is written there). cargo-deny is built once from crates.io into a cache outside
# the clone ($HOME/.cache/covid-etl/tools) and reused.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=0.20.2
TOOLS="${COVID_ETL_TOOLS:-$HOME/.cache/covid-etl/tools}"
DENY="$TOOLS/bin/cargo-deny"

say() { printf '[deny] %s\n' "$*"; }

if ! "$DENY" --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; then
  say "building cargo-deny $VERSION into $TOOLS (once)"
  # Its own throwaway build folder: not the workspace's target, whose cache it would only churn.
  env -u CARGO_TARGET_DIR cargo install --quiet --locked --root "$TOOLS" --version "$VERSION" cargo-deny
fi

cd "$ROOT"
"$DENY" --version
"$DENY" --locked check --show-stats --hide-inclusion-graph licenses bans sources
