"""The console in the staff's language: one message catalogue per language
(``static/i18n/<lang>.json``), the language a request gets, and the pages rendered in it.

A page is an HTML template whose texts are ``{{key}}`` placeholders, filled here from the
catalogue, so the login page a zh-CN browser gets is Chinese before any script runs. The
catalogue, the names' labels and the bank's time zone go into the page as a JSON data
block (``<script type="application/json">``: never executed, so the CSP that forbids
inline scripts still holds) that ``static/i18n.js`` reads.

Intents and queues are labelled as the callers hear them (``labels:`` in
``knowledge/zh.yml``: one place for both); reasons, outcomes, statuses and signals from
the catalogue's ``labels``. English shows the engine's own names.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ivr.core import zone
from ivr.trainer.review_signals import SIGNALS

STATIC = Path(__file__).parent / "static"
CATALOGUES = STATIC / "i18n"
LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"  # a Chinese bank's staff
COOKIE = "ivr_lang"  # set by the page's language switch
_PLACEHOLDER = re.compile(r"\{\{([a-zA-Z0-9_.-]+)\}\}")
_KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


@lru_cache(maxsize=len(LANGS))
def catalogue(lang: str) -> dict[str, Any]:
    """``{"messages": {key: text}, "labels": {kind: {name: text}}}`` of a language."""
    return json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the switch's cookie, else the browser's most preferred
    language the console has (zh of any region is zh-CN), else zh-CN."""
    if cookie in LANGS:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for q, _, tag in sorted(ranked):
        if q < 0 and (tag == "zh" or tag.startswith("zh-")):
            return "zh-CN"
        if q < 0 and (tag == "en" or tag.startswith("en-")):
            return "en"
    return DEFAULT


@lru_cache(maxsize=4)
def _knowledge_labels(path: Path, mtime: float) -> dict[str, dict[str, str]]:
    labels = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("labels") or {}
    return {"intent": dict(labels.get("topics") or {}), "queue": dict(labels.get("queues") or {})}


def labels(lang: str, project_root: Path | None = None) -> dict[str, dict[str, str]]:
    """Each kind of name (intent, queue, reason, outcome, status, signal) to its label."""
    out = {kind: dict(names) for kind, names in catalogue(lang).get("labels", {}).items()}
    if lang == "zh-CN":  # the review queue's signals by their table's names (English: as is)
        for name, signal in SIGNALS.items():
            out.setdefault("signal", {}).setdefault(name, signal.zh)
        path = (project_root / "knowledge" if project_root else _KNOWLEDGE) / "zh.yml"
        if path.is_file():  # what callers hear wins over the catalogue's stand-ins
            for kind, names in _knowledge_labels(path, path.stat().st_mtime).items():
                out.setdefault(kind, {}).update(names)
    return out


def page_data(lang: str, project_root: Path | None = None) -> dict[str, Any]:
    """What ``i18n.js`` reads: the language, its messages and labels, the bank's zone."""
    return {"lang": lang, "langs": list(LANGS), "messages": catalogue(lang)["messages"],
            "labels": labels(lang, project_root),
            "timezone": {"name": zone.zone_name(), "offset": zone.offset()}}


def render(name: str, lang: str, project_root: Path | None = None) -> str:
    """The page template ``name`` in ``lang``: ``{{key}}`` from the catalogue (escaped),
    ``{{lang}}``, and ``{{data}}`` the JSON data block."""
    messages = catalogue(lang)["messages"]
    data = json.dumps(page_data(lang, project_root), ensure_ascii=False)
    # No "</script>" or markup can close the block early.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    block = f'<script type="application/json" id="i18n-data">{data}</script>'

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "lang":
            return lang
        if key == "data":
            return block
        return html.escape(messages.get(key, key))

    return _PLACEHOLDER.sub(fill, (STATIC / name).read_text(encoding="utf-8"))
