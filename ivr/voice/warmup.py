"""Warming the server before it takes calls (issue 17): the first call must not pay for
what every later call finds ready.

Measured on a fresh engine (docs/capacity.md): a Korean call's three dialogue turns cost
100 ms of CPU the first time and 60 ms each time after (Rasa's and TensorFlow's first
predictions, Python caches); after ``warm_dialogue`` the first costs 61 ms. The first
prompt of each kind waits for espeak-ng (tens of ms, or a cache file); the first decode
waits for its worker process to have loaded the speech models. So, before ``ivr serve``
listens (and ``/health`` answers), for each locale:

- the dialogue: one parse, and one conversation of two turns (the call start, with no
  caller number, so no bank lookup; then a no-match, which the rules answer with a
  re-prompt), forgotten afterwards. Nothing reaches the bank, the lockout or the call log.
- the prompts: every fixed prompt (a domain response with no slot in it, in the variation
  that locale's calls get, and the locale file's notice, language, failure and busy
  prompts) rendered into the prompt cache; synthesis runs on threads (``PromptAudio``).
- the decoders: one recogniser per decoder worker, fed a second of silence, so each worker
  has loaded its models and decoded once.

A failure while warming is logged and the server serves anyway (a cold path is slower,
not wrong); what failed is in ``/health``'s ``warm_up``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ivr.voice.audio import SAMPLE_RATE, SAMPLE_WIDTH
from ivr.voice.session import VoiceServices
from ivr.voice.voice_locale import VoiceLocale

log = logging.getLogger(__name__)

SILENCE = b"\0" * SAMPLE_RATE * SAMPLE_WIDTH  # one second: a few decoder batches
SYNTHESIS_AT_ONCE = 2  # espeak-ng processes at once: the cores are the calls' too


async def warm_up(services: VoiceServices, decoder_workers: int = 1) -> dict[str, Any]:
    """Warm every locale's dialogue, fixed prompts and decoders; what was done, in how
    long, and what failed (``/health`` shows it)."""
    started = time.perf_counter()
    failed: list[str] = []
    prompts = await _warm_prompts(services, failed)
    for locale, engine in services.engines.items():
        try:
            await warm_dialogue(engine, services.locales.get(locale))
        except Exception:
            log.exception("%s: warming the dialogue failed", locale)
            failed.append(f"dialogue:{locale}")
    decoders = 0
    for locale in services.locales:
        try:
            decoders += await _warm_decoders(services, locale, decoder_workers)
        except Exception:
            log.exception("%s: warming the speech decoders failed", locale)
            failed.append(f"decoders:{locale}")
    return {"seconds": round(time.perf_counter() - started, 3), "prompts": prompts,
            "dialogues": len(services.engines), "decoders": decoders, "failed": failed}


async def warm_dialogue(engine: Any, voice: VoiceLocale | None) -> None:
    """One parse and a two-turn conversation no one hears (see the module's docstring)."""
    from ivr.dialogue.call import _event
    from ivr.dialogue.engine import NO_MATCH_INTENT

    phrases = voice.all_phrases() if voice else []
    await engine.parse(phrases[0] if phrases else "?")
    conversation = f"warm-up-{uuid.uuid4().hex}"
    locale = [{"entity": "locale", "value": voice.locale}] if voice else []
    try:
        await engine.handle(conversation, _event("call_start", "/call_start", locale))
        await engine.handle(conversation, _event(NO_MATCH_INTENT, "?"))
    finally:
        await engine.end(conversation)


def fixed_prompts(services: VoiceServices) -> Iterator[tuple[VoiceLocale, str, str | None]]:
    """(voice, text, response name) of every prompt whose words never change."""
    for locale, voice in services.locales.items():
        for text in (voice.notice, voice.language_prompt, voice.failure_prompt):
            if text:
                yield voice, text, None
        yield voice, voice.busy_prompt, "busy"
        engine = services.engines.get(locale)
        domain = getattr(getattr(engine, "_agent", None), "domain", None)
        for name, variations in (getattr(domain, "responses", None) or {}).items():
            for variation in _for_locale(variations, locale):
                text = variation.get("text")
                if text and "{" not in text:  # a slot in it: different on every call
                    # split as the dialogue's channel splits a response into prompts
                    for part in text.strip().split("\n\n"):
                        yield voice, part, name


def _for_locale(variations: list[dict[str, Any]], locale: str) -> list[dict[str, Any]]:
    """The variations a call in ``locale`` gets: those conditioned on its locale slot if
    there are any (Rasa prefers a matching condition), else the unconditioned ones."""
    def locale_of(variation: dict[str, Any]) -> str | None:
        return next((c.get("value") for c in variation.get("condition") or []
                     if c.get("type") == "slot" and c.get("name") == "locale"), None)

    chosen = [v for v in variations if locale_of(v) == locale]
    return chosen or [v for v in variations if not v.get("condition")]


async def _warm_prompts(services: VoiceServices, failed: list[str]) -> int:
    at_once = asyncio.Semaphore(SYNTHESIS_AT_ONCE)
    done = 0

    async def render(voice: VoiceLocale, text: str, name: str | None) -> None:
        nonlocal done
        async with at_once:
            try:
                await services.prompts.render(text, voice.tts_voice, voice.locale, name)
                done += 1
            except Exception as e:  # the call will say so (and fail over) if it recurs
                log.warning("%s: prompt %s not warmed: %s", voice.locale, name, e)
                failed.append(f"prompt:{voice.locale}:{name or 'locale'}")

    unique = {(v.locale, text, name): (v, text, name) for v, text, name in
              fixed_prompts(services)}
    await asyncio.gather(*(render(*p) for p in unique.values()))
    return done


async def _warm_decoders(services: VoiceServices, locale: str, workers: int) -> int:
    """One recogniser per worker, all open at once: the pool puts each new one on the
    worker with the fewest, so every worker decodes once (and has loaded its models)."""
    recognizers = [r for r in (services.recognizer_for(locale) for _ in range(workers)) if r]
    try:
        await asyncio.gather(*(_decode_silence(r) for r in recognizers))
    finally:
        for recognizer in recognizers:
            recognizer.close()
    return len(recognizers)


async def _decode_silence(recognizer: Any) -> None:
    await recognizer.expect(None)
    await recognizer.accept(SILENCE)
    await recognizer.finish()
