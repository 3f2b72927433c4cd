#!/usr/bin/env bash
# Runs covid-etl without Docker: starts the stack (scripts/stack.sh up), builds the services and
# runs all five in the foreground, their logs prefixed with their names. Ctrl-C or SIGTERM stops
# every service cleanly (each finishes the message in hand), then this script exits.
#
#   scripts/run.sh                 release build (first build takes a while: polars)
#   PROFILE=dev scripts/run.sh     debug build, quicker to build (the tests' build, shared with them)
#   scripts/run.sh --demo          the same, with the extractor polling a local fake GitHub that
#                                  serves the project's built-in demo history (a synthetic
#                                  epidemic, one day more every DEMO_EVERY, 5s by default) for env
#                                  "demo": runs, emails and live charts within a minute, no GitHub
#
# Services read their settings from the environment (README, "Configuration"); each gets the stack's
# variables for its own identity from .stack/env.<service>, unless the caller set them.
# The demo's own settings: DEMO_EVERY (5s), DEMO_API_ADDR (127.0.0.1:8900), DEMO_RAW_ADDR
# (127.0.0.1:8901), DEMO_ENV (demo); it sets the extractor's GITHUB_API_URL, GITHUB_RAW_URL and
# POLL_INTERVAL (2s), serves only DEMO_ENV, emails demo@localhost (EMAIL_TO_DEMO, unless set), and
# lets a restarted demo's first run replace what an earlier one left (MAX_REMOVED_SHARE=1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
PROFILE="${PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covid-etl/target}"
SERVICES=(extractor transformer loader notifier dashboard)

say() { printf '[run] %s\n' "$*"; }
die() { printf '[run] error: %s\n' "$*" >&2; exit 1; }

DEMO=0
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

if [ "$DEMO" = 1 ]; then
  DEMO_EVERY="${DEMO_EVERY:-5s}"
  DEMO_API_ADDR="${DEMO_API_ADDR:-127.0.0.1:8900}"
  DEMO_RAW_ADDR="${DEMO_RAW_ADDR:-127.0.0.1:8901}"
  DEMO_ENV="${DEMO_ENV:-demo}"
  for addr in "$DEMO_API_ADDR" "$DEMO_RAW_ADDR"; do
    if port_open "$addr"; then
      die "$addr is taken: set DEMO_API_ADDR / DEMO_RAW_ADDR to free host:port pairs"
    fi
  done
  # The demo's settings win over the caller's: the extractor must poll the fake, and no GitHub
  # token goes to it.
  export GITHUB_API_URL="http://$DEMO_API_ADDR" GITHUB_RAW_URL="http://$DEMO_RAW_ADDR"
  # The demo's history is the national series only.
  export POLL_INTERVAL=2s ETL_ENV="$DEMO_ENV" ETL_ENVS="$DEMO_ENV" MAX_REMOVED_SHARE=1 DATASETS=us
  unset GITHUB_TOKEN
  email_to="EMAIL_TO_$(printf '%s' "$DEMO_ENV" | tr '[:lower:]-' '[:upper:]_')"
  export "$email_to=${!email_to:-demo@localhost}"
fi

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
# DATABASE_URL. Call it only in a subshell (`… &` or `$(…)`): it changes that shell's environment,
# then becomes the service, so the pid of a `… &` is the service's own and SIGTERM reaches it.
with_service_env() {
  local svc=$1; shift
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
}

# One build of the whole workspace, never a list of packages (`-p`): each set of packages resolves
# its own features, and a second set rebuilds polars. The dev build is the one `scripts/test.sh`
# makes (dev-dependencies included), so it reuses the tests' build and they reuse it; a release
# build is only ever made here, of every binary (the services, `etl`, and `fake-github`).
say "building the workspace ($PROFILE profile)"
case "$PROFILE" in
  dev)
    (cd "$ROOT" && cargo build --locked --workspace --all-targets)
    BIN="$CARGO_TARGET_DIR/debug" ;;
  *)
    (cd "$ROOT" && cargo build --locked --profile "$PROFILE" --workspace --bins)
    BIN="$CARGO_TARGET_DIR/$PROFILE" ;;
esac

# Each service checks its settings first; its report (the effective configuration, or every
# problem) is shown only when something is wrong.
for svc in "${SERVICES[@]}"; do
  if ! report=$(with_service_env "$svc" "$BIN/$svc" --check-config 2>&1); then
    printf '%s\n' "$report" >&2
    die "$svc: its settings are not valid (above)"
  fi
done
say "settings checked: ${SERVICES[*]}"

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

if [ "$DEMO" = 1 ]; then
  "$BIN/fake-github" --demo --every "$DEMO_EVERY" --api-addr "$DEMO_API_ADDR" \
    --raw-addr "$DEMO_RAW_ADDR" > >(sed -u "s/^/[fake-github] /") 2>&1 &
  pids+=($!)
  say "started the demo's fake GitHub (pid $!) on $GITHUB_API_URL and $GITHUB_RAW_URL"
  for _ in $(seq 1 100); do port_open "$DEMO_API_ADDR" && break; sleep 0.1; done
fi

for svc in "${SERVICES[@]}"; do
  with_service_env "$svc" "$BIN/$svc" > >(sed -u "s/^/[$svc] /") 2>&1 &
  pids+=($!)
  say "started $svc (pid $!)"
done
DASHBOARD="http://${DASHBOARD_ADDR:-127.0.0.1:8080}"
if [ "$DEMO" = 1 ]; then
  say "demo: env $DEMO_ENV, one new upstream day every $DEMO_EVERY (now and then a correction); watch:"
  say "  live charts   $DASHBOARD"
  say "  emails        $STACK_DIR/mail/new (one file per run, to ${!email_to})"
  say "  runs          (set -a; . $STACK_DIR/env; set +a; $BIN/etl runs --env $DEMO_ENV)"
  say "  fake GitHub   curl -s $GITHUB_API_URL/_replay/status"
else
  say "dashboard on $DASHBOARD; try: (set -a; . $STACK_DIR/env; $BIN/etl smoke)"
fi
say "press Ctrl-C to stop"

# If any service exits on its own, stop the others too: a partial pipeline would only mislead.
wait -n "${pids[@]}" || true
say "a service exited; stopping the rest"
stop
