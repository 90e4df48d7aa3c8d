"""The trainers' loop on real models: the live pointer, a candidate scored against the live
model, the held-out gate, promotion into a running server mid-call, training with
progress. Everything runs in a copy of the project (never the real models/)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import KNOWN, copy_project
from phones import PlainPhone, serving, speak

from ivr.calllog.recorder import CallLogSettings
from ivr.cli import main
from ivr.errors import ModelNotFoundError
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG, GATEWAY, LIVE_MODELS
from ivr.trainer.promotion import PromotionRefused, promote, tell_server, write_live_pointer
from ivr.trainer.training import Trainer, train
from ivr.voice.asr import ScriptedRecognizer, SpeechModel, VoskRecognizer
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

TOKEN = "promotion-test-token"
LABELLED = """version: "3.1"
nlu:
- intent: complaint
  examples:
  - text: 직원이 너무 불친절해서 항의하고 싶어요
    metadata: {labelled_by: kim, labelled_at: "2026-11-25T10:00:00Z", call: c1, turn: 1}
"""


@pytest.fixture
def ko_copy(project: Project, ko_model: Path, altered_ko_model: Path,
            tmp_path: Path) -> Project:
    """A project copy whose models/ holds the Korean model and, newer, the altered one."""
    copy = copy_project(project.root, tmp_path).with_locale("ko")
    copy.models_dir.mkdir()
    for age, model in ((60, ko_model), (0, altered_ko_model)):
        when = time.time() - age
        os.utime(shutil.copy(model, copy.models_dir), (when, when))
    return copy


def test_the_live_model_is_the_pointers_never_merely_the_newest(
        ko_copy: Project, ko_model: Path, altered_ko_model: Path) -> None:
    # No pointer and nothing promoted: nothing is live, the newest included.
    with pytest.raises(ModelNotFoundError, match="no live ko model"):
        ko_copy.live_model()
    write_live_pointer(ko_copy, ko_model.name)
    assert ko_copy.live_model().name == ko_model.name
    assert ko_copy.latest_model().name == altered_ko_model.name  # the candidate
    assert ko_copy.with_locale("zh").live_pointer == ko_copy.live_pointer
    write_live_pointer(ko_copy.with_locale("zh"), "zh-gone.tar.gz")  # keeps ko's entry
    assert ko_copy.live_model().name == ko_model.name
    with pytest.raises(ModelNotFoundError, match=r"names zh-gone\.tar\.gz for zh, which is not"):
        ko_copy.with_locale("zh").live_model()


async def test_a_fresh_install_gates_every_model_after_its_first(
        project: Project, ko_model: Path, altered_ko_model: Path, tmp_path: Path) -> None:
    """Setup's `ivr train` makes a locale's first model live; a model trained later (the
    console's Train) is a candidate until the gate passes it, and the live one stays."""
    fresh = copy_project(project.root, tmp_path).with_locale("ko")
    fresh.models_dir.mkdir()
    shutil.copy(ko_model, fresh.models_dir)  # what setup's training left: same data
    assert not fresh.live_pointer.exists()
    result = train(fresh)
    assert not result.trained and result.made_live
    assert fresh.live_model().name == ko_model.name
    first = json.loads(fresh.promotions_log.read_text(encoding="utf-8"))
    assert (first["model"], first["previous"], first["heldout"]) == (ko_model.name, None, None)

    later = time.time() + 5
    os.utime(shutil.copy(altered_ko_model, fresh.models_dir), (later, later))  # trained after
    assert fresh.latest_model().name == altered_ko_model.name
    assert fresh.live_model().name == ko_model.name  # still: the newer one is a candidate
    assert not train(fresh).made_live  # the locale has a live model: nothing adopted

    with pytest.raises(PromotionRefused, match=f"worse than the live {ko_model.name}"):
        await promote(fresh, by="console")  # compared on the held-out set, and refused
    assert fresh.live_model().name == ko_model.name

    # Without the pointer, the last promoted model that exists is live, not the newest.
    fresh.live_pointer.unlink()
    assert fresh.live_model().name == ko_model.name


def ivr(project: Project, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str,
                                                                                    str]:
    code = main(["--project", str(project.root), "--locale", "ko", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_a_candidate_then_the_gate_refuses_it_unless_forced(
        ko_copy: Project, ko_model: Path, altered_ko_model: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_live_pointer(ko_copy, ko_model.name)
    ko_copy.labelled.write_text(LABELLED, encoding="utf-8")

    code, out, err = ivr(ko_copy, capsys, "evaluate", "--candidate", "--out",
                         str(tmp_path / "reports"))
    assert code == 0, err
    assert f"live: {ko_model.name}   candidate: {altered_ko_model.name}" in out
    assert "heldout (205 utterances)" in out and "labelled (1 utterances)" in out
    report = json.loads((tmp_path / "reports" / "comparison.json").read_text())
    heldout = report["heldout"]["comparison"]
    # complaints were taught as fraud reports: the complaint examples now fail
    assert heldout["per_intent"]["complaint"]["delta"] < 0
    assert heldout["accuracy"]["delta"] < 0
    assert report["labelled"]["comparison"]["accuracy"]["candidate"] == 0.0  # no complaints

    code, out, err = ivr(ko_copy, capsys, "promote", "--by", "kim")
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: {altered_ko_model.name} is worse than the live "
                          f"{ko_model.name} on the held-out set: accuracy ")
    assert "more of 205 wrong); --force promotes it anyway" in err
    assert ko_copy.live_model().name == ko_model.name
    assert not (ko_copy.models_dir / "promotions.log").exists()

    code, out, err = ivr(ko_copy, capsys, "promote", "--force", "--by", "kim")
    assert code == 0, err
    assert out.startswith(f"promoted {altered_ko_model.name} (was {ko_model.name})")
    assert ko_copy.live_model().name == altered_ko_model.name
    (entry,) = [json.loads(line) for line in
                (ko_copy.models_dir / "promotions.log").read_text().splitlines()]
    assert (entry["model"], entry["previous"], entry["forced"], entry["by"]) == (
        altered_ko_model.name, ko_model.name, True, "kim")
    assert entry["heldout"]["delta"] == heldout["accuracy"]["delta"]


@pytest.fixture(scope="module")
def korean_speech(project: Project) -> SpeechModel:
    locales = load_voice_locales(project.root / "locales")
    return SpeechModel.load("ko", locales["ko"].asr_model or "", end_of_speech_ms=500)


async def _complaint(phone: PlainPhone) -> None:
    await phone.say(speak("민원"))
    await phone.wait_closed(30)


async def test_promotion_swaps_the_model_of_a_running_server_without_dropping_a_call(
        project: Project, ko_copy: Project, ko_engine: Any, ko_model: Path,
        altered_ko_model: Path, korean_speech: SpeechModel, tmp_path: Path) -> None:
    write_live_pointer(ko_copy, ko_model.name)
    services = VoiceServices(
        engines={"ko": ko_engine}, locales=load_voice_locales(project.root / "locales"),
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda loc: VoskRecognizer(korean_speech) if loc == "ko"
        else ScriptedRecognizer([]),
        default_locale="ko", settings=VoiceSettings(no_input_ms=120_000, playback_grace_s=0.5))
    log = CallLogSettings(url=f"sqlite:///{tmp_path / 'calls.sqlite3'}", recordings=None,
                          instance="promotion-test")
    app = build_app(ServerSettings(audiosocket_port=-1, ws_token=TOKEN, call_log=log,
                                   pointer_poll_s=0.2), services, project_root=ko_copy.root)
    async with serving(app) as url, aiohttp.ClientSession() as http:
        ws = url.replace("http", "ws") + "/ws"

        async def health() -> str:
            async with http.get(f"{url}/health") as resp:
                return (await resp.json())["locales"]["ko"]["dialogue_model"]

        before = await PlainPhone().connect(ws, TOKEN, caller=KNOWN, locale="ko",
                                            call_id=uuid.uuid4().hex)
        await before.wait_prompts(2)  # notice and greeting: the call is in progress

        # Promote mid-call; the loop keeps answering while the new model loads.
        write_live_pointer(ko_copy, altered_ko_model.name)
        reload = asyncio.create_task(tell_server(url, "ko", TOKEN))
        slowest, reload_started = 0.0, time.monotonic()
        while not reload.done():
            started = time.monotonic()
            assert await health() in (ko_model.name, altered_ko_model.name)
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.05)
        assert (await reload)["reloaded"] == [{"locale": "ko", "model": altered_ko_model.name,
                                               "previous": ko_model.name, "swapped": True}]
        # A loop blocked by the load answers nothing until it is done: its slowest answer
        # would take most of the reload. Relative to the reload, so a slow machine passes.
        reload_s = time.monotonic() - reload_started
        assert slowest < max(1.0, reload_s / 3), (slowest, reload_s)
        assert await health() == altered_ko_model.name
        live_models = app[LIVE_MODELS]
        assert [e.model_path.name for e in live_models.retiring] == [ko_model.name]

        # The call in progress finishes on the model it started with ...
        await _complaint(before)
        # ... and a new call is understood by the promoted one.
        after = await PlainPhone().connect(ws, TOKEN, caller=KNOWN, locale="ko",
                                           call_id=uuid.uuid4().hex)
        await after.wait_prompts(2)
        await _complaint(after)
        assert [r.queue for r in app[GATEWAY].results] == ["complaints", "fraud"]
        assert live_models.retiring == []  # the old engine is let go after its last call
        recorder = app[CALL_LOG]
        assert recorder.flush()
        models = [recorder.store.find_call(r.call_id)["model"]
                  for r in app[GATEWAY].results]
        assert models == [ko_model.name, altered_ko_model.name]

        # Promoting without --server: the server notices the pointer on its own.
        write_live_pointer(ko_copy, ko_model.name)
        for _ in range(600):
            if await health() == ko_model.name:
                break
            await asyncio.sleep(0.1)
        assert await health() == ko_model.name

        async with http.post(f"{url}/admin/models/reload", json={"locale": "ko"}) as resp:
            assert resp.status == 401  # the admin endpoint wants the token


async def test_training_runs_in_a_child_process_with_progress_and_one_at_a_time(
        ko_copy: Project, ko_model: Path) -> None:
    write_live_pointer(ko_copy, ko_model.name)  # what fine-tuning starts from
    ko_copy.labelled.write_text(LABELLED, encoding="utf-8")  # "label saved"
    trainer = Trainer(ko_copy.root)
    status = trainer.start("ko", finetune=True)
    with pytest.raises(Exception, match="in progress"):
        trainer.start("ko")
    seen: set[str] = set()
    while trainer.busy:
        seen.add(status.phase)
        await asyncio.sleep(0.1)
    done = await trainer.wait()
    assert done.state == "done", done
    assert done.trained and Path(done.model or "").name == ko_copy.model_for(
        ko_copy.fingerprint()).name
    assert (done.epoch, done.epochs) == (20, 20) and "training" in seen  # a fifth of 100
    assert done.duration_s and done.as_dict()["state"] == "done"

    # Closing the trainer (the server shutting down) stops a run in progress: no child
    # outlives it and no model is written.
    ko_copy.labelled.write_text(LABELLED + "  - text: 상담원 태도가 불친절해서 항의합니다\n",
                                encoding="utf-8")
    status = trainer.start("ko")
    while trainer._child is None:
        await asyncio.sleep(0.05)
    child = trainer._child
    await trainer.close()
    assert child.poll() is not None and status.state == "failed", status
    assert not ko_copy.model_for(ko_copy.fingerprint()).exists()
