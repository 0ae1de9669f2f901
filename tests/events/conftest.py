"""Fixtures of the /events tests: a service with the MQTT bridge on the session broker, served by uvicorn (an
event stream needs a real server), with a catalog whose ``iot_nodes`` layer is restricted (access control),
and a reader of its streams."""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cim_service.core.settings import PROJECT_ROOT, Settings
from tests.live.conftest import depth_sensors  # noqa: F401 - the demo's depth sensors, shared with the live tests
from tests.routes.serving import in_thread

RESTRICTED_SENSING = "iot_nodes"


def restricted_catalog(folder: Path) -> Path:
    """A copy of the project's catalog in which the neuron nodes' layer is restricted."""
    target = folder / "layers"
    shutil.copytree(PROJECT_ROOT / "layers", target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    path = target / f"{RESTRICTED_SENSING}.yaml"
    text = path.read_text(encoding="utf-8")
    assert "access: public" in text
    path.write_text(text.replace("access: public", "access: restricted"), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def events_settings(settings: Settings, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("cim-events")
    return settings.model_copy(update={
        "sensor_batch_wait_ms": 20, "sensor_rate_per_s": 1000.0, "sensor_rate_burst": 10_000.0,
        "sensor_bridge": True, "mqtt_url": mqtt_url, "home": home, "gap_refresh": False,
        "layers_dir": restricted_catalog(home), "events_heartbeat_s": 0.3, "events_max_subscribers": 6,
        "events_max_datastreams": 20})


@pytest.fixture(scope="module")
def events_url(events_settings: Settings, demo_database_url: str) -> Iterator[str]:
    with in_thread(events_settings) as url:
        yield url


@dataclass
class Stream:
    """One open ``/events`` stream read in a thread: its events (parsed) and comment lines."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: queue.Queue = field(default_factory=queue.Queue)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    seen: list[dict] = field(default_factory=list)

    def next(self, predicate=lambda e: True, timeout: float = 20.0) -> dict:
        """The next event (``{"id", "event", "data"}``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout} s; seen {self.seen[-5:]}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if predicate(event):
                return event

    def drain(self, wait: float = 0.5) -> list[dict]:
        """Every event that arrives within ``wait`` seconds."""
        time.sleep(wait)
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        self.seen += out
        return out


def _read(url: str, params: dict, headers: dict, stream: Stream, stop: threading.Event) -> None:
    try:
        with httpx.stream("GET", f"{url}/events", params=params, headers=headers,
                          timeout=httpx.Timeout(30.0, read=60.0)) as r:
            stream.status, stream.headers = r.status_code, dict(r.headers)
            stream.opened.set()
            if r.status_code != 200:
                return
            event: dict = {}
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith(":"):
                    stream.comments.append(line)
                elif line.startswith("retry: "):
                    stream.retry = int(line[7:])
                elif line.startswith("id: "):
                    event["id"] = int(line[4:])
                elif line.startswith("event: "):
                    event["event"] = line[7:]
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif line == "" and event:
                    stream.events.put(event)
                    event = {}
    except httpx.HTTPError:
        pass
    finally:
        stream.opened.set()
        stream.ended.set()


@pytest.fixture
def open_stream(events_url: str):
    """``open_stream(params, headers)``: a :class:`Stream` of ``/events`` (closed after the test)."""
    stops, streams = [], []

    def open_(params: dict, headers: dict | None = None) -> Stream:
        stream, stop = Stream(), threading.Event()
        stops.append(stop)
        streams.append(stream)
        threading.Thread(target=_read, args=(events_url, params, headers or {}, stream, stop), daemon=True).start()
        assert stream.opened.wait(20), "the stream did not open"
        if stream.status == 200:
            deadline = time.monotonic() + 10
            while not stream.comments and time.monotonic() < deadline:  # subscribed once the first comment came
                time.sleep(0.02)
        return stream

    yield open_
    for stop in stops:
        stop.set()
    for stream in streams:  # each reader leaves at its next line (a heartbeat at most)
        stream.ended.wait(10)
    # the service frees a stream's slot when its next write finds the client gone: wait for that, so the next
    # test's streams count against an empty service (the limit of 6 is small on purpose)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _open_streams(events_url) > 0:
        time.sleep(0.1)


def _open_streams(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("cim_events_streams"))
