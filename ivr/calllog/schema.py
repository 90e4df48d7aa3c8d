"""The call log database's tables and keeping them current: ``metadata`` holds every table
the store creates (calls, events, labels, dead letters, and the console's users, audit and
sessions, which share the database), and ``create_or_upgrade`` makes them, adds the columns
and widens the ones an older version made. The login throttle's table is
ivr/console/throttle.py's and the phone verification lockout's ivr/dialogue/lockout.py's,
both on this metadata.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from ivr.core.events import TEXT_MAX

LIVE, COMPLETE, INCOMPLETE = "live", "complete", "incomplete"  # a call's status

# Call ids, caller ids (a SIP URI is often 40+ characters) and other values from outside fit
# in TEXT_MAX (255) characters; longer ones are cut at the edge (``ivr.core.events.clip``) and,
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


def create_or_upgrade(engine: sa.engine.Engine) -> None:
    """Create the missing tables, add the columns and widen the ones an older version made
    (engines starting at once take turns: ``_schema_lock``)."""
    with _schema_lock(engine):
        metadata.create_all(engine)
        _add_new_columns(engine)
        _widen_columns(engine)


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


def sqlite_durable(connection: Any, _record: Any) -> None:
    """WAL lets the console read while calls write; FULL makes each commit survive a crash
    (of the process or the machine)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
