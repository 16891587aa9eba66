#!/usr/bin/env bash
# Server benchmarks, every job committed with its full record:
#   W1: a sync webhook -> one jq transform (lower-case an email, upper-case a name, total =
#       amount x 1.2, count the items) -> respond.
#   W2: the same, then an HTTP POST of the result to a local sink, then respond.
# The server is pinned to one core, wrk to the other (the sink of W2 shares wrk's core);
# keep-alive connections; 15 s per point after a 5 s warm-up.
#
#   bench/server.sh                      # SQLite in a fresh data folder, synchronous=NORMAL
#   WEFT_SQLITE_SYNC=full bench/server.sh
#   WEFT_BENCH_DATABASE=postgres://root@127.0.0.1:5432/test bench/server.sh
#   WEFT_BENCH_POINTS="W1:1 W2:64" bench/server.sh   # some points only
#   WEFT_BIN=/tmp/weft-before bench/server.sh          # another build of weft, to compare two
#
# Needs wrk (apt-get install wrk) and taskset. On PostgreSQL the benchmark uses a schema of
# its own, dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin weft --example bench_sink >/dev/null
weft=${WEFT_BIN:-$PWD/target/release/weft}
sink=$PWD/target/release/examples/bench_sink
work=$(mktemp -d)
port=18555
sink_port=18557
points=${WEFT_BENCH_POINTS:-"W1:1 W1:16 W1:64 W2:1 W2:16 W2:64"}

store_args=(--data "$work/data")
schema=""
if [[ -n "${WEFT_BENCH_DATABASE:-}" ]]; then
  schema="weft_bench_$$"
  psql "$WEFT_BENCH_DATABASE" -qc "CREATE SCHEMA $schema" >/dev/null
  separator='?'; [[ "$WEFT_BENCH_DATABASE" == *\?* ]] && separator='&'
  store_args=(--database "${WEFT_BENCH_DATABASE}${separator}options=-csearch_path%3D$schema")
fi
cleanup() {
  kill "${server:-}" "${sink_pid:-}" 2>/dev/null || true
  [[ -n "$schema" ]] && psql "$WEFT_BENCH_DATABASE" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

taskset -c 0 "$sink" 127.0.0.1:$sink_port &
sink_pid=$!
taskset -c 1 "$weft" serve --listen 127.0.0.1:$port --allow-private-network "${store_args[@]}" 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
echo 'a bench password' | "$weft" admin create-user --email bench@example.com --name Bench --password-stdin "${store_args[@]}" >/dev/null
token=$("$weft" admin create-token --email bench@example.com "${store_args[@]}")
shape='{email: (.trigger.body.email | ascii_downcase), name: (.trigger.body.name | ascii_upcase), total: (.trigger.body.amount * 1.2), items: (.trigger.body.items | length)}'
cat > w1.yaml <<YAML
name: W1
trigger:
  webhook: { path: w1, mode: sync }
steps:
  - id: shape
    transform: '$shape'
  - id: answer
    respond: { status: 200, body: "{{ steps.shape.output }}" }
YAML
cat > w2.yaml <<YAML
name: W2
trigger:
  webhook: { path: w2, mode: sync }
steps:
  - id: shape
    transform: '$shape'
  - id: send
    action: http.request
    input:
      method: POST
      url: http://127.0.0.1:$sink_port/orders
      body: "{{ steps.shape.output }}"
  - id: answer
    respond: { status: 200, body: "{{ steps.shape.output }}" }
YAML
for recipe in w1.yaml w2.yaml; do
  curl -sf -H "Authorization: Bearer $token" --data-binary @$recipe http://127.0.0.1:$port/api/v1/recipes >/dev/null
done
cat > post.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "Ann.Smith@Example.COM", "name": "Ann Smith", "amount": 99.5, "items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}'
LUA
# The first answer of each, checked by eye in the output: a benchmark of errors measures nothing.
for path in w1 w2; do
  echo "$path answers: $(curl -s -H 'Content-Type: application/json' --data '{"email": "A@B.C", "name": "a", "amount": 1, "items": []}' http://127.0.0.1:$port/hooks/$path)"
done
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
echo "store: ${store_args[*]}, sync: ${WEFT_SQLITE_SYNC:-normal}"
echo "idle RSS: $((idle_rss / 1024)) MB"
for point in $points; do
  workload=${point%%:*}
  connections=${point##*:}
  path=$(echo "$workload" | tr 'W' 'w')
  taskset -c 0 wrk -t1 -c"$connections" -d5s -s post.lua http://127.0.0.1:$port/hooks/$path >/dev/null
  result=$(taskset -c 0 wrk -t1 -c"$connections" -d15s --latency -s post.lua http://127.0.0.1:$port/hooks/$path)
  rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$result" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$result" | grep -E "Non-2xx|Socket errors" || true)
  echo "$workload c=$connections: $rps req/s, p50 $p50, p99 $p99 ${errors:+($errors)}"
done
peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "peak RSS: $((peak / 1024)) MB"
sleep 2
jobs=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | awk '/^weft_jobs_finished_total/ {sum += $2} END {print sum}')
if [[ -z "$schema" ]]; then
  # Checkpointed, so that the WAL's copy of recent pages is not counted twice.
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')" "$work/data/weft.db"
  bytes=$(du -cb "$work"/data/weft.db* | tail -1 | cut -f1)
else
  bytes=$(psql "$WEFT_BENCH_DATABASE" -tAc "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$schema' AND c.relkind IN ('r', 'm')")
fi
echo "jobs: $jobs, database: $((bytes / 1024 / 1024)) MB, $((bytes * 1000 / (jobs + 1) / 1024)) KB per 1,000 jobs"
