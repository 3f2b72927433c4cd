#!/usr/bin/env bash
# The stack's own certificate authority, and certificates it signs for the servers (NATS,
# PostgreSQL, SMTP). Sourced by scripts/stack.sh; every key is readable by its owner only.
#
#   pki_ca DIR                       DIR/ca.pem and DIR/ca.key, made once
#   pki_server_cert DIR NAME [SAN]   DIR/NAME.pem and DIR/NAME.key for localhost and 127.0.0.1
#                                    (plus SAN, e.g. "DNS:nats"), signed by the CA, made once
#
# Certificates last 825 days (the longest that browsers and TLS libraries accept for a server).

pki_ca() {
  local dir=$1
  [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] && return 0
  mkdir -p "$dir"
  (umask 077
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
     -subj "/CN=covid-etl stack CA" \
     -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
     -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null)
}

pki_server_cert() {
  local dir=$1 name=$2 extra_san=${3:-}
  [ -f "$dir/$name.pem" ] && [ -f "$dir/$name.key" ] && return 0
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
