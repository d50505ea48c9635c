#!/bin/sh
# Installs the Debian packages dszero builds, tests and runs with.
# Idempotent: packages already present are left alone; safe to run again.
set -eu
PKGS="build-essential cmake ninja-build pkg-config libcjson-dev libaio-dev libopenmpi-dev openmpi-bin
libcmocka-dev zlib1g-dev libisal-dev swig libdlpack-dev python3-torch python3-numpy python3-pytest
python3-venv python3-pip python3-setuptools python3-wheel python3-matplotlib python3-tqdm"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
# --no-install-recommends: without it python3-torch pulls in Qt and GTK.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
