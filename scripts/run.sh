#!/usr/bin/env bash
# Runs covid-etl without Docker: starts the stack (scripts/stack.sh up), builds the services and
# runs all five in the foreground, their logs prefixed with their names. Ctrl-C or SIGTERM stops
# every service cleanly (each finishes the message in hand), then this script exits.
#
#   scripts/run.sh                 release build (first build takes a while: polars)
#   PROFILE=dev scripts/run.sh     debug build, quicker to build
#
# Services read their settings from the environment (README, "Configuration"); the stack's URLs are
# filled in from .stack/env unless already set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
PROFILE="${PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covid-etl/target}"
SERVICES=(extractor transformer loader notifier dashboard)

say() { printf '[run] %s\n' "$*"; }

"$ROOT/scripts/stack.sh" up

# The stack's URLs, without overriding anything the caller set.
while IFS='=' read -r name value; do
  [ -n "${!name:-}" ] || export "$name=$value"
done <"$STACK_DIR/env"

say "building the services ($PROFILE profile)"
(cd "$ROOT" && cargo build --locked --profile "$PROFILE" --bins \
  -p extractor -p transformer -p loader -p notifier -p dashboard -p etl-cli)
case "$PROFILE" in dev) BIN="$CARGO_TARGET_DIR/debug" ;; *) BIN="$CARGO_TARGET_DIR/$PROFILE" ;; esac

for svc in "${SERVICES[@]}"; do
  "$BIN/$svc" --check-config
done

pids=()
stop() {
  trap - INT TERM
  say "stopping the services"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  say "all services stopped"
  exit 0
}
trap stop INT TERM

for svc in "${SERVICES[@]}"; do
  database_url="$DATABASE_URL"
  # The dashboard only reads: give it the stack's SELECT-only role.
  [ "$svc" = dashboard ] && database_url="${DASHBOARD_DATABASE_URL:-$DATABASE_URL}"
  DATABASE_URL="$database_url" "$BIN/$svc" > >(sed -u "s/^/[$svc] /") 2>&1 &
  pids+=($!)
  say "started $svc (pid $!)"
done
say "dashboard on http://${DASHBOARD_ADDR:-127.0.0.1:8080}; try: $BIN/etl smoke"
say "press Ctrl-C to stop"

# If any service exits on its own, stop the others too: a partial pipeline would only mislead.
wait -n "${pids[@]}" || true
say "a service exited; stopping the rest"
stop
