"""Access control: API keys, principals, roles and scopes, layer/field visibility, the access log.

Callers send ``X-API-Key: <key>``, ``Authorization: Bearer <key>`` or HTTP Basic auth with the key as the
password (any user name: clients written for FROST-Server authenticate with Basic). Keys are stored as sha256 hex in
``cim_meta.api_key`` (with a short prefix to recognise them); lookups are cached in-process for
:data:`KEY_CACHE_SECONDS`, so a revoked key is refused at the latest that many seconds later.

Decisions (documented in docs/ARCHITECTURE.md):

- No credentials → the anonymous principal (public layers only).
- Credentials that are unknown or revoked → **401** (a wrong key is not silently downgraded to anonymous).
- A layer the principal may not read → **404**, exactly like an unknown id, so that its existence is not
  revealed; it is also absent from ``/collections`` listings.
- Personal fields without the ``personal_data`` scope behave like unknown fields everywhere
  (schema, queryables, ``properties``, ``filter``, ``sortby``: 400 "unknown property").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from cim_service.core.catalog import Access, FieldSpec, LayerSpec, UnknownLayerError
from cim_service.errors import Forbidden, InvalidParameter, NotAuthenticated, NotFound
from cim_service.store import access_log, api_keys
from cim_service.store.db import Database

#: scopes granted to each role
ROLES: dict[str, frozenset[str]] = {
    "analyst": frozenset({"internal"}),
    "editor": frozenset({"internal", "editor"}),
    "officer": frozenset({"internal", "restricted", "personal_data", "editor"}),
    "sensor": frozenset({"sensor_writer"}),
    "admin": frozenset({"internal", "restricted", "personal_data", "admin", "sensor_writer", "editor"}),
}
KEY_PREFIX = "cim_"
KEY_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named API key with a role, or the anonymous caller."""

    name: str
    role: str
    scopes: frozenset[str]

    @property
    def is_anonymous(self) -> bool:
        """Tell whether no credentials were sent."""
        return self.role == "anonymous"

    def has(self, scope: str) -> bool:
        """Tell whether the principal holds ``scope``."""
        return scope in self.scopes


ANONYMOUS = Principal(name="anonymous", role="anonymous", scopes=frozenset())

# sha256 hex -> (principal or None for unknown/revoked, expiry monotonic time)
_cache: dict[str, tuple[Principal | None, float]] = {}


def hash_key(key: str) -> str:
    """Return the sha256 hex digest of a clear API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def clear_key_cache() -> None:
    """Forget cached key lookups (after a revocation in the same process, and in tests)."""
    _cache.clear()


def _key_from_request(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if scheme.lower() == "basic" and value.strip():
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise NotAuthenticated("Authorization: Basic must carry base64 of 'user:api key'",
                                       headers={"WWW-Authenticate": "Basic"}) from None
            _, sep, password = decoded.partition(":")
            if sep and password:
                return password
            raise NotAuthenticated("Authorization: Basic must carry the API key as the password",
                                   headers={"WWW-Authenticate": "Basic"})
        raise NotAuthenticated("Authorization header must be 'Bearer <api key>' or Basic with the key as password",
                               headers={"WWW-Authenticate": "Bearer"})
    return None


async def _lookup(db: Database, digest: str) -> Principal | None:
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[1] > now:
        return hit[0]
    row = await api_keys.fetch_active(db, digest)
    principal = None
    if row is not None and row["role"] in ROLES:
        principal = Principal(name=row["name"], role=row["role"], scopes=ROLES[row["role"]])
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (principal, now + KEY_CACHE_SECONDS)
    return principal


async def get_principal(request: Request) -> Principal:
    """Resolve the caller from ``X-API-Key`` or ``Authorization: Bearer``; anonymous without credentials."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    key = _key_from_request(request)
    if key is None:
        principal = ANONYMOUS
    else:
        principal = await _lookup(request.app.state.db, hash_key(key))
        if principal is None:
            raise NotAuthenticated("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def require_scope(principal: Principal, scope: str) -> None:
    """401 for the anonymous caller, 403 for a key whose role lacks ``scope``."""
    if principal.is_anonymous:
        raise NotAuthenticated(f"this request needs an API key with the {scope!r} scope",
                               headers={"WWW-Authenticate": 'Basic realm="cim", Bearer'})
    if not principal.has(scope):
        raise Forbidden(f"the role {principal.role!r} lacks the {scope!r} scope")


def can_read_layer(spec: LayerSpec, principal: Principal) -> bool:
    """Tell whether ``principal`` may read layer ``spec``."""
    if spec.access is Access.public:
        return True
    if spec.access is Access.internal:
        return principal.has("internal")
    return principal.has("restricted")


def visible_fields(spec: LayerSpec, principal: Principal) -> list[FieldSpec]:
    """Fields of ``spec`` the principal may see: personal ones only with the ``personal_data`` scope."""
    return spec.public_fields(personal_data=principal.has("personal_data"))


def needs_audit(spec: LayerSpec, fields: Iterable[str]) -> bool:
    """Tell whether reading ``fields`` of ``spec`` must be written to the access log."""
    if spec.access is Access.restricted:
        return True
    personal = set(spec.personal_fields)
    return any(f in personal for f in fields)


async def resolve_layer(collectionId: str, request: Request,  # noqa: N803 - OGC path parameter name
                        principal: Principal = Depends(get_principal)) -> LayerSpec:
    """Resolve the path's collection id to a readable layer; 404 when unknown or not readable."""
    try:
        spec = request.app.state.catalog.get(collectionId)
    except UnknownLayerError:
        raise NotFound(f"collection {collectionId!r} not found") from None
    if not can_read_layer(spec, principal):
        raise NotFound(f"collection {collectionId!r} not found")
    return spec


async def log_access(db: Database, principal: Principal, spec: LayerSpec, action: str,
                     fields: list[str], detail: dict, client: str | None) -> None:
    """Write one row to ``cim_meta.access_log`` (who read what, when, from where)."""
    await access_log.record(db, principal=principal.name, role=principal.role, layer_id=spec.id, action=action,
                            fields=fields, detail=detail, client=client)


# -- key administration (synchronous: used by `cim keys`) ---------------------------------------

def create_api_key(engine: Engine, name: str, role: str) -> str:
    """Create a key for ``name`` with ``role``; return the clear key (shown once, stored only hashed)."""
    if role not in ROLES:
        raise InvalidParameter(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not name.strip():
        raise InvalidParameter("key name must not be empty")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        if api_keys.exists(conn, name):
            raise InvalidParameter(f"a key named {name!r} already exists; revoke it or choose another name")
        api_keys.insert(conn, name, key[: len(KEY_PREFIX) + 6], hash_key(key), role)
    return key


def list_api_keys(engine: Engine) -> list[dict]:
    """Return every key's name, prefix, role, creation and revocation time (never the hash)."""
    with engine.connect() as conn:
        return api_keys.listing(conn)


def revoke_api_key(engine: Engine, name: str) -> bool:
    """Revoke the key ``name``; return False when there is no active key of that name."""
    with engine.begin() as conn:
        revoked = api_keys.revoke(conn, name)
    clear_key_cache()
    return revoked
