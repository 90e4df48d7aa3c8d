"""Where call events are kept: SQLite (the embedded default, WAL with durable commits) or
PostgreSQL (several engine instances), one interface, through SQLAlchemy Core.

A call is a row in ``calls`` (its summary, for listing and filtering) plus its events in
``events`` (the full record, in order); trainers' labels are rows in ``labels``. Timestamps
are Unix seconds (UTC). The tables and their migrations are ivr/calllog/schema.py's; the
console's users, sessions and audit, in the same database, ivr/console/accounts.py's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ivr.calllog.rows import dead_letter_json, searchable, storable, summaries
from ivr.calllog.schema import (
    INCOMPLETE,
    LIVE,
    calls,
    create_or_upgrade,
    dead_letters,
    events,
    labels,
    sqlite_durable,
)
from ivr.core.events import (
    TEXT_MAX,
    CallEnded,
    CallEvent,
    RecordingStarted,
    UnknownEvent,
    decode,
    encode,
    kind_of,
)
from ivr.errors import IvrError

log = logging.getLogger(__name__)

# Ids of calls whose id clashed with a logged call's are made in this namespace.
_CLASH_NAMESPACE = uuid.UUID("5f0c2a6e-3b7d-4e19-9a41-6c2d8e0b7f13")

E = TypeVar("E", bound=CallEvent)
DEAD_LETTER_ERROR_MAX = 1000  # characters of a dead letter's error
DEAD_LETTER_DATA_MAX = 64 * 1024  # characters of its event JSON kept (the rest is cut)

class CallLogError(IvrError):
    """The call log cannot be opened or read."""


class CallNotFound(CallLogError):
    """No call has that id (or external id)."""


class AmbiguousCall(CallLogError):
    """Several calls answer to that external id or id prefix; the message lists them."""


@dataclass(frozen=True)
class CallFilter:
    since: float | None = None
    until: float | None = None
    outcome: str | None = None
    queue: str | None = None
    intent: str | None = None
    caller: str | None = None
    status: str | None = None
    locale: str | None = None
    limit: int = 100
    offset: int = 0


class CallStore:
    """The call log's tables in one database, created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._apart: dict[str, str] = {}  # clashing call id -> the id its events go under
        try:
            # A server connection may have been dropped since last used (a restart):
            # check it first. A file needs no such check.
            self.engine = sa.create_engine(url, future=True,
                                           pool_pre_ping=not url.startswith("sqlite"))
        except (sa.exc.ArgumentError, ImportError) as e:
            raise CallLogError(f"call log URL {url!r} is not usable: {e}") from e
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_durable)
        elif self.dialect != "postgresql":
            raise CallLogError(f"call log: {self.dialect} is not supported "
                               "(use sqlite:///FILE or postgresql://...)")
        try:
            create_or_upgrade(self.engine)
        except sa.exc.SQLAlchemyError as e:
            raise CallLogError(f"call log {self.safe_url}: {e.__class__.__name__}: "
                               f"{str(e).splitlines()[0]}") from e

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # --- writing (the recorder's thread) -------------------------------------------------
    def write(self, batch: Sequence[tuple[int, CallEvent]], instance: str) -> None:
        """Write events (with their per-call sequence numbers) in one transaction."""
        insert = (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)
        with self.engine.begin() as db:
            batch = self._keep_calls_apart(db, batch)
            new_calls = {e.call_id: e.at for _, e in batch}
            db.execute(insert(calls).on_conflict_do_nothing(), [
                {"call_id": cid, "started_at": at, "status": LIVE, "instance": instance}
                for cid, at in new_calls.items()])
            db.execute(insert(events).on_conflict_do_nothing(), [
                _row(seq, e) for seq, e in batch])
            for cid, values in summaries(e for _, e in batch).items():
                db.execute(calls.update().where(calls.c.call_id == cid).values(**values))
        for original in [o for o, new in self._apart.items()  # (once committed)
                         if any(e.call_id == new and isinstance(e, CallEnded) for _, e in batch)]:
            del self._apart[original]

    def _keep_calls_apart(self, db: sa.engine.Connection,
                          batch: Sequence[tuple[int, CallEvent]]) -> list[tuple[int, CallEvent]]:
        """A call's events never alter another call's record. Ids are the engine's own
        (uuid4), but if one ever names a call already in the log (a call's event 1 whose
        id already holds a different event 1), the new call's events go under an id of
        their own, derived from the clash so a retried batch gets the same one, until it
        ends; its first event says which id it clashed with. Never merged, never lost."""
        firsts = {e.call_id: e for seq, e in batch if seq == 1}
        if firsts:
            held = db.execute(sa.select(events.c.call_id, events.c.at, events.c.kind).where(
                events.c.call_id.in_(list(firsts)), events.c.seq == 1)).all()
            for row in held:
                first = firsts.pop(row.call_id)
                if (row.at, row.kind) != (first.at, kind_of(first)):  # not this batch, retried
                    new = uuid.uuid5(_CLASH_NAMESPACE, f"{row.call_id}\0{first.at!r}").hex
                    log.error("call log: call id %r already names a call in the log; the "
                              "new call's events are logged as %s", row.call_id, new)
                    self._apart[row.call_id] = new
            for call_id in firsts:  # a call new to the log: nothing to keep it apart from
                self._apart.pop(call_id, None)
        if not self._apart:
            return list(batch)
        out = []
        for seq, e in batch:
            new = self._apart.get(e.call_id)
            if new is not None:
                extra = {**e.extra, "clashed_with": e.call_id} if seq == 1 else e.extra
                if isinstance(e, RecordingStarted):  # that file is the other call's
                    e = UnknownEvent(call_id=e.call_id, at=e.at, name=e.KIND)  # (never overwritten)
                e = dataclasses.replace(e, call_id=new, extra=extra)
            out.append((seq, e))
        return out

    def write_dead_letter(self, seq: int, event: CallEvent, error: BaseException,
                          instance: str) -> None:
        """Set aside an event the store refused for good (``write`` raised a data error):
        the error and the event as ASCII JSON, both capped, so that this row itself is
        always storable."""
        data = dead_letter_json(event)
        lines = str(error).strip().splitlines()
        text = f"{type(error).__name__}: {lines[0] if lines else ''}"
        with self.engine.begin() as db:
            db.execute(dead_letters.insert().values(
                at=time.time(), call_id=storable(event.call_id, TEXT_MAX), seq=seq,
                kind=storable(kind_of(event), TEXT_MAX),
                event_at=event.at if isinstance(event.at, (int, float)) else None,
                instance=storable(instance, TEXT_MAX),
                error=storable(text, DEAD_LETTER_ERROR_MAX),
                data=data[:DEAD_LETTER_DATA_MAX], truncated=len(data) > DEAD_LETTER_DATA_MAX))

    def dead_letters(self, since: float | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Events set aside (newest first)."""
        query = sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(dead_letters.c.at >= since)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def recover(self, instance: str) -> list[str]:
        """Calls this instance left live (it was killed): mark them incomplete."""
        with self.engine.begin() as db:
            ids = [r.call_id for r in db.execute(
                sa.select(calls.c.call_id).where(calls.c.status == LIVE,
                                                 calls.c.instance == instance))]
            if ids:
                db.execute(calls.update().where(calls.c.call_id.in_(ids)).values(
                    status=INCOMPLETE, ended_at=calls.c.last_event_at))
        return ids

    # --- reading -------------------------------------------------------------------------
    def list_calls(self, f: CallFilter = CallFilter()) -> list[dict[str, Any]]:
        c = calls.c
        query = sa.select(calls).order_by(c.started_at.desc()).limit(f.limit).offset(f.offset)
        for column, value in ((c.outcome, f.outcome), (c.queue, f.queue), (c.intent, f.intent),
                              (c.caller, f.caller), (c.status, f.status),
                              (c.locale, f.locale)):
            if value:
                query = query.where(column == value)
        if f.since is not None:
            query = query.where(c.started_at >= f.since)
        if f.until is not None:
            query = query.where(c.started_at < f.until)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def find_call(self, call_id: str, exact: bool = False) -> dict[str, Any]:
        """A call by its id, else by the telephony's id for it (``external_id``) when one
        call has it, else (unless ``exact``: machine APIs take whole ids) by an unambiguous
        prefix of its id (at least 6 characters). ``CallNotFound``, or ``AmbiguousCall``
        naming the candidates."""
        if not searchable(call_id):  # NUL, a lone surrogate, too long: no call has it
            raise CallNotFound(f"no call {call_id[:80]!r} in the call log")
        with self.engine.connect() as db:
            row = db.execute(sa.select(calls).where(calls.c.call_id == call_id)).first()
            if row is None:
                rows = db.execute(sa.select(calls).where(calls.c.external_id == call_id)
                                  .order_by(calls.c.started_at).limit(11)).all()
                if len(rows) > 1:
                    raise AmbiguousCall(
                        f"{len(rows) if len(rows) <= 10 else 'over 10'} calls have the "
                        f"external id {call_id!r}: name one by its call id "
                        f"({', '.join(r.call_id for r in rows[:10])})")
                row = rows[0] if rows else None
            if row is None and not exact and len(call_id) >= 6:
                rows = db.execute(sa.select(calls).where(
                    calls.c.call_id.startswith(call_id, autoescape=True)).limit(2)).all()
                if len(rows) > 1:
                    raise AmbiguousCall(f"call id {call_id!r} is ambiguous: give more of it")
                row = rows[0] if rows else None
        if row is None:
            raise CallNotFound(f"no call {call_id!r} in the call log")
        return dict(row._mapping)

    def events(self, call_id: str) -> list[CallEvent]:
        query = sa.select(events).where(events.c.call_id == call_id).order_by(events.c.seq)
        with self.engine.connect() as db:
            return [_event(r) for r in db.execute(query)]

    def events_of(self, kind: type[E], since: float | None = None) -> list[E]:
        """Every call's events of one kind (oldest first), or those since ``since``."""
        query = sa.select(events).where(events.c.kind == kind.KIND).order_by(events.c.at)
        if since is not None:
            query = query.where(events.c.at >= since)
        with self.engine.connect() as db:
            return [e for e in map(_event, db.execute(query)) if isinstance(e, kind)]

    def events_by_call(self, kinds: Iterable[type[CallEvent]], since: float | None = None,
                       until: float | None = None) -> dict[str, list[CallEvent]]:
        """The events of ``kinds`` of every call started in the period, by call, in order
        (one query, where reading each call's events would be one per call)."""
        started = sa.select(calls.c.call_id)
        if since is not None:
            started = started.where(calls.c.started_at >= since)
        if until is not None:
            started = started.where(calls.c.started_at < until)
        query = sa.select(events).where(events.c.kind.in_([k.KIND for k in kinds]),
                                        events.c.call_id.in_(started)).order_by(
            events.c.call_id, events.c.seq)
        out: dict[str, list[CallEvent]] = defaultdict(list)
        with self.engine.connect() as db:
            for r in db.execute(query):
                out[r.call_id].append(_event(r))
        return dict(out)

    def counts(self, since: float | None = None) -> dict[str, Any]:
        """Calls by status, outcome, and escalations by queue and by reason."""
        c = calls.c
        where = [c.started_at >= since] if since is not None else []
        out: dict[str, Any] = {}
        with self.engine.connect() as db:
            for name, column in (("status", c.status), ("outcome", c.outcome)):
                out[name] = {str(k): n for k, n in db.execute(
                    sa.select(column, sa.func.count()).where(*where).group_by(column))}
            for name, column in (("queue", c.queue), ("reason", c.reason)):
                out[f"escalations_by_{name}"] = {str(k): n for k, n in db.execute(
                    sa.select(column, sa.func.count()).where(
                        *where, c.outcome == "escalated").group_by(column))}
        return out

    def append_event(self, event: CallEvent) -> int:
        """An event about a call that has ended (e.g. the agent desktop's feedback), after
        its last one; returns its sequence number. Its ``call_id``: the call's id or its
        unambiguous external id, never a prefix; the event goes under the call's own id."""
        call_id = self.find_call(event.call_id, exact=True)["call_id"]
        event = dataclasses.replace(event, call_id=call_id, at=time.time())
        for _ in range(3):  # another writer may take the same number: take the next
            try:
                with self.engine.begin() as db:
                    last = db.execute(sa.select(sa.func.max(events.c.seq)).where(
                        events.c.call_id == call_id)).scalar() or 0
                    db.execute(events.insert().values(**_row(last + 1, event)))
                return last + 1
            except sa.exc.IntegrityError:
                continue
        raise CallLogError(f"call {call_id}: could not add a {kind_of(event)} event")

    # --- labels and retention ---------------------------------------------------------------
    def add_label(self, call_id: str, by: str, intent: str | None = None,
                  queue: str | None = None, note: str | None = None, *,
                  turn: int | None = None, text: str | None = None, kind: str | None = None,
                  cluster: str | None = None) -> None:
        """A trainer's label of a call, or of one turn (``turn``); ``call_id`` "" for one
        of no call (a dialect synonym added on its own)."""
        if call_id:
            call_id = self.find_call(call_id)["call_id"]  # under its id, not a prefix
        with self.engine.begin() as db:
            db.execute(labels.insert().values(
                call_id=call_id, intent=intent, queue=queue, by=by, at=time.time(), note=note,
                turn=turn, text=text, kind=kind, cluster=cluster))

    def labels_for(self, call_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The latest label of each call that says what was right (an intent or a queue;
        an ASR-error or synonym label without one says nothing about the route)."""
        ids = list(call_ids)
        query = sa.select(labels).where(
            labels.c.call_id.in_(ids),
            sa.or_(labels.c.intent.isnot(None), labels.c.queue.isnot(None)),
        ).order_by(labels.c.at, labels.c.id)
        with self.engine.connect() as db:
            return {r.call_id: dict(r._mapping) for r in db.execute(query)}

    def list_labels(self, since: float | None = None,
                    kind: str | None = None) -> list[dict[str, Any]]:
        """Every label (oldest first), or those given since ``since`` or of one ``kind``."""
        query = sa.select(labels).order_by(labels.c.at, labels.c.id)
        if since is not None:
            query = query.where(labels.c.at >= since)
        if kind:
            query = query.where(labels.c.kind == kind)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def purge(self, before: float) -> list[dict[str, Any]]:
        """Delete calls that started before ``before`` (not live ones); returns them."""
        with self.engine.begin() as db:
            gone = [dict(r._mapping) for r in db.execute(sa.select(calls).where(
                calls.c.started_at < before, calls.c.status != LIVE))]
            ids = [g["call_id"] for g in gone]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for table in (events, labels):
                    db.execute(table.delete().where(table.c.call_id.in_(chunk)))
                db.execute(calls.delete().where(calls.c.call_id.in_(chunk)))
            # Dead letters hold (masked) call data too: kept no longer than calls.
            db.execute(dead_letters.delete().where(dead_letters.c.at < before))
        return gone


def _row(seq: int, event: CallEvent) -> dict[str, Any]:
    """An event as a row of ``events`` (the codec's kind and JSON data)."""
    kind, data = encode(event)
    return {"call_id": event.call_id, "seq": seq, "at": event.at, "kind": kind,
            "data": json.dumps(data, ensure_ascii=False, default=str)}


def _event(row: Any) -> CallEvent:
    return decode(row.kind, json.loads(row.data), row.call_id, row.at, row.seq)
