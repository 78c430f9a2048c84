#!/usr/bin/env bash
# The demo: build the lab with 1M players, show the whole programme's plan, attach Tokyo and
# Frankfurt secondaries through the emulated WAN, show lag per region, roll Frankfurt back.
set -euo pipefail
cd "$(dirname "$0")/.."
M=".venv/bin/migrate"
export MIGRATE_STATE="${MIGRATE_STATE:-.migrate/demo-state.db}"
PLAYERS="${PLAYERS:-1000000}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Fresh start: remove any earlier demo lab and demo journal"
$M lab down
rm -f "$MIGRATE_STATE" "$MIGRATE_STATE"-*

say "Lab up: us-east-1 PostgreSQL 15 with $PLAYERS players, WAN proxy with the RTT matrix"
$M lab up --players "$PLAYERS"

say "The whole programme, as a reviewer reads it (exit 2 = changes pending)"
$M plan --format markdown > .migrate/plan.md || [ $? -eq 2 ]
head -n 60 .migrate/plan.md
echo "… (full plan in .migrate/plan.md, $(wc -l < .migrate/plan.md) lines)"

say "Dry run of attach-secondary for Tokyo (plan + read-only preflight)"
$M phase run attach-secondary --region ap-northeast-1 --dry-run || [ $? -eq 2 ]

say "Attach ap-northeast-1 (Tokyo) over the 145 ms link"
$M phase run attach-secondary --region ap-northeast-1 --yes

say "Attach eu-central-1 (Frankfurt) over the 90 ms link"
$M phase run attach-secondary --region eu-central-1 --yes

say "Running it again is safe: nothing to do"
$M phase run attach-secondary --region ap-northeast-1 --yes

say "Status: phases, lock, replication lag per region"
$M status

say "Roll back eu-central-1"
$M phase rollback attach-secondary --region eu-central-1

say "Status after the rollback"
$M status

say "Journal (last 15 events)"
$M history --limit 15

say "What happened"
cat <<MSG
- Built the lab: a PostgreSQL 15 primary for us-east-1 with $PLAYERS synthetic players, and the WAN proxy.
- Attached Tokyo and Frankfurt: slot, pg_basebackup through the WAN link, standby started, caught up,
  every chunk of players checksummed at one LSN against the writer, reads pointed at the local replica.
- Rolled Frankfurt back: reads back to the writer, standby stopped, its data removed, its slot dropped.
- The lab is still up (Tokyo attached): \`$M lab status\`; remove it with \`$M lab down\`.
MSG
