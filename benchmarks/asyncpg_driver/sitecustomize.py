"""Benchmark only (``bench_api.py --compare-drivers``): run the service on asyncpg instead of psycopg 3.

Put this folder first on ``PYTHONPATH`` of a server process: Python imports ``sitecustomize`` at start-up, and
this one replaces :class:`cim_service.store.db.Database` by an asyncpg pool with the same interface (the pool
set-up the service used before it moved to psycopg: startup parameters, no RESET on release, retry on a lost
connection). Everything else, SQL included, is the service's own code.
"""

from __future__ import annotations

import asyncio

import asyncpg

import cim_service.store.db as store_db

_LOST = (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.CannotConnectNowError,
         asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.InterfaceError, ConnectionError, OSError)


class AsyncpgDatabase:
    """The service's ``Database`` interface over an asyncpg pool."""

    def __init__(self, url, *, min_size=1, max_size=10, statement_timeout_ms=15_000, acquire_timeout_s=5.0):
        self.url, self.min_size, self.max_size = store_db.libpq_url(url), min_size, max_size
        self.timeout = int(statement_timeout_ms)
        self.pool = None

    async def open(self):
        async def keep_session(_conn):
            """No RESET ALL on release (connections keep no session state)."""

        self.pool = await asyncpg.create_pool(
            dsn=self.url, min_size=self.min_size, max_size=self.max_size, reset=keep_session,
            max_inactive_connection_lifetime=300, command_timeout=self.timeout / 1000 + 5,
            server_settings={"application_name": store_db.APPLICATION_NAME, "statement_timeout": str(self.timeout),
                             "jit": "off"})

    async def close(self):
        await self.pool.close()

    async def run(self, fn, *, attempts=3):
        for attempt in range(attempts):
            try:
                async with self.pool.acquire() as conn:
                    return await fn(conn)
            except asyncpg.exceptions.QueryCanceledError as exc:
                raise store_db.QueryTimeout("statement timeout") from exc
            except _LOST:
                await asyncio.sleep(0.2 * (attempt + 1))
        raise store_db.DatabaseUnavailable("the database is not reachable")

    async def fetch(self, sql, *args):
        return await self.run(lambda s: s.fetch(sql, *args))

    async def fetchrow(self, sql, *args):
        return await self.run(lambda s: s.fetchrow(sql, *args))

    async def fetchval(self, sql, *args):
        return await self.run(lambda s: s.fetchval(sql, *args))

    async def execute(self, sql, *args):
        await self.run(lambda s: s.execute(sql, *args))


store_db.Database = AsyncpgDatabase
