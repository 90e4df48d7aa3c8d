"""`ivr promote`: make a trained model the live one, unless it is worse on the held-out set.

The live model of each locale is named by ``models/live.yml``; every command and
``ivr serve`` use it. A promotion rewrites that pointer (atomically: a running server polls
it), appends who, when and the figures to ``models/promotions.log`` (JSON lines) and, when
given a server's URL, tells that server to swap the model in at once.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.errors import IvrError, ModelNotFoundError, Remedy, shown
from ivr.project import Project, read_live_pointer
from ivr.trainer.evaluation import compare_models


class PromotionRefused(IvrError):
    """The candidate is worse than the live model on the held-out set (and no --force)."""


@dataclass(frozen=True)
class Promotion:
    locale: str
    model: str
    previous: str | None  # None: no live model could be found
    forced: bool
    by: str
    at: str  # UTC, ISO 8601
    heldout: dict[str, Any] | None  # live/candidate/delta accuracy; None: nothing compared


async def promote(project: Project, candidate: Path | None = None, force: bool = False,
                  by: str = "") -> Promotion:
    """Gate ``candidate`` (a path or a file name in models/; default: the newest) against
    the live model on the held-out set, then make it live. Raises ``PromotionRefused`` when
    it is worse."""
    if candidate and not candidate.is_file() and (project.models_dir / candidate).is_file():
        candidate = project.models_dir / candidate  # a bare name from `ivr models`
    model = (candidate or project.latest_model()).resolve()
    if not model.is_file():
        raise ModelNotFoundError(f"no model at {shown(model)}")
    if model.parent != project.models_dir.resolve() or not model.name.startswith(
            f"{project.locale}-"):
        raise IvrError(f"{shown(model)}: a {project.locale} model must be in "
                       f"{shown(project.models_dir)} to be promoted "
                       f"(named {project.locale}-....tar.gz)")
    try:
        live: Path | None = project.live_model().resolve()
    except ModelNotFoundError:  # a pointer to a deleted model: promoting is the repair
        live = None
    by = by or os.environ.get("USER", "unknown")
    if live == model:  # nothing changes: no pointer write, no line in the log
        return Promotion(project.locale, model.name, model.name, force, by, _now(), None)
    figures = None
    if live is not None:
        compared = (await compare_models(project, live, model, labelled=False))["heldout"]
        figures = heldout_figures(compared)
        refusal = gate(figures, model.name, live.name)
        if refusal and not force:
            raise PromotionRefused(refusal, Remedy("promote_force",
                                                   "; --force promotes it anyway"))
    return _make_live(project, model.name, live.name if live else None, force, by, figures)


def adopt_first_model(project: Project, model: Path) -> Promotion | None:
    """A fresh install's first model of a locale goes live (there is nothing to gate it
    against); every later one is a candidate until ``promote`` passes it. None when the
    locale already has a live model."""
    try:
        project.live_model()
        return None
    except ModelNotFoundError:
        if read_live_pointer(project.live_pointer).get(project.locale):
            return None  # a pointer to a deleted model: `ivr promote` repairs that, not us
    return _make_live(project, model.name, None, False, "ivr train (first model)", None)


def _make_live(project: Project, name: str, previous: str | None, forced: bool, by: str,
               figures: dict[str, Any] | None) -> Promotion:
    """Point the locale at the model and log who, when and the figures."""
    promotion = Promotion(project.locale, name, previous, forced, by, _now(), figures)
    write_live_pointer(project, name)
    with project.promotions_log.open("a", encoding="utf-8") as log:
        log.write(json.dumps(asdict(promotion), ensure_ascii=False) + "\n")
    return promotion


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def gate(figures: dict[str, Any], candidate: str, live: str) -> str | None:
    """Why the candidate may not go live (None: it may): fewer held-out utterances right,
    or more of the rejection set (fillers, chit-chat, what the bank does not do) acted on."""
    if figures["delta"] < 0:
        return (f"{candidate} is worse than the live {live} on the held-out set: "
                f"accuracy {figures['candidate']:.3f} against {figures['live']:.3f} "
                f"({figures['delta']:+.3f}, {figures['more_errors']} more of "
                f"{figures['examples']} wrong)")
    accepts = figures.get("rejection_false_accept_rate")
    if accepts and accepts["delta"] < 0:
        return (f"{candidate} acts on more of the rejection set than the live {live}: "
                f"{accepts['candidate']:.3f} of fillers, chit-chat and requests the bank does "
                f"not serve taken as requests, against {accepts['live']:.3f}")
    return None


def heldout_figures(compared: dict[str, Any]) -> dict[str, Any]:
    """The gate's figures from ``compare_models``' held-out entry."""
    live, candidate = compared["live"], compared["candidate"]
    figures = {"live": live["accuracy"], "candidate": candidate["accuracy"],
               "delta": compared["comparison"]["accuracy"]["delta"],
               "examples": live["examples"],
               "more_errors": len(candidate["errors"]) - len(live["errors"])}
    if "rejection_false_accept_rate" in compared["comparison"]:
        figures["rejection_false_accept_rate"] = \
            compared["comparison"]["rejection_false_accept_rate"]
    return figures


def write_live_pointer(project: Project, name: str) -> None:
    """Point the locale at ``name``; other locales keep theirs. Written to a temporary
    file and renamed, so a server polling the pointer never reads half of it."""
    pointer = project.live_pointer
    entries = {**read_live_pointer(pointer), project.locale: name}
    text = ("# The model in service for each locale (written by `ivr promote`).\n"
            + yaml.safe_dump(dict(sorted(entries.items())), allow_unicode=True))
    partial = pointer.with_suffix(".yml.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, pointer)


async def tell_server(url: str, locale: str, token: str | None) -> dict[str, Any]:
    """Ask a running ``ivr serve`` to swap in the locale's live model; waits for the load."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http,
                    http.post(f"{url.rstrip('/')}/admin/models/reload",
                              json={"locale": locale}, headers=headers) as resp):
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise IvrError(f"{url} could not be told ({type(e).__name__}: {e}); the pointer is "
                       "written and the server picks it up by itself within seconds") from None
    if resp.status != 200:
        raise IvrError(f"{url} did not load the model: "
                       f"{(body or {}).get('error') or resp.status}")
    return body
