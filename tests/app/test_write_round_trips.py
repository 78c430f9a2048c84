"""A profile write costs one round trip to the writer, like a read does: before cutover Tokyo's app
writes across the Pacific, and every extra round trip is another ≈145 ms on APAC's write tail.

Measured, not assumed: the app reaches its database through a real WAN-proxy link with a long round
trip, and the test compares the median write with the median read in the same run (a ratio, never a
time threshold). Two round trips per write would make the ratio ≈ 2."""

from __future__ import annotations

import statistics
import time

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migrate.lab.wan_proxy import WanProxyThread
from migrate.lab.wan_spec import LinkSpec

from .conftest import US, login

RTT_MS = 150.0
SAMPLES = 9


def _through(dsn: str, port: int) -> str:
    params = conninfo_to_dict(dsn)
    params.update(host="127.0.0.1", port=str(port))
    return make_conninfo(**params)


def _median_ms(call) -> float:
    call()  # warm: the pool's connection exists and the statements are prepared
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def test_a_profile_write_is_one_round_trip_to_a_distant_writer(db, make_client):
    writer = conninfo_to_dict(db)
    link = LinkSpec(name="tokyo->us-east-1:pg", listen_port=0, target_host=writer.get("host") or "127.0.0.1",
                    target_port=int(writer.get("port") or 5432), rtt_ms=RTT_MS, jitter_ms=2.0)
    with WanProxyThread([link]) as wan:
        far = _through(db, wan.port(link.name))
        client = make_client(US, writer_dsn=far, db_timeout_seconds=5.0)
        auth = login(client, 7)
        levels = iter(range(1, 1000))

        def write():
            response = client.patch("/v1/players/7", headers=auth, json={"level": next(levels)})
            assert response.status_code == 200, response.text
            assert response.headers["X-LSN"]

        def read():
            assert client.get("/v1/players/7").status_code == 200

        write_ms, read_ms = _median_ms(write), _median_ms(read)
    # both pay the link once; a second round trip for the WAL position would double the write
    assert write_ms / read_ms < 1.5, (write_ms, read_ms)
    assert read_ms >= 0.8 * RTT_MS, read_ms  # the link really was in the way
