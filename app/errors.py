"""The app's one error type and the handlers that turn every failure into a JSON error body.

Bodies are `{"error": <stable code>, "message": <one line>, ...fields}`. Malformed input is a 4xx
naming the field; an unreachable database or Redis is a 503 (with Retry-After), never a 500."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg.errors
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("app")


class AppError(Exception):
    """An expected failure: HTTP `status`, stable `code`, one-line `message`, extra body `fields`."""

    def __init__(self, status: int, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def error_body(code: str, message: str, **fields: Any) -> dict[str, Any]:
    """The JSON body every error response carries."""
    return {"error": code, "message": message, **fields}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=jsonable_encoder(body), headers=headers)


async def _app_error(_: Request, exc: AppError) -> JSONResponse:
    return _json(exc.status, error_body(exc.code, exc.message, **exc.fields))


def _field_name(loc: tuple | list) -> str:
    # ("body", "profile", "x") → "profile.x"; ("header", "x-min-lsn") → "x-min-lsn"
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"} and len(parts) > 1:
        if parts[0] == "header":  # HTTP header names are case-insensitive: report them lower-case
            parts[1] = parts[1].lower()
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is not echoed back: it may be huge, binary, or a secret.
    details = [{"field": _field_name(err.get("loc", ())), "location": str((err.get("loc") or ["body"])[0]),
                "message": str(err.get("msg", "")), "type": str(err.get("type", ""))}
               for err in exc.errors()]
    fields = sorted({d["field"] for d in details})
    message = "invalid " + ", ".join(fields) if fields else "invalid request"
    return _json(422, error_body("invalid_request", message, fields=fields, details=details))


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
             405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code
    return _json(exc.status_code, error_body(code, message), headers=getattr(exc, "headers", None))


async def _database_read_only(_: Request, exc: Exception) -> JSONResponse:
    # The writer is fenced (a switchover is in progress): retry shortly.
    return _json(503, error_body("database_read_only", "the database is not accepting writes right now"),
                 headers={"Retry-After": "1"})


class WriteHeld(Exception):
    """The player's home stayed fenced (a cutover in progress) for the whole hold, or too many writes
    were held already: nothing was written, and the client should retry shortly (503 + Retry-After)."""


async def _write_held(_: Request, exc: Exception) -> JSONResponse:
    # The player's home was fenced (a cutover moving its writer) for the whole hold: nothing was written.
    return _json(503, error_body("write_held", f"your write was held and not applied: {exc}; try again"),
                 headers={"Retry-After": "1"})


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return _json(503, error_body("database_unavailable", "the database did not answer"),
                 headers={"Retry-After": "1"})


async def _redis_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("redis unavailable: %s", exc)
    return _json(503, error_body("redis_unavailable", "the region's Redis did not answer"),
                 headers={"Retry-After": "1"})


def install(app: FastAPI) -> None:
    """Register the handlers above on `app`."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.errors.ReadOnlySqlTransaction, _database_read_only)
    app.add_exception_handler(WriteHeld, _write_held)
    # OperationalError covers refused/broken connections, admin shutdown, pool timeouts
    # (psycopg_pool.PoolTimeout subclasses it) and statement/lock timeouts.
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(redis.exceptions.ConnectionError, _redis_unavailable)
    app.add_exception_handler(redis.exceptions.TimeoutError, _redis_unavailable)
    app.add_exception_handler(redis.exceptions.ReadOnlyError, _redis_unavailable)
