"""Replay: run a recorded call again through the engine, with any model, and say what
would change.

The caller's inputs are replayed in order: speech from the call's recording through the
same ASR path when there is one (the recogniser gets the grammar the *new* dialogue
expects), else the logged transcript; keys, silences and the hang-up as logged. No PIN or
card number is ever stored, so verification cannot be re-entered: ``ReplayBank`` answers
each attempt the way the bank did on the recorded call, and the bank stand-in serves the
rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.calllog.recording import caller_audio
from ivr.calllog.store import CallFilter, CallStore
from ivr.core.events import CallEvent, TurnTaken
from ivr.core.inputs import (
    CallerInput,
    Choice,
    Hangup,
    Keys,
    Say,
    Silence,
    Unintelligible,
)
from ivr.dialogue.bank import BankAdapter, CustomerInfo, DemoBank
from ivr.dialogue.call import Call
from ivr.dialogue.engine_factory import load_engine, stand_in_bank
from ivr.errors import IvrError, shown
from ivr.project import Project
from ivr.voice.asr import Hypothesis, Recognizer
from ivr.voice.audio import FRAME_BYTES
from ivr.voice.voice_locale import VoiceLocale

log = logging.getLogger(__name__)


class ReplayError(IvrError):
    """A call that cannot be replayed (or a model it cannot be replayed with)."""


class ReplayBank:
    """The bank as the recorded call met it: verification answers are the recorded ones
    (card found or not, PIN right or wrong, in order); everything else goes to ``bank``."""

    def __init__(self, bank: BankAdapter) -> None:
        self.bank = bank
        self.cards: list[str | None] = []  # customer found by each card entry, in order
        self.pins: list[bool] = []  # whether each PIN entry was right

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bank, name)

    async def customer_by_card(self, card_number: str) -> CustomerInfo | None:
        customer = self.cards.pop(0) if self.cards else None
        return await self.bank.customer_info(customer) if customer else None

    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        return self.pins.pop(0) if self.pins else False


# The report's word for each kind of input.
_KINDS: dict[type, str] = {Say: "say", Unintelligible: "unmatched", Keys: "dtmf",
                           Choice: "menu", Silence: "silence", Hangup: "hangup"}


@dataclass
class _Input:
    said: CallerInput
    audio_ms: tuple[int, int] | None = None
    recorded: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return _KINDS[type(self.said)]


def route_of(summary: dict[str, Any]) -> str:
    """A call's route in one word: where it went (``escalated:cards``), what it served
    (``self_service:check_balance``) or ``hangup``."""
    outcome = summary.get("outcome") or "incomplete"
    if outcome == "escalated":
        return f"escalated:{summary.get('queue')}"
    if outcome == "self_service":
        return f"self_service:{summary.get('intent')}"
    return outcome


class Replayer:
    """Replays logged calls; loads (and keeps) one engine per model it is asked for."""

    def __init__(self, store: CallStore, project_root: Path, voices: dict[str, VoiceLocale],
                 recordings: Path | None = None,
                 recognizer_for: Callable[[str], Recognizer | None] | None = None,
                 bank: BankAdapter | None = None, keep_engines: int = 2) -> None:
        self.store = store
        self.root = project_root
        self.voices = voices
        self.recordings = recordings
        self.recognizer_for = recognizer_for or (lambda locale: None)
        # Never the configured bank: a replay must not act on a real account.
        self.bank = ReplayBank(bank or stand_in_bank())
        self._engines: dict[Path, Any] = {}
        self._keep = keep_engines
        self._one_at_a_time = asyncio.Lock()  # the bank stand-in answers for one call

    def models(self, locale: str) -> list[Path]:
        """The models a call of this locale can be replayed with, newest first."""
        return Project(self.root, locale).models()

    async def _engine(self, locale: str, model: Path | None) -> Any:
        from ivr.dialogue.lockout import NoLockout

        project = Project(self.root, locale)
        path = await asyncio.to_thread(lambda: (model or project.live_model()).resolve())
        if not await asyncio.to_thread(path.is_file):
            raise ReplayError(f"no model at {shown(path)}")
        if path not in self._engines:
            while len(self._engines) >= self._keep:
                self._engines.pop(next(iter(self._engines))).close()
            # A replay must never count failed PINs against a real account (NoLockout).
            self._engines[path] = await load_engine(project, path, bank=self.bank,
                                                    lockout=NoLockout())
        return self._engines[path]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()

    # --- one call --------------------------------------------------------------------------
    async def replay(self, call_id: str, model: Path | None = None) -> dict[str, Any]:
        """Replay one call (``model``: default the locale's newest); replays run one at a
        time, and the store and recording are read off the event loop."""
        async with self._one_at_a_time:
            return await self._replay(call_id, model)

    async def _replay(self, call_id: str, model: Path | None) -> dict[str, Any]:
        call_row = await asyncio.to_thread(self.store.find_call, call_id)
        call_id = call_row["call_id"]
        events = await asyncio.to_thread(self.store.events, call_id)
        locale = call_row.get("locale") or "zh"
        if locale not in self.voices:
            raise ReplayError(f"call {call_id}: no locales/{locale}.yml")
        engine = await self._engine(locale, model)
        inputs = _inputs(events)
        self._script_bank(events)
        recording = await asyncio.to_thread(self._recording, call_row)
        call = Call(engine, call_row.get("caller") or "", locale,
                    call_id=f"replay-{call_id}", transport="replay")
        await call.start()
        turns = []
        for item in inputs:
            if call.ended:
                turns.append(_compare(item, None))
                continue
            turn = await self._play(call, item, locale, recording)
            turns.append(_compare(item, turn))
        replayed = await call.finish(input_ran_out=True)  # a replay's call is not logged
        recorded = {k: call_row.get(k) for k in ("outcome", "queue", "intent", "reason")}
        now = {k: getattr(replayed, k) for k in ("outcome", "queue", "intent", "reason")}
        return {
            "call_id": call_id,
            "locale": locale,
            "model": engine.model_path.name,
            "recorded_model": call_row.get("model"),
            "source": "audio" if recording else "transcript",
            "recorded": recorded,
            "replayed": now,
            "route_changed": route_of(recorded) != route_of(now),
            "turns": turns,
        }

    def _recording(self, call_row: dict[str, Any]) -> Path | None:
        if not (self.recordings and call_row.get("recording")):
            return None
        path = (self.recordings / call_row["recording"]).resolve()
        if not path.is_relative_to(self.recordings.resolve()) or not path.is_file():
            return None
        locale = call_row.get("locale") or ""
        return path if self.recognizer_for(locale) is not None else None

    def _script_bank(self, events: list[CallEvent]) -> None:
        """Verification answers, in order, from what the recorded call's turns set."""
        self.bank.cards, self.bank.pins = [], []
        if isinstance(self.bank.bank, DemoBank):
            self.bank.bank.reset()  # a card frozen by the last replay is live again
        for turn in _turns(events):
            if not turn.entry:
                continue
            slots = turn.slots or {}
            if turn.entry == "card":
                self.bank.cards.append(slots.get("customer_id"))
            else:
                self.bank.pins.append(slots.get("verified") is True)

    async def _play(self, call: Call, item: _Input, locale: str,
                    recording: Path | None) -> dict[str, Any] | None:
        """One recorded input into the new call, as a live call takes it; what the new
        call made of it. Speech with its audio kept is heard again by the recogniser."""
        said = item.said
        if isinstance(said, Say | Unintelligible) and recording and item.audio_ms:
            hyp = await self._decode(call, locale, recording, item.audio_ms)
            if not hyp.text and not hyp.raw:  # the live call would have kept listening
                return {"heard": "", "intent": None, "prompt_names": []}
            said = Say(hyp.text) if hyp.text else Unintelligible(hyp.raw)
        turn = await call.take(said)
        if isinstance(said, Hangup):
            return {"heard": said.heard, "intent": None, "prompt_names": []}
        return {"heard": turn.input.get("say", turn.input.get("dtmf", "")),
                "intent": turn.intent, "confidence": turn.confidence,
                "prompt_names": list(call.prompt_names)}

    async def _decode(self, call: Call, locale: str, recording: Path,
                      span: tuple[int, int]) -> Hypothesis:
        """The recorded utterance through a fresh recogniser, listening for what the new
        dialogue expects now."""
        recognizer = self.recognizer_for(locale)
        assert recognizer is not None
        try:
            await recognizer.expect(self.voices[locale].phrases_after(call.prompt_names))
            pcm = await asyncio.to_thread(caller_audio, recording, *span)
            hyp = None
            for start in range(0, len(pcm), FRAME_BYTES):
                hyp = await recognizer.accept(pcm[start:start + FRAME_BYTES])
                if hyp and hyp.final:
                    break
            if not (hyp and hyp.final):
                hyp = await recognizer.finish()
            return hyp
        finally:
            recognizer.close()

    # --- many calls ------------------------------------------------------------------------
    async def regression(self, since: float | None, until: float | None, locale: str,
                         model: Path | None, limit: int = 1000) -> dict[str, Any]:
        """Replay every finished call of ``locale`` in a time range: which would route
        elsewhere, and whether that is better or worse where a trainer said what was right."""
        found = await asyncio.to_thread(self.store.list_calls,
                                        CallFilter(since=since, until=until, limit=limit))
        rows = [r for r in found if r.get("locale") == locale and r.get("status") == "complete"]
        labels = await asyncio.to_thread(self.store.labels_for, [r["call_id"] for r in rows])
        changes, failed = [], []
        for row in reversed(rows):  # oldest first
            try:
                result = await self.replay(row["call_id"], model)
            except Exception as e:  # one broken call must not stop the report
                log.exception("replay of %s failed", row["call_id"])
                failed.append({"call_id": row["call_id"], "error": str(e)})
                continue
            if not result["route_changed"]:
                continue
            label = labels.get(row["call_id"])
            changes.append({
                "call_id": row["call_id"],
                "started_at": row["started_at"],
                "from": route_of(result["recorded"]),
                "to": route_of(result["replayed"]),
                "direction": _direction(label, result["recorded"], result["replayed"]),
                "label": {k: label[k] for k in ("intent", "queue", "by") if label.get(k)}
                if label else None,
            })
        directions = [c["direction"] for c in changes]
        return {
            "locale": locale,
            "model": (await self._engine(locale, model)).model_path.name,
            "calls": len(rows) - len(failed),
            "changed": len(changes),
            "better": directions.count("better"),
            "worse": directions.count("worse"),
            "unlabelled": directions.count("unknown"),
            "changes": changes,
            "failed": failed,
        }


def _direction(label: dict[str, Any] | None, before: dict[str, Any],
               after: dict[str, Any]) -> str:
    if not label:
        return "unknown"

    def right(summary: dict[str, Any]) -> bool:
        if label.get("queue") and summary.get("queue") != label["queue"]:
            return False
        return not (label.get("intent") and summary.get("intent") != label["intent"])

    was, now = right(before), right(after)
    return "better" if now and not was else "worse" if was and not now else "unknown"


def _turns(events: list[CallEvent]) -> list[TurnTaken]:
    return [e for e in events if isinstance(e, TurnTaken)]


def _inputs(events: list[CallEvent]) -> list[_Input]:
    """The caller's inputs, in order, as the recorded call's turns logged them."""
    inputs = []
    for turn in _turns(events):
        said = turn.input
        recorded = {"n": turn.n, "heard": said.get("say", said.get("dtmf", "")),
                    "intent": turn.intent, "confidence": turn.confidence,
                    "prompt_names": turn.prompt_names or []}
        asr = turn.asr or {}
        heard_ms = asr.get("audio_ms") if not asr.get("muted") else None
        span = (int(heard_ms[0]), int(heard_ms[1])) if heard_ms else None
        if "say" in said and said.get("unmatched"):
            inputs.append(_Input(Unintelligible(said["say"]), span, recorded))
        elif "say" in said:
            inputs.append(_Input(Say(said["say"]), span, recorded))
        elif said.get("menu"):  # a key menu's choice: the request the key named then
            entities = tuple((str(found["entity"]), str(found["value"]))
                             for found in turn.entities or [])
            inputs.append(_Input(Choice(said["dtmf"], said["menu"], entities),
                                 recorded=recorded))
        elif "dtmf" in said:
            keys = Keys(_keys(said["dtmf"], turn.entry))
            inputs.append(_Input(keys, recorded=recorded))
        elif said.get("silence"):
            inputs.append(_Input(Silence(), recorded=recorded))
        elif said.get("hangup"):
            inputs.append(_Input(Hangup(said.get("heard", "")), recorded=recorded))
    return inputs


def _keys(masked: str, entry: str | None) -> str:
    """Keys to press again: a masked entry becomes zeros of the same length (the bank
    stand-in answers it as recorded)."""
    return masked.replace("*", "0") + ("#" if entry else "")


def _compare(item: _Input, replayed: dict[str, Any] | None) -> dict[str, Any]:
    recorded = item.recorded
    if replayed is None:
        return {"n": recorded.get("n"), "input": item.kind, "recorded": recorded,
                "replayed": None, "differs": True, "note": "the replayed call had already ended"}
    differs = (recorded.get("intent") != replayed.get("intent")
               or list(recorded.get("prompt_names") or []) != list(
                   replayed.get("prompt_names") or []))
    if item.kind == "say" and recorded.get("heard") != replayed.get("heard"):
        differs = True
    return {"n": recorded.get("n"), "input": item.kind, "recorded": recorded,
            "replayed": replayed, "differs": differs}
