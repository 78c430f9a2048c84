#!/usr/bin/env bash
# The demo: the "before" world with 1M players under live player traffic; the whole programme's
# plan; stand up and attach Tokyo and Frankfurt while players play; shadow and shift APAC's players to
# Tokyo with gates; expand the schema; cut Tokyo over (it writes the players it homes); shadow, shift and
# cut over Frankfurt; p95 per geography before, during every phase and after each cutover, the players'
# longest stall during each cutover, and the lost-write check, all from this run; then the game day:
# Tokyo lost under load, evacuated, brought back.
set -euo pipefail
cd "$(dirname "$0")/.."
M=".venv/bin/migrate"
# Absolute paths: the demo's spec copy lives in .migrate/, and relative paths resolve from the spec's folder.
export MIGRATE_STATE="${MIGRATE_STATE:-$PWD/.migrate/demo-state.db}"
export MIGRATE_LAB_DIR="${MIGRATE_LAB_DIR:-$PWD/.lab}"
PLAYERS="${PLAYERS:-1000000}"
RATE="${RATE:-40}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
mkdir -p .migrate

# The shipped migration.toml as it is: its [environments.lab.shadow] sizes the shadow sample for a lab.
export MIGRATE_SPEC="$PWD/migration.toml"

say "Fresh start: remove any earlier demo lab and demo journal"
$M lab down
rm -f "$MIGRATE_STATE" "$MIGRATE_STATE"-*

say "Lab up: us-east-1 (PostgreSQL with $PLAYERS players, Redis, the game API), Route 53 + S3 on moto, WAN links"
$M lab up --players "$PLAYERS"

say "Record every write each database accepts (lab instrumentation: the one-writer checker's history)"
$M lab record-writes

say "The whole programme, as a reviewer reads it (exit 2 = changes pending)"
$M plan --format markdown > .migrate/plan.md || [ $? -eq 2 ]
grep -E '^(## |### )' .migrate/plan.md
echo "… (full plan with every action, check and rollback in .migrate/plan.md, $(wc -l < .migrate/plan.md) lines)"

say "Baseline: players at the 60/25/15 mix, all served by us-east-1 (20 s at $RATE req/s)"
$M lab load --duration 20 --rate "$RATE" --out .migrate/load-baseline.json

say "Record that as the baseline: from here every gate fails a geography whose p95 gets worse than it (+ [gates] baseline_slack_ms)"
$M baseline --seconds 20

say "Players keep playing in the background while the regions are built, APAC shifts and Tokyo cuts over"
start_load() {  # $1: name; players in the background at the same rate, until stop_load
  $M lab load --duration 3600 --rate "$RATE" --out ".migrate/load-$1.json" > ".migrate/load-$1.txt" 2>&1 &
  LOAD_PID=$!
  trap 'kill -TERM $LOAD_PID 2>/dev/null || true' EXIT
  sleep 3
}
stop_load() {  # $1: name; stops the background players and checks every acknowledged write
  kill -TERM "$LOAD_PID"
  wait "$LOAD_PID" && rc=0 || rc=$?
  trap - EXIT
  cat ".migrate/load-$1.txt"
  [ "$rc" -eq 0 ] || LOAD_RC=$rc
}
LOAD_RC=0
start_load during-tokyo

say "Dry run of stand-up-region for Tokyo (plan + read-only preflight + rehearsal)"
$M phase run stand-up-region --region ap-northeast-1 --dry-run || [ $? -eq 2 ]

for region in ap-northeast-1 eu-central-1; do
  say "Stand up $region (Redis, assets bucket, API at zero traffic, health check, weight-0 record)"
  $M phase run stand-up-region --region "$region" --yes
  say "Attach $region's secondary (pg_basebackup through the WAN link, catch up, verify, read locally)"
  $M phase run attach-secondary --region "$region" --yes
done

say "Running it again is safe: nothing to do"
$M phase run attach-secondary --region ap-northeast-1 --yes

say "Shadow traffic for Tokyo: mirror a sample of APAC reads, three-way diff (primary, primary again, Tokyo)"
$M phase run shadow-traffic --region ap-northeast-1 --yes

say "Shift APAC to Tokyo: APAC's pool 1 → 5 → 25 → 50 → 100 %, bake + gate after each, then latency records"
$M phase run shift-traffic --region ap-northeast-1 --yes

say "Tokyo's mirror has done its job (APAC is on Tokyo): stop it, the source mirrors to one region at a time"
$M phase rollback shadow-traffic --region ap-northeast-1

