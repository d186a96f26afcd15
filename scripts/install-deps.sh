#!/usr/bin/env bash
# Installs the Debian packages nodepool-ts needs for its demo and tests.
# Idempotent; run as root (or with sudo) on Debian 12. Groups can be chosen:
#   scripts/install-deps.sh            # core: ZooKeeper + kazoo (+ openssl for TLS test certificates)
#   scripts/install-deps.sh all        # everything the full test suite uses
#   scripts/install-deps.sh openstack  # + a real OpenStack (Keystone, Glance, Placement, Nova,
#                                      #   RabbitMQ) for scripts/openstack-real.sh and its test
set -euo pipefail

want="${1:-core}"
core=(zookeeper default-jre-headless python3-kazoo openssl)
extra=(mariadb-server openssh-server python3-diskimage-builder qemu-utils debootstrap sudo
       python3-openstackclient chromium)

# optional: ~200 packages, so not part of `all` (test/openstack/real.test.ts skips without them)
openstack=(python3-keystone python3-glance python3-nova python3-placement rabbitmq-server)

pkgs=("${core[@]}")
if [ "$want" = "all" ]; then pkgs+=("${extra[@]}"); fi
if [ "$want" = "openstack" ]; then pkgs+=("${extra[@]}" "${openstack[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all packages present (${pkgs[*]})"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Do not let package post-install scripts start system-wide services we never use:
# tests start private instances on their own ports and data dirs.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
