#!/usr/bin/env bash
# Checks the demo's promise: `scripts/run.sh --demo` yields at least three successful runs and
# their emails within two minutes of the services starting. Runs the demo in the background,
# counts the runs (`etl runs --env demo`) and the emails (STACK_DIR/mail/new) made since the
# services started, then stops the demo (SIGTERM: every service stops cleanly).
#
#   scripts/demo-check.sh                    against the stack in .stack/, debug build
#   STACK_DIR=/tmp/s NATS_PORT=14222 PG_PORT=15432 SMTP_PORT=11025 DASHBOARD_ADDR=127.0.0.1:18080 \
#     METRICS_ADDR=127.0.0.1:0 scripts/demo-check.sh      a stack of its own beside another
#
# RUNS (3) and WITHIN (seconds, 120) change the bar; BUILD_WITHIN (seconds, 3600) bounds the
# stack's start and the build. Exit 0 only when the bar is met.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
export PROFILE="${PROFILE:-dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covid-etl/target}"
RUNS="${RUNS:-3}"
WITHIN="${WITHIN:-120}"
BUILD_WITHIN="${BUILD_WITHIN:-3600}"
DEMO_ENV="${DEMO_ENV:-demo}"
case "$PROFILE" in dev) BIN="$CARGO_TARGET_DIR/debug" ;; *) BIN="$CARGO_TARGET_DIR/$PROFILE" ;; esac

say() { printf '[demo-check] %s\n' "$*"; }

log="$(mktemp)"
say "starting scripts/run.sh --demo (log: $log)"
"$ROOT/scripts/run.sh" --demo >"$log" 2>&1 &
demo=$!
stop_demo() {
  if kill -0 "$demo" 2>/dev/null; then
    say "stopping the demo"
    kill -TERM "$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
  fi
}
trap stop_demo EXIT

# The services are started once run.sh says so (after the stack and the build).
deadline=$((SECONDS + BUILD_WITHIN))
until grep -q '^\[run\] press Ctrl-C to stop' "$log"; do
  if ! kill -0 "$demo" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 40 "$log" >&2
    say "FAILED: the demo did not start"
    exit 1
  fi
  sleep 1
done
started=$SECONDS
marker="$(mktemp)"   # emails newer than this file came after the services started
mkdir -p "$STACK_DIR/mail/new"

# Successful runs that finished since the services started (`etl runs --json`, whose times are
# RFC 3339 in UTC, so they compare as text).
count_runs() {
  (set -a; . "$STACK_DIR/env"; set +a; "$BIN/etl" runs --env "$DEMO_ENV" --json 2>/dev/null) |
    python3 -c 'import json, sys
runs = json.load(sys.stdin)["runs"]
print(sum(1 for r in runs if r["status"] == "succeeded" and (r["finished_at"] or "") >= sys.argv[1]))' \
      "$start_utc" 2>/dev/null || echo 0
}
count_mails() {
  find "$STACK_DIR/mail/new" -type f -newer "$marker" -print0 |
    xargs -0 -r grep -l "^Subject: \[$DEMO_ENV\]" | wc -l
}
start_utc="$(date -u '+%Y-%m-%dT%H:%M:%S')"

runs=0 mails=0
while [ $((SECONDS - started)) -le "$WITHIN" ]; do
  runs="$(count_runs)"; mails="$(count_mails)"
  if [ "$runs" -ge "$RUNS" ] && [ "$mails" -ge "$RUNS" ]; then
    say "OK: $runs successful runs and $mails emails $((SECONDS - started)) s after the services started"
    exit 0
  fi
  if ! kill -0 "$demo" 2>/dev/null; then break; fi
  sleep 1
done
tail -n 40 "$log" >&2
say "FAILED: $runs successful runs and $mails emails within $WITHIN s (wanted $RUNS of each)"
exit 1
