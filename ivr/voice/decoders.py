"""Vosk decoding in worker processes (``DecoderPool``), one per core, so that a native crash in
Vosk or Kaldi (an abort or a segfault, which no Python ``except`` catches) kills one worker,
not the engine: the calls decoding on that worker get ``DecoderCrashed`` and go to an agent
(the session's recogniser-failure path), calls on the other workers never notice, and the
next call that needs a decoder gets a fresh worker. docs/voice.md#isolation.

A ``PooledDecoder`` is one call's Kaldi recogniser in a worker, behind the ``Decoder``
operations of ``ivr.voice.asr``; ``VoskRecognizer`` keeps the call's state around them.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import multiprocessing
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from ivr.errors import IvrError
from ivr.voice.asr import SpeechModel, decode_batch, flush_final, new_kaldi_recognizer

log = logging.getLogger(__name__)


class DecoderCrashed(IvrError):
    """The worker process decoding this call died."""


# --- worker processes ---------------------------------------------------------------------
Spec = dict[str, tuple[str, int]]  # locale -> (model path or package:NAME, end of speech ms)


def _serve(conn: Connection, specs: Spec) -> None:
    """A worker: load the models, run each call's recogniser, answer every request with
    (request id, ok, value)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's, which stops us
    # Loaded before the first request, not on it: a call must not wait a second for it.
    models = {locale: SpeechModel.load(locale, *spec).model for locale, spec in specs.items()}
    streams: dict[int, Any] = {}
    while True:
        try:
            request, stream, op, arg = conn.recv()
        except (EOFError, OSError):  # the engine has gone
            return
        if op == "close":
            streams.pop(stream, None)
            continue
        try:
            if op == "reset":
                locale, grammar = arg
                streams[stream] = new_kaldi_recognizer(models[locale], grammar)
                value: Any = None
            elif op == "decode":
                value = decode_batch(streams[stream], arg)
            elif op == "flush":
                value = flush_final(streams[stream], arg)
            else:
                raise ValueError(f"unknown operation {op!r}")
            conn.send((request, True, value))
        except Exception as e:  # a Python error is the call's, not the worker's
            conn.send((request, False, f"{type(e).__name__}: {e}"))


class _Worker:
    """One worker process and the requests waiting on it."""

    def __init__(self, context: Any, specs: Spec) -> None:
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(theirs, specs), daemon=True,
                                       name="ivr-asr-worker")
        self.process.start()
        theirs.close()
        self.streams = 0  # calls decoding here
        self.alive = True
        self.stopping = False  # the engine is stopping it: its end is no crash
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()  # pending and alive, shared with the reader thread
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        threading.Thread(target=self._read, daemon=True, name="ivr-asr-reader").start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def request(self, stream: int, op: str, arg: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        request = next(self._ids)
        with self._lock:
            if not self.alive:
                raise DecoderCrashed(self._death())
            self._pending[request] = (loop, future)
        try:
            with self._send_lock:
                self.conn.send((request, stream, op, arg))
        except (OSError, ValueError):  # the pipe broke: the reader reports the death
            pass
        return await future

    def forget(self, stream: int) -> None:
        self.streams -= 1
        if self.alive:
            try:
                with self._send_lock:
                    self.conn.send((-1, stream, "close", None))
            except (OSError, ValueError):
                pass

    def _read(self) -> None:
        while True:
            try:
                request, ok, value = self.conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                waiting = self._pending.pop(request, None)
            if waiting:
                loop, future = waiting
                result = value if ok else IvrError(f"speech recognition: {value}")
                loop.call_soon_threadsafe(_settle, future, ok, result)
        self.process.join(5)
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        if not self.stopping:
            log.error("%s; its %d calls go to an agent", self._death(), self.streams)
        for loop, future in pending.values():
            loop.call_soon_threadsafe(_settle, future, False, DecoderCrashed(self._death()))

    def _death(self) -> str:
        code = self.process.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code and code < 0
               else f"exit code {code}")
        return f"speech worker {self.pid} died ({how})"

    def stop(self) -> None:
        self.stopping = True
        self.conn.close()
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class DecoderPool:
    """Worker processes decoding every call; a call stays on one worker (its recogniser
    lives there), new calls go to the worker with the fewest, a dead worker is replaced
    when the next call needs one."""

    def __init__(self, models: dict[str, SpeechModel], workers: int) -> None:
        # spawn, not fork: the engine has threads (TensorFlow, Rasa) a fork would copy
        # mid-flight.
        self._context = multiprocessing.get_context("spawn")
        self._specs: Spec = {locale: (str(m.path), m.end_of_speech_ms)
                             for locale, m in models.items()}
        self.workers = [_Worker(self._context, self._specs) for _ in range(workers)]
        self._streams = itertools.count(1)
        atexit.register(self.close)  # before multiprocessing's own exit hook ends them

    def decoder(self, locale: str) -> PooledDecoder:
        return PooledDecoder(self, locale)

    def _place(self) -> _Worker:
        self.workers = [w if w.alive else _Worker(self._context, self._specs)
                        for w in self.workers]
        worker = min(self.workers, key=lambda w: w.streams)
        worker.streams += 1
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


class PooledDecoder:
    """One call's recogniser in a worker, placed at its first ``reset``."""

    def __init__(self, pool: DecoderPool, locale: str) -> None:
        self._pool = pool
        self._locale = locale
        self._stream = next(pool._streams)
        self._worker: _Worker | None = None

    async def reset(self, grammar: str | None) -> None:
        if self._worker is None:
            self._worker = self._pool._place()
        await self._worker.request(self._stream, "reset", (self._locale, grammar))

    async def decode(self, pcm: bytes) -> tuple[bool, str, float]:
        assert self._worker, "reset first"
        final, result, seconds = await self._worker.request(self._stream, "decode", pcm)
        return final, result, seconds

    async def flush(self, pcm: bytes) -> str:
        assert self._worker, "reset first"
        return await self._worker.request(self._stream, "flush", pcm)

    def close(self) -> None:
        if self._worker:
            self._worker.forget(self._stream)
            self._worker = None


