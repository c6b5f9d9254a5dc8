#!/usr/bin/env bash
# HTTP figures of `operonx serve` / `operonx worker` on the W2 graph (BENCHMARKS.md,
# "Serving"), measured with wrk (Debian's `wrk`) and, for the first SSE event, curl:
#   1. submit-to-result latency (POST /v1/runs?wait=true), SQLite store, 2 workers in the
#      server: one client, then 8;
#   2. sustained throughput with two worker processes on Postgres: wrk submits for 10 s
#      (the server only queues), the runs done per second from the first submission to
#      the last end;
#   3. submit to the first SSE event of the run (curl, 50 runs).
# Usage (from the workspace root, after `cargo build --release -p operonx-testkit`):
#   crates/testkit/scripts/serve-bench.sh [PG_URL]
set -euo pipefail
B=${B:-target/release/operonx-serve-bench}
G=${G:-../shared/bench/graphs}
PG=${1:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/graphs" && cp "$G/w2.json" "$work/graphs/"
OPERONX_STORE_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export OPERONX_STORE_KEY
cat > "$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"graph": "w2", "inputs": {"x": 3}}'
EOF

start() { # start ARGS...: the process's pid in $pid, its base URL in $base
    local log=$work/log.$RANDOM
    "$B" "$@" >"$log" 2>&1 &
    pid=$!; pids+=("$pid")
    base=""
    [ "$1" = worker ] && return 0
    for _ in $(seq 100); do
        base=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 || true)
        [ -n "$base" ] && return 0
        grep -q 'error' "$log" && { cat "$log"; exit 1; }
        sleep 0.1
    done
    cat "$log"; exit 1
}

echo "== 1. submit-to-result latency, SQLite, 2 workers in the server"
start serve --graphs "$work/graphs" --store "$work/runs.db" --bind 127.0.0.1:0 --workers 2
wrk -t1 -c1 -d10s --latency -s "$work/post.lua" "$base/v1/runs?wait=true" | grep -E 'Latency|50%|99%|Requests/sec'
wrk -t2 -c8 -d10s --latency -s "$work/post.lua" "$base/v1/runs?wait=true" | grep -E 'Latency|50%|99%|Requests/sec'

echo "== 3. submit to first SSE event (50 runs)"
total=0
for _ in $(seq 50); do
    t0=$(date +%s%N)
    id=$(curl -s "$base/v1/runs" -H 'content-type: application/json' -d '{"graph": "w2", "inputs": {"x": 3}}' | sed 's/.*"run_id":"\([0-9a-f-]*\)".*/\1/')
    (curl -sN "$base/v1/runs/$id/events" || true) | grep -m1 -q '^id:'
    t1=$(date +%s%N)
    total=$((total + t1 - t0))
done
echo "mean submit -> first event: $((total / 50 / 1000)) us"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "== 2. throughput, Postgres, 2 worker processes (8 runs at once each)"
schema=bench_$RANDOM$RANDOM
psql "$PG" -qc "CREATE SCHEMA $schema"
url="$PG?options=-csearch_path%3D$schema"
start serve --graphs "$work/graphs" --store "$url" --bind 127.0.0.1:0 --workers 0
server=$pid; sbase=$base
start worker --graphs "$work/graphs" --store "$url" --workers 8
start worker --graphs "$work/graphs" --store "$url" --workers 8
# What autovacuum does on a default server (this machine's runs without it): keep the
# planner's statistics of the growing tables, so the prepared statements are planned again.
( while true; do psql "$url" -qc "VACUUM ANALYZE operonx_runs" >/dev/null 2>&1 || true; sleep 2; done ) &
pids+=("$!")
wrk -t2 -c16 -d10s -s "$work/post.lua" "$sbase/v1/runs" | grep -E 'Requests/sec'
while [ "$(psql "$url" -Atc "SELECT count(*) FROM operonx_runs WHERE status IN ('queued', 'running')")" != 0 ]; do sleep 0.5; done
psql "$url" -Atc "SELECT count(*) || ' runs done in ' || round((max(updated_ms) - min(created_ms)) / 1000.0, 2) || ' s: '
    || round(count(*) * 1000.0 / (max(updated_ms) - min(created_ms))) || ' runs/s' FROM operonx_runs WHERE status = 'done'"
psql "$PG" -qc "DROP SCHEMA $schema CASCADE"
