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
# One build of everything, with the features the tests resolve (dev-dependencies included), so
# that `cargo test` below compiles nothing again, and the services' binaries the operability tests
# run as processes are the very ones built here. (`--bins` alone resolves features without the
# dev-dependencies, and `cargo test` then compiled polars and much else a second time.)
echo "[test] cargo build --workspace --all-targets (target dir $CARGO_TARGET_DIR)"
cargo build --workspace --all-targets --locked
export ETL_BIN_DIR="$CARGO_TARGET_DIR/debug"

echo "[test] cargo test --workspace"
cargo test --workspace --locked "$@"
