#!/usr/bin/env bash
# Install the Debian 12 packages kmsd needs to build, test and run.
# lintian and python3-seccomp are for the packaging tests (the .deb, the
# systemd unit's system-call filter). The container tests use podman when it
# is installed (apt-get install podman runc mmdebstrap) and skip without it.
# Idempotent: installs only what is missing; runs `apt-get update` only then.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libssl-dev libsqlite3-dev libuv1-dev libyaml-dev libargon2-dev libcmocka-dev
  libjansson-dev libexpat1-dev libhttp-parser-dev
  openssl sqlite3 softhsm2 opensc
  python3 python3-pytest python3-pykmip python3-prometheus-client curl
  clang libclang-rt-14-dev
  lintian python3-seccomp
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
