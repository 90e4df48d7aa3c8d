"""Where call events are kept: SQLite (the embedded default, WAL with durable commits) or
PostgreSQL (several engine instances), one interface, through SQLAlchemy Core.

A call is a row in ``calls`` (its summary, for listing and filtering) plus its events in
``events`` (the full record, in order). Timestamps are Unix seconds (UTC).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import reprlib
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ivr.calllog import TEXT_MAX, CallEvent
from ivr.errors import IvrError

log = logging.getLogger(__name__)

LIVE, COMPLETE, INCOMPLETE = "live", "complete", "incomplete"
# Ids of calls whose id clashed with a logged call's are made in this namespace.
_CLASH_NAMESPACE = uuid.UUID("5f0c2a6e-3b7d-4e19-9a41-6c2d8e0b7f13")

DEAD_LETTER_ERROR_MAX = 1000  # characters of a dead letter's error
DEAD_LETTER_DATA_MAX = 64 * 1024  # characters of its event JSON kept (the rest is cut)

# Call ids, caller ids (a SIP URI is often 40+ characters) and other values from outside fit
# in TEXT_MAX (255) characters; longer ones are cut at the edge (``ivr.calllog.clip``) and,
# as a last defence, where ``calls`` is written (``_summaries``).
metadata = sa.MetaData()
calls = sa.Table(
    "calls", metadata,
    sa.Column("call_id", sa.String(TEXT_MAX), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False, index=True),
    sa.Column("ended_at", sa.Float),
    sa.Column("last_event_at", sa.Float),
    sa.Column("status", sa.String(16), nullable=False, default=LIVE),
    sa.Column("instance", sa.String(TEXT_MAX)),  # the engine instance that holds the call
    sa.Column("transport", sa.String(TEXT_MAX)),
    sa.Column("caller", sa.String(TEXT_MAX), index=True),
    sa.Column("locale", sa.String(TEXT_MAX)),
    sa.Column("model", sa.String(TEXT_MAX)),
    sa.Column("dialect", sa.String(TEXT_MAX)),
    sa.Column("outcome", sa.String(TEXT_MAX)),
    sa.Column("intent", sa.String(TEXT_MAX)),
    sa.Column("queue", sa.String(TEXT_MAX)),
    sa.Column("reason", sa.String(TEXT_MAX)),
    sa.Column("recording", sa.String(512)),  # relative to the recordings folder
    # The telephony's own id for the call (Twilio's callSid, ...): a reference to find the
    # call by, never its key (docs/calllog.md, "Call ids").
    sa.Column("external_id", sa.String(TEXT_MAX), index=True),
)
events = sa.Table(
    "events", metadata,
    sa.Column("call_id", sa.String(TEXT_MAX), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(TEXT_MAX), nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),  # JSON, Chinese as is
)
# Events the store refused for good (a value it cannot hold): set aside here so that the
# events behind them are written (docs/calllog.md, "Dead letters").
dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),  # when it was set aside
    sa.Column("call_id", sa.String(TEXT_MAX), index=True),
    sa.Column("seq", sa.Integer),
    sa.Column("kind", sa.String(TEXT_MAX)),
    sa.Column("event_at", sa.Float),
    sa.Column("instance", sa.String(TEXT_MAX)),
    sa.Column("error", sa.Text, nullable=False),  # its type and first line, capped
    sa.Column("data", sa.Text, nullable=False),  # the event's JSON (ASCII), maybe cut
    sa.Column("truncated", sa.Boolean, nullable=False),
)
labels = sa.Table(  # what a trainer says was right for a call (or one of its turns)
    "labels", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("call_id", sa.String(TEXT_MAX), nullable=False, index=True),  # "": no call
    sa.Column("intent", sa.String(64)),
    sa.Column("queue", sa.String(32)),
    sa.Column("by", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("note", sa.Text),
    # The review queue's labels (docs/review.md); NULL on a label of a whole call.
    sa.Column("turn", sa.Integer),
    sa.Column("text", sa.Text),
    sa.Column("kind", sa.String(16)),  # intent | confirm | asr_error | synonym
    sa.Column("cluster", sa.String(32)),
)
users = sa.Table(  # console logins
    "users", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    # Added with the admin role; nullable so that older tables gain them (NULL: enabled,
    # unknown, never).
    sa.Column("disabled", sa.Boolean),
    sa.Column("created_at", sa.Float),
    sa.Column("last_login", sa.Float),
)
audit = sa.Table(  # who looked at or listened to what
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("user", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("call_id", sa.String(TEXT_MAX)),
    sa.Column("detail", sa.String(256)),  # a byte range listened to, the user an admin changed
)
# Console sessions, in the database so that every engine instance sharing it accepts a
# login made on any of them (ivr/console/auth.py).
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 of the cookie, hex
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("user", sa.String(64), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False, index=True),
)
# The login throttle's table is ivr/console/throttle.py's (on this metadata).

# Columns of ``calls`` that these event kinds fill in from their data.
_SUMMARY_FROM = {
    "start": ("transport", "caller", "locale", "model", "external_id"),
    "language": ("locale",),
    "recording": ("recording",),
    "end": ("transport", "caller", "locale", "dialect", "outcome", "intent", "queue", "reason",
            "external_id"),
}


class CallLogError(IvrError):
    """The call log cannot be opened or read."""


class CallNotFound(CallLogError):
    """No call has that id (or external id)."""


class AmbiguousCall(CallLogError):
    """Several calls answer to that external id or id prefix; the message lists them."""


class UserChangeRefused(CallLogError):
    """A change to console users that would leave a role that must keep one enabled user
    (the admins) without any."""


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
            sa.event.listen(self.engine, "connect", _sqlite_durable)
        elif self.dialect != "postgresql":
            raise CallLogError(f"call log: {self.dialect} is not supported "
                               "(use sqlite:///FILE or postgresql://...)")
        try:
            with _schema_lock(self.engine):
                metadata.create_all(self.engine)
                _add_new_columns(self.engine)
                _widen_columns(self.engine)
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
                {"call_id": e.call_id, "seq": seq, "at": e.at, "kind": e.kind,
                 "data": json.dumps(e.data, ensure_ascii=False, default=str)}
                for seq, e in batch])
            for cid, values in _summaries(e for _, e in batch).items():
                db.execute(calls.update().where(calls.c.call_id == cid).values(**values))
        for original in [o for o, new in self._apart.items()  # (once committed)
                         if any(e.call_id == new and e.kind == "end" for _, e in batch)]:
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
                if (row.at, row.kind) != (first.at, first.kind):  # not this batch, retried
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
                data = {**e.data, "clashed_with": e.call_id} if seq == 1 else e.data
                if e.kind == "recording":  # that file is the other call's (never overwritten)
                    data = {k: v for k, v in data.items() if k != "recording"}
                e = dataclasses.replace(e, call_id=new, data=data)
            out.append((seq, e))
        return out

    def write_dead_letter(self, seq: int, event: CallEvent, error: BaseException,
                          instance: str) -> None:
        """Set aside an event the store refused for good (``write`` raised a data error):
        the error and the event as ASCII JSON, both capped, so that this row itself is
        always storable."""
        data = _dead_letter_json(event)
        lines = str(error).strip().splitlines()
        text = f"{type(error).__name__}: {lines[0] if lines else ''}"
        with self.engine.begin() as db:
            db.execute(dead_letters.insert().values(
                at=time.time(), call_id=_storable(event.call_id, TEXT_MAX), seq=seq,
                kind=_storable(event.kind, TEXT_MAX),
                event_at=event.at if isinstance(event.at, (int, float)) else None,
                instance=_storable(instance, TEXT_MAX),
                error=_storable(text, DEAD_LETTER_ERROR_MAX),
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
        if not _searchable(call_id):  # NUL, a lone surrogate, too long: no call has it
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

    def events(self, call_id: str) -> list[dict[str, Any]]:
        query = sa.select(events).where(events.c.call_id == call_id).order_by(events.c.seq)
        with self.engine.connect() as db:
            return [{"seq": r.seq, "at": r.at, "kind": r.kind, "data": json.loads(r.data)}
                    for r in db.execute(query)]

    def events_of_kind(self, kind: str, since: float | None = None) -> list[dict[str, Any]]:
        query = sa.select(events).where(events.c.kind == kind).order_by(events.c.at)
        if since is not None:
            query = query.where(events.c.at >= since)
        with self.engine.connect() as db:
            return [{"call_id": r.call_id, "at": r.at, "data": json.loads(r.data)}
                    for r in db.execute(query)]

    def events_by_call(self, kinds: Iterable[str], since: float | None = None,
                       until: float | None = None) -> dict[str, list[dict[str, Any]]]:
        """The events of ``kinds`` of every call started in the period, by call, in order
        (one query, where reading each call's events would be one per call)."""
        started = sa.select(calls.c.call_id)
        if since is not None:
            started = started.where(calls.c.started_at >= since)
        if until is not None:
            started = started.where(calls.c.started_at < until)
        query = sa.select(events).where(events.c.kind.in_(list(kinds)),
                                        events.c.call_id.in_(started)).order_by(
            events.c.call_id, events.c.seq)
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self.engine.connect() as db:
            for r in db.execute(query):
                out[r.call_id].append({"seq": r.seq, "at": r.at, "kind": r.kind,
                                       "data": json.loads(r.data)})
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

    def append_event(self, call_id: str, kind: str, data: dict[str, Any]) -> int:
        """An event about a call that has ended (e.g. the agent desktop's feedback), after
        its last one; returns its sequence number. ``call_id``: the call's id or its
        unambiguous external id, never a prefix; the event goes under the call's own id."""
        call_id = self.find_call(call_id, exact=True)["call_id"]
        for _ in range(3):  # another writer may take the same number: take the next
            try:
                with self.engine.begin() as db:
                    last = db.execute(sa.select(sa.func.max(events.c.seq)).where(
                        events.c.call_id == call_id)).scalar() or 0
                    db.execute(events.insert().values(
                        call_id=call_id, seq=last + 1, at=time.time(), kind=kind,
                        data=json.dumps(data, ensure_ascii=False)))
                return last + 1
            except sa.exc.IntegrityError:
                continue
        raise CallLogError(f"call {call_id}: could not add a {kind} event")

    # --- labels, retention, console users, audit ------------------------------------------
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

    def set_user(self, name: str, role: str, password_hash: str,
                 keep_role: str | None = None) -> None:
        """Create a console user, or set an existing one's role and password."""
        self.save_user(name, role=role, password_hash=password_hash, keep_role=keep_role)

    def save_user(self, name: str, *, role: str | None = None, password_hash: str | None = None,
                  disabled: bool | None = None, keep_role: str | None = None,
                  by: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Create a console user (a role and a password hash needed) or change what is
        given, in one transaction; returns the user before (None: created) and after.
        A new role or password, or disabling, ends the user's sessions. A change that would
        leave ``keep_role`` without an enabled user is refused (``UserChangeRefused``).
        ``by``: the change is audited in the same transaction, in that user's name."""
        try:
            return self._save_user(name, role, password_hash, disabled, keep_role, by)
        except sa.exc.IntegrityError:  # created by another request meanwhile
            raise UserChangeRefused(f"user {name!r} was just created elsewhere: "
                                    "try again") from None

    def _save_user(self, name: str, role: str | None, password_hash: str | None,
                   disabled: bool | None, keep_role: str | None,
                   by: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        now = time.time()
        with self.engine.begin() as db:
            if keep_role and self.dialect == "postgresql":
                # Lock that role's users first: two admins demoting each other at once
                # queue here, and the second sees it would leave none. (SQLite writers
                # are serialised by the database lock already.)
                db.execute(sa.select(users.c.name).where(_enabled(keep_role)).with_for_update())
            row = db.execute(sa.select(users).where(users.c.name == name)).first()
            before = _user(row) if row else None
            if before is None:
                if role is None or password_hash is None:
                    raise CallLogError(f"no user {name!r}: a new user needs a role and a "
                                       "password")
                db.execute(users.insert().values(name=name, role=role, disabled=bool(disabled),
                                                 password_hash=password_hash, created_at=now))
            else:
                changes = {k: v for k, v in (("role", role), ("password_hash", password_hash),
                                             ("disabled", disabled)) if v is not None}
                if changes:
                    db.execute(users.update().where(users.c.name == name).values(**changes))
                if (role not in (None, before["role"]) or password_hash is not None
                        or (disabled and not before["disabled"])):
                    db.execute(sessions.delete().where(sessions.c.user == name))
                if (keep_role and before["role"] == keep_role and not before["disabled"]
                        and not db.execute(sa.select(sa.func.count()).select_from(users).where(
                            _enabled(keep_role))).scalar()):
                    raise UserChangeRefused(f"{name} is the last enabled {keep_role}: make "
                                            f"another {keep_role} first")
            after = _user(db.execute(sa.select(users).where(users.c.name == name)).one())
            rows = [{"at": now, "user": by, "action": action, "call_id": None, "detail": detail}
                    for action, detail in _user_changes(before, after, password_hash)]
            if by is not None and rows:  # (a role set to what it was changes nothing)
                db.execute(audit.insert(), rows)
        return before, after

    def user(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(users).where(users.c.name == name)).first()
        return dict(row._mapping) if row else None

    def list_users(self) -> list[dict[str, Any]]:
        """Console users by name: name, role, disabled, created, last login (no hashes)."""
        with self.engine.connect() as db:
            return [_user(r) for r in db.execute(sa.select(users).order_by(users.c.name))]

    def audit(self, user: str, action: str, call_id: str | None = None,
              detail: str | None = None) -> None:
        with self.engine.begin() as db:
            db.execute(audit.insert().values(at=time.time(), user=user, action=action,
                                             call_id=call_id,
                                             detail=detail[:256] if detail else None))

    def audit_log(self, call_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit).order_by(audit.c.id)
        if call_id:
            query = query.where(audit.c.call_id == call_id)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]


    # --- console sessions (ivr/console/auth.py; the login throttle: ivr/console/throttle.py)
    def add_session(self, token_hash: str, csrf: str, user: str, role: str, at: float,
                    seen_before: float, created_before: float) -> None:
        """A login: the session, the user's last login; expired sessions (of anyone) are
        purged while we are at it."""
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sa.or_(sessions.c.last_seen < seen_before,
                                                      sessions.c.created_at < created_before)))
            db.execute(sessions.insert().values(token_hash=token_hash, csrf=csrf, user=user,
                                                role=role, created_at=at, last_seen=at))
            db.execute(users.update().where(users.c.name == user).values(last_login=at))

    def session(self, token_hash: str) -> dict[str, Any] | None:
        """A session, if its user still exists, is enabled and has the session's role."""
        query = sa.select(sessions).join(users, users.c.name == sessions.c.user).where(
            sessions.c.token_hash == token_hash, users.c.role == sessions.c.role,
            _not_disabled())
        with self.engine.connect() as db:
            row = db.execute(query).first()
        return dict(row._mapping) if row else None

    def touch_session(self, token_hash: str, at: float) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.update().where(sessions.c.token_hash == token_hash).values(
                last_seen=at))

    def end_session(self, token_hash: str) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sessions.c.token_hash == token_hash))


