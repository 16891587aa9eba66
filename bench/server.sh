#!/usr/bin/env bash
# Server benchmark W1: a sync webhook -> one jq transform (lower-case an email, upper-case a
# name, total = amount x 1.2, count the items) -> respond, every job committed with its full
# record. The server is pinned to one core, wrk to the other; keep-alive connections; 15 s per
# point after a 5 s warm-up; SQLite with synchronous=NORMAL.
#
#   bench/server.sh            # needs wrk (apt-get install wrk) and taskset
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin weft >/dev/null
weft=$PWD/target/release/weft
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
port=18555
taskset -c 1 "$weft" serve --listen 127.0.0.1:$port --data "$work/data" 2>"$work/serve.log" &
server=$!
sleep 1
echo 'a bench password' | "$weft" admin create-user --email bench@example.com --name Bench --password-stdin --data "$work/data" >/dev/null
token=$("$weft" admin create-token --email bench@example.com --data "$work/data")
cat > w1.yaml <<'YAML'
name: W1
trigger:
  webhook: { path: w1, mode: sync }
steps:
  - id: shape
    transform: '{email: (.trigger.body.email | ascii_downcase), name: (.trigger.body.name | ascii_upcase), total: (.trigger.body.amount * 1.2), items: (.trigger.body.items | length)}'
  - id: answer
    respond: { status: 200, body: "{{ steps.shape.output }}" }
YAML
curl -sf -H "Authorization: Bearer $token" --data-binary @w1.yaml http://127.0.0.1:$port/api/v1/recipes >/dev/null
cat > post.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "Ann.Smith@Example.COM", "name": "Ann Smith", "amount": 99.5, "items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}'
LUA
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
echo "idle RSS: $((idle_rss / 1024)) MB"
for connections in 1 16 64; do
  taskset -c 0 wrk -t1 -c$connections -d5s -s post.lua http://127.0.0.1:$port/hooks/w1 >/dev/null
  result=$(taskset -c 0 wrk -t1 -c$connections -d15s --latency -s post.lua http://127.0.0.1:$port/hooks/w1)
  rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$result" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$result" | grep -E "Non-2xx|Socket errors" || true)
  echo "W1 c=$connections: $rps req/s, p50 $p50, p99 $p99 ${errors:+($errors)}"
done
peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "peak RSS: $((peak / 1024)) MB"
sleep 2
jobs=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | awk -F' ' '/^weft_jobs_finished_total/ {sum += $2} END {print sum}')
bytes=$(du -cb "$work"/data/weft.db* | tail -1 | cut -f1)
echo "jobs: $jobs, database: $((bytes / 1024 / 1024)) MB, $((bytes * 1000 / (jobs + 1) / 1024)) KB per 1,000 jobs"
