#!/usr/bin/env bash
# The server's checks that need more than cargo: the web view in Debian's Chromium,
# driven by playwright-core (npm), and schemathesis (PyPI) against /openapi.json with no
# server error. Usage: .ci/server-checks.sh OPERONX_BINARY VENV
set -euo pipefail
bin=$(realpath "$1")
venv=$2
here=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null; else sudo apt-get install -y -q chromium >/dev/null; fi
fi
(cd "$here/crates/server/tests/browser" && npm ci --no-audit --no-fund --silent)
node "$here/crates/server/tests/browser/web.mjs" "$bin"

"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && exec "$bin" serve --graphs "$here/crates/server/tests/graphs" --store "$work/runs.db" \
    --no-trace-store --bind 127.0.0.1:0 2>"$work/serve.log") &
server=$!
for _ in $(seq 100); do
    base=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.log" | head -1 || true)
    [ -n "$base" ] && break
    sleep 0.1
done
[ -n "$base" ] || { cat "$work/serve.log"; exit 1; }
"$venv/bin/schemathesis" run "$base/openapi.json" --checks not_a_server_error \
    --max-examples 40 --phases examples,coverage,fuzzing --warnings off
