"""Domain exceptions and their HTTP mapping, in one place.

Every error a client sees is JSON ``{"code": ..., "description": ...}`` (the OGC API exception shape) with a
status chosen here. Clients never see SQL text or tracebacks: unexpected exceptions are logged server-side
and answered with a generic 500; database outages with 503; statement timeouts with 504.
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cim_service.store import db as store_db

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    code: str
    description: str


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` entries documenting the error body for ``statuses``."""
    text = {400: "Invalid parameter value", 401: "Unknown or revoked API key", 404: "Not found (or not visible)",
            500: "Internal error", 503: "Database unavailable", 504: "Query timeout"}
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in statuses}


class CimError(Exception):
    """Base of the service's domain errors; ``status`` and ``code`` give the HTTP answer."""

    status: int = 500
    code: str = "ServerError"

    def __init__(self, description: str, *, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.description = description
        self.headers = headers


class InvalidParameter(CimError):
    """A query parameter has an invalid value (the message names the parameter)."""

    status = 400
    code = "InvalidParameterValue"


class NotFound(CimError):
    """The requested collection or feature does not exist (or is not visible to the caller)."""

    status = 404
    code = "NotFound"


class NotAuthenticated(CimError):
    """The credentials sent are unknown or revoked."""

    status = 401
    code = "NotAuthenticated"


class Forbidden(CimError):
    """The caller is known but lacks the scope for this operation."""

    status = 403
    code = "Forbidden"


class PreconditionFailed(CimError):
    """``If-Match`` names a version of the feature that is no longer the current one (an edit conflict)."""

    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(CimError):
    """The request body exceeds its bound."""

    status = 413
    code = "PayloadTooLarge"


class UnprocessableContent(CimError):
    """A well-formed body whose values break the catalog's rules (the message names the field)."""

    status = 422
    code = "UnprocessableContent"


class NotAcceptable(CimError):
    """No representation matches the requested format."""

    status = 406
    code = "NotAcceptable"


class ServiceUnavailable(CimError):
    """The database is unreachable."""

    status = 503
    code = "ServiceUnavailable"


class Busy(CimError):
    """The service runs as many of these jobs (exports) as it may; retry after ``Retry-After`` seconds."""

    status = 503
    code = "ServiceBusy"


class RangeNotSatisfiable(CimError):
    """A ``Range`` header outside the resource (``Content-Range: bytes */size`` is sent back)."""

    status = 416
    code = "RangeNotSatisfiable"


class QueryTimeout(CimError):
    """A query ran longer than the statement timeout."""

    status = 504
    code = "QueryTimeout"


def error_response(status: int, code: str, description: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """Build the JSON error body."""
    return JSONResponse({"code": code, "description": description}, status_code=status, headers=headers)


async def _cim_error(request: Request, exc: CimError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.description, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
        name = ".".join(loc) or "request"
        parts.append(f"parameter {name!r}: {err.get('msg', 'invalid value')}")
    return error_response(400, "InvalidParameterValue", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {400: "InvalidParameterValue", 401: "NotAuthenticated", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable"}.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))


async def _db_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return error_response(503, "ServiceUnavailable", "the database is temporarily unavailable; retry shortly",
                          {"Retry-After": "5"})


#: what a data exception (SQLSTATE class 22) raised by a request's own values means, by SQLSTATE
_DATA_ERRORS = {
    "22012": "division by zero", "22003": "a number out of range", "22008": "a date or time out of range",
    "22021": "a character that is not allowed", "22P05": "a character that is not allowed",
    "22P02": "a value that is not valid for its type", "2201E": "an invalid argument of a mathematical function",
    "2201F": "an invalid argument of a mathematical function", "22007": "an invalid date or time",
}


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """A statement failed on a value of the request (division by zero, overflow...): 400 naming the parameter.

    The database's own message (which may quote SQL) is logged, never sent; the description is chosen by
    SQLSTATE. A filter is the only parameter that computes, so it is named when present.
    """
    log.info("data exception on %s: %s", request.url.path, exc)
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None) or ""
    what = _DATA_ERRORS.get(sqlstate, "a value outside the domain of its operation")
    names = list(dict.fromkeys(request.query_params.keys()))
    if "filter" in names:
        subject = "parameter 'filter'"
    elif names:
        subject = "parameter " + " or ".join(repr(n) for n in names[:5])
    else:
        subject = "the request"
    return error_response(400, "InvalidParameterValue", f"{subject}: the query failed on {what}")


async def _timeout(request: Request, exc: Exception) -> JSONResponse:
    return error_response(504, "QueryTimeout",
                          "the query took longer than the statement timeout; narrow it (bbox, filter, limit)")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "ServerError", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers of the service on ``app``."""
    app.add_exception_handler(CimError, _cim_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(store_db.DatabaseUnavailable, _db_unavailable)
    app.add_exception_handler(store_db.QueryTimeout, _timeout)
    app.add_exception_handler(TimeoutError, _timeout)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _db_unavailable)
    app.add_exception_handler(store_db.QueryDataError, _data_error)
    app.add_exception_handler(store_db.QueryError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
