#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, dependencies, build, tests, leak check.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v caddy >/dev/null || need+=(caddy)
command -v chromium >/dev/null || need+=(chromium)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build
npx tsc -p tsconfig.test.json

rm -rf test-output
mkdir -p test-output
# The suite, then the leak check over everything it wrote (npm test runs both).
npm test

# A second pass on Node 24 LTS (the image's runtime), with better-sqlite3 built for it in a copy of the
# checkout (scripts/test-node24.sh). By default the files that cover the server and its API, both store
# engines, the CLI and forward auth (about 2 of the suite's 6 minutes); TW_NODE24_ALL=1 runs every file.
if [ "${TW_NODE24_ALL:-}" = 1 ]; then
  bash scripts/test-node24.sh
else
  bash scripts/test-node24.sh \
    test/api.test.ts test/verify-cache.test.ts test/verify-cold.test.ts test/verify-revocation.test.ts test/auth-listener.test.ts \
    test/store-engines.test.ts test/pg-store.test.ts test/persistence.test.ts \
    test/cli.test.ts test/cli-start.test.ts test/config.test.ts \
    test/nginx.test.ts test/gate.test.ts test/front.test.ts test/permissions.test.ts
fi
