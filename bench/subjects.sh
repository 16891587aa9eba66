#!/usr/bin/env bash
# Data-subject requests, and the web app's reads, on a large history: 100,000 jobs, of which
# one in 1,000 holds the subject's email (in the event, in a step's output, in the job's
# output, and in a note in upper case). Times the dashboard's figures, the recipe list and a
# page of jobs; times POST /api/v1/privacy/subjects/search and …/erase, checks that the search
# found exactly the jobs that hold it, and then searches the whole database (the SQLite file
# and its WAL, or a pg_dump of the schema) for the email.
#
#   bench/subjects.sh                                              # SQLite
#   WEFT_BENCH_DATABASE=postgres://root@127.0.0.1:5432/test bench/subjects.sh
#   WEFT_BENCH_JOBS=10000 bench/subjects.sh                        # a smaller history
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin weft --example bench_load >/dev/null
weft=$PWD/target/release/weft
load=$PWD/target/release/examples/bench_load
work=$(mktemp -d)
port=18565
jobs=${WEFT_BENCH_JOBS:-100000}
every=1000
subject="Erase.Me-4711@example.com"
expected=$((jobs / every))

store_args=(--data "$work/data")
schema=""
if [[ -n "${WEFT_BENCH_DATABASE:-}" ]]; then
  schema="weft_subjects_$$"
  psql "$WEFT_BENCH_DATABASE" -qc "CREATE SCHEMA $schema" >/dev/null
  separator='?'; [[ "$WEFT_BENCH_DATABASE" == *\?* ]] && separator='&'
  store_args=(--database "${WEFT_BENCH_DATABASE}${separator}options=-csearch_path%3D$schema")
fi
cleanup() {
  kill "${server:-}" 2>/dev/null || true
  [[ -n "$schema" ]] && psql "$WEFT_BENCH_DATABASE" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# Masking off for the email's sake is not needed (emails are not masked); the history is
# kept whole so that every copy is there to find.
taskset -c 1 "$weft" serve --listen 127.0.0.1:$port "${store_args[@]}" 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
echo 'a bench password' | "$weft" admin create-user --email bench@example.com --name Bench --password-stdin "${store_args[@]}" >/dev/null
token=$("$weft" admin create-token --email bench@example.com "${store_args[@]}")
cat > crm.yaml <<'YAML'
name: CRM
trigger:
  webhook: { path: crm, mode: sync }
steps:
  - id: greet
    transform: '{to: .trigger.body.email, text: ("Hello " + .trigger.body.name)}'
  - id: answer
    respond: { status: 200, body: { ok: true } }
output: '{{ steps.greet.output.to }} greeted'
YAML
curl -sf -H "Authorization: Bearer $token" --data-binary @crm.yaml http://127.0.0.1:$port/api/v1/recipes >/dev/null
api() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }

started=$(date +%s)
taskset -c 0 "$load" http://127.0.0.1:$port/hooks/crm "$jobs" 16 "$every" "$subject"
echo "loaded $jobs jobs in $(( $(date +%s) - started )) s"
if [[ -z "$schema" ]]; then
  bytes=$(du -cb "$work"/data/weft.db* | tail -1 | cut -f1)
else
  bytes=$(psql "$WEFT_BENCH_DATABASE" -tAc "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$schema' AND c.relkind = 'r'")
fi
echo "database: $((bytes / 1024 / 1024)) MB"

# What the web app reads over this history: the dashboard's week (jobs per hour, the recipes
# failing most, the queue), the recipe list with each one's last job, a page of jobs.
for page in "dashboard?days=7" "dashboard?days=1" "recipes" "jobs?limit=50"; do
  times=""
  for run in 1 2 3; do
    times+=" $(api -o /dev/null -w '%{time_total}' http://127.0.0.1:$port/api/v1/$page)"
  done
  echo "GET /api/v1/$page (3 runs, s):$times"
done

body="{\"identifier\": \"$subject\"}"
for run in 1 2 3; do
  found=$(api --data "$body" http://127.0.0.1:$port/api/v1/privacy/subjects/search)
  echo "search $run: $(echo "$found" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["jobs_found"], "jobs found in", a["took_ms"], "ms")')"
done
count=$(echo "$found" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs_found"])')
[[ "$count" == "$expected" ]] || { echo "the search found $count jobs, not $expected"; exit 1; }
erased=$(api --data "$body" http://127.0.0.1:$port/api/v1/privacy/subjects/erase)
echo "erase: $(echo "$erased" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["jobs_erased"], "jobs,", a["values_erased"], "values in", a["took_ms"], "ms; still held by", a["ended_jobs_still_holding"], "ended jobs")')"

lower=$(echo "$subject" | tr 'A-Z' 'a-z')
if [[ -z "$schema" ]]; then
  traces=$(cat "$work"/data/weft.db* | tr 'A-Z' 'a-z' | grep -a -o -F "$lower" | wc -l || true)
  echo "traces of the email in the SQLite file and WAL: $traces"
else
  traces=$(pg_dump "${WEFT_BENCH_DATABASE}" --schema="$schema" --data-only | tr 'A-Z' 'a-z' | grep -a -o -F "$lower" | wc -l || true)
  echo "traces of the email in a pg_dump of the schema: $traces"
fi
[[ "$traces" == 0 ]] || exit 1
