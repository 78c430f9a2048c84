#!/usr/bin/env bash
# Checks the machine has what the lab needs and says how to get what is missing.
set -u
missing=0
bindir=""
if command -v pg_config >/dev/null 2>&1; then bindir=$(pg_config --bindir); fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_basebackup" ]; then
  echo "missing: PostgreSQL 15 server binaries (initdb, pg_ctl, pg_basebackup)." >&2
  echo "  install: apt-get update && apt-get install -y postgresql-15  (or set MIGRATE_PG_BINDIR)" >&2
  missing=1
fi
if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
  echo "missing: a 'postgres' user (PostgreSQL refuses to run as root; the lab runs it as postgres)." >&2
  echo "  create: useradd --system --home /var/lib/postgresql postgres" >&2
  missing=1
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "note: redis-server not found; the lab's Redis (coming with the game backend) will need it." >&2
  echo "  install: apt-get update && apt-get install -y redis-server" >&2
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "missing: python3 (3.11+)." >&2; missing=1
fi
exit $missing
