"""The SQL of a cutover (DESIGN §5, §9), the same on the lab's PostgreSQL and on Aurora: the barrier,
the catch-up marker, handing a promoted writer its home, the reverse stream (publication and slot on
the home's writer, subscription on the origin), the forward stream that keeps a copy detached early
current (Aurora, below), and what an evacuation reads. Each function takes an open autocommit
connection; the adapters decide where it points (lab ports, Aurora endpoints) and translate errors.
The fence itself is providers/home_fence.py.

The forward stream: Aurora detaches a secondary in minutes, with no LSN for the point it stopped at,
so the AWS adapter detaches before the fence (off the players' path) and keeps the detached copy
current with a logical stream of every player from the origin, its slot made before the detach. The
stream's first changes overlap what the copy already holds: an apply-only trigger makes a re-applied
INSERT replace the row and moves aside a row that holds, for now, a handle the change gives another
(a later change in the stream gives that row its own back), so the copy converges on the origin. At
hand-over the trigger comes off players (the overlap is long past), and the origin's publication drops
the home, so the reverse stream's rows never come back."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from app.ids import HOME_REGIONS, sequence_name
from migrate.errors import TransientProviderError
from migrate.names import REGIONS
from migrate.providers.home_fence import sequence_name as fence_sequence

BARRIER_LOCK_TIMEOUT = "2s"
MARKER_SEQUENCE = "game_cutover_marker"  # expand e008


def stream_name(region: str) -> str:
    """The publication (on the home writer), its slot, and the subscription (on the origin) of `region`'s reverse stream."""
    return "home_" + region.replace("-", "_")


def forward_name(region: str) -> str:
    """The publication and slot (on the origin) and the subscription (on the detached copy) of the forward stream into `region`'s copy."""
    return "forward_" + region.replace("-", "_")


def barrier(conn: psycopg.Connection, where: str, what: str) -> dict[str, Any]:
    """After a fence: LOCK TABLE players IN SHARE MODE twice (each waits for every earlier writer),
    ending the transactions older than the fence that still block it. What it did, with
    "writable_until": the epoch time after which the database took none of the fenced home's writes.
    TransientProviderError (`what`, e.g. "origin: barrier for ap-northeast-1", at `where`) if players
    stays locked all the same: the step is safe to run again."""
    ended = 0
    fenced_at = conn.execute("SELECT now()").fetchone()[0]
    for _ in range(2):
        for _attempt in range(5):
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{BARRIER_LOCK_TIMEOUT}'")
                    conn.execute("LOCK TABLE players IN SHARE MODE")
                break
            except psycopg.errors.LockNotAvailable:
                ended += conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                    "AND xact_start < %s", (fenced_at,)).fetchone()[0]
        else:
            raise TransientProviderError(f"{what}: players stayed locked", where=where)
    return {"transactions_ended": int(ended), "writable_until": time.time()}


def set_marker(conn: psycopg.Connection) -> int:
    """On the origin after the barrier: a new value of the marker sequence (milliseconds since the
    epoch, never lower than the last), WAL-logged by setval(), so a replica that shows it has replayed
    every write committed before it. For replicas that report no replay LSN (an Aurora secondary)."""
    return int(conn.execute(f"SELECT setval('{MARKER_SEQUENCE}', greatest((extract(epoch FROM clock_timestamp()) "
                            f"* 1000)::bigint, (SELECT last_value + 1 FROM {MARKER_SEQUENCE})))").fetchone()[0])


def marker_seen(conn: psycopg.Connection, marker: int) -> bool:
    """On a replica: whether it has replayed the origin's marker `marker`."""
    return bool(conn.execute(f"SELECT last_value >= %s FROM {MARKER_SEQUENCE}", (marker,)).fetchone()[0])


def hand_over(conn: psycopg.Connection, region: str) -> None:
    """On a promoted copy of the origin: fenced for every other home by its sequence, then its own home
    (fenced, as the origin's was when it was copied) unfenced; one round trip (hand_over_sql)."""
    conn.execute(hand_over_sql(region))