def _searchable(text: str) -> bool:
    """Whether a string can name a call at all: PostgreSQL refuses a NUL or a lone surrogate
    in a query (an error, not "no such call"), and no id is longer than its column."""
    if "\0" in text or len(text) > TEXT_MAX:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_disabled() -> Any:
    return sa.or_(users.c.disabled.is_(None), users.c.disabled == sa.false())


def _enabled(role: str) -> Any:
    return sa.and_(users.c.role == role, _not_disabled())


def _user(row: Any) -> dict[str, Any]:
    """A user as shown: never the password hash."""
    return {"name": row.name, "role": row.role, "disabled": bool(row.disabled),
            "created_at": row.created_at, "last_login": row.last_login}


def _user_changes(before: dict[str, Any] | None, after: dict[str, Any],
                  password_hash: str | None) -> list[tuple[str, str]]:
    """The audit rows of a change to a user: (action, detail)."""
    name = after["name"]
    if before is None:
        return [("user_create", f"{name} ({after['role']})")]
    out = []
    if before["role"] != after["role"]:
        out.append(("user_role", f"{name}: {before['role']} -> {after['role']}"))
    if password_hash is not None:
        out.append(("user_password", name))
    if before["disabled"] != after["disabled"]:
        out.append(("user_disable" if after["disabled"] else "user_enable", name))
    return out


