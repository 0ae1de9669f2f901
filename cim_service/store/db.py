"""Database access: URLs, the synchronous SQLAlchemy engine and the service's async pool, both on psycopg 3.

One driver, psycopg 3, serves every process: pipelines, migrations, commands and the indicator engine use a
synchronous SQLAlchemy engine (:func:`make_engine`); the API uses one :class:`Database` per process, an async
``psycopg_pool`` pool opened in the app's lifespan and kept on ``app.state.db`` (the measurement behind this
choice is in ``benchmarks/RESULTS.md``). Service code never touches the driver: it calls
:meth:`Database.fetch` / ``fetchrow`` / ``fetchval`` / ``execute`` with ``$n`` placeholders, or
:meth:`Database.run` with a function of a :class:`Session` for several statements on one connection.

Every connection has a statement timeout, so no request can hold the database longer than
``CIM_STATEMENT_TIMEOUT_MS`` (:class:`QueryTimeout`). A pool whose server restarted hands out dead connections
once: calls are retried on a fresh connection, so the service survives a PostgreSQL restart without
restarting itself; a database that stays away is :class:`DatabaseUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.engine import Engine, make_url

log = logging.getLogger(__name__)
T = TypeVar("T")
APPLICATION_NAME = "minhang-cim-api"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached."""


class QueryTimeout(RuntimeError):
    """A statement ran longer than the statement timeout and was cancelled."""


class QueryError(RuntimeError):
    """The database refused a statement (the driver's error is the ``__cause__``; never shown to clients)."""


class QueryDataError(QueryError):
    """The database refused a value of a statement (SQLSTATE class 22: overflow, division by zero, bad input)."""


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the psycopg (v3) driver, for SQLAlchemy."""
    u = make_url(url)
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """Return ``url`` without a SQLAlchemy driver suffix, for psycopg and libpq tools."""
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


class Session(Protocol):
    """One pooled connection as service code sees it: statements with ``$n`` placeholders."""

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """All rows, as dicts."""

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row as a dict, or None."""

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None."""

    async def execute(self, sql: str, *args: Any) -> None:
        """Run a statement for its effect."""


class ConnectionSession:
    """:class:`Session` over a psycopg async connection (raw ``$n`` queries, binary results)."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """All rows, as dicts."""
        async with psycopg.AsyncRawCursor(self.conn, row_factory=dict_row) as cur:
            await cur.execute(sql, args, binary=True)
            return await cur.fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        async with psycopg.AsyncRawCursor(self.conn, row_factory=dict_row) as cur:
            await cur.execute(sql, args, binary=True)
            return await cur.fetchone()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None."""
        async with psycopg.AsyncRawCursor(self.conn) as cur:
            await cur.execute(sql, args, binary=True)
            row = await cur.fetchone()
            return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> None:
        """Run a statement for its effect."""
        async with psycopg.AsyncRawCursor(self.conn) as cur:
            await cur.execute(sql, args)


