"""Typed keys for what the running service holds, shared by bootstrap and the web layer."""

from __future__ import annotations

from aiohttp import web

from app.adapters.ami import AmiConnection
from app.adapters.ari import AriClient
from app.adapters.asterisk_instance import AsteriskProcess, Secrets
from app.adapters.db import Store
from app.adapters.prompts import PromptCache
from app.adapters.speech import ManagedRecognizer
from app.config import Settings
from app.domain.ivr_flow import FlowSet
from app.flows.callbacks import CallbackService
from app.flows.dialer import DialerService
from app.flows.inbound import InboundService
from app.flows.routing import RoutingService
from app.flows.voicemail import VoicemailService
from app.panel.auth import AuthService
from app.panel.live import LiveHub
from app.panel.pop import PopService

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
SECRETS = web.AppKey("secrets", Secrets)
ASTERISK = web.AppKey("asterisk", AsteriskProcess)
PROMPTS = web.AppKey("prompts", dict[str, list[str]])
PROMPT_CACHE = web.AppKey("prompt_cache", PromptCache)
ARI = web.AppKey("ari", AriClient)
AMI = web.AppKey("ami", AmiConnection)
INBOUND = web.AppKey("inbound", InboundService)
ROUTING = web.AppKey("routing", RoutingService)
DATABASE_URL = web.AppKey("database_url", str)
CALLBACKS = web.AppKey("callbacks", CallbackService)
VOICEMAIL = web.AppKey("voicemail", VoicemailService)
AUTH = web.AppKey("auth", AuthService)
LIVE = web.AppKey("live", LiveHub)
FLOWS = web.AppKey("flows", FlowSet)
RECOGNIZER = web.AppKey("recognizer", ManagedRecognizer)
POPS = web.AppKey("pops", PopService)
DIALER = web.AppKey("dialer", DialerService)
