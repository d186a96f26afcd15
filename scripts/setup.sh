#!/usr/bin/env bash
# One-time (idempotent) setup on a fresh Debian 12 with Node 20: Debian packages, npm packages,
# TypeScript build. Used by both README commands and by CI.
#   scripts/setup.sh        everything the tests need, a real OpenStack (Keystone, Glance, Nova) included
#   scripts/setup.sh all    the tests without the real OpenStack (its test then skips)
#   scripts/setup.sh core   only what the demo needs (ZooKeeper, kazoo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh "${1:-openstack}"
# A fresh clone gets exactly the locked tree; an existing checkout keeps its node_modules
# (run `npm ci` yourself after pulling dependency changes).
if [ ! -f node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx tsc -b
echo "setup: done"
