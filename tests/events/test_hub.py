"""The hub behind ``/events`` on the real database's notifications: a subscriber that does not read is dropped
with one final ``reset`` while another that reads gets every event; one write of many datastreams is one round of
reads and never drops a subscriber that keeps up; the listener's reconnection resets every stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from cim_service.sensing.events import EventHub
from cim_service.store import observations
from cim_service.store.db import Database, libpq_url
from cim_service.store.observations import Observation
from cim_service.store.versions import VersionListener
from tests.alerts.conftest import fresh_sensor


async def _hub(url: str, queue_size: int) -> tuple[Database, VersionListener, EventHub]:
    db = Database(url, max_size=2)
    await db.open()
    listener = VersionListener(url, ping_seconds=1.0, retry_seconds=0.2)
    hub = EventHub(db, listener, queue_size=queue_size, max_subscribers=10)
    hub.install()
    await listener.start()
    assert listener.connected.is_set()
    return db, listener, hub


async def _notify(url: str, payloads: list[str], pause: float) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        for p in payloads:
            await conn.execute("SELECT pg_notify('cim_layer_changed', %s)", (p,))
            await asyncio.sleep(pause)


def test_a_slow_subscriber_is_dropped_with_a_final_reset_and_never_holds_back_the_others(database_url):
    async def run() -> None:
        db, listener, hub = await _hub(database_url, queue_size=3)
        try:
            fast = hub.subscribe(layers=["hub_test_layer"])
            slow = hub.subscribe(layers=["hub_test_layer"])
            got = []

            async def read() -> None:
                while len(got) < 10:
                    got.append(await fast.queue.get())

            reader = asyncio.create_task(read())
            await _notify(database_url, [f"hub_test_layer:{v}" for v in range(1, 11)], pause=0.02)
            await asyncio.wait_for(reader, 10)
            assert [e.data["version"] for e in got] == list(range(1, 11))
            assert [e.type for e in got] == ["layer"] * 10 and not fast.dropped
            assert slow.dropped and hub.dropped == 1 and hub.subscribers == 1
            (final,) = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
            assert final.type == "reset" and final.data["final"] is True and "too slowly" in final.data["reason"]
            # the listener's connection drops and comes back: the remaining stream is told to re-read the state
            async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn:
                await conn.execute("SELECT pg_terminate_backend(%s)", (listener.server_pid,))
            event = await asyncio.wait_for(fast.queue.get(), 20)
            assert event.type == "reset" and event.data["final"] is False
        finally:
            await hub.close()
            await listener.stop()
            await db.close()

    asyncio.run(run())


def test_one_write_of_many_datastreams_is_one_round_and_drops_nobody(database_url, demo_database_url, engine,
                                                                     depth_sensors):
    streams = [fresh_sensor(engine, depth_sensors)[0] for _ in range(5)]

    async def run() -> None:
        db, listener, hub = await _hub(demo_database_url, queue_size=1)
        try:
            sub = hub.subscribe(datastreams=streams)
            t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
            with engine.begin() as conn:
                observations.ensure_partitions(conn, {t.date()})

            def write() -> None:
                with psycopg.connect(libpq_url(demo_database_url)) as conn, conn.transaction():
                    observations.write_batch(conn, [Observation(ds, t, float(i)) for i, ds in enumerate(streams)])

            await asyncio.to_thread(write)
            events = [await asyncio.wait_for(sub.queue.get(), 10) for _ in streams]
            assert not sub.dropped
            assert sorted(e.data["datastream"] for e in events) == sorted(streams)
            assert {e.data["datastream"]: e.data["result"] for e in events} == {ds: float(i)
                                                                                 for i, ds in enumerate(streams)}
            assert {e.data["status"] for e in events} == {"ok"}
        finally:
            await hub.close()
            await listener.stop()
            await db.close()

    asyncio.run(run())


def test_one_statement_of_many_latest_values_notifies_their_ids_in_chunks_of_at_most_700(database_url):
    ids = list(range(2_000_000_001, 2_000_001_501))  # 1,500 ids of 10 digits: the longest payloads
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listener, \
            psycopg.connect(libpq_url(database_url), autocommit=True) as writer:
        listener.execute(f"LISTEN {observations.NOTIFY_CHANNEL}")
        try:
            writer.execute("INSERT INTO cim_sta.latest (datastream_id, phenomenon_time, result) "
                           "SELECT unnest(%s::int4[]), now(), 1.0", (ids,))
            payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=3)]
        finally:
            writer.execute("DELETE FROM cim_sta.latest WHERE datastream_id = ANY(%s::int4[])", (ids,))
    chunks = [observations.parse_notified_ids(p) for p in payloads]
    assert sorted(len(c) for c in chunks) == [100, 700, 700]
    assert max(len(p.encode()) for p in payloads) < 8000
    assert sorted(i for c in chunks for i in c) == ids
