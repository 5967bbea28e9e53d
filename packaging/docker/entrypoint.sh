#!/bin/sh
# Container entry point: on first start without a config, create a
# development setup in /var/lib/kmsd (PKI, config, master-key file) and
# point kmsd at it. Production deployments mount /etc/kmsd with their own.
# `kmsd-entrypoint health` is the image's HEALTHCHECK: kmsctl status with the
# configuration in use.
set -eu
if [ "${1:-}" = health ]; then
  conf=/etc/kmsd/kmsd.yaml
  [ -f "$conf" ] || conf=/var/lib/kmsd/dev/kmsd.yaml
  exec kmsctl --config "$conf" status
fi
if [ "${1:-}" = kmsd ] && [ ! -f /etc/kmsd/kmsd.yaml ] && [ ! -f /var/lib/kmsd/dev/kmsd.yaml ]; then
  kmsctl init --dir /var/lib/kmsd/dev --listen 0.0.0.0:5696 --host "$(hostname)"
fi
if [ "${1:-}" = kmsd ] && [ ! -f /etc/kmsd/kmsd.yaml ]; then
  exec kmsd -c /var/lib/kmsd/dev/kmsd.yaml
fi
exec "$@"