def _summaries(batch: Iterable[CallEvent]) -> dict[str, dict[str, Any]]:
    """The ``calls`` columns a batch of events changes, per call."""
    out: dict[str, dict[str, Any]] = {}
    for e in batch:
        values = out.setdefault(e.call_id, {})
        values["last_event_at"] = e.at
        for column in _SUMMARY_FROM.get(e.kind, ()):
            value = e.data.get(column)
            if value is not None:
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                # The edge cuts what comes from outside; this is the last defence, so that
                # no value longer than its column ever makes a whole batch fail.
                values[column] = text[:calls.c[column].type.length]
        if e.kind == "end":
            values.update(status=COMPLETE, ended_at=e.at)
    return out


def _storable(value: Any, limit: int) -> str:
    """Text every store takes (NULs and lone surrogates escaped), ``limit`` characters at
    most: for the dead letters, which must be writable whatever the event held."""
    text = str(value).replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def _dead_letter_json(event: CallEvent) -> str:
    """An event as ASCII JSON (lone surrogates and NULs escaped); what JSON cannot hold
    (a circular or too deeply nested value) as a short repr."""
    record = {"call_id": event.call_id, "kind": event.kind, "at": event.at, "data": event.data}
    try:
        return json.dumps(record, ensure_ascii=True, default=repr)
    except (ValueError, RecursionError):
        return json.dumps({"call_id": _storable(event.call_id, TEXT_MAX),
                           "kind": _storable(event.kind, TEXT_MAX),
                           "repr": reprlib.repr(event.data)}, ensure_ascii=True)


