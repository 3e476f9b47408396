"""Small pieces every HTTP route uses: the error middleware, JSON bodies, shared app keys."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDictProxy

from app.adapters.asterisk_instance import Secrets
from app.config import Settings
from app.errors import AppError

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)


class BadRequest(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("bad-request", message, {}, 400)


class NotFound(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("not-found", message, {}, 404)


class PayloadTooLarge(AppError):
    def __init__(self, limit: int) -> None:
        super().__init__("payload-too-large", f"a body may be at most {limit} bytes", {"limit": limit}, 413)


# No request of ours needs more: what is larger or deeper is an attack or a mistake, and parsing
# it would cost the loop (or, nested deep enough, Python's recursion limit).
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16


def clean_text(value: str, where: str) -> str:
    """Text from outside as we store, log and show it: no NUL (PostgreSQL refuses it, and one such
    row would fail a whole batch) and no lone UTF-16 surrogate (it cannot be encoded at all)."""
    if "\x00" in value:
        raise BadRequest(f"{where}: a NUL character is not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{where}: not valid Unicode text (a lone surrogate)") from exc
    return value


def _check_json(body: Any) -> None:
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
            raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                clean_text(key, "a JSON key")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            clean_text(value, "a JSON string")


def unreadable(exc: RequestPayloadError) -> BadRequest:
    """The body could not be read as sent: e.g. Content-Encoding gzip on bytes that are not."""
    return BadRequest(f"the body cannot be read: {exc.__cause__ or exc}")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, refused with 400 (413 when too large) unless it is small,
    shallow, valid UTF-8 and free of NUL characters and lone surrogates."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise PayloadTooLarge(MAX_JSON_BYTES)
    raw = bytearray()  # read() returns what has arrived so far: a body may come in pieces
    try:
        while chunk := await request.content.read(MAX_JSON_BYTES + 1 - len(raw)):
            raw += chunk
            if len(raw) > MAX_JSON_BYTES:  # chunked, with no length said beforehand
                raise PayloadTooLarge(MAX_JSON_BYTES)
    except RequestPayloadError as exc:
        raise unreadable(exc) from exc
    try:
        body = json.loads(raw.decode("utf-8"))
    except RecursionError as exc:
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    _check_json(body)
    return body


async def form_body(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form, with every field name and text value checked as `clean_text` does."""
    try:
        form = await request.post()
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the form is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    except ValueError as exc:  # a multipart body without its boundary, or not split by it
        raise BadRequest(f"the form cannot be read: {exc}") from exc
    except RequestPayloadError as exc:
        raise unreadable(exc) from exc
    for key, value in form.items():
        clean_text(key, "a form field's name")
        if isinstance(value, str):
            clean_text(value, f"form field {key}")
    return form


_HTTP_ERROR_IDS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """One error model: an AppError anywhere becomes its JSON body and status; anything
    unexpected is logged with its traceback and answered 500 without one. JSON answers are never
    cached (they carry calls, customers and agents)."""
    try:
        clean_text(request.path, "the path")
        for key, value in request.query.items():
            clean_text(key, "a query parameter's name")
            clean_text(value, f"query parameter {key}")
        response = await handler(request)
    except AppError as exc:
        response = web.json_response(
            {"error_id": exc.error_id, "message": exc.message, "details": exc.details},
            status=exc.http_status,
            headers=exc.headers,
        )
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(("/api/", "/panel/api/")):
            raise  # redirects, and the pages' own answers (an unknown page's 404)
        # An API client gets the one error model even for aiohttp's own 404 and 405.
        response = web.json_response(
            {"error_id": _HTTP_ERROR_IDS.get(exc.status, "http-error"), "message": exc.reason, "details": {}},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path.encode("unicode_escape").decode())
        response = web.json_response(
            {"error_id": "internal", "message": "internal error; the details are in the log", "details": {}},
            status=500,
        )
    if isinstance(response, web.Response) and response.content_type == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
