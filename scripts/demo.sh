#!/usr/bin/env bash
# The demo: the "before" world with 1M players under live player traffic; the whole programme's
# plan; stand up and attach Tokyo and Frankfurt while players play; latency and lost-write reports;
# roll Frankfurt's secondary back.
set -euo pipefail
cd "$(dirname "$0")/.."
M=".venv/bin/migrate"
export MIGRATE_STATE="${MIGRATE_STATE:-.migrate/demo-state.db}"
PLAYERS="${PLAYERS:-1000000}"
RATE="${RATE:-30}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
mkdir -p .migrate

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

say "Players keep playing in the background while the regions are built"
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

say "Status: phases, lock, replication lag per region"
$M status

say "Stop the background players and check every acknowledged write against the database"
kill -TERM "$LOAD_PID"
wait "$LOAD_PID" && LOAD_RC=0 || LOAD_RC=$?
trap - EXIT
cat .migrate/load-during.txt

say "Roll back eu-central-1's secondary"
$M phase rollback attach-secondary --region eu-central-1
$M status

say "Journal (last 12 events)"
$M history --limit 12

say "What happened"
.venv/bin/python - <<'PY'
import json
base = json.load(open(".migrate/load-baseline.json"))
during = json.load(open(".migrate/load-during.json"))
print("Baseline p95 per geography (all requests, through the WAN links to us-east-1):")
for geo in ("apac", "na", "eu"):
    row = base["per_geography"][geo]["all"]
    print(f"  {geo:5} p50 {row['p50_ms']:7.1f} ms   p95 {row['p95_ms']:7.1f} ms   ({row['count']} requests)")
led = during["ledger"]
errors = sum(during["errors_by_kind"].values())
print(f"Load while standing up and attaching two regions: {during['requests']['finished']} requests, "
      f"{errors} errors, {led['acknowledged']} acknowledged writes; the latest acknowledged value of "
      f"each of {led['checked']} profiles/scores checked in the database: {led['found']} found, "
      f"{led['lost']} lost, {led['unknown']} unknown.")
PY
cat <<MSG
- Built the lab and measured the baseline: APAC players pay the ≈170 ms round trip to us-east-1.
- Stood up Tokyo and Frankfurt at zero traffic and attached their secondaries while players played:
  slot, pg_basebackup through the WAN, catch-up, every chunk of players checksummed at one LSN,
  reads pointed at the local replica. No acknowledged write was lost (exit $LOAD_RC of the load run).
- Rolled Frankfurt's secondary back: reads back to the writer, standby stopped, data removed, slot dropped.
- The lab is still up: \`$M lab status\`; remove it with \`$M lab down\`.
MSG
exit "$LOAD_RC"
