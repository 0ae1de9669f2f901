"""Publishing the created Observations of a committed batch to subscribers, many at a time.

SensorThings' MQTT extension sends every created Observation on ``v1.1/Datastreams(<id>)/Observations``; at the
plan's rate that is 20,000 QoS 0 messages a second from the bridge's own connection (its subscription has MQTT 5
*no local*, so these never come back to it as readings). paho's ``publish()`` costs about 20 µs a message in
Python (measured by ``benchmarks/bench_sensing.py``: three quarters of the bridge's CPU with it, 35,000 instead
of 120,000 observations per CPU-second), so :func:`publish_qos0` encodes the MQTT 5 PUBLISH packets itself, a
few bytes of header each, and hands paho one buffer per chunk to write on the connection (paho's packet queue,
the path its own ``publish()`` ends in). A client without that queue (another paho) gets ``publish()`` calls.
"""

from __future__ import annotations

from collections.abc import Iterable

import paho.mqtt.client as mqtt

#: MQTT control packet type PUBLISH with QoS 0, no DUP, no RETAIN (fixed header byte)
_PUBLISH_QOS0 = 0x30
#: bytes handed to paho at a time
CHUNK = 256 * 1024


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def packet(topic: str, payload: bytes, *, v5: bool = True) -> bytes:
    """One PUBLISH packet, QoS 0 (MQTT 5: with an empty property list)."""
    t = topic.encode()
    body_len = 2 + len(t) + (1 if v5 else 0) + len(payload)
    head = bytes((_PUBLISH_QOS0,)) + _varint(body_len) + len(t).to_bytes(2, "big") + t
    return head + (b"\x00" if v5 else b"") + payload


def publish_qos0(client: mqtt.Client, messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish ``messages`` (topic, payload) at QoS 0 on ``client``'s connection; return how many were queued.

    Nothing is queued while the client is not connected (QoS 0 notifications are not kept for later).
    """
    if not client.is_connected():
        return 0
    queue = getattr(client, "_packet_queue", None)
    v5 = getattr(client, "_protocol", mqtt.MQTTv5) == mqtt.MQTTv5
    n = 0
    if queue is None:
        for topic, payload in messages:
            client.publish(topic, payload, qos=0)
            n += 1
        return n
    parts: list[bytes] = []
    size = 0
    for topic, payload in messages:
        p = packet(topic, payload, v5=v5)
        parts.append(p)
        size += len(p)
        n += 1
        if size >= CHUNK:
            queue(mqtt.PUBLISH, b"".join(parts), 0, 0, mqtt.MQTTMessageInfo(0))
            parts, size = [], 0
    if parts:
        queue(mqtt.PUBLISH, b"".join(parts), 0, 0, mqtt.MQTTMessageInfo(0))
    return n
