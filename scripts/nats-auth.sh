#!/usr/bin/env bash
# NATS locked down: TLS, one NKEY per identity, and what each identity may publish and subscribe.
# Sourced by scripts/stack.sh (which sets STACK_DIR, NATS_PORT, VENV and sources scripts/pki.sh).
#
#   nats_keys            $STACK_DIR/nats/keys/<identity>.nk: one user seed per identity, made once
#                        (scripts/nkey.py), mode 0600
#   nats_write_config    $STACK_DIR/nats/nats.conf: listen, JetStream, TLS with the stack's server
#                        certificate, and `authorization { users = [...] }` with the permissions
#                        below
#   nats_public_key WHO  the public key (U...) of WHO's seed
#
# The rules, least privilege per identity (subjects are DESIGN.md's; stream, bucket and key
# names are those of shared/core/src/nats.rs and store.rs):
#
# - every pipeline service declares streams ETL, NOTIFY, DEAD and buckets etl-raw, etl-curated,
#   etl-state at start (`shared::nats::setup`): it may look them up and create them, never
#   update, purge or delete them;
# - a stage may create consumers on the streams it reads and pull and acknowledge their
#   messages. Its durable's name carries its env scope (`loader-prod`), which a subject
#   permission cannot spell, so the name is a wildcard: a stage could open another durable on
#   the same stream, but it can still only publish what it produces;
# - each service publishes only the events it produces (`etl.*.extracted.*`,
#   `etl.*.transformed`, `etl.*.loaded`, `notify.*`) and its own stage's failure reports and
#   dead letters, and writes only its own objects and KV keys;
# - replies (the extractor's trigger answers, micro-service `$SRV` answers, flow control of
#   object reads) go through `allow_responses`: a service may answer a request it received, not
#   publish into another client's inbox. Each service's inbox is `_INBOX.<service>.…`
#   (`shared::nats` names it after the connection), so it cannot read others' replies;
# - the dashboard only subscribes to `etl.*.loaded` and `etl.*.failed.*`; it publishes nothing;
# - `etl`, the operator's tool (and the tests' own set-up and clean-up), may do everything:
#   only it may purge or delete streams, consumers, buckets, objects and keys, and trigger runs.

NATS_DIR="$STACK_DIR/nats"
NATS_CONF="$NATS_DIR/nats.conf"
NATS_KEYS="$NATS_DIR/keys"
PKI_DIR="$STACK_DIR/pki"
NATS_IDENTITIES=(extractor transformer loader notifier dashboard etl)

nats_public_key() { "$VENV/bin/python" "$ROOT/scripts/nkey.py" "$NATS_KEYS/$1.nk"; }

nats_keys() {
  (umask 077; mkdir -p "$NATS_KEYS")
  local who
  for who in "${NATS_IDENTITIES[@]}"; do
    [ -f "$NATS_KEYS/$who.nk" ] || say "making the NATS key of $who"
    nats_public_key "$who" >/dev/null
  done
}

# A quoted NATS config list of the arguments: ["a", "b"]. Quoted, so `$JS…` is not a variable.
nats_list() {
  local out="" item
  for item in "$@"; do out="$out${out:+, }\"$item\""; done
  printf '[%s]' "$out"
}

# Looking up and creating what `shared::nats::setup` declares (creating a KV bucket first reads the
# account's JetStream limits: `$JS.API.INFO`, read-only).
NATS_DECLARE=('$JS.API.INFO')
for _resource in ETL NOTIFY DEAD OBJ_etl-raw OBJ_etl-curated KV_etl-state; do
  NATS_DECLARE+=("\$JS.API.STREAM.INFO.$_resource" "\$JS.API.STREAM.CREATE.$_resource")
done
unset _resource

# A durable pull consumer on stream ETL: create it (create-or-update of its own config), pull,
# acknowledge (progress acks too, hence not `allow_responses` alone).
NATS_CONSUME_ETL=('$JS.API.CONSUMER.CREATE.ETL.*' '$JS.API.CONSUMER.INFO.ETL.*'
  '$JS.API.CONSUMER.MSG.NEXT.ETL.*' '$JS.ACK.ETL.>')