class Database:
    """The async connection pool of one service process, with retry on lost connections."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, statement_timeout_ms: int = 15_000,
                 acquire_timeout_s: float = 5.0):
        self.url = libpq_url(url)
        self.statement_timeout_ms = int(statement_timeout_ms)
        options = f"-c statement_timeout={self.statement_timeout_ms} -c jit=off"
        self.pool = AsyncConnectionPool(
            self.url, min_size=min_size, max_size=max_size, open=False, timeout=acquire_timeout_s,
            max_idle=300, reconnect_timeout=0,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME, "options": options},
        )

    async def open(self) -> None:
        """Open the pool (connections are made in the background; an unreachable server is not an error here)."""
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    async def run(self, fn: Callable[[Session], Awaitable[T]], *, attempts: int = 3) -> T:
        """Run ``fn(session)`` on one pooled connection, retrying on a dropped connection (e.g. a restart)."""
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                async with self.pool.connection() as conn:
                    return await fn(ConnectionSession(conn))
            except psycopg.errors.QueryCanceled as exc:
                raise QueryTimeout("statement timeout") from exc
            except psycopg.DataError as exc:
                raise QueryDataError(type(exc).__name__) from exc
            except (psycopg.ProgrammingError, psycopg.IntegrityError, psycopg.InternalError,
                    psycopg.NotSupportedError) as exc:
                raise QueryError(type(exc).__name__) from exc
            except PoolTimeout as exc:  # no connection could be made within the acquire timeout
                last = exc
                break
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                last = exc
                log.warning("database connection lost (%s); retrying (%d/%d)", type(exc).__name__, attempt + 1,
                            attempts)
                await asyncio.sleep(0.2 * (attempt + 1))
        raise DatabaseUnavailable("the database is not reachable") from last

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """All rows of ``sql`` (``$n`` placeholders bound to ``args``)."""
        return await self.run(lambda s: s.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row of ``sql``, or None."""
        return await self.run(lambda s: s.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first value of ``sql``, or None."""
        return await self.run(lambda s: s.fetchval(sql, *args))

    async def execute(self, sql: str, *args: Any) -> None:
        """Run ``sql`` for its effect."""
        await self.run(lambda s: s.execute(sql, *args))


async def listen_connection(url: str, channels: Sequence[str], application_name: str) -> psycopg.AsyncConnection:
    """A dedicated autocommit connection listening on ``channels`` (for :mod:`cim_service.store.versions`)."""
    conn = await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True,
                                                 application_name=application_name)
    for channel in channels:
        await conn.execute(f'LISTEN "{channel}"')
    return conn


@contextmanager
def _driver_errors() -> Iterator[None]:
    """Map the driver's errors of a worker-thread connection to the store's: timeout, bad data, bad query, gone."""
    try:
        yield
    except psycopg.errors.QueryCanceled as exc:
        raise QueryTimeout("statement timeout") from exc
    except psycopg.DataError as exc:
        raise QueryDataError(type(exc).__name__) from exc
    except (psycopg.ProgrammingError, psycopg.IntegrityError, psycopg.InternalError,
            psycopg.NotSupportedError) as exc:
        raise QueryError(type(exc).__name__) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise DatabaseUnavailable("the database is not reachable") from exc


def stream_rows(url: str, sql: str, args: Sequence[Any], *, batch_rows: int, statement_timeout_ms: int,
                application_name: str = "minhang-cim-export") -> Iterator[list[tuple]]:
    """Rows of ``sql`` (``$n`` placeholders) in batches of ``batch_rows``, from a server-side cursor.

    For exports run in a worker thread: one dedicated connection, one read-only transaction (so the whole
    result is one snapshot), a ``DECLARE``d cursor fetched ``batch_rows`` at a time, so memory holds one batch
    whatever the result's size. Each ``FETCH`` is bounded by ``statement_timeout_ms``. Driver errors leave as
    :class:`QueryTimeout`, :class:`QueryDataError`, :class:`QueryError` or :class:`DatabaseUnavailable`.
    """
    options = f"-c statement_timeout={int(statement_timeout_ms)} -c jit=off"
    with _driver_errors(), psycopg.connect(libpq_url(url), application_name=application_name,
                                           options=options) as conn:
        conn.read_only = True
        with conn.transaction(), psycopg.RawServerCursor(conn, "cim_export") as cur:
            cur.execute(sql, args, binary=True)
            while rows := cur.fetchmany(batch_rows):
                yield rows


def fetch_value(url: str, sql: str, args: Sequence[Any], *, statement_timeout_ms: int) -> Any:
    """The first value of ``sql`` on a short-lived connection (worker threads); errors as :func:`stream_rows`."""
    from contextlib import closing

    with closing(stream_rows(url, sql, args, batch_rows=1, statement_timeout_ms=statement_timeout_ms)) as batches:
        for rows in batches:
            return rows[0][0]
    return None


#: a ``$n`` placeholder of the statements built by ``cim_service.features.sql.Params``
_PLACEHOLDER = re.compile(r"\$(\d+)\b")
#: bytes gathered from COPY's one-row messages before they are handed on
COPY_CHUNK = 1 << 20


class CopySession:
    """One connection in one REPEATABLE READ transaction, running ``COPY (SELECT …) TO STDOUT`` statements.

    PostgreSQL takes no bound parameters in ``COPY``: each statement's values are bound (server-side, never
    spliced into SQL text) into a one-row temporary table, and the statement's ``$n`` read them from it as
    ``(SELECT a<n> FROM pg_temp.cim_copy_args)`` (an init-plan: evaluated once, usable as an index condition).
    Every statement is bounded by the connection's ``statement_timeout``; between two statements the client may
    take as long as it needs, and the snapshot stays the transaction's.
    """

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def read(self, sql: str, args: Sequence[Any], options: str) -> bytes:
        """All the bytes of ``COPY (sql) TO STDOUT WITH (options)`` (one batch: bounded by the statement)."""
        chunks = list(self.copy(sql, args, options))
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def copy(self, sql: str, args: Sequence[Any], options: str) -> Iterator[bytes]:
        """The bytes of ``COPY (sql) TO STDOUT WITH (options)``, in chunks of about :data:`COPY_CHUNK`."""
        with psycopg.RawCursor(self.conn) as cur:
            cur.execute("DROP TABLE IF EXISTS pg_temp.cim_copy_args")
            if args:
                columns = ", ".join(f"${i} AS a{i}" for i in range(1, len(args) + 1))
                cur.execute(f"CREATE TEMP TABLE cim_copy_args ON COMMIT DROP AS SELECT {columns}", list(args))
                sql = _PLACEHOLDER.sub(lambda m: f"(SELECT a{m[1]} FROM pg_temp.cim_copy_args)", sql)
        with self.conn.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH ({options})") as copy:
            chunk = bytearray()
            for data in copy:
                chunk += data
                if len(chunk) >= COPY_CHUNK:
                    yield bytes(chunk)
                    chunk.clear()
            if chunk:
                yield bytes(chunk)


@contextmanager
def copy_session(url: str, *, statement_timeout_ms: int,
                 application_name: str = "minhang-cim-export") -> Iterator[CopySession]:
    """A :class:`CopySession` on a dedicated connection (exports, in a worker thread); errors as :func:`stream_rows`."""
    options = f"-c statement_timeout={int(statement_timeout_ms)} -c jit=off -c DateStyle=ISO,YMD"
    with _driver_errors(), psycopg.connect(libpq_url(url), application_name=application_name,
                                           options=options) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            yield CopySession(conn)
