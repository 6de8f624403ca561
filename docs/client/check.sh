#!/usr/bin/env bash
# The typed client example, end to end: installs its locked packages from the npm registry,
# generates the types from schema.graphql, type-checks (strict), and runs the program against
# a fresh Herald (`api serve` on SQLite in a temporary directory). .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
target=${CARGO_TARGET_DIR:-$root/target}

npm ci --no-audit --no-fund --prefer-offline --loglevel=error
npm run -s codegen >/dev/null
npm run -s build

(cd "$root" && cargo build -q -p api)
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HERALD_DATA_DIR="$work" HERALD_BIND="127.0.0.1:$port" RUST_LOG=warn
token=$("$target/debug/api" bootstrap --admin-email admin@example.com | awk '$1 == "token" { print $2 }')
"$target/debug/api" serve >"$work/api.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
HERALD_URL="http://127.0.0.1:$port" HERALD_TOKEN="$token" node dist/follow-panel.js || { cat "$work/api.log" >&2; exit 1; }
