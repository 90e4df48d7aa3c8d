"""The one place a dialogue engine is built (its model, bank adapter, knowledge base and
verification lockout) and the one place speech models load, from the project and the
configuration.

The bank adapter is configured (docs/bank-adapter.md): ``IVR_BANK=demo`` (the embedded
default: the demo customers of the README) or ``IVR_BANK=http`` with ``IVR_BANK_URL`` (the
bank's core-banking API), ``IVR_BANK_TOKEN``, ``IVR_BANK_TIMEOUT_S``, ``IVR_BANK_RETRIES``.
Evaluation and replay always use the demo bank (``stand_in_bank``): their scripted and
recorded calls are the demo customers', and a replay must never act on a real account.
A locale is its files (``knowledge/<locale>.yml``, the model named in ``models/live.yml``,
the speech model ``locales/<locale>.yml`` names): adding one needs no code here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.dialogue.bank import BankAdapter, DemoBank
from ivr.errors import IvrError
from ivr.project import Project

if TYPE_CHECKING:
    from ivr.dialogue.engine import DialogueEngine
    from ivr.voice.asr import SpeechModel, VoskRecognizer
    from ivr.voice.decoders import DecoderPool
    from ivr.voice.voice_locale import VoiceLocale

log = logging.getLogger(__name__)

BANK_KINDS = ("demo", "http")


@dataclass(frozen=True)
class BankSettings:
    """Which bank adapter the engine calls, and how (``from_env`` reads ``IVR_BANK*``)."""

    kind: str = "demo"
    url: str = ""
    token: str | None = None
    timeout_s: float = 2.0  # per request: the caller waits in silence meanwhile
    retries: int = 1        # more attempts after the first, reads and keyed writes only

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BankSettings:
        """The configured bank; a wrong setting is one ``IvrError`` line."""
        env = os.environ if env is None else env
        kind = (env.get("IVR_BANK") or "demo").strip().lower()
        if kind not in BANK_KINDS:
            raise IvrError(f"IVR_BANK={kind!r}: expected one of {', '.join(BANK_KINDS)}")
        url = (env.get("IVR_BANK_URL") or "").strip()
        if kind == "http" and not url.startswith(("http://", "https://")):
            raise IvrError("IVR_BANK=http needs IVR_BANK_URL, the core-banking API's base "
                           "URL (http:// or https://)")
        return cls(kind, url, env.get("IVR_BANK_TOKEN") or None,
                   _number(env, "IVR_BANK_TIMEOUT_S", cls.timeout_s, float),
                   _number(env, "IVR_BANK_RETRIES", cls.retries, int))


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if value < 0 or (kind is float and value == 0):
        raise IvrError(f"{name}={raw!r}: expected a positive number")
    return value


def open_bank(settings: BankSettings | None = None) -> BankAdapter:
    """The bank adapter ``settings`` name (default: the environment's)."""
    settings = settings or BankSettings.from_env()
    if settings.kind == "http":
        from ivr.dialogue.bank_http import HttpBank

        return HttpBank(settings.url, settings.token, settings.timeout_s, settings.retries)
    return stand_in_bank()


def stand_in_bank() -> DemoBank:
    """The embedded demo bank, whatever is configured (evaluation, replay, benchmarks)."""
    return DemoBank()


async def load_engine(project: Project, model: Path | None = None, *,
                      bank: BankAdapter | None = None, conversations: str | None = None,
                      lockout: Any = None) -> DialogueEngine:
    """The locale's dialogue engine on ``model`` (default: the live model), calling ``bank``
    (default: the configured one), answering from ``knowledge/<locale>.yml``, its calls'
    conversations in ``conversations`` (a Redis URL; None: in this process), failed
    verifications counted in ``lockout`` (None: in this process)."""
    from ivr.dialogue.engine import DialogueEngine
    from ivr.dialogue.knowledge import KnowledgeBase

    # Files are read off the event loop: a live swap loads an engine while calls go on.
    kb = await asyncio.to_thread(KnowledgeBase.load, project.knowledge)  # before the model
    model = model or await asyncio.to_thread(project.live_model)
    return await DialogueEngine.load(model, bank or open_bank(), kb, conversations, lockout)


async def close_engines(engines: Iterable[DialogueEngine]) -> None:
    """Close engines at the end of a program, their bank adapters' connections first and
    waited for (closed later, at exit, they would be reported as leaked)."""
    engines = list(engines)
    banks = {id(e.bank): e.bank for e in engines}
    for bank in banks.values():
        aclose_all = getattr(bank, "aclose_all", None)
        if aclose_all is not None:
            await aclose_all()
    for engine in engines:
        engine.close()


def load_speech_model(locale: str, voice: VoiceLocale,
                      end_of_speech_ms: int = 500) -> SpeechModel | None:
    """The one place a speech model loads (``ivr serve``, ``ivr replay``, ``ivr models``):
    None where the locale configures none; ``SpeechModelError`` where the configured one is
    not installed. Blocking (reads the vocabulary): call it in an executor."""
    from ivr.voice.asr import SpeechModel

    if not voice.asr_model:
        return None
    return SpeechModel.load(locale, voice.asr_model, end_of_speech_ms)


@dataclass
class SpeechModels:
    """Each locale's Vosk model (absent where none is installed: keys only), decoding in
    worker processes so that a native crash costs one worker, not the engine."""

    models: dict[str, SpeechModel]
    decoders: DecoderPool | None  # None: no model installed

    def recognizer_for(self, locale: str) -> VoskRecognizer | None:
        from ivr.voice.asr import VoskRecognizer

        model = self.models.get(locale)
        if model is None or self.decoders is None:
            return None
        return VoskRecognizer(model, decoder=self.decoders.decoder(locale))


async def load_speech_models(locales: dict[str, VoiceLocale], end_of_speech_ms: int,
                             workers: int) -> SpeechModels:
    """``ivr serve``'s models, decoded by ``workers`` processes. A missing one is a warning
    (that locale takes keys only), a grammar phrase the model cannot say is an error (the
    menu would never match)."""
    from ivr.voice.decoders import DecoderPool
    from ivr.voice.vosk_model import SpeechModelError

    loop = asyncio.get_running_loop()
    models: dict[str, SpeechModel] = {}
    for name, voice in locales.items():
        try:
            model = await loop.run_in_executor(None, load_speech_model, name, voice,
                                               end_of_speech_ms)
        except SpeechModelError as e:
            log.warning("%s; %s calls will take keys only (see `ivr models`)", e, name)
            continue
        if model is None:
            continue
        missing = model.missing_words(voice.all_phrases())
        if missing:
            raise IvrError(f"locales/{name}.yml: the {name} speech model has no word for "
                           f"{', '.join(missing)}; grammar phrases must use its vocabulary")
        models[name] = model
    pool = DecoderPool(models, workers) if models else None
    return SpeechModels(models, pool)


def offline_recognizers(root: Path) -> Callable[[str], VoskRecognizer | None]:
    """A fresh in-process recogniser per utterance for each locale whose speech model is
    installed (``ivr replay`` decodes recordings with them); models load on first use."""
    from ivr.voice.asr import VoskRecognizer
    from ivr.voice.voice_locale import load_voice_locales
    from ivr.voice.vosk_model import SpeechModelError

    voices = load_voice_locales(root / "locales")
    models: dict[str, SpeechModel | None] = {}

    def recognizer_for(locale: str) -> VoskRecognizer | None:
        if locale not in models:
            try:
                models[locale] = (load_speech_model(locale, voices[locale])
                                  if locale in voices else None)
            except SpeechModelError:
                models[locale] = None
        model = models[locale]
        return VoskRecognizer(model) if model else None

    return recognizer_for