def hand_over_sql(region: str) -> str:
    """hand_over's statements, in the order that keeps the copy from ever writing two homes: for a batch
    sent in one round trip (the home's writes are held meanwhile, and the copy may be a link away)."""
    fences = [f"SELECT setval('{fence_sequence(other)}', 1)" for other in REGIONS if other != region]
    return "; ".join([*fences, f"SELECT setval('{fence_sequence(region)}', 0)"])


def drop_inherited_subscriptions(conn: psycopg.Connection, keep: str | None = None) -> list[str]:
    """On a promoted copy of the origin: the origin's subscriptions, copied with its data, dropped
    without touching their slots (slot_name = NONE first): those slots belong to the origin's streams.
    `keep`: a subscription of the copy's own (its forward stream), left alone."""
    names = [row[0] for row in conn.execute("SELECT subname FROM pg_subscription WHERE subdbid = "
                                            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                                            "AND subname IS DISTINCT FROM %s", (keep,))]
    for name in names:
        _drop_keeping_slot(conn, name)
    return names


def _drop_keeping_slot(conn: psycopg.Connection, name: str) -> None:
    """Subscription `name` dropped without touching its slot on the publisher (gone, or not this subscriber's)."""
    conn.execute(f'ALTER SUBSCRIPTION "{name}" DISABLE')
    conn.execute(f'ALTER SUBSCRIPTION "{name}" SET (slot_name = NONE)')
    conn.execute(f'DROP SUBSCRIPTION "{name}"')


def filter_in_replica_identity(conn: psycopg.Connection) -> tuple[bool, str]:
    """(ok, why): players' replica identity covers home_region, the row filter's column (PostgreSQL 15
    accepts a bad filter and then fails every UPDATE on the publisher)."""
    ident, columns = conn.execute(
        "SELECT c.relreplident::text, coalesce((SELECT array_agg(a.attname::text) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = c.oid AND ((c.relreplident = 'i' AND i.indisreplident) "
        "OR (c.relreplident = 'd' AND i.indisprimary))), '{}') "
        "FROM pg_class c WHERE c.oid = 'players'::regclass").fetchone()
    if ident == "f" or "home_region" in columns:
        return True, f"replica identity {'FULL' if ident == 'f' else '(' + ', '.join(columns) + ')'} covers home_region"
    return False, f"replica identity ({', '.join(columns) or 'nothing'}) lacks home_region"


def prepare_publication(conn: psycopg.Connection, region: str) -> dict[str, Any]:
    """On the home's writer: the publication of its rows and the logical slot the origin will read; idempotent."""
    return _publish(conn, stream_name(region), f"players WHERE (home_region = '{region}')")


def _publish(conn: psycopg.Connection, name: str, tables: str) -> dict[str, Any]:
    """Publication `name` FOR TABLE `tables` and a pgoutput slot of the same name; idempotent (an existing
    publication is kept as it is)."""
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone() is None:
        conn.execute(f"CREATE PUBLICATION {name} FOR TABLE {tables}")
    slot = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                        (name,)).fetchone()
    if slot is None:
        slot = conn.execute("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                            (name,)).fetchone()
    return {"publication": name, "slot": name, "from_lsn": slot[0]}


def subscribe(conn: psycopg.Connection, region: str, source: str) -> None:
    """On the origin: the subscription reading the home writer's slot at conninfo `source`, no initial
    copy (the origin holds every row up to the marker); idempotent."""
    _subscribe(conn, stream_name(region), source)


def _subscribe(conn: psycopg.Connection, name: str, source: str, options: str = "") -> None:
    if conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone() is None:
        conn.execute(f"CREATE SUBSCRIPTION {name} CONNECTION '{source}' PUBLICATION {name} "
                     f"WITH (copy_data = false, create_slot = false, slot_name = '{name}'{options})")


def subscription_state(conn: psycopg.Connection, region: str) -> tuple[bool, bool] | None:
    """On the origin: (enabled, streaming) of the home's subscription; None when there is none."""
    row = conn.execute("SELECT s.subenabled, st.pid IS NOT NULL FROM pg_subscription s "
                       "LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL "
                       "WHERE s.subname = %s", (stream_name(region),)).fetchone()
    return (bool(row[0]), bool(row[1])) if row else None


def slot_lag_bytes(conn: psycopg.Connection, region: str) -> int | None:
    """On the home's writer: how far the origin's confirmed position is behind its WAL, in bytes."""
    got = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                       "FROM pg_replication_slots WHERE slot_name = %s", (stream_name(region),)).fetchone()
    return int(got[0]) if got and got[0] is not None else None


