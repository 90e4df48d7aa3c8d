"""The ops console: a web page in the engine's own aiohttp app, under ``/console``.

Ops and trainers list calls with filters, open a call's timeline (every turn with how it
was heard, understood and answered, the recording to listen to), replay a call against a
model to see what would change, and watch live figures. Trainers also work the review
queue (label a cluster of misunderstood utterances, mark an ASR error, add a dialect
synonym), train a candidate model, compare it with the live one and promote it, which
swaps it into this running server. Admins may do all of that and manage the console's
users (``/console/api/users``). The page is plain HTML, JavaScript and CSS from
``static/``: nothing is fetched from elsewhere, so it works on a bank's closed network.

Every route and the roles allowed on it are in one table, ``ROUTES`` (routes.py);
``add_console`` registers them behind a login check, and docs/console.md prints the same
table. One module per page: pages.py (HTML and static files), login.py, calls.py (list,
timeline, audio, replay), figures.py (live figures, trends), reviewing.py (review queue,
labels, proposals), models.py (training, comparing, promoting), users.py, verification.py
(phone verification locks); handling.py holds what they share. The console's users,
sessions and audit are accounts.py's, in the call log's database.
The store and the labelling functions are synchronous (SQLAlchemy, Rasa's data loader),
so handlers call them on the default executor, never on the event loop the live calls run
on; training runs in a child process, and models load on their own dialogue threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ivr.calllog.store import CallStore
from ivr.console.accounts import AccountStore
from ivr.console.auth import Sessions
from ivr.console.throttle import LoginThrottle

if TYPE_CHECKING:
    from ivr.calllog.replay import Replayer
    from ivr.server.live_models import LiveModels
    from ivr.trainer.training import Trainer


@dataclass
class ConsoleContext:
    """What the console reads; the server sets it at startup (``app[CONSOLE]``)."""

    store: CallStore
    recordings: Path | None  # folder the calls' ``recording`` paths are relative to
    replayer: Replayer
    live_calls: Callable[[], int]  # calls in progress on this engine
    # The trainers' pages (review, labels, training, promotion); without a project root
    # they answer 503. ``live_models`` swaps a promoted model into this server.
    project_root: Path | None = None
    trainer: Trainer | None = None
    live_models: LiveModels | None = None

    @property
    def accounts(self) -> AccountStore:
        """The console's users, sessions and audit, in the call log's database (a view of
        the store's engine: nothing to keep in step when a test swaps the store)."""
        return AccountStore(self.store.engine)


CONSOLE = web.AppKey("console", ConsoleContext)
SESSIONS = web.AppKey("console_sessions", Sessions)
THROTTLE = web.AppKey("console_throttle", LoginThrottle)


def add_console(app: web.Application) -> None:
    """Register the console's routes; handlers read ``app[CONSOLE]``, which the server
    sets once the call log is open."""
    # The pages import the trainer's modules (review, labelling, proposals, which records
    # its decisions in accounts.py's audit): imported here, once the package is loaded, so
    # that importing the accounts, the throttle or the context stays light and acyclic.
    from ivr.console.routes import ROUTES, guarded

    app[SESSIONS] = Sessions()
    app[THROTTLE] = LoginThrottle()  # $IVR_TRUSTED_PROXIES: whose X-Forwarded-For counts
    for route in ROUTES:
        app.router.add_route(route.method, route.path, guarded(route))
