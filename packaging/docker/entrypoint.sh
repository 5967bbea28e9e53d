#!/bin/sh
# kmsd container entry point (/usr/local/bin/kmsd-entrypoint; also installed
# as /usr/local/bin/kmsctl, see the end).
#
#   kmsd-entrypoint kmsd       the image's default command: pick the
#                              configuration, check it, start kmsd
#   kmsd-entrypoint health     the HEALTHCHECK: `kmsctl status`
#   kmsd-entrypoint CMD ...    anything else runs as given (kmsd --version,
#                              kmsctl init --dir /var/lib/kmsd ..., sh)
#
# The configuration is /etc/kmsd/kmsd.yaml when /etc/kmsd exists (it is not
# in the image, so it was mounted), else /var/lib/kmsd/kmsd.yaml in the
# volume. Only the default command on a volume with no kmsd state and no
# /etc/kmsd makes a development setup (`kmsctl init --dir /var/lib/kmsd`).
# It never falls back: an unreadable /etc/kmsd, a volume this user cannot
# write, a missing master key or a state path outside any writable
# directory stops it with a message saying what to change, before kmsd
# starts.
#
# Environment: KMSD_HOST (comma-separated names/addresses for the
# development certificate), KMSD_LISTEN and KMSD_LOG_LEVEL (read by kmsd
# itself, over the configuration file).
set -eu

ETC=/etc/kmsd
STATE=/var/lib/kmsd
ME=kmsd-entrypoint

say() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() {
  for line in "$@"; do printf '%s: %s\n' "$ME" "$line" >&2; done
  exit 1
}
whoami_ids() { printf 'uid %s, gid %s' "$(id -u)" "$(id -g)"; }
owner_mode() { stat -c 'owner %u:%g, mode %a' "$1" 2>/dev/null || echo "not inspectable"; }

# The configuration file to use (printed), or nothing when there is none
# yet. Exits when /etc/kmsd is there but cannot be used.
pick_config() {
  if [ -e "$ETC" ] || [ -L "$ETC" ]; then
    if [ ! -d "$ETC" ] || [ ! -r "$ETC" ] || [ ! -x "$ETC" ]; then
      die "$ETC is mounted but this container's user ($(whoami_ids)) cannot read it ($(owner_mode "$ETC"))." \
          "Give that uid or gid read and search (r-x) on the directory and read on kmsd.yaml and the" \
          "files it names, e.g. on the host: chgrp -R $(id -g) DIR && chmod -R g+rX DIR" \
          "(rootless podman: podman unshare chgrp -R $(id -g) DIR), or run with --user UID:GID that can." \
          "Nothing was started: with $ETC mounted, kmsd never falls back to another configuration."
    fi
    if [ ! -e "$ETC/kmsd.yaml" ]; then
      die "$ETC is mounted but holds no kmsd.yaml; mount the directory that has it" \
          "(docs/operations.md, Container), or remove the mount to use the volume's configuration."
    fi
    if [ ! -r "$ETC/kmsd.yaml" ]; then
      die "$ETC/kmsd.yaml is not readable by this container's user ($(whoami_ids); the file has" \
          "$(owner_mode "$ETC/kmsd.yaml")). Make it readable for that uid or gid, e.g. chmod 0640 and" \
          "chgrp $(id -g) on the host. Nothing was started."
    fi
    echo "$ETC/kmsd.yaml"
  elif [ -f "$STATE/kmsd.yaml" ]; then
    echo "$STATE/kmsd.yaml"
  fi
}

# `kmsd --check-config` output (the effective configuration) -> one
# "section.key=value" line per setting.
flatten() {
  awk '/^[a-z_]+:/ { sect = $1; sub(/:$/, "", sect); next }
       /^  [a-z_]+:/ { k = $1; sub(/:$/, "", k); v = substr($0, index($0, ": ") + 2);
                       sub(/^"/, "", v); sub(/"$/, "", v); print sect "." k "=" v }'
}
setting() { printf '%s\n' "$EFFECTIVE" | sed -n "s|^$1=||p" | head -n 1; }

# A file kmsd must read.
need_readable() { # SETTING PATH
  [ -z "$2" ] && return 0
  [ -r "$2" ] && return 0
  if [ -e "$2" ]; then
    die "$1 $2 is not readable by this container's user ($(whoami_ids); $(owner_mode "$2"))." \
        "Make it readable for that uid or gid (on the host: chgrp $(id -g) FILE && chmod g+r FILE)."
  fi
  die "$1 $2 does not exist."
}

