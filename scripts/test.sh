#!/usr/bin/env bash
# The test command: starts the real infrastructure the tests need (NATS with JetStream,
# PostgreSQL, an SMTP server, Chromium for the dashboard test), then runs every test of the
# workspace against it. Safe to run while `scripts/run.sh` is running: tests use envs of their own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covid-etl/target}"

"$ROOT/scripts/stack.sh" up
"$ROOT/scripts/install-browser.sh"

set -a
# shellcheck disable=SC1091
. "$STACK_DIR/env"
set +a

cd "$ROOT"
# The operability tests run the services as separate processes: build the binaries first.
echo "[test] cargo build --bins"
cargo build --workspace --bins --locked
export ETL_BIN_DIR="$CARGO_TARGET_DIR/debug"

echo "[test] cargo test --workspace (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --locked "$@"
