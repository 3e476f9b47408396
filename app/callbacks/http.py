"""Callbacks over HTTP: a web "call me" request joins the same line as a caller's callback.

Behind the supervisor API's bearer token for now (a public web form would sit behind
the site's own backend, which holds the token).
"""

from __future__ import annotations

from aiohttp import web

from app.callbacks.service import CallbackService, callback_view
from app.domain.callback import CallbackSource
from app.web.auth import bearer
from app.web.http import BadRequest, json_body

CALLBACKS = web.AppKey("callbacks", CallbackService)


async def request_callback(request: web.Request) -> web.Response:
    bearer(request)
    body = await json_body(request)
    phone, queue, name = body.get("phone"), body.get("queue"), body.get("name")
    language = body.get("language")
    if (
        not isinstance(phone, str)
        or not isinstance(queue, str)
        or not isinstance(name, str | None)
        or not isinstance(language, str | None)
    ):
        raise BadRequest(
            "expected {'phone': digits, 'queue': queue name, 'name': optional text,"
            " 'language': optional, one of the center's (e.g. zh)}"
        )
    cb = await request.app[CALLBACKS].request(
        phone=phone.strip(),
        queue=queue,
        source=CallbackSource.WEB,
        data={"name": name} if name else {},
        language=language.strip().lower() if language else None,
    )
    return web.json_response(callback_view(cb), status=201)


async def list_callbacks(request: web.Request) -> web.Response:
    bearer(request)
    open_only = request.query.get("open", "") in ("1", "true", "yes")
    callbacks = await request.app[CALLBACKS].store.callbacks(open_only=open_only)
    return web.json_response([callback_view(cb) for cb in callbacks])


async def cancel_callback(request: web.Request) -> web.Response:
    bearer(request)
    cb = await request.app[CALLBACKS].cancel(request.match_info["callback_id"])
    return web.json_response(callback_view(cb))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/callbacks", request_callback)
    app.router.add_get("/api/callbacks", list_callbacks)
    app.router.add_delete("/api/callbacks/{callback_id}", cancel_callback)
