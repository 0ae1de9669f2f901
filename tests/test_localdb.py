"""The embedded default database: a project-local cluster created, started, stopped from the CLI."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from cim_service.core.settings import Settings
from cim_service.store.db import make_engine
from cim_service.store.localdb import LocalCluster, LocalDatabaseError, resolve_database_url
from cim_service.store.localserver import free_port


@pytest.fixture
def cluster_home():
    """A folder the `postgres` user can reach (pytest's own tmp root is private to root)."""
    home = tempfile.mkdtemp(prefix="cim-localdb-", dir="/tmp")
    os.chmod(home, 0o755)
    yield Path(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def made_cluster_home():
    """One home for the tests that start a cluster: the first start creates it (initdb + PostGIS, the slow part),
    the others start, stop and restart that cluster, as a user's checkout does."""
    home = tempfile.mkdtemp(prefix="cim-localdb-made-", dir="/tmp")
    os.chmod(home, 0o755)
    yield Path(home)
    shutil.rmtree(home, ignore_errors=True)


def _cim(args, env):
    return subprocess.run([sys.executable, "-m", "cim_service", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def test_cli_creates_starts_and_stops_a_local_postgis_cluster(made_cluster_home):
    cluster_home = made_cluster_home
    tmp_path = cluster_home
    port = free_port()
    env = {**os.environ, "CIM_HOME": str(tmp_path / "home"), "CIM_LOCAL_DB_PORT": str(port)}
    env.pop("CIM_DATABASE_URL", None)
    try:
        started = _cim(["db", "start"], env)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url == f"postgresql://cim@127.0.0.1:{port}/cim"
        eng = make_engine(url)
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT postgis_lib_version()")).scalar_one().startswith("3.")
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
            datadir = conn.execute(sa.text("SHOW data_directory")).scalar_one()
        eng.dispose()
        assert datadir == str(tmp_path / "home" / "pgdata")
        # starting again is a no-op that prints the same URL
        again = _cim(["db", "start"], env)
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == url
        status = _cim(["db", "status"], env)
        assert "running: True" in status.stdout
    finally:
        stopped = _cim(["db", "stop"], env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not LocalCluster(home=tmp_path / "home", port=port).is_running()


def test_db_start_refuses_when_a_database_url_is_configured(tmp_path):
    env = {**os.environ, "CIM_HOME": str(tmp_path), "CIM_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    res = _cim(["db", "start"], env)
    assert res.returncode == 1
    assert "CIM_DATABASE_URL is set" in res.stderr


def test_start_refuses_a_port_taken_by_another_server(cluster_home):
    tmp_path = cluster_home
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = {**os.environ, "CIM_HOME": str(tmp_path / "home"), "CIM_LOCAL_DB_PORT": str(port)}
        env.pop("CIM_DATABASE_URL", None)
        res = _cim(["db", "start"], env)
    assert res.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken by another server" in res.stderr


def test_a_stopped_cluster_restarts_on_another_port(made_cluster_home):
    cluster_home = made_cluster_home
    first, second = free_port(), free_port()
    base = {**os.environ, "CIM_HOME": str(cluster_home / "home")}
    base.pop("CIM_DATABASE_URL", None)
    try:
        assert _cim(["db", "start"], {**base, "CIM_LOCAL_DB_PORT": str(first)}).returncode == 0
        assert _cim(["db", "stop"], {**base, "CIM_LOCAL_DB_PORT": str(first)}).returncode == 0
        res = _cim(["db", "start"], {**base, "CIM_LOCAL_DB_PORT": str(second)})
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().splitlines()[-1] == f"postgresql://cim@127.0.0.1:{second}/cim"
        cluster = LocalCluster(home=cluster_home / "home", port=first)
        # the running server is found whatever port the caller assumed
        assert cluster.running_port() == second and cluster.url().endswith(f":{second}/cim")
    finally:
        _cim(["db", "stop"], {**base, "CIM_LOCAL_DB_PORT": str(second)})


def test_no_url_before_the_cluster_exists_or_runs(cluster_home):
    """The configured port names no server of ours until the cluster runs: no URL is made up from it."""
    port = free_port()
    cluster = LocalCluster(home=cluster_home / "home", port=port)
    with pytest.raises(LocalDatabaseError, match=r"does not exist yet.*cim db start"):
        cluster.url()
    status = cluster.status()
    assert status["running"] is False and status["initialised"] is False and str(port) not in str(status["url"])
    settings = Settings(database_url=None, home=cluster_home / "home", local_db_port=port)
    with pytest.raises(LocalDatabaseError, match="cim db start"):
        resolve_database_url(settings)
    env = {**os.environ, "CIM_HOME": str(cluster_home / "home"), "CIM_LOCAL_DB_PORT": str(port)}
    env.pop("CIM_DATABASE_URL", None)
    shown = _cim(["db", "status"], env)
    assert shown.returncode == 0 and "running: False" in shown.stdout and f":{port}/" not in shown.stdout
    # a command that needs the database ends in one line saying what to do, not on a made-up URL
    listed = _cim(["keys", "list"], env)
    assert listed.returncode == 1 and "cim db start" in listed.stderr and "Traceback" not in listed.stderr


def test_no_url_to_another_server_on_the_configured_port(cluster_home):
    """Another server on the default port (e.g. another checkout's cluster) is never taken for ours."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = Settings(database_url=None, home=cluster_home / "home", local_db_port=port)
        with pytest.raises(LocalDatabaseError, match=f"port {port} is held by another server"):
            resolve_database_url(settings)
        env = {**os.environ, "CIM_HOME": str(cluster_home / "home"), "CIM_LOCAL_DB_PORT": str(port)}
        env.pop("CIM_DATABASE_URL", None)
        served = _cim(["serve", "--port", str(free_port())], env)
    assert served.returncode == 1 and "held by another server" in served.stderr


def test_a_stopped_cluster_has_no_url(made_cluster_home):
    cluster_home = made_cluster_home
    port = free_port()
    base = {**os.environ, "CIM_HOME": str(cluster_home / "home"), "CIM_LOCAL_DB_PORT": str(port)}
    base.pop("CIM_DATABASE_URL", None)
    try:
        assert _cim(["db", "start"], base).returncode == 0
        assert LocalCluster(home=cluster_home / "home", port=port).url().endswith(f":{port}/cim")
    finally:
        assert _cim(["db", "stop"], base).returncode == 0
    with pytest.raises(LocalDatabaseError, match="is not running"):
        LocalCluster(home=cluster_home / "home", port=port).url()