# A directory kmsd must create files in (database, audit log, socket).
need_writable_dir() { # SETTING PATH
  [ -z "$2" ] && return 0
  dir=$(dirname "$2")
  if [ -d "$dir" ] && [ -w "$dir" ] && [ -x "$dir" ]; then
    case "$2" in
      "$STATE"/*) ;;
      *) say "warning: $1 $2 is outside the volume $STATE: it is lost with the container" ;;
    esac
    return 0
  fi
  case "$dir" in
    "$ETC"|"$ETC"/*) where="relative paths in $ETC/kmsd.yaml resolve into $ETC, the configuration mount" ;;
    *) where="$dir is $( [ -d "$dir" ] && echo "not writable by $(whoami_ids) ($(owner_mode "$dir"))" || echo "missing")" ;;
  esac
  die "$1 $2: kmsd cannot create it: $where." \
      "In this container all state belongs in the volume $STATE, which is the default: remove $1" \
      "from kmsd.yaml or set it to a path under $STATE."
}

check_volume() {
  if [ ! -d "$STATE" ] || [ ! -w "$STATE" ] || [ ! -x "$STATE" ]; then
    die "the volume $STATE is not writable by this container's user ($(whoami_ids); $(owner_mode "$STATE"))." \
        "Mount a volume there owned by that uid (a new named volume is), or fix the owner:" \
        "chown -R $(id -u):$(id -g) DIR on the host (rootless podman: podman unshare chown -R ...)."
  fi
}

dev_setup() {
  if [ -e "$STATE/kms.db" ] || [ -e "$STATE/master.key" ]; then
    die "$STATE holds kmsd state (kms.db or master.key) but no kmsd.yaml, and $ETC is not mounted." \
        "Not making a development setup over it: restore $STATE/kmsd.yaml from your backup or mount" \
        "your configuration at $ETC."
  fi
  say "no configuration: making a DEVELOPMENT setup in $STATE (a private CA and a master-key file"
  say "in the volume). For production see docs/operations.md (Container): seed the volume with"
  say "  kmsctl init --dir $STATE --host NAME   or mount your own configuration at $ETC."
  if [ -n "${KMSD_HOST:-}" ]; then
    kmsctl init --dir "$STATE" --host "$KMSD_HOST" >&2
  else
    say "KMSD_HOST is not set: the certificate names only $(hostname), localhost and the loopback addresses"
    kmsctl init --dir "$STATE" >&2
  fi
}

start_kmsd() {
  check_volume
  conf=$(pick_config)
  if [ -z "$conf" ]; then
    dev_setup
    conf=$STATE/kmsd.yaml
  fi
  if ! out=$(kmsd --check-config "$conf" 2>&1 >/dev/null); then
    die "$conf is not a valid configuration:" "$out"
  fi
  EFFECTIVE=$(kmsd --check-config "$conf" 2>/dev/null | flatten)

  need_readable tls.cert "$(setting tls.cert)"
  need_readable tls.key "$(setting tls.key)"
  need_readable tls.client_ca "$(setting tls.client_ca)"
  need_writable_dir store.path "$(setting store.path)"
  need_writable_dir admin.socket "$(setting admin.socket)"
  need_writable_dir audit.path "$(setting audit.path)"
  if [ "$(setting hsm.provider)" = file ]; then
    key=$(setting hsm.key_file)
    db=$(setting store.path)
    if [ ! -e "$key" ] && [ -e "$db" ]; then
      die "the database $db exists but its master-key file $key does not." \
          "Restore the master key from your backup; a new one cannot open the stored keys."
    fi
    if [ ! -e "$key" ]; then
      die "hsm.key_file $key does not exist: the volume has not been seeded." \
          "Seed it once, then start again (docs/operations.md, Container):" \
          "  with kmsd's own CA:     run --rm -v VOLUME:$STATE IMAGE kmsctl init --dir $STATE --host NAME" \
          "  with your $ETC mounted: run --rm -v VOLUME:$STATE -v DIR:$ETC:ro IMAGE kmsctl hsm init"
    fi
    need_readable hsm.key_file "$key"
  else
    need_readable hsm.pin_file "$(setting hsm.pin_file)"
  fi
  say "starting kmsd with $conf"
  exec kmsd -c "$conf"
}

# Called as kmsctl: the real one, with --config pointing at the volume's
# configuration when /etc/kmsd is not mounted and no --config was given.
if [ "${0##*/}" = kmsctl ]; then
  for a in "$@"; do
    case "$a" in
      --config|--config=*) exec /usr/bin/kmsctl "$@" ;;
      -*) ;;
      *) break ;;
    esac
  done
  conf=$(pick_config)
  if [ -n "$conf" ] && [ "$conf" != "$ETC/kmsd.yaml" ]; then
    exec /usr/bin/kmsctl --config "$conf" "$@"
  fi
  exec /usr/bin/kmsctl "$@"
fi

if [ "$#" -eq 1 ] && [ "$1" = kmsd ]; then
  start_kmsd
fi
if [ "$#" -eq 1 ] && [ "$1" = health ]; then
  exec kmsctl status
fi
exec "$@"
