"""``cim broker``: the project-local Mosquitto (used when CIM_MQTT_URL is unset)."""

from __future__ import annotations

import typer

from cim_service.commands import console, fail
from cim_service.core.settings import Settings
from cim_service.sensing.broker import BrokerError, LocalBroker

broker_app = typer.Typer(help="MQTT broker: start/stop/status of the project-local Mosquitto.", no_args_is_help=True)


def _local(settings: Settings) -> LocalBroker:
    if settings.mqtt_url:
        fail("CIM_MQTT_URL is set: the project-local broker is not used (unset it to use it)")
    return LocalBroker.from_settings(settings)


@broker_app.command("start")
def start() -> None:
    """Start the project-local broker (configured on first use); print its address (password hidden)."""
    broker = _local(Settings())
    try:
        broker.start()
    except BrokerError as exc:
        fail(str(exc))
    console.print(f"mqtt://cim:***@127.0.0.1:{broker.port} (password in {broker.secret})", highlight=False)


@broker_app.command("stop")
def stop() -> None:
    """Stop the project-local broker (queued messages of persistent sessions are saved)."""
    try:
        was = _local(Settings()).stop()
    except BrokerError as exc:
        fail(str(exc))
    console.print("stopped" if was else "not running")


@broker_app.command("status")
def status() -> None:
    """Show which broker is used and whether it runs."""
    settings = Settings()
    if settings.mqtt_url:
        from cim_service.sensing.broker import MqttEndpoint

        ep = MqttEndpoint.parse(settings.mqtt_url)
        console.print(f"configured broker: {ep.host}:{ep.port}", highlight=False)
        return
    for key, value in LocalBroker.from_settings(settings).status().items():
        console.print(f"{key}: {value}", highlight=False)


@broker_app.command("add-user")
def add_user(name: str, password: str = typer.Option(..., prompt=True, hide_input=True)) -> None:
    """Add a device account to the project-local broker (devices then publish as that user)."""
    try:
        _local(Settings()).add_user(name, password)
    except (BrokerError, ValueError) as exc:
        fail(str(exc))
    console.print(f"user {name} added")


def register(app: typer.Typer) -> None:
    """Add the ``broker`` group to the CLI."""
    app.add_typer(broker_app, name="broker")