def current_lsn(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]


def confirmed(conn: psycopg.Connection, region: str, target: str) -> bool | None:
    """On the home's writer: whether the origin confirmed everything up to `target` on the reverse stream; None: no slot."""
    return _slot_confirmed(conn, stream_name(region), target)


def forward_confirmed(conn: psycopg.Connection, region: str, target: str) -> bool | None:
    """On the origin: whether `region`'s copy confirmed (applied and flushed) everything up to `target` on the
    forward stream; None: no slot."""
    return _slot_confirmed(conn, forward_name(region), target)


def _slot_confirmed(conn: psycopg.Connection, slot: str, target: str) -> bool | None:
    row = conn.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                       (target, slot)).fetchone()
    return None if row is None else bool(row[0])


def drop_subscription(conn: psycopg.Connection, region: str, *, publisher_alive: bool) -> None:
    """On the origin: the home's subscription dropped (with its slot when the publisher answers; detached
    from it first when it does not); idempotent."""
    name = stream_name(region)
    if conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone() is None:
        return
    if not publisher_alive:
        _drop_keeping_slot(conn, name)
    else:
        conn.execute(f"DROP SUBSCRIPTION {name}")


def drop_publication(conn: psycopg.Connection, region: str) -> None:
    """On the home's writer: the publication and its slot dropped; idempotent."""
    _unpublish(conn, stream_name(region))


def _unpublish(conn: psycopg.Connection, name: str) -> None:
    """Publication `name` and its slot dropped, its reader (a walsender still serving it) ended first; idempotent."""
    conn.execute(f"DROP PUBLICATION IF EXISTS {name}")
    for _ in range(50):
        if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,)).fetchone() is None:
            return
        # its subscriber may still be connected (or connect again): end that walsender; it releases the
        # slot as it exits
        conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                     "WHERE slot_name = %s AND active_pid IS NOT NULL", (name,))
        try:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)
    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))


def abandon_subscription(conn: psycopg.Connection, region: str) -> dict[str, Any]:
    """On the origin, the home's writer lost: how far the stream had come (the lost writer's position
    last applied, the newest write of the home held), then the subscription dropped without touching
    the lost writer's slot; idempotent (a second call reports only the newest write)."""
    name = stream_name(region)
    row = conn.execute("SELECT os.remote_lsn::text FROM pg_subscription s LEFT JOIN pg_replication_origin_status os "
                       "ON os.external_id = 'pg_' || s.oid WHERE s.subname = %s", (name,)).fetchone()
    last = conn.execute("SELECT extract(epoch FROM max(updated_at))::float8 FROM players WHERE home_region = %s",
                        (region,)).fetchone()[0]
    if row is None:
        return {"subscription": None, "confirmed_at": last}
    _drop_keeping_slot(conn, name)
    return {"subscription": name, "confirmed_lsn": row[0], "confirmed_at": last}


def recent_writes(conn: psycopg.Connection, home: str, since: float) -> dict[int, float]:
    """player id → updated_at (epoch seconds) of `home`'s rows written at or after `since`."""
    rows = conn.execute("SELECT id, extract(epoch FROM updated_at)::float8 FROM players "
                        "WHERE home_region = %s AND updated_at >= to_timestamp(%s)", (home, since)).fetchall()
    return {int(pid): float(at) for pid, at in rows}


