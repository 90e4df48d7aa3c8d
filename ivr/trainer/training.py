"""`ivr train`: train a locale's Rasa model, only when its inputs changed; and
``Trainer``, which runs it in a child process with progress for the console."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ivr.errors import DataFileError, IvrError, shown
from ivr.nlu.normalizer import Normalizer
from ivr.project import Project
from ivr.yamlfile import read_mapping


@dataclass(frozen=True)
class TrainResult:
    model: Path
    trained: bool  # False when an up-to-date model already existed
    made_live: bool = False  # the locale's first model: live without a gate


def up_to_date(project: Project) -> bool:
    """A model of the locale's current inputs exists."""
    return project.model_for(project.fingerprint()).is_file()


# Fine-tuning continues the live model's DIET weights for this share of the configured
# epochs (Rasa's `--finetune`); bench/bench_label_to_live.py measures what it saves.
FINETUNE_EPOCH_FRACTION = 0.2


def train(project: Project, force: bool = False, finetune: bool = False) -> TrainResult:
    """Train the locale's model of its current inputs (``finetune``: starting from the live
    model, for a fifth of the epochs; the data may gain examples, not intents or slots)."""
    from ivr.trainer.promotion import adopt_first_model  # (it loads the evaluation: only here)

    fingerprint = project.fingerprint()
    target = project.model_for(fingerprint)
    if target.is_file() and not force:
        # (an install from before the pointer existed has models but no pointer)
        return TrainResult(target, False, adopt_first_model(project, target) is not None)
    check_inputs(project)
    base = project.live_model() if finetune else None

    from ivr.dialogue.engine import quiet_ml_logging

    quiet_ml_logging()
    from rasa.model_training import train as rasa_train

    project.models_dir.mkdir(parents=True, exist_ok=True)
    with _only_training(project), _training_environment(project):
        try:
            result = rasa_train(
                domain=str(project.domain),
                config=str(project.config),
                training_files=[str(project.rules), *map(str, project.nlu_files())],
                output=str(project.models_dir),
                fixed_model_name=target.name.removesuffix(".tar.gz"),
                force_training=force or finetune,
                model_to_finetune=str(base) if base else None,
                finetuning_epoch_fraction=FINETUNE_EPOCH_FRACTION,
            )
        except Exception as e:  # Rasa refuses to fine-tune across domain or config changes
            if not base:
                raise
            raise IvrError(f"cannot fine-tune {base.name} ({type(e).__name__}: {e}); "
                           "train without --finetune") from None
    if result.code != 0 or not target.is_file():
        raise IvrError(f"training failed (rasa exit code {result.code})")
    return TrainResult(target, True, adopt_first_model(project, target) is not None)


