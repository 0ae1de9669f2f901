"""uvicorn's HTTP protocol with a bound on the request head, for ``cim serve``.

uvicorn's httptools protocol buffers a request line and headers of any size before the application sees them
(a 64 MB header is read, concatenated and parsed in full). :class:`BoundedHttpToolsProtocol` counts the bytes of
the head as they arrive and answers **431** (and closes) once :data:`MAX_HEAD_BYTES` is crossed, before the
parser has finished with it. uvicorn's h11 protocol has the same bound through ``h11_max_incomplete_event_size``
(:func:`protocol_options`). The finer limits (each header, query string, body) are checked by
:class:`cim_service.edge.Edge` on every request.
"""

from __future__ import annotations

from typing import Any

import orjson

#: largest request line + headers read from a client (bytes)
MAX_HEAD_BYTES = 64 * 1024


def _rejection(status: bytes, description: str) -> bytes:
    body = orjson.dumps({"code": "RequestHeaderFieldsTooLarge", "description": description})
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: uvicorn runs h11, bounded by its own option
    BoundedHttpToolsProtocol: type | None = None
else:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[no-redef]
        """httptools protocol that refuses a request head larger than :data:`MAX_HEAD_BYTES` with a 431."""

        max_head_bytes = MAX_HEAD_BYTES

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True

        def data_received(self, data: bytes) -> None:
            """Feed the parser; refuse the connection when the unfinished head grew past the bound."""
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self.transport.write(_rejection(b"431 Request Header Fields Too Large",
                                                f"the request line and headers are longer than "
                                                f"{self.max_head_bytes} bytes"))
                self.transport.close()

        def on_headers_complete(self) -> None:
            """The head is complete: stop counting until the next request."""
            self._in_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            """The request is complete: the next bytes belong to the next request's head."""
            super().on_message_complete()
            self._in_head = True


def protocol_options() -> dict[str, Any]:
    """uvicorn ``Config`` options bounding the request head, whichever HTTP implementation runs."""
    options: dict[str, Any] = {"h11_max_incomplete_event_size": MAX_HEAD_BYTES}
    if BoundedHttpToolsProtocol is not None:
        options["http"] = BoundedHttpToolsProtocol
    return options
