#!/usr/bin/env bash
# The stack's own certificate authority, and certificates it signs for the servers (NATS,
# PostgreSQL, SMTP). Sourced by scripts/stack.sh; every key is readable by its owner only.
#
#   pki_ca DIR                       DIR/ca.pem and DIR/ca.key, made once
#   pki_server_cert DIR NAME [SAN]   DIR/NAME.pem and DIR/NAME.key for localhost and 127.0.0.1
#                                    (plus SAN, e.g. "DNS:nats"), signed by the CA, made once
#
# Certificates last 825 days (the longest that browsers and TLS libraries accept for a server).
# One that expires within 30 days (or has expired) is reported at every `up`, with how to renew it.

# Warns when certificate $1 expires within 30 days; $2 says how to renew it.
pki_warn_expiry() {
  if ! openssl x509 -noout -in "$1" >/dev/null 2>&1; then
    say "WARNING: certificate $1 cannot be read: $2"
    return 0
  fi
  openssl x509 -noout -checkend $((30 * 86400)) -in "$1" >/dev/null && return 0
  say "WARNING: certificate $1 expires $(openssl x509 -noout -enddate -in "$1" | cut -d= -f2): $2"
}

pki_ca() {
  local dir=$1
  if [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ]; then
    pki_warn_expiry "$dir/ca.pem" "a new CA means new certificates for every server and the new ca.pem for every client (README, \"Rotating a credential\")"
    return 0
  fi
  mkdir -p "$dir"
  (umask 077
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
     -subj "/CN=covid-etl stack CA" \
     -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
     -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null)
}

pki_server_cert() {
  local dir=$1 name=$2 extra_san=${3:-}
  if [ -f "$dir/$name.pem" ] && [ -f "$dir/$name.key" ]; then
    pki_warn_expiry "$dir/$name.pem" "delete it and its .key, then run \`scripts/stack.sh down\` and \`up\`"
    return 0
  fi
  local san="DNS:localhost,IP:127.0.0.1"
  [ -n "$extra_san" ] && san="$san,$extra_san"
  (umask 077
   openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
     -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
   openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
     -CAcreateserial -days 825 -out "$dir/$name.pem" \
     -extfile <(printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$san") \
     2>/dev/null
   rm -f "$dir/$name.csr")
}
