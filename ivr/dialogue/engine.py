"""The trained Rasa model, loaded once, with the custom actions running in-process.

Rasa is imported lazily: importing it takes seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ivr.dialogue.bank import BankAdapter
from ivr.dialogue.confidence import ConfidenceBands
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.utterance import UtterancePrep
from ivr.errors import IvrError, ModelNotFoundError, shown
from ivr.project import find_root

if TYPE_CHECKING:
    from ivr.dialogue.lockout import Lockout

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_MATCH_INTENT = "nlu_fallback"  # Rasa's name for "not understood"; the rules answer it


def quiet_ml_logging() -> None:
    """TensorFlow and Rasa are loud at import; the engine's own output must stay clean."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    os.environ.setdefault("LOG_LEVEL_LIBRARIES", "ERROR")
    for name in ("rasa", "rasa_sdk", "tensorflow", "absl", "jieba", "sanic", "apscheduler",
                 "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import jieba
    from rasa.utils.log_utils import configure_structlog

    jieba.setLogLevel(logging.WARNING)  # jieba sets its own logger to DEBUG on import
    configure_structlog(logging.ERROR)  # unconfigured, Rasa's structlog prints debug lines


@dataclass(frozen=True)
class TurnOutcome:
    """What one caller input produced: how it was understood and what the bot did."""

    prompts: list[str]
    slots: dict[str, Any]
    changed: dict[str, Any]  # slots the dialogue set in this turn
    prompt_names: list[str | None] = field(default_factory=list)  # the domain response of each
    actions: list[str] = field(default_factory=list)  # the actions the dialogue ran
    lock_wait_s: float = 0.0  # how long it waited for its conversation's lock
    queue_wait_s: float = 0.0  # how long it waited for the dialogue thread (other turns)
    dialogue_s: float = 0.0  # how long the dialogue ran, the lock wait left out


class DialogueEngine:
    """One loaded model serving many concurrent calls, each a Rasa conversation.

    All Rasa work (TensorFlow inference, policy prediction, Rasa's JSON-schema check of
    every action result, its schema compiled once: ivr/dialogue/action_results.py) runs
    on a dedicated dialogue thread with its own event loop, so the caller's loop (audio,
    sockets) never blocks. The custom actions, and the bank adapter they call, run on that
    loop too.
    """

    def __init__(self, agent: Any, model_path: Path, loop: asyncio.AbstractEventLoop,
                 conversations: str | None = None, kb: KnowledgeBase | None = None,
                 bank: BankAdapter | None = None) -> None:
        self._agent = agent
        self.bank = bank  # what its custom actions call (closed with the engine)
        self.model_path = model_path
        self._loop = loop
        self.conversations = conversations  # a Redis URL, or None: this process's memory
        self.kb = kb  # the labels confirmations say
        # The model's language names its locale, whose file says how an utterance is
        # prepared for the classifier (script, loanwords, fillers, corrections:
        # ivr/dialogue/utterance.py) and how sure it must be to act (confidence bands).
        language = Path(agent.processor.model_metadata.language or "").name
        locale_file = find_root() / "locales" / f"{language}.yml"
        self.prepare = UtterancePrep.for_locale(locale_file) if language else UtterancePrep()
        self.bands = ConfidenceBands.for_locale(locale_file) if language else \
            ConfidenceBands()

    @classmethod
    async def load(cls, model_path: Path, bank: BankAdapter, kb: KnowledgeBase,
                   conversations: str | None = None,
                   lockout: Lockout | None = None) -> DialogueEngine:
        """``conversations``: a Redis URL (redis://host:port/db) where every engine instance
        keeps the calls' Rasa trackers and their locks; None keeps them in this process.
        ``lockout``: where failed verifications count (ivr/dialogue/lockout.py); None: in
        this process's memory."""
        loop, agent = await load_on_dialogue_thread(
            model_path, lambda: _load_agent(model_path, bank, kb, conversations, lockout))
        # It reads the locale's file: off the event loop (a live swap runs beside calls).
        return await asyncio.to_thread(cls, agent, model_path, loop, conversations, kb, bank)

    @property
    def lockout(self) -> Lockout:
        """Where this engine's calls count failed verifications."""
        return self._agent.action_endpoint.lockout

    @lockout.setter
    def lockout(self, lockout: Lockout) -> None:
        self._agent.action_endpoint.lockout = lockout

    async def _on_dialogue_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def parse(self, text: str) -> dict[str, Any]:
        """Run the NLU pipeline (normaliser, tokenizer, DIET, fallback) on one utterance,
        prepared first: simplified characters, fillers taken out. Fillers alone are nothing
        said: ``nlu_fallback`` (a no-match), with ``nothing_said`` set, never an intent."""
        from rasa.core.channels.channel import UserMessage

        said = self.prepare(text)
        if not said:
            return {"text": text, "normalized": "", "nothing_said": True, "entities": [],
                    "intent": {"name": NO_MATCH_INTENT, "confidence": 0.0},
                    "intent_ranking": []}
        parse = await self._on_dialogue_thread(
            self._agent.processor.parse_message(UserMessage(said)))
        # The caller's words stay the text; entity offsets refer to ``prepared``.
        return parse if said == text else {**parse, "text": text, "prepared": said}

    async def handle(self, call_id: str, parse: dict[str, Any]) -> TurnOutcome:
        """Advance one call's dialogue with an already parsed input."""
        # perf_counter is one clock for every thread: the wait is until the thread starts it.
        return await self._on_dialogue_thread(
            self._handle(call_id, parse, time.perf_counter()))

    async def _handle(self, call_id: str, parse: dict[str, Any],
                      submitted: float) -> TurnOutcome:
        started = time.perf_counter()
        from rasa.core.channels.channel import UserMessage
        from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered

        channel = _prompt_channel()
        message = UserMessage(
            parse.get("text") or "", channel, sender_id=call_id, parse_data=parse
        )
        _saved_tracker.set(None)
        await self._agent.handle_message(message)  # sets _lock_wait_s in this task
        # The tracker Rasa has just saved, not read back: reading it deserialises every
        # event of the call again, a few ms a turn on the serial dialogue thread (issue 17).
        tracker = _saved_tracker.get()
        if tracker is None or tracker.sender_id != call_id:
            tracker = await self._agent.tracker_store.retrieve(call_id)
        slots = tracker.current_slot_values()
        slots["active_loop"] = tracker.active_loop_name
        changed: dict[str, Any] = {}
        actions: list[str] = []
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                break
            if isinstance(event, SlotSet):
                changed.setdefault(event.key, event.value)
            elif isinstance(event, ActionExecuted) and event.action_name != "action_listen":
                actions.append(event.action_name)
        said = [m for m in channel.messages if m.get("text")]
        return TurnOutcome([m["text"] for m in said], slots, changed,
                           [m.get("utter_action") for m in said], actions[::-1],
                           _lock_wait_s.get(), queue_wait_s=started - submitted,
                           dialogue_s=time.perf_counter() - started - _lock_wait_s.get())

    async def end(self, call_id: str) -> None:
        """Forget a finished call: its tracker may hold the PIN it was verified with."""
        await self._on_dialogue_thread(self._forget(call_id))

    async def _forget(self, call_id: str) -> None:
        tracker_store = self._agent.tracker_store
        while hasattr(tracker_store, "_tracker_store"):  # Rasa's fail-safe wrapper(s)
            tracker_store = tracker_store._tracker_store
        store = getattr(tracker_store, "store", None)
        if isinstance(store, dict):  # the in-memory store of the embedded default
            store.pop(call_id, None)
        elif hasattr(tracker_store, "red"):  # Redis: the key Rasa's store writes
            tracker_store.red.delete(tracker_store.key_prefix + call_id)

    def close(self) -> None:
        """Stop the dialogue thread; a bank adapter with connections (``aclose``) closes
        them first, on this loop, where they were opened."""
        aclose = getattr(self.bank, "aclose", None)
        if aclose is None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            return

        async def close_then_stop() -> None:
            try:
                await aclose()
            finally:
                self._loop.stop()

        asyncio.run_coroutine_threadsafe(close_then_stop(), self._loop)


async def load_on_dialogue_thread(
        model_path: Path, load: Callable[[], Coroutine[Any, Any, T]],
) -> tuple[asyncio.AbstractEventLoop, T]:
    """A new dialogue thread with its own loop, and what ``load`` makes of the model there
    (Rasa's work on a model runs where it was loaded)."""
    quiet_ml_logging()
    if not model_path.is_file():
        raise ModelNotFoundError(f"no model at {shown(model_path)}: run `ivr train` first")
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="dialogue", daemon=True).start()
    try:
        return loop, await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(load(), loop))
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        raise


