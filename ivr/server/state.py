"""What the app holds while it serves, by key (its routes and the tests read them)."""

from __future__ import annotations

from aiohttp import web

from ivr.calllog.recorder import CallRecorder
from ivr.server.live_models import LiveModels
from ivr.server.settings import ServerSettings
from ivr.voice.gateway import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
CALL_LOG = web.AppKey("call_log", CallRecorder)
LIVE_MODELS = web.AppKey("live_models", LiveModels)
AUDIOSOCKET_ADDRESS = web.AppKey("audiosocket_address", tuple)
WARM_UP = web.AppKey("warm_up", dict)  # what was warmed before serving (ivr/voice/warmup.py)
SETTINGS = web.AppKey("settings", ServerSettings)
