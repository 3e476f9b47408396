"""Voicemail over HTTP: the list of messages (work waiting for someone) and their audio."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiohttp import web

from app.errors import AppError
from app.voicemail.service import VoicemailService, voicemail_view
from app.web.auth import bearer

VOICEMAIL = web.AppKey("voicemail", VoicemailService)


class VoicemailNotFound(AppError):
    def __init__(self, voicemail_id: str) -> None:
        super().__init__("not-found", f"no voicemail {voicemail_id}", {}, 404)


async def list_voicemails(request: web.Request) -> web.Response:
    bearer(request)
    new_only = request.query.get("new", "") in ("1", "true", "yes")
    messages = await request.app[VOICEMAIL].store.voicemails(new_only=new_only)
    return web.json_response([voicemail_view(vm) for vm in messages])


async def voicemail_audio(request: web.Request) -> web.StreamResponse:
    bearer(request)
    voicemail_id = request.match_info["voicemail_id"]
    try:
        uuid.UUID(voicemail_id)
    except ValueError:
        raise VoicemailNotFound(voicemail_id) from None
    path = request.app[VOICEMAIL].dir / f"{voicemail_id}.wav"
    if not await _exists(path):
        raise VoicemailNotFound(voicemail_id)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.is_file)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/voicemails", list_voicemails)
    app.router.add_get("/api/voicemails/{voicemail_id}/audio", voicemail_audio)
