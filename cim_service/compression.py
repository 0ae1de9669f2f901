"""ASGI middleware compressing responses: Brotli where accepted, else gzip, for JSON, CSV, HTML, MVT and text.

- The coding is chosen from ``Accept-Encoding`` (:func:`cim_service.encoding.negotiate`); every response whose
  type is compressible carries ``Vary: Accept-Encoding``, also when sent as it is (short bodies, identity).
- Event streams (``text/event-stream``, ``/events``) pass unchanged: a compressor would hold each event back.
- Responses that already have a ``Content-Encoding`` (tiles from the cache, stored compressed once), partial
  content, 204/304 and non-compressible types (PNG, COG) pass unchanged.
- An ``ETag`` set by a route names the identity body; the coded body gets its own tag (``"…-gz"``, ``"…-br"``).
  ``If-None-Match`` naming a tag of the negotiated coding is handed to the route as the identity tag, and a 304
  is sent back with the tag the client holds.
- Bodies larger than :data:`OFF_LOOP_BYTES` are compressed in the worker thread (:func:`cim_service.offloop.off_loop`),
  never on the event loop; streamed bodies are compressed chunk by chunk.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cim_service import encoding
from cim_service.offloop import off_loop

#: bodies (or chunks) at least this large are compressed off the event loop
OFF_LOOP_BYTES = 32 * 1024


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None


async def _compress(data: bytes, coding: str) -> bytes:
    if len(data) >= OFF_LOOP_BYTES:
        return await off_loop(encoding.compress, data, coding)
    return encoding.compress(data, coding)


class Compression:
    """Compress compressible response bodies in the coding the client prefers."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Negotiate the coding, fix conditional request headers, compress the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        coding = encoding.negotiate((_header(headers, b"accept-encoding") or b"").decode("latin-1"))
        inm = _header(headers, b"if-none-match")
        client_tags: list[str] = []
        if inm is not None:
            text = inm.decode("latin-1")
            client_tags = [t.strip() for t in text.split(",")]
            decoded = encoding.decoded_tags(text, coding)
            if decoded != text:
                scope["headers"] = [(n, v) for n, v in headers if n != b"if-none-match"] + \
                                   [(b"if-none-match", decoded.encode("latin-1"))]
        start: Message | None = None
        compressor: encoding.StreamCompressor | None = None
        passthrough = False

        async def send_wrapper(message: Message) -> None:
            nonlocal start, compressor, passthrough
            if message["type"] == "http.response.start":
                start = message
                out = list(message.get("headers", []))
                status = message["status"]
                content_type = _header(out, b"content-type")
                media = content_type.decode("latin-1") if content_type else None
                typed = encoding.compressible(media) and not (media or "").startswith("text/event-stream")
                if status == 304:
                    message = {**message, "headers": _not_modified_headers(out, client_tags, coding)}
                    passthrough = True
                elif (not typed or status in (204, 206) or _header(out, b"content-encoding") is not None
                      or _header(out, b"content-range") is not None):
                    passthrough = True
                else:
                    start = {**message, "headers": _set(out, b"vary", encoding.add_vary(
                        [v.decode("latin-1") for n, v in out if n == b"vary"]).encode())}
                    if coding == encoding.IDENTITY:
                        message, passthrough = start, True
                    else:
                        return  # wait for the body: short bodies are sent as they are
                await send(message)
                return
            if passthrough or message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if compressor is None:
                assert start is not None
                out = start["headers"]
                if not more and len(body) < encoding.MIN_BYTES:
                    passthrough = True
                    await send(start)
                    await send(message)
                    return
                out = [(n, v) for n, v in out if n not in (b"content-length", b"etag")]
                out.append((b"content-encoding", coding.encode()))
                etag = _header(start["headers"], b"etag")
                if etag is not None:
                    out.append((b"etag", encoding.coded_etag(etag.decode("latin-1"), coding).encode("latin-1")))
                if not more:
                    data = await _compress(body, coding)
                    out.append((b"content-length", str(len(data)).encode()))
                    await send({**start, "headers": out})
                    await send({"type": "http.response.body", "body": data})
                    passthrough = True
                    return
                compressor = encoding.StreamCompressor(coding)
                await send({**start, "headers": out})
            if len(body) >= OFF_LOOP_BYTES:
                data = await off_loop(compressor.feed, body)
            else:
                data = compressor.feed(body) if body else b""
            if not more:
                data += compressor.finish()
            if data or not more:
                await send({"type": "http.response.body", "body": data, "more_body": more})

        await self.app(scope, receive, send_wrapper)


def _set(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers if n != name] + [(name, value)]


def _not_modified_headers(headers: list[tuple[bytes, bytes]], client_tags: list[str],
                          coding: str) -> list[tuple[bytes, bytes]]:
    """A 304's ETag: the tag the client sent for the representation it holds (identity tag → coded one)."""
    etag = _header(headers, b"etag")
    if etag is None:
        return headers
    tag = etag.decode("latin-1")
    wanted = encoding.coded_etag(tag, coding)
    if wanted in client_tags or any(t.removeprefix("W/") == wanted for t in client_tags):
        return _set(headers, b"etag", wanted.encode("latin-1"))
    for suffix in encoding.SUFFIX.values():  # the client holds another coding's body and still may use it
        coded = tag[:-1] + suffix + '"'
        if coded in client_tags:
            return _set(headers, b"etag", coded.encode("latin-1"))
    return headers
