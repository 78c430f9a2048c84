"""GET /health: is this region able to serve? 200 when its reader and its Redis answer, 503 naming
what did not. Reports the region, the reader's role (writer or replica, from pg_is_in_recovery()),
its replication lag, where reads go, and the app version with the schema range its generation
works with (app/generations.py). The writer is not probed: a region keeps
serving reads while the writer is far away or switching over, and Route 53 health checks call this."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.generations import GENERATIONS
from app.pools import describe_dsn
from app.runtime import Runtime, runtime

# Lag is 0 when the replica has replayed all it received; otherwise the age of the last replayed
# transaction. `streaming` is false when the standby has no live WAL receiver (cut off from the
# primary), when its data may be old however small the lag looks.
READER_STATE = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN NOT pg_is_in_recovery() THEN 0.0
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0.0
            ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0.0)
       END::float8 AS lag_seconds,
       CASE WHEN pg_is_in_recovery()
            THEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') END AS streaming
"""

router = APIRouter(tags=["health"])


async def _database(rt: Runtime) -> dict[str, Any]:
    pool = await rt.readers.pool()
    async with pool.connection() as conn:
        row = await (await conn.execute(READER_STATE)).fetchone()
    return {"role": "replica" if row["in_recovery"] else "writer",
            "replication_lag_seconds": round(float(row["lag_seconds"]), 3),
            "streaming": row["streaming"]}


async def _redis(rt: Runtime) -> None:
    await rt.redis.ping()


async def _bounded(coro: Any, seconds: float) -> tuple[Any, str | None]:
    try:
        return await asyncio.wait_for(coro, seconds), None
    except TimeoutError:
        return None, f"no answer within {seconds:g}s"
    except Exception as exc:  # any failure of a dependency is a reason to report, not to crash
        return None, f"{type(exc).__name__}: {str(exc).strip() or 'failed'}"


@router.get("/health", responses={503: {"description": "the reader or Redis is not answering"}})
async def health(rt: Annotated[Runtime, Depends(runtime)]) -> JSONResponse:
    """Region, database role, replication lag, version; 503 with the reasons when unhealthy."""
    timeout = rt.settings.health_timeout_seconds
    (db, db_error), (_, redis_error) = await asyncio.gather(
        _bounded(_database(rt), timeout), _bounded(_redis(rt), timeout))
    reasons = {}
    if db_error:
        reasons["database"] = db_error
    if redis_error:
        reasons["redis"] = redis_error
    choice = rt.readers.choice
    body = {
        "status": "ok" if not reasons else "unavailable",
        "region": rt.settings.region,
        "version": rt.settings.app_version,
        "app": GENERATIONS[rt.settings.app_generation].to_json(),
        "role": db["role"] if db else None,
        "replication_lag_seconds": db["replication_lag_seconds"] if db else None,
        "replication_streaming": db["streaming"] if db else None,
        "reader": {**describe_dsn(choice.dsn), "source": choice.source} if choice else None,
        "checks": {"database": db_error or "ok", "redis": redis_error or "ok"},
        "reasons": reasons,
    }
    return JSONResponse(body, status_code=200 if not reasons else 503)
