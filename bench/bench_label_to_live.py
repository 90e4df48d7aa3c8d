"""Benchmark: from "label saved" to "new model live" on the Korean model.

In a copy of the project (the real models/ and nlu_data/ are never touched) with a running
``ivr serve``, each round appends one trainer's label to ``nlu_data/ko/labelled.yml``, then
times each phase of the trainers' loop: training (a child ``ivr train``, as the console's
button runs it), the held-out gate and promotion (``ivr promote``'s code: both models loaded
and scored on the 105 held-out utterances, pointer and log written), and the hot swap (the
running server told to reload, until its ``/health`` names the new model).

Two rounds: fine-tuned (Rasa 3.6's ``--finetune``: DIET continues from the live model's
weights for a fifth of its epochs; usable here because a label adds examples, not intents,
slots or config changes), then full training from scratch.

Run: .venv/bin/python bench/bench_label_to_live.py   (about 4 minutes on 2 cores)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from conftest import copy_project  # noqa: E402

from ivr.cli import quiet_cli_warnings  # noqa: E402
from ivr.project import Project  # noqa: E402
from ivr.trainer.promotion import PromotionRefused, promote, tell_server, write_live_pointer  # noqa: E402
from ivr.trainer.training import Trainer  # noqa: E402

LABELS = [("complaint", "직원 응대가 불친절해서 정식으로 항의하려고요"),
          ("exchange_rate", "오늘 달러 환율 좀 알려 주실래요")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_label(project: Project, intent: str, text: str) -> None:
    """What the console's label button does: one example, with who/when/where metadata."""
    new = not project.labelled.is_file()
    with project.labelled.open("a", encoding="utf-8") as f:
        if new:
            f.write('version: "3.1"\nnlu:\n')
        f.write(f"- intent: {intent}\n  examples:\n  - text: {text}\n    metadata: "
                f"{{labelled_by: bench, labelled_at: '{time.strftime('%Y-%m-%dT%H:%M:%SZ')}',"
                " call: bench, turn: 1}\n")


async def live_model(http: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with http.get(f"{url}/health") as resp:
            return (await resp.json())["locales"]["ko"]["dialogue_model"]
    except aiohttp.ClientError:
        return None


async def one_round(project: Project, url: str, http: aiohttp.ClientSession,
                    finetune: bool, label: tuple[str, str]) -> dict[str, float]:
    saved = time.monotonic()
    save_label(project, *label)
    trainer = Trainer(project.root)
    trainer.start(project.locale, finetune)
    status = await trainer.wait()
    if status.state != "done":
        raise SystemExit(f"training failed: {status.error}")
    trained = time.monotonic()
    model, note = Path(status.model or ""), ""
    try:
        done = await promote(project, model, by="bench")
    except PromotionRefused as e:
        note = (f"\n    gate refused: {e}\n    (forced, to time the swap; the re-scoring is "
                "not counted)")
    gated = time.monotonic()
    if note:
        done = await promote(project, model, force=True, by="bench")
    swap_from = time.monotonic()
    await tell_server(url, project.locale, None)
    while await live_model(http, url) != done.model:
        await asyncio.sleep(0.1)
    phases = {"train": trained - saved, "gate": gated - trained,
              "swap": time.monotonic() - swap_from}
    figures = done.heldout or {}
    print(f"  {'fine-tuned' if finetune else 'full'} ({status.epochs} epochs): train "
          f"{phases['train']:.1f} s, gate + promote {phases['gate']:.1f} s, swap "
          f"{phases['swap']:.1f} s => label to live {sum(phases.values()):.1f} s; held-out "
          f"{figures.get('live', 0):.3f} -> {figures.get('candidate', 0):.3f}{note}",
          flush=True)
    return phases


async def main() -> None:
    quiet_cli_warnings()
    real = Project(ROOT, "ko")
    with tempfile.TemporaryDirectory(prefix="ivr-bench-loop-") as tmp:
        project = copy_project(ROOT, Path(tmp)).with_locale("ko")
        shutil.copytree(ROOT / "locales", project.root / "locales")  # the server's too
        project.models_dir.mkdir()
        for locale in ("ko", "zh"):  # the server loads every locale
            model = real.with_locale(locale).live_model()
            shutil.copy2(model, project.models_dir)
            write_live_pointer(project.with_locale(locale), model.name)
        port = free_port()
        env = {**os.environ, "IVR_CALL_LOG": f"sqlite:///{tmp}/calls.sqlite3",
               "IVR_RECORDINGS": ""}
        env.pop("IVR_WS_TOKEN", None)  # loopback needs none
        server = subprocess.Popen(
            [sys.executable, "-m", "ivr.cli", "--project", tmp, "serve", "--port", str(port),
             "--audiosocket-port", "-1"], env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                started = time.monotonic()
                while await live_model(http, url) is None:
                    if server.poll() is not None:
                        raise SystemExit("ivr serve did not start")
                    await asyncio.sleep(0.5)
                print(f"ivr serve up in {time.monotonic() - started:.0f} s (zh and ko "
                      f"models); live ko model {await live_model(http, url)}", flush=True)
                print("label saved -> new model live (Korean, 2 phases before the swap):")
                for finetune, label in ((True, LABELS[0]), (False, LABELS[1])):
                    await one_round(project, url, http, finetune, label)
        finally:
            server.terminate()
            server.wait(30)
    print("Rasa 3.6 fine-tuning (`--finetune`) works for this pipeline when a label only "
          "adds examples; a new intent, slot or config change needs full training.")


if __name__ == "__main__":
    asyncio.run(main())