def _prompt_channel() -> Any:
    """Rasa's collecting channel, keeping which domain response each prompt came from (the
    voice layer picks recordings and speech grammars by it)."""
    from rasa.core.channels.channel import CollectingOutputChannel

    class PromptChannel(CollectingOutputChannel):
        async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
            for part in text.strip().split("\n\n"):
                message = self._message(recipient_id, text=part)
                message["utter_action"] = kwargs.get("utter_action")
                await self._persist_message(message)

    return PromptChannel()


# A tracker outlives its call in Redis at most this long (the call's end deletes it; an
# instance that dies mid-call cannot). One Redis database holds trackers and locks, apart
# by key prefix.
TRACKER_TTL_S = 3600
REDIS_PREFIX = "ivr"


async def _load_agent(model_path: Path, bank: BankAdapter, kb: KnowledgeBase,
                      conversations: str | None, lockout: Lockout | None = None) -> Any:
    from rasa.core.agent import Agent

    from ivr.dialogue.action_endpoint import InProcessActionEndpoint
    from ivr.dialogue.action_results import validate_results_with_compiled_schema
    from ivr.dialogue.model_loading import serve_without_training_step

    serve_without_training_step()
    if os.environ.get("IVR_RASA_ACTION_VALIDATION") != "1":  # 1: Rasa's own (the bench's A/B)
        validate_results_with_compiled_schema()
    stores = _redis_stores(conversations) if conversations else {}
    agent = Agent.load(str(model_path),
                       action_endpoint=InProcessActionEndpoint(bank, kb, lockout), **stores)
    agent.lock_store = _TimedLockStore(agent.lock_store)  # handle_message locks through it
    _keep_saved_tracker(agent.processor)
    return agent


