#!/usr/bin/env bash
# The demo: the "before" world with 1M players under live player traffic; the whole programme's
# plan; stand up and attach Tokyo and Frankfurt while players play; shadow APAC's reads to Tokyo and
# shift APAC's players to Tokyo step by step with gates; expand the schema; APAC p95 before and after,
# measured in this run; lost-write check; roll Frankfurt's secondary back.
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

say "The whole programme, as a reviewer reads it (exit 2 = changes pending)"
$M plan --format markdown > .migrate/plan.md || [ $? -eq 2 ]
grep -E '^(## |### )' .migrate/plan.md
echo "… (full plan with every action, check and rollback in .migrate/plan.md, $(wc -l < .migrate/plan.md) lines)"

say "Baseline: players at the 60/25/15 mix, all served by us-east-1 (20 s at $RATE req/s)"
$M lab load --duration 20 --rate "$RATE" --out .migrate/load-baseline.json

say "Players keep playing in the background while the regions are built and APAC shifts"
$M lab load --duration 900 --rate "$RATE" --out .migrate/load-during.json > .migrate/load-during.txt 2>&1 &
LOAD_PID=$!
trap 'kill -TERM $LOAD_PID 2>/dev/null || true' EXIT
sleep 3

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

say "Shift APAC to Tokyo: APAC's pool 1 → 5 → 25 → 50 %, bake + gate after each, then latency records"
$M phase run shift-traffic --region ap-northeast-1 --yes

say "Expand the schema for home-region writers while players play (squawk-linted, one revision at a time, then the handle backfill, paused while a secondary lags)"
$M phase run expand-schema --dry-run || [ $? -eq 2 ]
$M phase run expand-schema --yes

say "Status: phases, last gates, replication lag, routing per geography, app generation per region"
$M status

say "Stop the background players and check every acknowledged write against the database"
kill -TERM "$LOAD_PID"
wait "$LOAD_PID" && LOAD_RC=0 || LOAD_RC=$?
trap - EXIT
cat .migrate/load-during.txt

say "After the shift: the same players at the same rate, APAC now answered by Tokyo (20 s at $RATE req/s)"
$M lab load --duration 20 --rate "$RATE" --out .migrate/load-after.json

say "Roll back eu-central-1's secondary"
$M phase rollback attach-secondary --region eu-central-1
$M status

say "Journal (last 12 events)"
$M history --limit 12

say "What happened"
.venv/bin/python - <<'PY'
import json
base = json.load(open(".migrate/load-baseline.json"))
after = json.load(open(".migrate/load-after.json"))
during = json.load(open(".migrate/load-during.json"))
print("p95 per geography and request type, before (all players on us-east-1) and after the APAC shift, same run:")
print(f"  {'geography':9} {'requests':20} {'before p95':>11} {'after p95':>10}")
rows = (("apac", "all"), ("apac", "profile_read"), ("apac", "leaderboard_regional"), ("apac", "profile_write"),
        ("apac", "score_submit"), ("na", "all"), ("eu", "all"))
for geo, kind in rows:
    b = base["per_geography"][geo].get(kind, {})
    a = after["per_geography"][geo].get(kind, {})
    print(f"  {geo:9} {kind:20} {b.get('p95_ms', float('nan')):8.1f} ms {a.get('p95_ms', float('nan')):7.1f} ms")
print("  (reads stay in Tokyo; each write still crosses to the us-east-1 writer, once, until cutover)")
led = during["ledger"]
errors = sum(during["errors_by_kind"].values())
print(f"Load while standing up and attaching two regions, shadowing and shifting APAC, expanding the schema: "
      f"{during['requests']['finished']} requests, "
      f"{errors} errors, {led['acknowledged']} acknowledged writes; the latest acknowledged value of "
      f"each of {led['checked']} profiles/scores checked in the database: {led['found']} found, "
      f"{led['lost']} lost, {led['unknown']} unknown.")
PY
cat <<MSG
- Built the lab and measured the baseline: APAC players pay the ≈170 ms round trip to us-east-1.
- Stood up Tokyo and Frankfurt at zero traffic and attached their secondaries while players played:
  slot, pg_basebackup through the WAN, catch-up, every chunk of players checksummed at one LSN,
  reads pointed at the local replica. No acknowledged write was lost (exit $LOAD_RC of the load run).
- Shadowed APAC's reads to Tokyo (answers diffed three ways) and shifted APAC's pool to Tokyo with a
  gate after every step; EU and NA players never moved (their own pools). APAC reads are now served
  in Tokyo; writes still cross the Pacific to the us-east-1 writer until cutover.
- Expanded the schema under the same load (home epoch, per-home id blocks, the handle authority and
  its backfill, the write fence, installed and inactive): every region's v1 app kept working.
- Rolled Frankfurt's secondary back: reads back to the writer, standby stopped, data removed, slot dropped.
- The lab is still up: \`$M lab status\`; remove it with \`$M lab down\`.
MSG
exit "$LOAD_RC"