# Reading an object of bucket $1: its metadata by direct get, its chunks through an ordered
# consumer (flow control is answered through allow_responses).
nats_read_objects() {
  printf '%s\n' "\$JS.API.DIRECT.GET.OBJ_$1.\$O.$1.M.>" "\$JS.API.STREAM.MSG.GET.OBJ_$1" \
    "\$JS.API.CONSUMER.CREATE.OBJ_$1"
}
# Writing an object of bucket $1 (objects are written once, never replaced: no purge).
nats_write_objects() { printf '%s\n' "\$O.$1.C.>" "\$O.$1.M.>"; }
# Reading and writing KV keys matching $1 in etl-state.
nats_read_keys() { printf '%s\n' "\$JS.API.DIRECT.GET.KV_etl-state.\$KV.etl-state.$1"; }
nats_write_keys() { printf '%s\n' "\$KV.etl-state.$1"; }
# A NATS micro-service named $1 answering `$SRV` discovery and its own endpoints.
nats_micro_subs() { printf '%s\n' '$SRV.PING' '$SRV.INFO' '$SRV.STATS' "\$SRV.*.$1" "\$SRV.*.$1.*" "svc.$1.stats"; }

# "publish" and "subscribe" permission lists of an identity, one subject a line, blocks
# separated by a line "--".
nats_permissions() {
  local pub=() sub=()
  case "$1" in
    extractor)
      pub=("${NATS_DECLARE[@]}" 'etl.*.extracted.*' 'etl.*.failed.extract' 'etl.*.progress.*'
        $(nats_write_objects etl-raw) $(nats_read_objects etl-raw)
        $(nats_write_keys '*.*.latest') $(nats_write_keys '*.*.cursor') $(nats_write_keys '*.*.trouble')
        $(nats_read_keys '*.*.latest') $(nats_read_keys '*.*.cursor') $(nats_read_keys '*.*.trouble')
        $(nats_write_keys '*.extractor.lease') $(nats_read_keys '*.extractor.lease'))
      sub=('_INBOX.extractor.>' 'etl.*.trigger' $(nats_micro_subs extractor)) ;;
    transformer)
      pub=("${NATS_DECLARE[@]}" "${NATS_CONSUME_ETL[@]}" '$JS.API.CONSUMER.CREATE.ETL.*.etl.*.extracted.*'
        'etl.*.transformed' 'etl.*.failed.transform' 'etl.*.dead.transform'
        $(nats_read_objects etl-raw) $(nats_read_objects etl-curated) $(nats_write_objects etl-curated)
        $(nats_read_keys '*.*.latest') $(nats_write_keys '*.*.curated') $(nats_read_keys '*.*.curated'))
      sub=('_INBOX.transformer.>' $(nats_micro_subs transformer)) ;;
    loader)
      pub=("${NATS_DECLARE[@]}" "${NATS_CONSUME_ETL[@]}"
        'etl.*.loaded' 'etl.*.failed.load' 'etl.*.dead.load'
        $(nats_read_objects etl-curated))
      sub=('_INBOX.loader.>' $(nats_micro_subs loader)) ;;
    notifier)
      pub=("${NATS_DECLARE[@]}" "${NATS_CONSUME_ETL[@]}"
        'notify.*' 'etl.*.failed.notify' 'etl.*.dead.notify'
        $(nats_write_keys '*.notified.>') $(nats_read_keys '*.notified.>') $(nats_read_keys '*.*.latest')
        $(nats_write_keys 'stale-check.*.lease') $(nats_read_keys 'stale-check.*.lease')
        '$JS.API.CONSUMER.CREATE.KV_etl-state')
      sub=('_INBOX.notifier.>' $(nats_micro_subs notifier)) ;;
    dashboard)
      sub=('etl.*.loaded' 'etl.*.failed.*') ;;
    etl)
      pub=('>'); sub=('>') ;;
  esac
  printf '%s\n' "${pub[@]}" -- "${sub[@]}"
}

nats_user_block() {
  local who=$1 key pub=() sub=() line in_sub=""
  key="$(nats_public_key "$who")"
  while IFS= read -r line; do
    if [ "$line" = "--" ]; then in_sub=1; continue; fi
    [ -n "$line" ] || continue
    if [ -n "$in_sub" ]; then sub+=("$line"); else pub+=("$line"); fi
  done < <(set -f; nats_permissions "$who")
  local publish='{deny: [">"]}'
  [ "${#pub[@]}" -gt 0 ] && publish="{allow: $(nats_list "${pub[@]}")}"
  local responses=""
  case "$who" in extractor|transformer|loader|notifier) responses=", allow_responses: true" ;; esac
  printf '    # %s\n    {nkey: "%s", permissions: {\n      publish: %s\n      subscribe: {allow: %s}%s\n    }}\n' \
    "$who" "$key" "$publish" "$(nats_list "${sub[@]}")" "$responses"
}

