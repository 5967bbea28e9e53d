#!/usr/bin/env bash
# packaging/run-dev.sh: `make run` after `make all`: a development kmsd in
# ./var, listening on 127.0.0.1:5696 (KMSD_DEV_LISTEN overrides).
#
# First run only (no var/kmsd.yaml): `kmsctl init --dir var`, which makes a
# private CA, server and admin client certificates, the master key file and
# the database. Then prints how to talk to it and runs kmsd in the
# foreground (Ctrl-C stops it). It never deletes or replaces anything in var/:
# remove var/ yourself to start from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
VAR=${KMSD_DEV_DIR:-var}
LISTEN=${KMSD_DEV_LISTEN:-127.0.0.1:5696}

if [ ! -x "$BUILD/kmsd" ]; then
  echo "run-dev: $BUILD/kmsd does not exist yet (the server has not been built); run 'make' first" >&2
  exit 1
fi
if [ ! -x "$BUILD/kmsctl" ]; then
  echo "run-dev: $BUILD/kmsctl does not exist yet; run 'make' first" >&2
  exit 1
fi

if [ ! -f "$VAR/kmsd.yaml" ]; then
  echo "run-dev: first run: setting up $VAR/"
  "$BUILD/kmsctl" init --dir "$VAR" --listen "$LISTEN"
fi

port=${LISTEN##*:}
host=${LISTEN%:*}
host=${host#[}; host=${host%]}
case "$host" in 0.0.0.0|::|"") host=127.0.0.1 ;; esac
# s_client wants "[v6]:port" for IPv6 literals.
case "$host" in *:*) connect="[$host]:$port" ;; *) connect="$host:$port" ;; esac

cat <<INFO

kmsd development server
  configuration       $VAR/kmsd.yaml
  CA certificate      $VAR/pki/ca.crt      (trust this in clients)
  admin client        $VAR/pki/client.crt + $VAR/pki/client.key (CN admin)
  more clients        $BUILD/kmsctl pki issue-client NAME --dir $VAR

TLS handshake check:
  openssl s_client -connect $connect -cert $VAR/pki/client.crt -key $VAR/pki/client.key -CAfile $VAR/pki/ca.crt </dev/null

PyKMIP (create an AES-256 key):
  /usr/bin/python3 -c "from kmip.pie.client import ProxyKmipClient; from kmip import enums; c = ProxyKmipClient(hostname='$host', port=$port, cert='$VAR/pki/client.crt', key='$VAR/pki/client.key', ca='$VAR/pki/ca.crt'); c.open(); print(c.create(enums.CryptographicAlgorithm.AES, 256)); c.close()"

starting: $BUILD/kmsd -c $VAR/kmsd.yaml   (Ctrl-C to stop)
INFO

exec "$BUILD/kmsd" -c "$VAR/kmsd.yaml"
