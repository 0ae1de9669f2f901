"""``cim sensors``: the MQTT bridge, the simulator, compaction and the catalog sync of the sensing layers."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from cim_service.commands import console, fail, open_database

sensors_app = typer.Typer(help="Sensors: MQTT bridge, simulator, compaction, Things of the sensing layers.",
                          no_args_is_help=True)


def _mqtt_url(settings) -> str:
    from cim_service.sensing.broker import BrokerError, resolve_mqtt_url

    try:
        return resolve_mqtt_url(settings)
    except BrokerError as exc:
        fail(str(exc))
        raise


def _until_signal() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: stop.set())
    return stop


@sensors_app.command("bridge")
def bridge(
    client_id: Annotated[str, typer.Option(help="MQTT client id (its persistent session holds unacknowledged "
                                                "readings while the bridge is away).")] = "cim-sensor-bridge",
    publish_created: Annotated[bool, typer.Option(help="Publish each committed Observation for subscribers.")] = True,
) -> None:
    """Run the MQTT bridge in the foreground until SIGINT/SIGTERM."""
    from cim_service.sensing.bridge import Bridge

    settings, engine, catalog = open_database()
    engine.dispose()
    stop = _until_signal()
    b = Bridge(settings, settings.database_url, _mqtt_url(settings), client_id=client_id,
               publish_created=publish_created).start()
    console.print(f"bridge {client_id} running", highlight=False)
    last = 0
    while not stop.wait(5.0):
        s = b.stats
        if s.committed != last:
            console.print(f"committed {s.committed:,} · rejected {sum(s.rejected.values()):,} · "
                          f"duplicates {s.duplicates:,} · db errors {s.db_errors}", highlight=False)
            last = s.committed
    b.stop()


@sensors_app.command("simulate")
def simulate(
    nodes: Annotated[int | None, typer.Option(min=0, max=1_000_000, help="Nodes that report, a seeded pick "
                                               "(default: all; 0 or more than there are: all).")] = None,
    gauge_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between two reports of a waterlogging "
                                                  "gauge.")] = 60.0,
    node_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between two reports of a neuron node "
                                                 "(the plan's full scale: 60 on `cim demo --scale plan`).")] = 600.0,
    duration: Annotated[float | None, typer.Option(min=0.1, help="Stop after this many seconds (default: run "
                                                   "until interrupted).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same city.")] = 20260601,
    qos: Annotated[int, typer.Option(min=0, max=1, help="MQTT QoS of the publications.")] = 1,
    silent_share: Annotated[float, typer.Option(min=0, max=1, help="Share of nodes going silent.")] = 0.03,
    cell_period: Annotated[float, typer.Option(min=10, help="Seconds between two crossings of the rain cell.")
                           ] = 3600.0,
    bad_rate: Annotated[float, typer.Option(min=0, max=0.5, help="Share of malformed or out-of-range messages "
                                            "(default none).")] = 0.0,
    backfill: Annotated[bool, typer.Option(help="Date each node's first report in the interval before the start "
                                           "(sent at once: the map is alive from the first minute).")] = True,
    while_pid: Annotated[int | None, typer.Option(min=1, help="Stop when this process ends (./scripts/run passes "
                                                  "the service's).")] = None,
) -> None:
    """Publish realistic readings of the catalog's sensors through the broker: a rain cell crossing the district,
    water rising at low-lying sites, batteries draining, a few nodes going silent."""
    from cim_service.sensing import simulate as sim
    from cim_service.sensing.publisher import Publisher
    from cim_service.store import sta_entities

    settings, engine, catalog = open_database()
    rows = []
    with engine.connect() as conn:
        for spec in catalog.sensing_layers:
            rows += sta_entities.catalog_datastreams(conn, spec.id)
    engine.dispose()
    if not rows:
        fail("no datastreams: load the sensing layers first (`cim demo`)")
    city = sim.build_nodes(rows, seed=seed, nodes=nodes, silent_share=silent_share)
    gauges = sum(1 for n in city if n.is_gauge)
    client = Publisher(_mqtt_url(settings), f"cim-simulator-{seed}", max_backlog=1000)
    stop = _until_signal()
    per_s = sum(len(n.streams) / (gauge_interval if n.is_gauge else node_interval) for n in city)
    console.print(f"simulating {gauges:,} gauges every {gauge_interval:g} s and {len(city) - gauges:,} nodes every "
                  f"{node_interval:g} s (~{per_s:,.0f} readings/s)", highlight=False)
    last_check = [0.0]

    def should_stop() -> bool:
        if stop.is_set():
            return True
        if while_pid is not None and time.monotonic() - last_check[0] > 1.0:
            last_check[0] = time.monotonic()
            if not sim.process_alive(while_pid):
                stop.set()
        return stop.is_set()

    started = time.time()
    rain = sim.RainCell(period_s=cell_period, aim_lat=sim.aim_latitude(city))
    sent = sim.publish(client, sim.schedule(city, gauge_interval_s=gauge_interval, node_interval_s=node_interval,
                                            duration_s=duration, seed=seed, rain=rain, backfill=backfill,
                                            bad_rate=bad_rate),
                       qos=qos, should_stop=should_stop)
    client.drain(timeout=30)
    client.close()
    console.print(f"published {sent:,} readings in {time.time() - started:.1f} s", highlight=False)


@sensors_app.command("compact")
def compact(
    raw_days: Annotated[int | None, typer.Option(min=1, help="Days of raw readings to keep (default "
                                                 "CIM_SENSOR_RAW_DAYS).")] = None,
) -> None:
    """Fold raw readings older than the retention into hourly aggregates and drop their day partitions."""
    from cim_service.store import observations

    settings, engine, _catalog = open_database()
    with engine.connect() as conn:
        report = observations.compact(conn, now=datetime.now(UTC), raw_days=raw_days or settings.sensor_raw_days)
    console.print(f"compacted {len(report.days_compacted)} days into {report.rows_aggregated:,} hourly rows",
                  highlight=False)


@sensors_app.command("sync")
def sync() -> None:
    """Create or update the Things, Locations and Datastreams of every sensing layer's features; delete the
    Datastreams (and readings) the catalog no longer declares."""
    from cim_service.store import sensing_sync

    _settings, engine, catalog = open_database()
    with engine.begin() as conn:
        for spec in catalog.sensing_layers:
            r = sensing_sync.sync(conn, spec)
            console.print(f"{spec.id}: {r.things:,} things written, {r.datastreams:,} datastreams, {r.moved} moved, "
                          f"{r.deleted_datastreams:,} undeclared datastreams deleted", highlight=False)


alerts_app = typer.Typer(help="Alerts: the rules in force, an offline sweep, the active alerts.", no_args_is_help=True)
sensors_app.add_typer(alerts_app, name="alert")


def _alert_rules():
    from cim_service.sensing import alerts

    settings, engine, catalog = open_database()
    try:
        rules = alerts.rules_for(settings, catalog)
    except alerts.AlertRulesError as exc:
        fail(str(exc))
        raise
    with engine.begin() as conn:
        alerts.install(conn, catalog, rules, settings)
    return engine, rules


@alerts_app.command("rules")
def alert_rules() -> None:
    """Check the rules file (CIM_ALERT_RULES or the project's), write it to the database and print it."""
    engine, rules = _alert_rules()
    for r in rules.rules:
        levels = "".join(f"; {k}: {lv.warning}/{lv.alarm}" for k, lv in r.levels.items())
        console.print(f"{r.id}: {r.layer}.{r.property} {r.direction} warning {r.warning} alarm {r.alarm} "
                      f"hysteresis {r.hysteresis}{levels}", highlight=False)


@alerts_app.command("sweep")
def alert_sweep() -> None:
    """Raise the offline alerts of sensors silent for longer than their rule's offline time (the service does it
    every CIM_ALERT_SWEEP_S)."""
    from cim_service.sensing import alerts

    engine, _rules = _alert_rules()
    console.print(f"{alerts.sweep(engine):,} offline alerts raised", highlight=False)


@alerts_app.command("list")
def alert_list() -> None:
    """Print the active alerts, oldest first."""
    from cim_service.store import alerts as store

    _settings, engine, _catalog = open_database()
    with engine.connect() as conn:
        rows = store.active(conn)
    for a in rows:
        console.print(f"#{a['id']} {a['severity']:<8} {a['layer_id']} {a['feature_key']} {a['property']}="
                      f"{a['value']} town {a['town']} since {a['raised_at']:%Y-%m-%d %H:%M:%S}", highlight=False)
    console.print(f"{len(rows):,} active alerts", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``sensors`` group to the CLI."""
    app.add_typer(sensors_app, name="sensors")