def in_recovery(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])


# ---- the forward stream (see the module docstring) -------------------------------------------------------

REPLAY_TRIGGER = "forward_replay"  # on players and on handle_claims
FORWARD_TABLES = ("players", "handle_claims")  # handle_claims: the v1 apps' trigger (expand e007) checks renames against it
END_OVERLAP_SQL = f"DROP TRIGGER IF EXISTS {REPLAY_TRIGGER} ON players"
REPLAY_FUNCTION = """
CREATE OR REPLACE FUNCTION game_forward_replay() RETURNS trigger LANGUAGE plpgsql AS $replay$
BEGIN
    -- Fires only in the apply worker (ENABLE REPLICA), where the forward stream's first changes may be
    -- older than the row they meet: the stream goes on to the origin's present, so every row ends as
    -- the origin has it. The apply worker's search_path is empty: every name is qualified.
    IF TG_TABLE_NAME = 'handle_claims' THEN
        EXECUTE format('DELETE FROM %I.%I WHERE handle = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW.handle;
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('DELETE FROM %I.%I WHERE id = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW.id;
    END IF;
    EXECUTE format('UPDATE %I.%I SET handle = ''~replay:'' || id WHERE handle = $1 AND id <> $2',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW.handle, NEW.id;
    RETURN NEW;
END
$replay$"""


def prepare_forward(conn: psycopg.Connection, region: str) -> dict[str, Any]:
    """On the origin, before `region`'s copy is detached: a publication of every player and its slot, which
    from then on keeps every change the copy may miss; idempotent."""
    return _publish(conn, forward_name(region), ", ".join(FORWARD_TABLES))


def forward_prepared(conn: psycopg.Connection, region: str) -> bool:
    """On the origin: whether the forward stream's slot exists (made before the detach, it holds what the copy lacks)."""
    return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                        (forward_name(region),)).fetchone() is not None


def install_replay(conn: psycopg.Connection) -> None:
    """On the detached copy: the replay trigger on the forward stream's tables, firing in apply only; idempotent."""
    with conn.transaction():
        conn.execute(REPLAY_FUNCTION)
        for table, events in zip(FORWARD_TABLES, ("INSERT OR UPDATE", "INSERT")):
            if conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass",
                            (REPLAY_TRIGGER, table)).fetchone() is None:
                conn.execute(f"CREATE TRIGGER {REPLAY_TRIGGER} BEFORE {events} ON {table} "
                             f"FOR EACH ROW EXECUTE FUNCTION game_forward_replay()")
                conn.execute(f"ALTER TABLE {table} ENABLE REPLICA TRIGGER {REPLAY_TRIGGER}")


def subscribe_forward(conn: psycopg.Connection, region: str, source: str) -> None:
    """On the detached copy: the replay trigger, then the subscription reading the origin's forward slot at
    conninfo `source` from where the slot stands (no initial copy); idempotent."""
    install_replay(conn)
    # synchronous_commit on: the apply worker confirms a position once it is flushed here, and the
    # catch-up waits for that confirmation while the home's writes are held (off, it lags a WAL-writer delay)
    _subscribe(conn, forward_name(region), source, ", synchronous_commit = on")


def forward_drops_home(conn: psycopg.Connection, region: str) -> str | None:
    """On the origin, the home fenced and its rows applied on the copy: the forward stream leaves the home's
    rows out from here on (the reverse stream brings them to the origin: without this they would loop);
    idempotent. The row filter it carries now; None when the origin has no forward publication."""
    name, wanted = forward_name(region), f"(home_region <> '{region}'::text)"
    current = conn.execute("SELECT rowfilter FROM pg_publication_tables WHERE pubname = %s AND tablename = 'players'",
                           (name,)).fetchone()
    if current is None:
        return None
    if current[0] != wanted:
        conn.execute(f"ALTER PUBLICATION {name} SET TABLE players WHERE (home_region <> '{region}'), "
                     + ", ".join(FORWARD_TABLES[1:]))
    return conn.execute("SELECT rowfilter FROM pg_publication_tables WHERE pubname = %s AND tablename = 'players'",
                        (name,)).fetchone()[0]


