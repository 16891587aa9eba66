#!/usr/bin/env bash
# Scale-out on PostgreSQL (issue: many processes, one platform).
#
# 1. Throughput against the number of worker processes (1, 2, 4): a queue of jobs is written
#    straight into the store, then N `weft serve --role worker` processes drain it; the time
#    from their start to an empty queue gives jobs per second. Two kinds of job:
#    - `compute`: one `set` step; the cost is the queue's own (claim, run, record);
#    - `remote`: one HTTP call to a local sink that answers after 50 ms, with 16 job slots
#      per process, as a platform whose jobs wait on other systems.
# 2. The queue with 1,000,000 queued jobs: the plan and time of a claim's pick (EXPLAIN
#    ANALYZE, with and without the `jobs_due` index), and the claims per second of one worker
#    at that depth.
#
#   WEFT_BENCH_DATABASE=postgres://postgres@127.0.0.1:5432/test bench/scale.sh
#   WEFT_BENCH_JOBS=20000 WEFT_BENCH_DEPTH=1000000 bench/scale.sh   # the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin weft --example bench_sink >/dev/null
weft=$PWD/target/release/weft
sink=$PWD/target/release/examples/bench_sink
database=${WEFT_BENCH_DATABASE:-postgres://postgres@127.0.0.1:5432/test}
jobs=${WEFT_BENCH_JOBS:-20000}
depth=${WEFT_BENCH_DEPTH:-1000000}
work=$(mktemp -d)
sink_port=18571
export WEFT_MASTER_KEY_FILE=$work/master.key WEFT_LOG=warn
pids=()
schema=""

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
drop_schema() {
  [[ -n "$schema" ]] && psql "$database" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
  schema=""
}
cleanup() { stop_all; kill "${sink_pid:-}" 2>/dev/null || true; drop_schema; rm -rf "$work"; }
trap cleanup EXIT

"$sink" 127.0.0.1:$sink_port &
sink_pid=$!

# A fresh schema with the recipe of `kind`; sets $url and $recipe.
fresh_platform() {
  local kind=$1
  drop_schema
  schema="weft_scale_$$_$RANDOM"
  psql "$database" -qc "CREATE SCHEMA $schema" >/dev/null
  local separator='?'; [[ "$database" == *\?* ]] && separator='&'
  url="${database}${separator}options=-csearch_path%3D$schema"
  "$weft" db migrate --database "$url" >/dev/null
  case $kind in
    compute) source="name: Compute
trigger:
  webhook: { path: compute }
steps:
  - id: note
    set: { seen: '{{ trigger.body.n }}' }" ;;
    remote) source="name: Remote
trigger:
  webhook: { path: remote }
steps:
  - id: call
    action: http.request
    input: { method: POST, url: 'http://127.0.0.1:$sink_port/work?ms=50', body: { n: '{{ trigger.body.n }}' } }" ;;
  esac
  # The recipe is saved as a web process would: through the API of a short-lived one.
  "$weft" serve --role web --listen 127.0.0.1:18570 --database "$url" 2>"$work/web.log" &
  local web=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18570/healthz >/dev/null && break; sleep 0.1; done
  echo 'a bench password' | "$weft" admin create-user --email bench@example.com --name Bench --password-stdin --database "$url" >/dev/null
  local token; token=$("$weft" admin create-token --email bench@example.com --database "$url")
  curl -sf -H "Authorization: Bearer $token" --data-binary "$source" http://127.0.0.1:18570/api/v1/recipes >/dev/null
  kill $web; wait $web 2>/dev/null || true
  recipe=$(psql "$url" -tAc "SELECT id FROM recipes LIMIT 1")
}

# Writes `count` queued jobs of $recipe straight into the store.
queue_jobs() {
  psql "$url" -qc "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after, workspace_id)
    SELECT gen_random_uuid()::text, r.id, r.name, r.current_version, 'queued', jsonb_build_object('body', jsonb_build_object('n', g)), 0,
           now() - interval '1 hour' + g * interval '1 microsecond', now() - interval '1 hour' + g * interval '1 microsecond', 'default'
    FROM recipes r, generate_series(1, $1) g; ANALYZE jobs" >/dev/null
}

unfinished() { psql "$url" -tAc "SELECT count(*) FROM jobs WHERE status IN ('queued', 'waiting', 'running')"; }

# Starts `n` worker processes with extra options.
start_workers() {
  local n=$1; shift
  for i in $(seq "$n"); do
    "$weft" serve --role worker --listen 127.0.0.1:$((18580 + i)) --database "$url" --allow-private-network "$@" 2>>"$work/workers.log" &
    pids+=($!)
  done
}

echo "== throughput against worker processes ($jobs jobs each run; $(nproc) cores, PostgreSQL on the same machine)"
for kind in compute remote; do
  for n in 1 2 4; do
    fresh_platform $kind
    queue_jobs "$jobs"
    options=()
    [[ $kind == remote ]] && options=(--workers 16)
    started=$(date +%s.%N)
    start_workers "$n" "${options[@]}"
    while [[ $(unfinished) != 0 ]]; do sleep 0.1; done
    ended=$(date +%s.%N)
    stop_all
    failed=$(psql "$url" -tAc "SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
    echo "$kind, $n worker process(es): $(python3 -c "print(round($jobs / ($ended - $started)))") jobs/s ($failed not succeeded)"
  done
done

echo "== the queue with $depth queued jobs"
fresh_platform compute
queue_jobs "$depth"
pick="SELECT j.id, j.recipe_id, r.max_running FROM jobs j LEFT JOIN recipes r ON r.id = j.recipe_id
 WHERE j.status IN ('queued', 'waiting', 'running')
 AND ((j.status IN ('queued', 'waiting') AND j.run_after <= now()) OR (j.status = 'running' AND j.lease_until < now()))
 AND (r.max_running IS NULL OR (SELECT COUNT(*) FROM jobs k WHERE k.recipe_id = j.recipe_id AND k.status IN ('queued', 'waiting', 'running') AND k.status = 'running' AND k.lease_until >= now()) < r.max_running)
 ORDER BY j.run_after LIMIT 1 FOR UPDATE OF j SKIP LOCKED"
for run in 1 2 3; do
  psql "$url" -tAc "EXPLAIN (ANALYZE, COSTS OFF) $pick" | grep -E "Index Scan using jobs_due|Execution Time" | sed 's/^ */  /'
done
echo "without the jobs_due index:"
psql "$url" -qc "BEGIN; DROP INDEX jobs_due; EXPLAIN (ANALYZE, COSTS OFF) $pick; ROLLBACK" | grep -E "Sort Method|Seq Scan on jobs|Execution Time" | sed 's/^ */  /'
drained=20000
started=$(date +%s.%N)
start_workers 1
while (( $(unfinished) > depth - drained )); do sleep 0.1; done
ended=$(date +%s.%N)
stop_all
echo "one worker process at a depth of $depth: $(python3 -c "print(round($drained / ($ended - $started)))") jobs/s over the first $drained"
