"""One conformance suite for every StateStore backend: what the runner and the CLI may rely on."""

from __future__ import annotations

import json

import multiprocessing
import multiprocessing.synchronize
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta

import pytest

from migrate.engine.state import Lock, open_store
from migrate.errors import LockHeld, LockLost, LockNotFound, StateStoreError
from migrate.lab.pg import free_port

LOCK = {"holder": "alice@host:123", "operation": "phase run attach-secondary --region ap-northeast-1",
        "run_id": "run-1"}
OTHER = {"holder": "bob@host:456", "operation": "phase run cutover", "run_id": "run-2"}
SHORT_TTL = 0.2


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """The URL of a fresh, empty store of each backend (a `migrate --state` value)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'migrate.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def open_another(store_url):
    """Open more stores on the same URL, as separate runs would; closed after the test."""
    opened = []

    def make():
        opened.append(open_store(store_url))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def append_many(url: str, count: int, start: multiprocessing.synchronize.Barrier,
                results: multiprocessing.Queue) -> None:
    """A spawned child: wait for its siblings, open the store (maybe creating it) and append."""
    start.wait()
    try:
        child = open_store(url)
        results.put([child.append("lab", "tick", actor="child@host", data={"i": i}).serial
                     for i in range(count)])
        child.close()
    except Exception as exc:  # report it instead of leaving the parent waiting for a result
        results.put(repr(exc))


# ---- journal -----------------------------------------------------------------------------------


def test_append_numbers_events_from_one_per_environment(store):
    assert [store.append("lab", "step_started", actor="a@h").serial for _ in range(3)] == [1, 2, 3]
    assert store.append("aws", "step_started", actor="a@h").serial == 1
    assert store.append("lab", "step_succeeded", actor="a@h").serial == 4


def test_appended_event_carries_its_fields_and_a_utc_time(store):
    before = time.time()
    event = store.append("lab", "step_succeeded", phase="attach-secondary", region="ap-northeast-1",
                         step="create-cluster", run_id="run-1", actor="alice@host",
                         data={"cluster": "c-1"})
    assert (event.env, event.kind, event.phase, event.region, event.step, event.run_id,
            event.actor) == ("lab", "step_succeeded", "attach-secondary", "ap-northeast-1",
                             "create-cluster", "run-1", "alice@host")
    assert event.at.utcoffset() == timedelta(0)
    assert before - 1 <= event.at.timestamp() <= time.time() + 1
    assert store.events("lab") == [event]


def test_optional_fields_default_to_none_and_data_to_an_empty_dict(store):
    event = store.append("lab", "operator_request", actor="bob@host")
    assert (event.phase, event.region, event.step, event.run_id, event.data) == (
        None, None, None, None, {})
    assert store.events("lab")[0].data == {}


def test_data_round_trips_as_json(store):
    data = {"ids": ["a", "b"], "nested": {"n": 1, "f": 2.5, "none": None, "ok": True},
            "empty": [], "text": "héllo \"quoted\""}
    assert store.append("lab", "step_succeeded", actor="a@h", data=data).data == data
    assert store.events("lab")[0].data == data


def test_secrets_in_event_data_are_masked_before_they_are_stored(store):
    failed = {"error": "connection to postgresql://game:hunter2-long@writer/game failed",
              "password": "hunter2-long", "hint": "check PGPASSWORD=hunter2-long"}
    appended = store.append("lab", "step_failed", actor="a@h", data=failed)
    for event in (appended, store.events("lab")[0]):
        assert "hunter2-long" not in json.dumps(event.data)
        assert event.data["error"] == "connection to postgresql://game:***@writer/game failed"


@pytest.mark.parametrize("bad", [object(), float("nan")], ids=["object", "nan"])
def test_data_that_is_not_json_is_refused_and_nothing_is_written(store, bad):
    with pytest.raises((TypeError, ValueError)):
        store.append("lab", "step_succeeded", actor="a@h", data={"value": bad})
    assert store.last_serial("lab") == 0


def test_events_after_a_serial_returns_only_newer_events_in_order(store):
    for i in range(5):
        store.append("lab", "tick", actor="a@h", data={"i": i})
    store.append("aws", "tick", actor="a@h")
    assert [e.serial for e in store.events("lab")] == [1, 2, 3, 4, 5]
    assert [(e.serial, e.data["i"]) for e in store.events("lab", after=3)] == [(4, 3), (5, 4)]
    assert store.events("lab", after=5) == []
    assert store.events("nowhere") == []


def test_last_serial_is_zero_on_an_empty_journal_then_the_newest(store):
    assert store.last_serial("lab") == 0
    store.append("lab", "tick", actor="a@h")
    store.append("lab", "tick", actor="a@h")
    assert store.last_serial("lab") == 2
    assert store.last_serial("aws") == 0


def test_events_are_visible_to_another_store_once_append_returns(store, open_another):
    event = store.append("lab", "tick", actor="a@h")
    assert open_another().events("lab") == [event]


def test_concurrent_appends_from_threads_get_unique_gap_free_serials(store):
    def work(_):
        return [store.append("lab", "tick", actor="t@h").serial for _ in range(20)]

    with ThreadPoolExecutor(8) as pool:
        per_thread = list(pool.map(work, range(8)))
    assert all(serials == sorted(serials) for serials in per_thread)
    assert sorted(s for serials in per_thread for s in serials) == list(range(1, 161))
    assert [e.serial for e in store.events("lab")] == list(range(1, 161))


def test_processes_creating_and_appending_at_once_get_unique_gap_free_serials(store_url):
    # No `store` fixture: the children race to create the schema as well.
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(4), ctx.Queue()
    children = [ctx.Process(target=append_many, args=(store_url, 50, start, results))
                for _ in range(4)]
    for child in children:
        child.start()
    per_process = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert [r for r in per_process if isinstance(r, str)] == []
    assert all(serials == sorted(serials) for serials in per_process)
    assert sorted(s for serials in per_process for s in serials) == list(range(1, 201))
    check = open_store(store_url)
    try:
        assert [e.serial for e in check.events("lab")] == list(range(1, 201))
    finally:
        check.close()


# ---- lock --------------------------------------------------------------------------------------


def test_acquire_on_a_free_environment_returns_a_lease(store):
    before = time.time()
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    assert isinstance(lock, Lock)
    assert uuid.UUID(hex=lock.lock_id).version == 4 and lock.lock_id == uuid.UUID(lock.lock_id).hex
    assert (lock.env, lock.holder, lock.operation, lock.run_id) == (
        "lab", LOCK["holder"], LOCK["operation"], LOCK["run_id"])
    assert lock.acquired_at.utcoffset() == timedelta(0)
    assert abs(lock.acquired_at.timestamp() - before) < 5
    assert lock.heartbeat_at == lock.acquired_at
    assert lock.expires_at == lock.acquired_at + timedelta(seconds=30)
    assert store.current_lock("lab") == lock


def test_each_acquire_gets_a_fresh_lock_id(store):
    first = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    store.release_lock(first.lock_id)
    assert store.acquire_lock("lab", ttl_seconds=30, **LOCK).lock_id != first.lock_id


def test_second_acquire_while_held_raises_lock_held_naming_the_holder(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    with pytest.raises(LockHeld) as caught:
        store.acquire_lock("lab", ttl_seconds=30, **OTHER)
    err = caught.value
    since = lock.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert err.message == (f"environment 'lab' is locked by alice@host:123 (phase run "
                           f"attach-secondary --region ap-northeast-1) since {since}; "
                           f"lock id {lock.lock_id}")
    assert f"migrate unlock --force {lock.lock_id}" in err.hint
    assert err.details["holder"] == LOCK["holder"]
    assert err.details["operation"] == LOCK["operation"]
    assert err.details["lock_id"] == lock.lock_id
    assert err.details["acquired_at"] == since
    assert err.details["expires_at"] == lock.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store.current_lock("lab") == lock


def test_the_same_run_cannot_acquire_twice(store):
    store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    with pytest.raises(LockHeld):
        store.acquire_lock("lab", ttl_seconds=30, **LOCK)


def test_locks_of_different_environments_are_independent(store):
    lab = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    aws = store.acquire_lock("aws", ttl_seconds=30, **OTHER)
    assert store.current_lock("lab") == lab and store.current_lock("aws") == aws


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(store):
    old = store.acquire_lock("lab", ttl_seconds=SHORT_TTL, **LOCK)
    time.sleep(SHORT_TTL + 0.1)
    new = store.acquire_lock("lab", ttl_seconds=30, **OTHER)
    assert new.lock_id != old.lock_id and new.holder == OTHER["holder"]
    assert store.current_lock("lab") == new
    with pytest.raises(LockLost) as caught:
        store.heartbeat(old.lock_id, 30)
    assert old.lock_id in caught.value.message and "taken over by bob@host:456" in caught.value.message
    assert store.current_lock("lab") == new


def test_heartbeat_extends_expiry_and_heartbeat_time(store):
    lock = store.acquire_lock("lab", ttl_seconds=SHORT_TTL, **LOCK)
    time.sleep(0.05)
    beaten = store.heartbeat(lock.lock_id, 30)
    assert beaten.lock_id == lock.lock_id and beaten.acquired_at == lock.acquired_at
    assert beaten.heartbeat_at > lock.heartbeat_at
    assert beaten.expires_at == beaten.heartbeat_at + timedelta(seconds=30)
    time.sleep(SHORT_TTL + 0.1)
    assert store.current_lock("lab") == beaten
    with pytest.raises(LockHeld):
        store.acquire_lock("lab", ttl_seconds=30, **OTHER)


def test_heartbeat_revives_an_expired_lease_nobody_took(store):
    lock = store.acquire_lock("lab", ttl_seconds=SHORT_TTL, **LOCK)
    time.sleep(SHORT_TTL + 0.1)
    assert store.current_lock("lab") is None
    assert store.heartbeat(lock.lock_id, 30).lock_id == lock.lock_id
    assert store.current_lock("lab").lock_id == lock.lock_id


def test_heartbeat_on_a_force_unlocked_lease_raises_lock_lost(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    store.force_unlock("lab", lock.lock_id)
    with pytest.raises(LockLost) as caught:
        store.heartbeat(lock.lock_id, 30)
    assert "force-unlocked" in caught.value.message
    assert caught.value.details["lock_id"] == lock.lock_id


def test_heartbeat_on_an_unknown_lock_id_raises_lock_lost(store):
    with pytest.raises(LockLost):
        store.heartbeat(uuid.uuid4().hex, 30)


def test_release_frees_the_environment(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    store.release_lock(lock.lock_id)
    assert store.current_lock("lab") is None
    assert store.acquire_lock("lab", ttl_seconds=30, **OTHER).holder == OTHER["holder"]


def test_releasing_twice_or_an_unknown_id_is_a_no_op(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    store.release_lock(lock.lock_id)
    store.release_lock(lock.lock_id)
    store.release_lock(uuid.uuid4().hex)
    assert store.current_lock("lab") is None


def test_releasing_a_taken_over_lease_leaves_the_new_holder_locked(store):
    old = store.acquire_lock("lab", ttl_seconds=SHORT_TTL, **LOCK)
    time.sleep(SHORT_TTL + 0.1)
    new = store.acquire_lock("lab", ttl_seconds=30, **OTHER)
    store.release_lock(old.lock_id)
    assert store.current_lock("lab") == new


def test_current_lock_is_none_when_free_or_expired(store):
    assert store.current_lock("lab") is None
    store.acquire_lock("lab", ttl_seconds=SHORT_TTL, **LOCK)
    time.sleep(SHORT_TTL + 0.1)
    assert store.current_lock("lab") is None


def test_force_unlock_breaks_the_lease_and_returns_it(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    assert store.force_unlock("lab", lock.lock_id) == lock
    assert store.current_lock("lab") is None
    assert store.acquire_lock("lab", ttl_seconds=30, **OTHER).holder == OTHER["holder"]


def test_force_unlock_works_from_another_process_store(store, open_another):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    assert open_another().force_unlock("lab", lock.lock_id) == lock
    assert store.current_lock("lab") is None


def test_force_unlock_of_an_unknown_id_raises_lock_not_found_and_keeps_the_lease(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    with pytest.raises(LockNotFound) as caught:
        store.force_unlock("lab", "0" * 32)
    assert "0" * 32 in caught.value.message and lock.lock_id in caught.value.message
    with pytest.raises(LockNotFound):
        store.force_unlock("aws", lock.lock_id)
    assert store.current_lock("lab") == lock


def test_force_unlock_twice_raises_lock_not_found(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    store.force_unlock("lab", lock.lock_id)
    with pytest.raises(LockNotFound):
        store.force_unlock("lab", lock.lock_id)


def test_racing_acquirers_exactly_one_wins(store, open_another):
    stores = [open_another() for _ in range(8)]
    barrier = threading.Barrier(len(stores))

    def race(i):
        barrier.wait()
        try:
            return stores[i].acquire_lock("lab", ttl_seconds=30, holder=f"h{i}", operation="race",
                                          run_id=f"run-{i}")
        except LockHeld:
            return None

    with ThreadPoolExecutor(len(stores)) as pool:
        winners = [lock for lock in pool.map(race, range(len(stores))) if lock is not None]
    assert len(winners) == 1
    assert store.current_lock("lab") == winners[0]


def test_racing_acquirers_sharing_one_store_exactly_one_wins(store):
    barrier = threading.Barrier(8)

    def race(i):
        barrier.wait()
        try:
            return store.acquire_lock("lab", ttl_seconds=30, holder=f"h{i}", operation="race",
                                      run_id=f"run-{i}")
        except LockHeld:
            return None

    with ThreadPoolExecutor(8) as pool:
        assert sum(lock is not None for lock in pool.map(race, range(8))) == 1


def test_lock_times_are_utc(store):
    lock = store.acquire_lock("lab", ttl_seconds=30, **LOCK)
    for at in (lock.acquired_at, lock.heartbeat_at, lock.expires_at,
               store.current_lock("lab").expires_at, store.heartbeat(lock.lock_id, 30).expires_at):
        assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
        assert at.astimezone(UTC) == at


def test_a_closed_store_refuses_further_calls(store_url):
    closed = open_store(store_url)
    closed.close()
    with pytest.raises(StateStoreError):
        closed.last_serial("lab")


# ---- unreachable backends (one per backend, so not parametrised) --------------------------------


def test_postgres_at_an_unreachable_url_raises_state_store_error_naming_host_and_port():
    port = free_port()  # nothing listens there
    with pytest.raises(StateStoreError) as caught:
        open_store(f"postgresql://someone:secret@127.0.0.1:{port}/migrate")
    message = caught.value.message
    assert f"127.0.0.1:{port}" in message
    assert "\n" not in message and "secret" not in message
    assert "Connection refused" in message


def test_sqlite_in_an_invalid_place_raises_state_store_error(tmp_path):
    not_a_folder = tmp_path / "plain-file"
    not_a_folder.write_text("")
    with pytest.raises(StateStoreError) as caught:
        open_store(f"sqlite:///{not_a_folder / 'state' / 'migrate.db'}")
    assert str(not_a_folder) in caught.value.message
    assert "\n" not in caught.value.message


def test_sqlite_at_a_path_that_is_a_folder_raises_state_store_error(tmp_path):
    with pytest.raises(StateStoreError) as caught:
        open_store(str(tmp_path))
    assert str(tmp_path) in caught.value.message
