"""Shared fixtures: a throwaway PostGIS database per test session, the catalog, the real data folder.

Tests talk to a real PostgreSQL + PostGIS. The server is ``CIM_TEST_DATABASE_URL`` (any database on it:
a new one is created per session and dropped at the end) or, when unset, the project-local cluster,
which is started if needed. When PostGIS is missing the fixtures fail with what to install: no test skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from cim_service.core.catalog import Catalog, load_catalog
from cim_service.core.settings import PROJECT_ROOT, Settings
from cim_service.store.db import make_engine
from cim_service.store.localdb import LocalCluster
from cim_service.store.localserver import free_port
from cim_service.store.migrate import migrate

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def _server_url() -> str:
    url = os.environ.get("CIM_TEST_DATABASE_URL")
    if url:
        return url
    cluster = LocalCluster.from_settings(Settings(database_url=None))
    if not cluster.is_running() and cluster.port_in_use():
        # another server (e.g. another checkout's cluster) holds the default port: run ours on a free one
        cluster.port = free_port()
    return cluster.start()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real input files (``../shared/data``); their absence is a failure, not a skip."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.fail(f"real data folder missing: {SHARED_DATA} (tests read ../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The project's layer catalog."""
    return load_catalog()


class _Templates:
    """One migrated template database per server and test session; throwaway databases are copies of it.

    ``CREATE DATABASE … TEMPLATE`` copies the files of a migrated database (PostGIS, the schemas, every layer
    table) in a fraction of the time that creating PostGIS and running the migrations again takes. The template
    is migrated by ``migrate`` itself, so every copy is exactly what a fresh migrated database is.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.names: dict[str, str] = {}  # server URL -> template database name

    def _admin(self, server_url: str) -> Engine:
        server = make_url(server_url)
        return make_engine(server.set(database="postgres").render_as_string(hide_password=False),
                           isolation_level="AUTOCOMMIT")

    def template(self, server_url: str) -> str:
        """Name of the migrated template on ``server_url``, made on first use."""
        if server_url not in self.names:
            name = f"cim_template_{uuid.uuid4().hex[:10]}"
            admin = self._admin(server_url)
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            finally:
                admin.dispose()
            self.names[server_url] = name
            engine = make_engine(make_url(server_url).set(database=name).render_as_string(hide_password=False))
            try:
                migrate(engine, self.catalog)  # fails loudly (PostGISMissingError) when PostGIS is not installed
            finally:
                engine.dispose()  # a template must have no connection while it is copied
        return self.names[server_url]

    def drop_all(self) -> None:
        """Drop every template made (at the end of the session)."""
        for server_url, name in self.names.items():
            admin = self._admin(server_url)
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                admin.dispose()
        self.names.clear()


@contextmanager
def _throwaway_database(server_url: str, catalog: Catalog, tag: str, templates: _Templates | None = None
                        ) -> Iterator[str]:
    """Create a migrated database on the server of ``server_url`` (a copy of the migrated template of
    ``templates``, or migrated here without one); drop it (connections and all) afterwards."""
    server = make_url(server_url)
    name = f"cim_{tag}_{uuid.uuid4().hex[:10]}"
    template = f' TEMPLATE "{templates.template(server_url)}"' if templates else ""
    admin = make_engine(server.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        if not templates:
            engine = make_engine(url)
            try:
                migrate(engine, catalog)  # fails loudly (PostGISMissingError) when PostGIS is not installed
            finally:
                engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def throwaway_database(catalog: Catalog) -> Iterator[Callable[[str], AbstractContextManager[str]]]:
    """Factory of extra migrated databases for tests that must not share the session database.

    ``with throwaway_database("tag") as url: ...`` creates one on the session's server (a copy of the session's
    migrated template) or on ``server_url`` (migrated there: such a server may stop before the session ends)
    and drops it after.
    """
    session_server = _server_url()
    templates = _Templates(catalog)

    def make(tag: str, server_url: str | None = None) -> AbstractContextManager[str]:
        if server_url is None or server_url == session_server:
            return _throwaway_database(session_server, catalog, tag, templates)
        return _throwaway_database(server_url, catalog, tag)

    try:
        yield make
    finally:
        templates.drop_all()


@pytest.fixture(scope="session")
def database_url(throwaway_database) -> Iterator[str]:
    """URL of a fresh, migrated PostGIS database for this test session."""
    with throwaway_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """Synchronous engine on the session database."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the session database."""
    return Settings(database_url=database_url, environment="test", home=tmp_path_factory.mktemp("cim-home"))


@pytest.fixture(scope="module")
def db_url(request, throwaway_database):
    """URL of a migrated database of the test module's own (for tests that must not see other modules' rows)."""
    tag = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    with throwaway_database(tag) as url:
        yield url


@pytest.fixture(scope="module")
def db(db_url):
    """Synchronous engine on the module's database (``db_url``)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def demo_database_url(database_url: str, catalog: Catalog) -> str:
    """The session database with the small demo dataset (default seed) loaded once (see pipelines/demo).

    Every source layer then holds exactly the small demo; tests that write to a layer must not rely
    on it afterwards unless they reload it (``load_demo(engine, catalog, scale="small")`` is a no-op
    when nothing changed).
    """
    from pipelines.demo import load_demo

    eng = make_engine(database_url)
    try:
        load_demo(eng, catalog, scale="small")
    finally:
        eng.dispose()
    return database_url


@pytest.fixture(scope="session")
def local_broker(tmp_path_factory: pytest.TempPathFactory):
    """A project-local Mosquitto for this session (own folder and port, authentication on); stopped at the end."""
    from cim_service.sensing.broker import LocalBroker

    broker = LocalBroker(home=tmp_path_factory.mktemp("mosquitto"), port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mqtt_url(local_broker) -> str:
    """mqtt://cim:<password>@127.0.0.1:<port> of the session's broker."""
    return local_broker.url()