def _add_new_columns(engine: sa.engine.Engine) -> None:
    """Tables an older version created lack the (nullable) columns added since:
    ``create_all`` leaves existing tables alone, so add them."""
    inspector = sa.inspect(engine)
    # Several instances may start at once on one server: IF NOT EXISTS lets both succeed.
    exists = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as db:
        for table in metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    db.execute(sa.text(
                        f'ALTER TABLE {table.name} ADD COLUMN{exists} "{column.name}" '
                        f"{column.type.compile(engine.dialect)}"))
            for index in table.indexes:  # and the indexes on them (calls.external_id)
                if any(c.name not in have for c in index.columns):
                    columns = ", ".join(f'"{c.name}"' for c in index.columns)
                    db.execute(sa.text(f'CREATE INDEX IF NOT EXISTS "{index.name}" ON '
                                       f"{table.name} ({columns})"))


# Any number: the key of the lock that serialises schema changes of engines starting at once.
_MIGRATION_LOCK = 0x1F0CA11


@contextlib.contextmanager
def _schema_lock(engine: sa.engine.Engine) -> Iterator[None]:
    """Engines starting at once on one PostgreSQL server create and change the tables one
    after the other (each then finds the others' changes made, and makes none twice): a
    session advisory lock, released when its connection ends, even by a crash. SQLite's
    database lock serialises schema changes already."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as lock:
        lock.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        lock.commit()  # the lock is the session's: no transaction held open meanwhile
        try:
            yield
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            lock.commit()
_NARROW_COLUMNS = sa.text(
    "SELECT table_name, column_name, character_maximum_length FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name IN :tables"
    " AND data_type = 'character varying'").bindparams(sa.bindparam("tables", expanding=True))


def _widen_columns(engine: sa.engine.Engine) -> None:
    """Tables an older version created on PostgreSQL have narrower varchar columns (a caller
    id was 32 characters, too few for a SIP URI): widen them to today's lengths. (SQLite
    does not enforce varchar lengths.) Under ``_schema_lock``, so that of engines starting
    at once the second finds nothing left to do; widening a varchar rewrites no rows."""
    if engine.dialect.name != "postgresql":
        return
    wanted = {(t.name, c.name): c.type.length for t in metadata.sorted_tables
              for c in t.columns if isinstance(c.type, sa.String) and c.type.length}
    with engine.begin() as db:
        rows = db.execute(_NARROW_COLUMNS, {"tables": sorted({t for t, _ in wanted})})
        for table, column, length in rows:
            want = wanted.get((table, column))
            if want and length is not None and length < want:
                db.execute(sa.text(f'ALTER TABLE {table} ALTER COLUMN "{column}" '
                                   f"TYPE varchar({want})"))


def _sqlite_durable(connection: Any, _record: Any) -> None:
    """WAL lets the console read while calls write; FULL makes each commit survive a crash
    (of the process or the machine)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
