"""ASGI middleware at the edge of the service: bounded requests, the public origin of links, HEAD and OPTIONS.

:class:`Edge` runs before routing, for every HTTP request:

- **bounds**: the query string, each header, all headers together, the number of headers and the body are
  limited (``CIM_MAX_QUERY_BYTES`` ...); a NUL character anywhere in the path or a parameter is refused. Errors
  are the usual JSON ``{"code", "description"}`` naming the parameter or header (414, 431, 413, 400).
- **origin**: links are built from ``request.url``/``request.base_url``, so the request scope is rewritten
  here and nowhere else. With ``CIM_PUBLIC_URL`` that URL is the origin of every link. Otherwise, from a peer
  listed in ``CIM_TRUSTED_PROXIES``, the proxy's ``Forwarded`` or ``X-Forwarded-Proto/Host/Prefix`` headers
  give it; from anyone else the address the connection arrived at (the ``Host`` header a client sends is never
  echoed into links). The client address (``request.client``, written to the access log) comes from
  ``X-Forwarded-For``/``Forwarded: for=`` only when the peer is a trusted proxy.

:class:`Methods` (inside CORS, so preflights reach it first) answers ``OPTIONS`` with the ``Allow`` header of
the path and serves ``HEAD`` on every GET route: the GET response's status and headers, without the body.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cim_service.offloop import LoopLagProbe

if TYPE_CHECKING:
    from cim_service.core.settings import Settings

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')


class RequestRejected(Exception):
    """A request refused at the edge: HTTP status, error code and a one-line description."""

    def __init__(self, status: int, code: str, description: str):
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


async def send_error(send: Send, status: int, code: str, description: str,
                     extra_headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete JSON error response (``{"code", "description"}``)."""
    body = orjson.dumps({"code": code, "description": description})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def parse_networks(values: Iterable[str]) -> list[_Network]:
    """Parse trusted proxy addresses or networks (``10.0.0.1``, ``10.0.0.0/8``, ``::1``); ValueError when bad."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]


def _in(address: str, networks: list[_Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _host_value(host: str, port: int | None, scheme: str) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = 443 if scheme in ("https", "wss") else 80
    return host if port in (None, default) else f"{host}:{port}"


#: paths of bulk writes, whose body may be up to ``max_bulk_body_bytes``
BULK_PATHS = frozenset({"/sta/v1.1/CreateObservations"})


class Bounds:
    """Size limits of one request, checked on the raw ASGI scope (no decoding unless a limit is crossed)."""

    def __init__(self, settings: Settings):
        self.query = settings.max_query_bytes
        self.header = settings.max_header_bytes
        self.headers_total = settings.max_headers_bytes
        self.header_count = settings.max_header_count
        self.body = settings.max_body_bytes
        self.bulk_body = max(settings.max_body_bytes, settings.max_bulk_body_bytes)

    def body_limit(self, scope: Scope) -> int:
        """The body limit of this request: larger for the bulk write of observations (the dataArray extension)."""
        if scope.get("method") == "POST" and scope["path"] in BULK_PATHS:
            return self.bulk_body
        return self.body

    def check(self, scope: Scope) -> None:
        """Raise :class:`RequestRejected` when the request is too large or carries a NUL character."""
        qs: bytes = scope.get("query_string", b"")
        if len(qs) > self.query:
            raise RequestRejected(414, "URITooLong", f"the query string is longer than {self.query} bytes")
        if b"%00" in qs or b"\x00" in qs:
            raise RequestRejected(400, "InvalidParameterValue", f"parameter {_nul_parameter(qs)!r}: "
                                                                "contains a NUL character")
        if "\x00" in scope["path"]:
            raise RequestRejected(400, "InvalidParameterValue", "the path contains a NUL character")
        headers = scope["headers"]
        if len(headers) > self.header_count:
            raise RequestRejected(431, "RequestHeaderFieldsTooLarge",
                                  f"more than {self.header_count} request headers")
        total = 0
        for name, value in headers:
            size = len(name) + len(value)
            if size > self.header:
                raise RequestRejected(431, "RequestHeaderFieldsTooLarge",
                                      f"header {name[:64].decode('latin-1')!r} is longer than {self.header} bytes")
            total += size
        if total > self.headers_total:
            raise RequestRejected(431, "RequestHeaderFieldsTooLarge",
                                  f"the request headers are longer than {self.headers_total} bytes together")
        for name, value in headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise RequestRejected(400, "InvalidParameterValue", "invalid Content-Length") from None
                limit = self.body_limit(scope)
                if declared > limit:
                    raise RequestRejected(413, "PayloadTooLarge", f"the request body is larger than {limit} bytes")

    def bounded_receive(self, receive: Receive, scope: Scope) -> Receive:
        """Wrap ``receive`` so that a body (chunked or not) larger than the limit ends in a 413."""
        limit, seen = self.body_limit(scope), 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestRejected(413, "PayloadTooLarge", f"the request body is larger than {limit} bytes")
            return message

        return wrapped


def _nul_parameter(qs: bytes) -> str:
    for name, value in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\x00")[:64]
    return "query string"


class Origin:
    """Where links point and who the client is: public URL, trusted proxy headers, or the socket's address."""

    def __init__(self, settings: Settings):
        self.trusted = parse_networks(settings.trusted_proxies)
        self.public: tuple[str, str, int | None, str] | None = None
        if settings.public_url:
            u = urlsplit(settings.public_url)
            self.public = (u.scheme, u.hostname or "", u.port, u.path.rstrip("/"))

    def apply(self, scope: Scope) -> None:
        """Rewrite ``scope`` (scheme, server, Host, root_path, client) from trusted information only."""
        peer = scope.get("client")
        forwarded: dict[str, str] = {}
        if self.trusted and peer and _in(peer[0], self.trusted):
            forwarded = self._forwarded(scope["headers"])
            if "for" in forwarded:
                scope["client"] = (forwarded["for"], 0)
        if self.public is not None:
            scheme, host, port, prefix = self.public
        elif forwarded.get("host"):
            scheme = forwarded.get("proto", scope.get("scheme", "http"))
            host, port = _split_host(forwarded["host"])
            prefix = forwarded.get("prefix", "").rstrip("/")
        else:
            server = scope.get("server")
            scheme = forwarded.get("proto", scope.get("scheme", "http"))
            host, port = (server[0], server[1]) if server else ("localhost", None)
            prefix = forwarded.get("prefix", "").rstrip("/")
        scope["scheme"] = scheme
        scope["server"] = (host, port if port is not None else (443 if scheme == "https" else 80))
        value = _host_value(host, port, scheme).encode("latin-1", "replace")
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"host"] + [(b"host", value)]
        if prefix and prefix.startswith("/") and not scope["path"].startswith(prefix + "/"):
            scope["root_path"] = prefix
            scope["path"] = prefix + scope["path"]
            if "raw_path" in scope and scope["raw_path"] is not None:
                scope["raw_path"] = prefix.encode() + scope["raw_path"]

    def _forwarded(self, headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
        """The proxy's view of the request: client (``for``), ``proto``, ``host``, ``prefix``."""
        values: dict[bytes, bytes] = {}
        for name, value in headers:
            if name in (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                        b"x-forwarded-prefix"):
                values[name] = values[name] + b"," + value if name in values else value
        out: dict[str, str] = {}
        if b"forwarded" in values:
            hops = [_forwarded_element(e) for e in values[b"forwarded"].decode("latin-1").split(",")]
            clients = [h.get("for", "") for h in hops]
            last = hops[-1] if hops else {}
            for key in ("proto", "host"):
                if last.get(key):
                    out[key] = last[key]
        else:
            clients = [c.strip() for c in values.get(b"x-forwarded-for", b"").decode("latin-1").split(",")]
            for key, header in (("proto", b"x-forwarded-proto"), ("host", b"x-forwarded-host")):
                if header in values:
                    out[key] = values[header].decode("latin-1").split(",")[-1].strip()
        if b"x-forwarded-prefix" in values:
            out["prefix"] = values[b"x-forwarded-prefix"].decode("latin-1").split(",")[-1].strip()
        client = _client_from_chain(clients, self.trusted)
        if client:
            out["for"] = client
        if out.get("proto", "").lower() not in ("http", "https"):
            out.pop("proto", None)
        return out


def _forwarded_element(element: str) -> dict[str, str]:
    pairs = {}
    for part in element.split(";"):
        m = _FORWARDED_PAIR.fullmatch(part)
        if m:
            value = m.group(2)
            if value.startswith('"'):
                value = value[1:-1].replace('\\"', '"')
            pairs[m.group(1).lower()] = value
    return pairs


def _client_from_chain(chain: list[str], trusted: list[_Network]) -> str | None:
    """The right-most address of a forwarding chain that is not a trusted proxy (the real client)."""
    for hop in reversed([h for h in chain if h]):
        address = _strip_port(hop)
        if not _in(address, trusted):
            return address if _is_ip(address) else None
    return None


def _strip_port(hop: str) -> str:
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split_host(value: str) -> tuple[str, int | None]:
    u = urlsplit(f"//{value.strip()}")
    try:
        return (u.hostname or "localhost", u.port)
    except ValueError:
        return (u.hostname or "localhost", None)


class Edge:
    """Outer middleware: bounds every request, fixes its origin, and runs the event-loop lag probe."""

    def __init__(self, app: ASGIApp, *, settings: Settings):
        self.app = app
        self.bounds = Bounds(settings)
        self.origin = Origin(settings)
        self.probe = LoopLagProbe()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse oversized or NUL-bearing requests; rewrite the origin; serve the rest."""
        if scope["type"] == "lifespan":
            await self.app(scope, *self.probe.wrap_lifespan(receive, send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.bounds.check(scope)
        except RequestRejected as exc:
            await send_error(send, exc.status, exc.code, exc.description, [(b"connection", b"close")])
            return
        self.origin.apply(scope)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self.bounds.bounded_receive(receive, scope), tracking_send)
        except RequestRejected as exc:
            if started:
                raise
            await send_error(send, exc.status, exc.code, exc.description, [(b"connection", b"close")])


class Methods:
    """``OPTIONS`` answered with ``Allow``; ``HEAD`` served by the GET route without the body."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve HEAD as GET minus the body, answer OPTIONS, pass everything else."""
        if scope["type"] != "http" or scope["method"] not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = _allowed_methods(scope)
            if allowed:
                headers = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, receive, send)
            return

        async def no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        scope["method"] = "GET"
        scope["cim.head"] = True  # routes whose body is costly to make (exports) may skip making it
        try:
            await self.app(scope, receive, no_body)
        finally:
            scope["method"] = "HEAD"


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(scope: Scope) -> list[str]:
    """Methods the routes of the path accept (with HEAD next to GET, and OPTIONS); empty for an unknown path.

    Asked of the router itself (a route matches fully only for its own methods), so nested routers count too.
    """
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", ())
    if any(route.matches({**scope, "method": "NO-SUCH-METHOD"})[0] is Match.FULL for route in routes):
        return ["GET", "HEAD", "OPTIONS"]  # a mounted app that takes any method: our static files
    methods = [m for m in _METHODS
               if any(route.matches({**scope, "method": m})[0] is Match.FULL for route in routes)]
    if not methods:
        return []
    if "GET" in methods:
        methods.insert(1, "HEAD")
    return [*methods, "OPTIONS"]
