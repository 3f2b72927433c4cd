#!/usr/bin/env bash
# Runs covid-etl without Docker: starts the stack (scripts/stack.sh up), builds the services and
# runs all five in the foreground, their logs prefixed with their names. Ctrl-C or SIGTERM stops
# every service cleanly (each finishes the message in hand), then this script exits.
#
#   scripts/run.sh                 release build (first build takes a while: polars)
#   PROFILE=dev scripts/run.sh     debug build, quicker to build
#
# Services read their settings from the environment (README, "Configuration"); each gets the stack's
# variables for its own identity from .stack/env.<service>, unless the caller set them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
PROFILE="${PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covid-etl/target}"
SERVICES=(extractor transformer loader notifier dashboard)

say() { printf '[run] %s\n' "$*"; }

"$ROOT/scripts/stack.sh" up

# The credentials each service may hold; a shell's others (the operator's .stack/env loaded, say)
# are not passed on to it.
credentials_for() {
  case "$1" in
    extractor) echo GITHUB_TOKEN ;;
    loader|dashboard) echo DATABASE_URL DATABASE_PASSWORD_FILE ;;
    notifier) echo SMTP_URL SMTP_USERNAME SMTP_PASSWORD ;;
  esac
}

# Runs a command with the stack's variables for one service. What the caller set wins, except the
# service's NATS identity: each service always connects as itself, even from a shell that has the
# operator's .stack/env loaded. The dashboard only reads: DASHBOARD_DATABASE_URL, when set, is its
# DATABASE_URL.
with_service_env() {
  local svc=$1; shift
  (
    if [ "$svc" = dashboard ] && [ -n "${DASHBOARD_DATABASE_URL:-}" ]; then
      export DATABASE_URL="$DASHBOARD_DATABASE_URL"
    fi
    local name own
    own=" $(credentials_for "$svc") "
    for name in GITHUB_TOKEN DATABASE_URL DASHBOARD_DATABASE_URL DATABASE_PASSWORD_FILE \
      SMTP_URL SMTP_USERNAME SMTP_PASSWORD; do
      case "$own" in *" $name "*) ;; *) unset "$name" ;; esac
    done
    while IFS='=' read -r name value; do
      case "$name" in
        NATS_NKEY_FILE|NATS_CREDS|NATS_USER|NATS_PASSWORD|NATS_TOKEN) export "$name=$value" ;;
        *) [ -n "${!name:-}" ] || export "$name=$value" ;;
      esac
    done <"$STACK_DIR/env.$svc"
    exec "$@"
  )
}

say "building the services ($PROFILE profile)"
(cd "$ROOT" && cargo build --locked --profile "$PROFILE" --bins \
  -p extractor -p transformer -p loader -p notifier -p dashboard -p etl-cli)
case "$PROFILE" in dev) BIN="$CARGO_TARGET_DIR/debug" ;; *) BIN="$CARGO_TARGET_DIR/$PROFILE" ;; esac

for svc in "${SERVICES[@]}"; do
  with_service_env "$svc" "$BIN/$svc" --check-config
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
  with_service_env "$svc" "$BIN/$svc" > >(sed -u "s/^/[$svc] /") 2>&1 &
  pids+=($!)
  say "started $svc (pid $!)"
done
say "dashboard on http://${DASHBOARD_ADDR:-127.0.0.1:8080}; try: (set -a; . $STACK_DIR/env; $BIN/etl smoke)"
say "press Ctrl-C to stop"

# If any service exits on its own, stop the others too: a partial pipeline would only mislead.
wait -n "${pids[@]}" || true
say "a service exited; stopping the rest"
stop