def _keep_saved_tracker(processor: Any) -> None:
    """Note in the running task each tracker the processor saves (``_saved_tracker``)."""
    save = processor.save_tracker

    async def save_tracker(tracker: Any) -> None:
        await save(tracker)
        _saved_tracker.set(tracker)

    processor.save_tracker = save_tracker


# Each engine.handle runs as its own task on the dialogue loop, and a task keeps its own
# copy of this: concurrent turns never see each other's wait.
_lock_wait_s: ContextVar[float] = ContextVar("lock_wait_s", default=0.0)
_saved_tracker: ContextVar[Any] = ContextVar("saved_tracker", default=None)


class _TimedLockStore:
    """Rasa's lock store (in memory, or Redis), timing how long each message waits for its
    conversation's lock. Rasa polls a held lock once a second, so a message arriving while
    another of its call is handled waits up to a second more than that one takes."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def lock(self, conversation_id: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        async with self._store.lock(conversation_id, *args, **kwargs) as ticket:
            _lock_wait_s.set(time.perf_counter() - started)
            yield ticket


def _redis_stores(url: str) -> dict[str, Any]:
    """Rasa's Redis tracker store and lock store: every instance sees every call's
    conversation, and Rasa handles one message of a conversation at a time (the lock
    expires after $TICKET_LOCK_LIFETIME, Rasa's default 60 s, if its holder dies)."""
    from urllib.parse import urlparse

    from rasa.core.lock_store import RedisLockStore
    from rasa.core.tracker_store import RedisTrackerStore
    from rasa.shared.core.domain import Domain

    parts = urlparse(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise IvrError(f"{url!r}: give the conversation store as redis://host:port/db")
    where = {"host": parts.hostname, "port": parts.port or 6379,
             "db": int(parts.path.strip("/") or 0), "password": parts.password}
    # The agent gives the tracker store the model's domain when it loads.
    return {"tracker_store": RedisTrackerStore(Domain.empty(), record_exp=TRACKER_TTL_S,
                                               key_prefix=REDIS_PREFIX, **where),
            "lock_store": RedisLockStore(key_prefix=REDIS_PREFIX, **where)}