# The server config: listening on $1, JetStream data in $2, the TLS certificate and key at
# $3 and $4 (paths as the server sees them), and every identity's key and permissions.
# `extra` lines ($5) go in as they are.
nats_config() {
  local listen=$1 store=$2 cert=$3 key=$4 extra=${5:-} users="" who
  for who in "${NATS_IDENTITIES[@]}"; do users="$users$(nats_user_block "$who")"$'\n'; done
  cat <<CONF
# Written by scripts/stack.sh (scripts/nats-auth.sh): edits are overwritten when it runs again.
listen: "$listen"
server_name: "${NATS_SERVER_NAME:-covid-etl-stack}"
jetstream { store_dir: "$store" }
# Clients must use TLS; who they are is their NKEY (no client certificates).
tls {
  cert_file: "$cert"
  key_file: "$key"
  timeout: 2
}
# Every denied publish or subscribe is logged ("Publish Violation", "Subscription Violation").
logtime: true
$extra
authorization {
  users = [
$users  ]
}
CONF
}

nats_write_config() {
  pki_ca "$PKI_DIR"
  pki_server_cert "$PKI_DIR" nats "DNS:nats"
  nats_keys
  mkdir -p "$NATS_DIR"
  (umask 077
   nats_config "127.0.0.1:$NATS_PORT" "$NATS_DIR" "$PKI_DIR/nats.pem" "$PKI_DIR/nats.key" >"$NATS_CONF.new"
   mv "$NATS_CONF.new" "$NATS_CONF")
}

# The password the nodes of a cluster present to each other, kept in file $1 (made once).
nats_route_password() {
  [ -f "$1" ] || (umask 077; openssl rand -hex 24 >"$1")
  cat "$1"
}

# A config's `cluster` block: routes listen on $1 with password $2, towards the routes
# host:port given after them (a node may name itself: the server skips it).
nats_cluster_block() {
  local listen=$1 password=$2 routes="" peer; shift 2
  for peer in "$@"; do routes="$routes${routes:+, }\"nats-route://route:$password@$peer\""; done
  printf 'cluster {\n  name: "covid-etl"\n  listen: "%s"\n  authorization { user: "route", password: "%s" }\n  routes: [%s]\n}\n' \
    "$listen" "$password" "$routes"
}

# The three configs of `stack.sh up --cluster`: node i listens for clients on NATS_PORT+i-1 and
# for the other nodes on NATS_ROUTE_PORT+i-1, keeps JetStream data in nats/n<i>, and routes to
# the others. Routes stay on the loopback and authenticate with a password of the stack's own.
nats_write_cluster_configs() {
  pki_ca "$PKI_DIR"
  pki_server_cert "$PKI_DIR" nats "DNS:nats"
  nats_keys
  local password i
  password="$(nats_route_password "$NATS_DIR/route.password")"
  for i in 1 2 3; do
    mkdir -p "$NATS_DIR/n$i"
    (umask 077
     NATS_SERVER_NAME="covid-etl-n$i" nats_config "127.0.0.1:$((NATS_PORT + i - 1))" "$NATS_DIR/n$i" \
       "$PKI_DIR/nats.pem" "$PKI_DIR/nats.key" \
       "$(nats_cluster_block "127.0.0.1:$((NATS_ROUTE_PORT + i - 1))" "$password" \
          "127.0.0.1:$NATS_ROUTE_PORT" "127.0.0.1:$((NATS_ROUTE_PORT + 1))" "127.0.0.1:$((NATS_ROUTE_PORT + 2))")" \
       >"$NATS_DIR/nats-n$i.conf.new"
     mv "$NATS_DIR/nats-n$i.conf.new" "$NATS_DIR/nats-n$i.conf")
  done
}

# Whether this stack's NATS is the three-node cluster (`up --cluster`).
nats_is_cluster() { [ "$(cat "$NATS_DIR/mode" 2>/dev/null)" = cluster ]; }

# The variables that make WHO connect as itself: to every node of a cluster, whose streams,
# object stores and bucket then keep three replicas.
nats_identity_env() {
  if nats_is_cluster; then
    echo "NATS_URL=tls://127.0.0.1:$NATS_PORT,tls://127.0.0.1:$((NATS_PORT + 1)),tls://127.0.0.1:$((NATS_PORT + 2))"
    echo "NATS_REPLICAS=3"
  else
    echo "NATS_URL=tls://127.0.0.1:$NATS_PORT"
  fi
  echo "NATS_NKEY_FILE=$NATS_KEYS/$1.nk"
  echo "NATS_CA_FILE=$PKI_DIR/ca.pem"
}