say "Expand the schema for home-region writers while players play (squawk-linted, one revision at a time, then the handle backfill, paused while a secondary lags)"
$M phase run expand-schema --dry-run || [ $? -eq 2 ]
$M phase run expand-schema --yes

say "Stop the players a moment: every region's app goes to v2 before the first cutover (runbooks/cutover.md: v2 claims handles at the us-east-1 authority from any home); the lab has one app process per region, where ECS would roll tasks behind the load balancer"
stop_load during-tokyo
for region in us-east-1 ap-northeast-1 eu-central-1; do
  $M lab deploy --region "$region" --app-generation 2 --yes
done
start_load during-tokyo-cutover

say "Cut Tokyo over: it becomes the writer of the players it homes (stage, fence, barrier, marker, promote, reverse stream, route, re-home); their writes are held, not failed, meanwhile"
$M phase run cutover --region ap-northeast-1 --dry-run || [ $? -eq 2 ]
$M phase run cutover --region ap-northeast-1 --yes

say "Status: phases, last gates, replication lag, routing per geography, app generation per region"
$M status

say "Stop the background players and check every acknowledged write against the databases"
stop_load during-tokyo-cutover

say "After Tokyo's cutover: the same players at the same rate, APAC read and written in Tokyo (20 s at $RATE req/s)"
$M lab load --duration 20 --rate "$RATE" --out .migrate/load-after-tokyo.json

say "Frankfurt, while players play: shadow EU's reads, shift EU's players, cut Frankfurt over"
start_load during-frankfurt
$M phase run shadow-traffic --region eu-central-1 --yes
$M phase run shift-traffic --region eu-central-1 --yes
$M phase run cutover --region eu-central-1 --yes
stop_load during-frankfurt

say "After Frankfurt's cutover: every region writes the players it homes (20 s at $RATE req/s)"
$M lab load --duration 20 --rate "$RATE" --out .migrate/load-after-frankfurt.json

say "Status and the journal (last 12 events)"
$M status
$M history --limit 12

say "What the programme did to the players (bench/programme_report.py, from this run's loads, player logs and journal)"
.venv/bin/python -m bench.programme_report --state "$MIGRATE_STATE" --lab "$MIGRATE_LAB_DIR" \
  --before .migrate/load-baseline.json --after after-tokyo=.migrate/load-after-tokyo.json \
  --after after-frankfurt=.migrate/load-after-frankfurt.json \
  --during .migrate/load-during-tokyo.json --during .migrate/load-during-tokyo-cutover.json \
  --during .migrate/load-during-frankfurt.json \
  --out .migrate/programme.json
say "Game day: Tokyo is lost under load (every WAN link cut), evacuated on detection (\`$M region evacuate ap-northeast-1\`), brought back (\`$M region return ap-northeast-1\`)"
GAMEDAY_RC=0
.venv/bin/python -m bench.gameday --lab "$MIGRATE_LAB_DIR" --rate "$RATE" --out .migrate/gameday.json || GAMEDAY_RC=$?

cat <<MSG
- Built the lab and measured the baseline: APAC players pay the ≈170 ms round trip to us-east-1.
- Stood up Tokyo and Frankfurt at zero traffic and attached their secondaries while players played:
  slot, pg_basebackup through the WAN, catch-up, every chunk of players checksummed at one LSN,
  reads pointed at the local replica.
- Shadowed each geography's reads (answers diffed three ways) and shifted its players with a gate after
  every step; the other geographies never moved (their own pools).
- Expanded the schema under the same load (home epoch, per-home id blocks, the handle authority and
  its backfill, the write fence, installed and inactive): every region's v1 app kept working.
- Cut Tokyo, then Frankfurt, over: each became the writer of the players it homes, the origin keeps a
  current copy by the reverse stream (the way back: \`$M phase rollback cutover --region …\`), the
  players' writes were held during the fence and none failed or was lost (the ledger above).
- Every region runs app v2 since before the first cutover. contract-schema, the point of no return, is
  left for after a soak (\`$M phase run contract-schema\`: home writers first, then the origin, and
  each writer's rows of other homes pruned).
- Game day: Tokyo cut off under load; APAC evacuated to us-east-1, Tokyo's home taken by the origin
  under epoch 2 (sessions refreshed, no login); Tokyo brought back and cut over again; every
  acknowledged write the origin never got is one the return listed (.migrate/gameday.json).
- The lab is still up: \`$M lab status\`; remove it with \`$M lab down\`.
MSG
[ "$LOAD_RC" -eq 0 ] || exit "$LOAD_RC"
exit "$GAMEDAY_RC"
