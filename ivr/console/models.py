"""The Models page, for trainers: each locale's model files, the live one and the one this
server serves; training a candidate (in a child process, ivr/trainer/training.py), comparing it with
the live model, and promoting it, which swaps it into this running server
(ivr/trainer/promotion.py, ivr/server/live_models.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ivr.console.handling import (
    Refused,
    blocking,
    context,
    error_answer,
    json_answer,
    json_body,
    locale_project,
    root_project,
    session,
)
from ivr.errors import IvrError, ModelNotFoundError
from ivr.project import Project

if TYPE_CHECKING:
    from ivr.trainer.training import Trainer


def _model_names(project: Project) -> dict[str, Any]:
    """The locale's model files (newest first), the live one and the newest (candidate)."""
    models = sorted(project.models_dir.glob(f"{project.locale}-*.tar.gz"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    try:
        live: str | None = project.live_model().name
    except ModelNotFoundError:
        live = None
    return {"models": [p.name for p in models], "live": live,
            "candidate": models[0].name if models and models[0].name != live else None}


async def model_state(request: web.Request) -> web.StreamResponse:
    """Per locale: the model files, the live model (the pointer's), the one this server is
    serving, and the latest training run."""
    ctx = context(request)
    project = root_project(request)
    serving = ctx.live_models.services.engines if ctx.live_models else {}
    locales = {}
    for locale in project.locales():
        names = await blocking(_model_names, project.with_locale(locale))
        engine = serving.get(locale)
        locales[locale] = {**names, "serving": engine.model_path.name if engine else None}
    status = ctx.trainer.status if ctx.trainer else None
    return json_answer({"locales": locales, "training": status.as_dict() if status else None,
                        "can_train": ctx.trainer is not None})


def _trainer(request: web.Request) -> Trainer:
    trainer = context(request).trainer
    if trainer is None:
        raise Refused(503, "training is not set up on this server")
    return trainer


async def start_training(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "finetune"?}``: start ``ivr train`` in a child process (one run
    at a time); poll ``GET /console/api/train``."""
    body = await json_body(request, "locale")
    project = locale_project(request, body["locale"])
    try:
        status = _trainer(request).start(project.locale, finetune=body.get("finetune") is True)
    except IvrError as e:
        return error_answer(409, e.message, e.remedy)
    await blocking(context(request).accounts.audit, session(request).user, "train", None)
    return json_answer(status.as_dict())


async def training_status(request: web.Request) -> web.StreamResponse:
    """The latest training run: state, phase, epoch of epochs, the model when done."""
    status = _trainer(request).status
    return json_answer(status.as_dict() if status else None)


def _candidate(project: Project, name: Any) -> Path:
    """A model of the locale by file name (default: the newest); never a path."""
    names = _model_names(project)
    if not names["models"]:
        raise Refused(404, f"no {project.locale} model: train one first")
    name = name or names["models"][0]
    if name not in names["models"]:
        raise Refused(400, f"no model {name!r} for {project.locale}")
    return project.models_dir / name


async def compare(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "model"?}``: the candidate (default: the newest model) and the live
    model on the held-out set and on the labelled utterances, side by side with deltas.
    Both models load on their own threads; the calls' event loop keeps running."""
    body = await json_body(request, "locale")
    project = locale_project(request, body["locale"])
    candidate = await blocking(_candidate, project, body.get("model"))
    try:
        live = await blocking(project.live_model)
        from ivr.trainer.evaluation import compare_models

        results = await compare_models(project, live, candidate)
    except IvrError as e:
        return error_answer(400, e.message, e.remedy)
    return json_answer({"locale": project.locale, "live": live.name, "candidate": candidate.name,
                        "sets": {name: r["comparison"] for name, r in results.items()}})


async def promote_model(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "model"?, "force"?}``: gate the candidate on the held-out set (409
    when it is worse, unless ``force``), point the locale at it, and swap it into this
    server: new calls get it, calls in progress finish on the old model."""
    from ivr.trainer.promotion import PromotionRefused, promote

    body = await json_body(request, "locale")
    project = locale_project(request, body["locale"])
    candidate = await blocking(_candidate, project, body.get("model"))
    user = session(request).user
    try:
        promotion = await promote(project, candidate, force=body.get("force") is True, by=user)
    except PromotionRefused as e:
        return json_answer({"error": e.message, "remedy": e.remedy and e.remedy.code,
                            "refused": True}, 409)
    except IvrError as e:
        return error_answer(400, e.message, e.remedy)
    await blocking(context(request).accounts.audit, user, "promote", None)
    live_models = context(request).live_models
    swap = None
    if live_models and project.locale in live_models.services.engines:
        try:
            swap = await live_models.reload(project.locale)
        except IvrError as e:  # the old model keeps serving; the pointer is written
            swap = {"error": str(e)}
    return json_answer({"promotion": promotion.__dict__, "swap": swap})