@contextlib.contextmanager
def _only_training(project: Project) -> Iterator[None]:
    """One training per project at a time, across processes (the console and `ivr train`):
    two would double the memory and race to write the same model file."""
    with (project.models_dir / ".training.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IvrError("another training of this project is running") from None
        yield


def check_inputs(project: Project) -> None:
    """Fail with one clear line on a broken data file, before Rasa's long start-up."""
    for path in [project.domain, project.config, project.rules, *project.nlu_files()]:
        read_mapping(path)
    for component in _normalizers(read_mapping(project.config)):  # none in some locales
        try:
            paths = [project.root / component[key] for key in ("dialects", "lexicon")]
        except (KeyError, TypeError):
            raise DataFileError(
                f"{project.config}: DialectNormalizer needs 'dialects' and 'lexicon' files"
            ) from None
        Normalizer.from_files(*paths)


def _normalizers(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The DialectNormalizer components of a pipeline (zh has one, ko none)."""
    return [c for c in config.get("pipeline") or []
            if isinstance(c, dict) and str(c.get("name", "")).endswith("DialectNormalizer")]


@contextlib.contextmanager
def _training_environment(project: Project) -> Iterator[None]:
    """The config is passed to Rasa as the project has it, so that fine-tuning (which
    refuses any config change) works after a dialect synonym is added, and in a copy of
    the project. Hence: the normaliser finds its data files (relative paths in the config)
    under $IVR_HOME, and Rasa's training cache is off: it keys a component's output on its
    config, and the normaliser's config does not change when its data files do."""
    saved = {key: os.environ.get(key) for key in ("IVR_HOME", "RASA_MAX_CACHE_SIZE")}
    os.environ.update(IVR_HOME=str(project.root), RASA_MAX_CACHE_SIZE="0")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


State = Literal["queued", "running", "done", "failed"]
_EPOCH = re.compile(r"Epochs:\s+\d+%.*?\|\s*(\d+)/(\d+)")


@dataclass
class TrainingStatus:
    """What the console shows of a training run."""

    locale: str
    finetune: bool
    state: State = "queued"
    phase: str = "waiting"  # starting, training, saving, then the result in words
    epoch: int = 0
    epochs: int = 0
    model: str | None = None  # the model file, once done
    trained: bool = False  # False: the data had not changed, the model already existed
    error: str | None = None
    started_at: float | None = None
    duration_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Trainer:
    """Runs ``ivr train`` for one locale at a time in a child process (the server's event
    loop and its memory stay clear of TensorFlow training) and follows its progress."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.status: TrainingStatus | None = None  # the latest run
        self._task: asyncio.Task[None] | None = None
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, locale: str, finetune: bool = False) -> TrainingStatus:
        """Start training; refused while a run is in progress. Poll ``status``."""
        if self.busy:
            raise IvrError("a training run is in progress: wait for it to finish")
        self.status = TrainingStatus(locale, finetune)
        self._task = asyncio.create_task(self._run(self.status))
        return self.status

    async def close(self) -> None:
        """Stop a run in progress (the server is shutting down: no child outlives it; the
        model file is only written at the end, so nothing half-made is left)."""
        if self._child and self._child.poll() is None:
            self._child.terminate()
        if self._task:
            with contextlib.suppress(Exception):
                await self._task

    async def wait(self) -> TrainingStatus:
        if self._task:
            await asyncio.shield(self._task)
        assert self.status is not None
        return self.status

    async def _run(self, status: TrainingStatus) -> None:
        # A thread waits on the child: asyncio's own subprocesses break once Rasa has
        # swapped the event loop policy (Sanic installs uvloop's, which has no child
        # watcher).
        await asyncio.to_thread(self._train_in_child, status)

    def _train_in_child(self, status: TrainingStatus) -> None:
        command = [sys.executable, "-m", "ivr.cli", "--project", str(self.root),
                   "--locale", status.locale, "train", *(["--finetune"] if status.finetune
                                                         else [])]
        status.state, status.phase, status.started_at = "running", "starting", time.time()
        env = {**os.environ, "LOG_LEVEL": "INFO"}  # Rasa shows its epoch bar only then
        try:
            with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env) as child:
                self._child = child
                assert child.stdout and child.stderr
                stderr = _follow(child.stderr, status)
                stdout = child.stdout.read().decode()
        except OSError as e:  # the child could not even start
            status.state, status.error = "failed", f"{type(e).__name__}: {e.strerror or e}" + (
                f" ({shown(e.filename)})" if e.filename else "")  # no absolute path shown
        else:
            done = re.search(r"model (trained|up to date)[^:]*: (\S+)", stdout)
            if child.returncode == 0 and done:
                status.state, status.phase = "done", done.group(0)
                status.model, status.trained = done.group(2), done.group(1) == "trained"
            else:
                errors = [line for line in stderr.splitlines() if line.startswith("error:")]
                status.state = "failed"
                status.error = errors[-1].removeprefix("error:").strip() if errors else (
                    f"ivr train exited with {child.returncode}")
        self._child = None
        status.duration_s = round(time.time() - status.started_at, 1)


def _follow(stream: IO[bytes], status: TrainingStatus) -> str:
    """Read the child's stderr, noting Rasa's epoch progress bar as it redraws; returns
    the text (its ``error:`` line says why a run failed)."""
    seen: list[str] = []
    while chunk := stream.read1(4096):  # type: ignore[attr-defined]
        text = chunk.decode(errors="replace")
        seen.append(text)
        for epoch, epochs in _EPOCH.findall(text):
            status.epoch, status.epochs = int(epoch), int(epochs)
            status.phase = "training" if status.epoch < status.epochs else "saving"
    return "".join(seen)
