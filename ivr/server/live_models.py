"""The running server's dialogue engines, swapped to a newly promoted model with no call
dropped.

A call keeps the engine it started with (``Call.engine``) to its end, so a swap only
replaces ``VoiceServices.engines[locale]``: new calls get the new model, calls in progress
finish on the old one, and the old engine is closed once the last of them has ended. The
new model loads on its own dialogue thread, so the calls' event loop keeps running.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ivr.core.report import CallReport
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.engine_factory import load_engine
from ivr.errors import IvrError
from ivr.project import Project
from ivr.voice.gateway import Gateway
from ivr.voice.warmup import warm_dialogue

log = logging.getLogger(__name__)


class LiveModels:
    """Swaps each locale's engine to the live pointer's model (``models/live.yml``) when
    asked (``reload``) or when the pointer file changes (``watch``)."""

    def __init__(self, root: Path, gateway: Gateway, owned: bool = True) -> None:
        self.root = root
        self.gateway = gateway
        self.services = gateway.services
        # Engines this object closes: the server's own, never ones a test lends it.
        self._owned = set(self.services.engines.values()) if owned else set()
        self._retiring: list[DialogueEngine] = []
        self._one_load = asyncio.Lock()  # each load costs a whole model's memory
        self._pointer = Project(root).live_pointer
        self._seen = self._pointer_state()
        gateway.ended.append(self._call_ended)

    @property
    def retiring(self) -> list[DialogueEngine]:
        """Replaced engines still finishing calls in progress."""
        return list(self._retiring)

    async def reload(self, locale: str) -> dict[str, Any]:
        """Load the locale's live model and swap it in, unless it is already serving."""
        async with self._one_load:
            project = Project(self.root, locale)
            current = self.services.engines[locale]
            path = project.live_model()
            if path.resolve() == current.model_path.resolve():
                return {"locale": locale, "model": path.name, "swapped": False}
            # The new engine calls the same bank, keeps conversations and counts failures
            # where the old one did.
            engine = await load_engine(project, path, bank=current.bank,
                                       conversations=current.conversations,
                                       lockout=current.lockout)
            try:  # its first calls must not pay for its first predictions (issue 17)
                await warm_dialogue(engine, self.services.locales.get(locale))
            except Exception:
                log.exception("%s: warming %s failed; it serves cold", locale, path.name)
            self.services.engines[locale] = engine
            self._owned.add(engine)
            self._retiring.append(current)
            log.warning("%s: now serving %s (was %s; %d call(s) finish on it)", locale,
                        path.name, current.model_path.name, self._users(current))
            self._close_unused()
            return {"locale": locale, "model": path.name, "previous": current.model_path.name,
                    "swapped": True}

    async def reload_all(self) -> list[dict[str, Any]]:
        return [await self.reload(locale) for locale in list(self.services.engines)]

    async def watch(self, every_s: float = 3.0) -> None:
        """Reload when the live pointer changes (``ivr promote`` without ``--server``)."""
        while True:
            await asyncio.sleep(every_s)
            state = self._pointer_state()
            if state == self._seen:
                continue
            self._seen = state
            for locale in list(self.services.engines):
                try:
                    await self.reload(locale)
                except IvrError as e:  # keep serving the old model; say why once
                    log.error("%s: live model not loaded: %s", locale, e)
                except Exception:
                    log.exception("%s: live model not loaded", locale)

    def close(self) -> None:
        """Close every engine this object owns (at server shutdown)."""
        for engine in self._owned:
            engine.close()
        self._owned.clear()
        self._retiring.clear()

    def _pointer_state(self) -> tuple[int, int] | None:
        try:
            stat = self._pointer.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _users(self, engine: DialogueEngine) -> int:
        return sum(1 for s in self.gateway.live.values()
                   if s.call is not None and s.call.engine is engine)

    def _close_unused(self) -> None:
        for engine in list(self._retiring):
            if self._users(engine) == 0:
                self._retiring.remove(engine)
                if engine in self._owned:
                    self._owned.discard(engine)
                    engine.close()

    async def _call_ended(self, report: CallReport) -> None:
        self._close_unused()
