"""Database access: URLs, the synchronous SQLAlchemy engine (pipelines, migrations) and the asyncpg pool (API).

The API runs on one asyncpg pool per process, opened in the app's lifespan and kept on ``app.state``.
Every connection gets a statement timeout, so no request can hold the database longer than
``CIM_STATEMENT_TIMEOUT_MS``. A pool whose server restarted hands out dead connections once:
:func:`run_with_retry` retries such a call on a fresh connection, so the service survives a
PostgreSQL restart without restarting itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

if TYPE_CHECKING:
    from cim_service.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: errors after which a call is retried once on a new connection
RETRYABLE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,
)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached."""


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the psycopg (v3) driver, for SQLAlchemy."""
    u = make_url(url)
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """Return ``url`` without a SQLAlchemy driver suffix, for asyncpg and libpq tools."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, *, statement_timeout_ms: int | None = None, **kwargs) -> Engine:
    """Create a synchronous engine (psycopg 3) with pre-ping, for pipelines, migrations and analytics."""
    connect_args: dict[str, object] = {"application_name": "minhang-cim"}
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return sa.create_engine(
        sqlalchemy_url(url), pool_pre_ping=True, connect_args=connect_args, future=True, **kwargs
    )


def engine_from_settings(settings: Settings) -> Engine:
    """Create the synchronous engine for the configured (or project-local) database."""
    return make_engine(settings.resolved_database_url())


async def _init_connection(conn: asyncpg.Connection, statement_timeout_ms: int) -> None:
    await conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}; SET jit = off")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's RESET ALL/UNLISTEN round trip (~60 µs per request).

    API connections keep no session state (settings are startup parameters; listeners live on their own
    connections); asyncpg still rolls back any open transaction before calling this.
    """


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """Open the asyncpg pool of one API process."""
    url = libpq_url(settings.resolved_database_url())
    timeout = settings.statement_timeout_ms

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn, timeout)

    return await asyncpg.create_pool(
        dsn=url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        init=init,
        reset=_keep_session,
        max_inactive_connection_lifetime=300,
        command_timeout=timeout / 1000 + 5,
        # startup parameters survive the RESET ALL asyncpg runs when a connection returns to the pool
        server_settings={"application_name": "minhang-cim-api", "statement_timeout": str(int(timeout)), "jit": "off"},
    )


async def run_with_retry(
    pool: asyncpg.Pool, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, attempts: int = 3
) -> T:
    """Run ``fn(conn)`` on a pooled connection, retrying on a dropped connection (e.g. a server restart)."""
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            async with pool.acquire() as conn:
                return await fn(conn)
        except RETRYABLE as exc:
            if isinstance(exc, TimeoutError):  # a slow query (command_timeout), not a lost connection
                raise
            last = exc
            log.warning("database connection lost (%s); retrying (%d/%d)", type(exc).__name__, attempt + 1, attempts)
            await asyncio.sleep(0.2 * (attempt + 1))
    raise DatabaseUnavailable("the database is not reachable") from last
