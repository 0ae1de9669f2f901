"""The MQTT side of the SensorThings API for writes made over HTTP: created entities published to subscribers.

FROST-Server publishes every created entity on its entity-set topic; so does the service for what is created
over HTTP: ``v1.1/Things`` (``v1.1/Locations``, ``v1.1/Datastreams``...) receive new entities as their JSON, and
``v1.1/Observations`` new Observations. The topics ``v1.1/Datastreams(<id>)/Observations`` are the MQTT bridge's
inbound topics; the bridge publishes what it commits there itself, from its own connection (MQTT 5 *no local*), so
this publisher never publishes there (the bridge would take its messages for new readings).

One paho client per service process, QoS 0, started with the application and stopped with it; publishing never
blocks a request (paho queues; a broker that is away drops these notifications, never a write).
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)
TOPIC_PREFIX = "v1.1"


class EntityPublisher:
    """Publishes created entities on their SensorThings entity-set topics."""

    def __init__(self, mqtt_url: str):
        u = urlsplit(mqtt_url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError("not an MQTT URL")
        self.host, self.port = u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cim-sta-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv5)
        if u.username:
            self.client.username_pw_set(unquote(u.username), unquote(u.password or ""))
        if u.scheme == "mqtts":
            self.client.tls_set()
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        """Connect in the background (a broker that is not up yet is retried)."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, entity_set: str, payload: bytes) -> None:
        """Publish one created entity of ``entity_set`` (``Things``) on ``v1.1/Things``."""
        if not self.client.is_connected():
            return
        self.client.publish(f"{TOPIC_PREFIX}/{entity_set}", payload, qos=0)
