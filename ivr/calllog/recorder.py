"""Writing the call log as calls happen, without ever making a call wait for a disk.

``CallRecorder.record`` (an event observer) and ``CallRecorder.audio`` only put items on a
queue; one writer thread commits whatever is queued (usually one event, a few under load)
in one transaction, and appends recording audio to each call's WAV file. A commit takes a
few milliseconds, so a process killed mid-call leaves every event up to the kill readable;
``CallStore.recover`` marks its calls incomplete on the next start. A store that is down is
retried; an event it refuses for good is set aside as a dead letter, never in the way of
the events behind it (``CallRecorder._commit``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import re
import socket
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ivr.calllog.recording import RecordingTrack, repair_wav
from ivr.calllog.store import CallStore
from ivr.core.events import CallEnded, CallEvent, RecordingStarted, kind_of
from ivr.core.paths import inside

log = logging.getLogger(__name__)

BATCH = 500  # items per transaction at most
RETRY_MAX_S = 5.0
FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # a call id as a file name


@dataclass(frozen=True)
class CallLogSettings:
    """Where the log and recordings live and how long they are kept (env, else defaults
    under the project's ``var/``)."""

    url: str
    recordings: Path | None  # None: no recordings
    instance: str  # names this engine's calls, so a restart finds the ones it left live
    retention_days: float = 180.0

    @classmethod
    def from_env(cls, root: Path, instance_suffix: str = "") -> CallLogSettings:
        """``instance_suffix``: tells apart engines on one host (``:PORT``)."""
        var = root / "var"
        url = os.environ.get("IVR_CALL_LOG") or f"sqlite:///{var / 'calls.sqlite3'}"
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        recordings = os.environ.get("IVR_RECORDINGS", str(var / "recordings"))
        instance = os.environ.get("IVR_INSTANCE") or socket.gethostname() + instance_suffix
        return cls(url=url, recordings=Path(recordings) if recordings else None,
                   instance=instance,
                   retention_days=float(os.environ.get("IVR_RETENTION_DAYS", "180")))


class CallRecorder:
    """The call log's single writer for this process."""

    def __init__(self, store: CallStore, instance: str, recordings: Path | None = None,
                 max_pending: int = 200_000) -> None:
        self.store = store
        self.instance = instance
        self.recordings = recordings
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=max_pending)
        self._seq: dict[str, int] = {}
        self._files: dict[str, wave.Wave_write] = {}
        self._paths: dict[str, Path] = {}
        self._cut: set[str] = set()  # calls whose recording the disk refused: stopped there
        self.written = 0  # events committed
        self.dropped = 0  # items refused because the queue was full (the store is down)
        self.recordings_cut = 0  # recordings stopped early because the disk refused audio
        self.dead_letters = 0  # events the store refused for good, set aside (dead letters)
        self.dead_letters_unsaved = 0  # of those, the ones only the server log has
        self.failing_since: float | None = None
        self.commit_s = 0.0  # time spent committing (the benchmark reads it)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-log", daemon=True)
        self._thread.start()

    # --- from the calls (event loop or any thread): never blocks -------------------------
    def record(self, event: CallEvent) -> None:
        seq = self._seq.get(event.call_id, 0) + 1
        self._seq[event.call_id] = seq
        if isinstance(event, CallEnded):
            del self._seq[event.call_id]
        self._put(("event", seq, event))

    def open_recording(self, call_id: str) -> RecordingTrack | None:
        """A two-channel recording for a voice call (None when recordings are off)."""
        if self.recordings is None:
            return None
        if not FILE_NAME.fullmatch(call_id):
            # Call ids are the engine's (uuid4 hex); one that is not must never choose
            # where audio is written: the call goes on unrecorded.
            log.error("call %r: not recorded, its id is not a file name", call_id[:80])
            return None
        relative = Path(time.strftime("%Y-%m-%d", time.gmtime())) / f"{call_id}.wav"
        self._paths[call_id] = self.recordings / relative
        self.record(RecordingStarted(call_id=call_id, recording=str(relative)))
        return RecordingTrack(lambda chunk: self._put(("audio", call_id, chunk)))

    async def settled(self, timeout_s: float = 2.0) -> bool:
        """Wait until every event recorded so far is committed, so that a caller told the
        call has ended finds its end in the log even if the process dies right after. Not
        while the store is failing (there is nothing to wait for), never over ``timeout_s``."""
        if self.failing_since is not None:
            return False
        barrier: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self._queue.put_nowait(("barrier", barrier))
        except queue.Full:
            return False
        try:
            await asyncio.wait_for(asyncio.wrap_future(barrier), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    def _put(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if not self.dropped:
                log.error("call log: %d items waiting; dropping new ones until the store "
                          "recovers", self._queue.qsize())
            self.dropped += 1

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    @property
    def healthy(self) -> bool:
        return self.failing_since is None and not self.dropped

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything recorded so far is committed (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def close(self, timeout_s: float = 10.0) -> None:
        if not self.flush(timeout_s):
            log.error("call log: %d items not written at shutdown", self.pending)
        self._closing.set()
        self._put(("stop",))
        self._thread.join(timeout=2)
        for call_id in list(self._files):
            self._close_file(call_id)

    # --- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if self._write(items):
                    return
            finally:
                for item in items:
                    if item[0] == "barrier":  # cancelled when its waiter gave up
                        with contextlib.suppress(concurrent.futures.InvalidStateError):
                            item[1].set_result(None)
                    self._queue.task_done()

    def _write(self, items: list[tuple[Any, ...]]) -> bool:
        batch: list[tuple[int, CallEvent]] = []
        audio: dict[str, bytearray] = {}  # one write per call per batch
        ended: list[str] = []
        stop = False
        for item in items:
            if item[0] == "audio":
                audio.setdefault(item[1], bytearray()).extend(item[2])
            elif item[0] == "event":
                batch.append((item[1], item[2]))
                if isinstance(item[2], CallEnded):
                    ended.append(item[2].call_id)
            elif item[0] == "stop":
                stop = True
        for call_id, chunk in audio.items():
            self._append_audio(call_id, bytes(chunk))
        for call_id in ended:
            self._close_file(call_id)
            self._cut.discard(call_id)
        if batch:
            self._commit(batch)
        return stop

    def _commit(self, batch: list[tuple[int, CallEvent]]) -> None:
        """Commit, retrying while the store is unavailable: events are never given up on
        while the process lives (the queue holds them; beyond its cap new ones are dropped).
        An event the store refuses for good (``permanent``) would stall every event behind
        it: the batch is halved until that event is alone, and it is set aside as a dead
        letter; the rest is written."""
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                self.store.write(batch, self.instance)
            except Exception as e:
                if permanent(e):
                    if len(batch) > 1:  # which one? (halving: ~2 log2(n) writes for one)
                        half = len(batch) // 2
                        self._commit(batch[:half])
                        self._commit(batch[half:])
                        return
                    if self._dead_letter(*batch[0], e):
                        self._writing_again()
                        return
                    # Not even its dead letter could be written, the store being down
                    # after all: retry the event as any other.
                if self.failing_since is None:
                    self.failing_since = time.time()
                    log.error("call log: write failed (%s: %s); retrying", type(e).__name__,
                              _first_line(e))
                if self._closing.is_set():
                    log.error("call log: %d events lost at shutdown", len(batch))
                    return
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.commit_s += time.perf_counter() - started
            self.written += len(batch)
            self._writing_again()
            return

    def _writing_again(self) -> None:
        if self.failing_since is not None:
            log.warning("call log: writing again")
            self.failing_since = None

    def _dead_letter(self, seq: int, event: CallEvent, error: Exception) -> bool:
        """Set aside an event the store refused for good, in its dead letters; or, where it
        refuses that too for good, in the server log. False: the store is unavailable
        (retry the event)."""
        try:
            self.store.write_dead_letter(seq, event, error, self.instance)
        except Exception as e:
            if not permanent(e):
                return False
            log.error("call %.80s: %.80s event #%d refused by the store (%s: %s) and not "
                      "set aside either (%s: %s): only this log has it", event.call_id,
                      kind_of(event), seq, type(error).__name__, _first_line(error),
                      type(e).__name__, _first_line(e))
            self.dead_letters += 1
            self.dead_letters_unsaved += 1
            return True
        self.dead_letters += 1
        log.error("call %.80s: %.80s event #%d refused by the store (%s: %s): set aside as "
                  "a dead letter (ivr calls dead-letters)", event.call_id, kind_of(event), seq,
                  type(error).__name__, _first_line(error))
        return True

    def _append_audio(self, call_id: str, chunk: bytes) -> None:
        path = self._paths.get(call_id)
        if path is None or call_id in self._cut:
            return
        try:
            out = self._files.get(call_id)
            if out is None:
                assert self.recordings is not None  # (a path is only kept when recording)
                if inside(self.recordings, path.relative_to(self.recordings)) is None:
                    self._cut.add(call_id)  # a symlink out of the folder: nothing written
                    return
                path.parent.mkdir(parents=True, exist_ok=True)
                try:  # created, never overwritten: a file already there is another call's
                    path.open("xb").close()
                except FileExistsError:
                    log.error("call %s: recording not made, %s exists", call_id, path)
                    self._cut.add(call_id)
                    return
                out = self._files[call_id] = wave.open(str(path), "wb")  # noqa: SIM115 (open for the call)
                out.setnchannels(2)
                out.setsampwidth(2)
                out.setframerate(8000)
            out.writeframes(chunk)  # also rewrites the header's lengths
            out._file.flush()  # type: ignore[attr-defined]  # on disk if the process dies
        except (OSError, wave.Error) as e:
            self._cut_recording(call_id, path, e)

    def _cut_recording(self, call_id: str, path: Path, error: Exception) -> None:
        """The disk refused audio (full, gone): end the recording at its last whole frame,
        readable. Going on after a gap would shift the rest against the call's clock."""
        self._cut.add(call_id)
        self.recordings_cut += 1
        log.error("call %s: recording stopped, the rest of the call is not recorded (%s)",
                  call_id, error)
        out = self._files.pop(call_id, None)
        if out is not None:  # closed under ``wave``, whose close() would write the header
            file, out._file = out._file, None  # type: ignore[attr-defined]
            with contextlib.suppress(OSError):  # what its buffer held is lost with the rest
                file.close()
        try:
            if not repair_wav(path):
                path.unlink(missing_ok=True)  # not one frame recorded
        except OSError:
            log.exception("call %s: recording %s left as it is", call_id, path)

    def _close_file(self, call_id: str) -> None:
        out = self._files.pop(call_id, None)
        self._paths.pop(call_id, None)
        if out is not None:
            try:
                out.close()
            except OSError:
                log.exception("call %s: recording not closed", call_id)


# Errors that say the store cannot take this data, ever (a value too long or not encodable,
# a constraint broken): retrying cannot help. Anything else (the database down or
# unreachable, the disk full, a lock timeout) may pass, and is retried.
_PERMANENT = (sa.exc.DataError, sa.exc.IntegrityError, ValueError, TypeError, RecursionError)


def permanent(error: BaseException) -> bool:
    """Whether the store refused a write for good (``_PERMANENT``): a DBAPI data error, or
    one raised before the database saw it (JSON that cannot be made, a string the driver
    cannot encode, a NUL that PostgreSQL refuses: ValueError, UnicodeEncodeError)."""
    if isinstance(error, sa.exc.StatementError) and not isinstance(error, sa.exc.DBAPIError):
        error = error.orig if isinstance(error.orig, BaseException) else error  # bad parameter
    return isinstance(error, _PERMANENT)


def _first_line(error: BaseException) -> str:
    """An error's first line, short: the next lines of a database error may quote the row."""
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else ""


def recover(store: CallStore, instance: str, recordings: Path | None) -> list[str]:
    """At start: calls this instance left live were cut off by a crash. Mark them
    incomplete and make their recordings readable up to the crash."""
    ids = store.recover(instance)
    for call_id in ids:
        if recordings is None:
            continue
        call = store.find_call(call_id)
        path = inside(recordings, call["recording"]) if call.get("recording") else None
        if path is not None:
            repair_wav(path)
    if ids:
        log.warning("call log: %d call(s) cut off by the last shutdown marked incomplete",
                    len(ids))
    return ids