def take_home_from_stream(origin: psycopg.Connection, copy: psycopg.Connection, region: str) -> dict[str, int]:
    """On a copy fed by the forward stream and caught up (its home fenced at the origin), in one round trip
    to the copy, which may be a link away while the home's writes are held:
    - the overlap ended: the replay trigger comes off players. From here on a conflict is a fault to see
      (the stream stops and lags), not an overlap to absorb: moving a row aside would rename one of the
      home's own players. It stays on handle_claims, where the authority's claim replaces the one the v1
      apps' trigger (expand e007) made here;
    - the player id sequences carried (a logical stream carries none), up, never down;
    - the home handed over (hand_over_sql).
    Idempotent. Returns name → the origin's id sequence value."""
    carry, carried = id_sequences_sql(origin)
    copy.execute("; ".join(part for part in (END_OVERLAP_SQL, carry, hand_over_sql(region)) if part))
    return carried


def id_sequences_sql(origin: psycopg.Connection) -> tuple[str, dict[str, int]]:
    """Read on the origin in one query: the statements that carry its player id sequences to a copy (each
    moved up, never down), and name → the origin's value (a sequence never used is left out)."""
    rows = origin.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema() "
                          "AND sequencename = ANY(%s)", ([sequence_name(home) for home in HOME_REGIONS],)).fetchall()
    values = {name: int(value) for name, value in rows if value is not None}
    statement = "; ".join(f"SELECT setval('{name}', greatest({value}, last_value)) FROM {name}"
                          for name, value in sorted(values.items()))
    return statement, values


def pause_reverse_streams(conn: psycopg.Connection) -> list[str]:
    """On the origin, before a secondary is detached: every reverse stream (another home's, `home_*`)
    disabled, so the copy inherits it disabled and never starts it. Started on the copy, an inherited
    subscription could take that home's slot while the origin's worker reconnects, and what it applied
    the origin would never get. Their slots keep every change meanwhile. The names paused."""
    return _switch_reverse_streams(conn, enable=False)


def resume_reverse_streams(conn: psycopg.Connection) -> list[str]:
    """On the origin, once the copy is detached and has dropped what it inherited: every reverse stream
    enabled again (it goes on from its slot: nothing is missed); idempotent. The names resumed."""
    return _switch_reverse_streams(conn, enable=True)


def _switch_reverse_streams(conn: psycopg.Connection, *, enable: bool) -> list[str]:
    # one with no slot (an abandon killed half way) cannot be enabled, and is being dropped anyway
    names = [row[0] for row in conn.execute(
        "SELECT subname FROM pg_subscription WHERE subenabled <> %s AND subslotname IS NOT NULL "
        "AND subname LIKE 'home\\_%%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (enable,))]
    for name in names:
        conn.execute(f'ALTER SUBSCRIPTION "{name}" {"ENABLE" if enable else "DISABLE"}')
    return names


def drop_forward(copy: psycopg.Connection | None, origin: psycopg.Connection | None, region: str) -> None:
    """The forward stream removed: on the copy (when given) its subscription, leaving the slot, and the
    replay trigger; on the origin (when given) the publication and its slot; idempotent."""
    name = forward_name(region)
    if copy is not None:
        if copy.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone():
            _drop_keeping_slot(copy, name)
        for table in FORWARD_TABLES:
            copy.execute(f"DROP TRIGGER IF EXISTS {REPLAY_TRIGGER} ON {table}")
        copy.execute("DROP FUNCTION IF EXISTS game_forward_replay()")
    if origin is not None:
        _unpublish(origin, name)
