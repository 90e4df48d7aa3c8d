"""Shared fixtures: the real trained zh and ko models, each loaded once per test session."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.dialogue.bank import DemoBank
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.lockout import MemoryLockout
from ivr.dialogue.simulate import parse_script, run_script
from ivr.project import Project
from ivr.trainer.training import train

# Calls the tests make are logged here, never in the project's var/ (a test that needs its
# own log sets these itself).
_CALL_LOG_DIR = Path(tempfile.mkdtemp(prefix="ivr-test-calllog-"))
os.environ["IVR_CALL_LOG"] = f"sqlite:///{_CALL_LOG_DIR / 'calls.sqlite3'}"
os.environ["IVR_RECORDINGS"] = str(_CALL_LOG_DIR / "recordings")
# The commands the tests run inherit this process's environment, where importing jax (as
# something in the suite does) sets TF_CPP_MIN_LOG_LEVEL=1, and TensorFlow then warns on
# stderr that TensorRT is missing: the tests' children get the level a user's shell gives.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

KNOWN = "+8613800000001"   # SPEC demo customer: PIN 123456, debit 1234, credit 5678
VIP = "+8613900000009"     # SPEC demo customer: PIN 888888, private banking
UNKNOWN = "+8613700000000"


@pytest.fixture(scope="session")
def project() -> Project:
    return Project.discover()


@pytest.fixture(scope="session")
def model(project: Project) -> Path:
    """The model of the current data: trained here if `ivr train` has not been run."""
    return train(project).model


@pytest.fixture(scope="session")
def ko_project(project: Project) -> Project:
    return Project(project.root, "ko")


@pytest.fixture(scope="session")
def ko_model(ko_project: Project) -> Path:
    """The Korean model of the current data (trained here if needed, about a minute)."""
    return train(ko_project).model


class RecordingBank(DemoBank):
    """The demo bank, noting which thread each call to it came from."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    async def customer_by_phone(self, phone: str):
        self.threads.append(threading.current_thread().name)
        return await super().customer_by_phone(phone)

    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        self.threads.append(threading.current_thread().name)
        return await super().verify_pin(customer_id, pin)


@pytest.fixture(scope="session")
def bank() -> RecordingBank:
    return RecordingBank()


@pytest.fixture(scope="session")
def lockout() -> MemoryLockout:
    """The session engines' failed verifications (in memory), forgotten before each test:
    one test's wrong PINs must not lock the demo customers for the next."""
    return MemoryLockout()


@pytest.fixture(scope="session")
async def engine(project: Project, model: Path, bank: DemoBank,
                 lockout: MemoryLockout) -> DialogueEngine:
    engine = await DialogueEngine.load(model, bank, KnowledgeBase.load(project.knowledge),
                                       lockout=lockout)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
async def ko_engine(ko_project: Project, ko_model: Path, bank: DemoBank,
                    lockout: MemoryLockout) -> DialogueEngine:
    engine = await DialogueEngine.load(ko_model, bank, KnowledgeBase.load(ko_project.knowledge),
                                       lockout=lockout)
    yield engine
    engine.close()


@pytest.fixture(autouse=True)
def fresh_bank(bank: DemoBank, lockout: MemoryLockout) -> None:
    bank.reset()  # a card frozen or activated by one test stays untouched for the next
    lockout.clear()


@pytest.fixture
def call(engine: DialogueEngine):
    """Run one scripted call: ``await call([{"say": ...}, {"dtmf": ...}], caller=...)``."""

    async def _run(turns: list[dict[str, Any]], caller: str = KNOWN, acd=None) -> dict[str, Any]:
        script = parse_script({"caller": caller, "turns": turns}, Path("<test>"))
        return (await run_script(script, engine, acd)).as_dict()

    return _run


@pytest.fixture
def ko_call(ko_engine: DialogueEngine):
    """``call`` for a Korean call (script ``locale: ko``) on the Korean model."""

    async def _run(turns: list[dict[str, Any]], caller: str = KNOWN, acd=None) -> dict[str, Any]:
        script = parse_script({"caller": caller, "locale": "ko", "turns": turns},
                              Path("<test>"))
        return (await run_script(script, ko_engine, acd)).as_dict()

    return _run


VAGUE = "我想查账单"


class HeardAsTwoTopics:
    """The real engine, except that one wording is understood as two close topics. How sure
    a trained model is of a given wording moves with its data (with the training data of
    2026-12-03 我想查账单 is credit_card_bill 0.92); the dialogue's "A 还是 B？" must not."""

    def __init__(self, engine: Any, text: str) -> None:
        self._engine, self._text = engine, text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def parse(self, text: str) -> dict[str, Any]:
        parse = await self._engine.parse(text)
        if text != self._text:
            return parse
        ranking = [{"name": "credit_card_bill", "confidence": 0.55},
                   {"name": "recent_transactions", "confidence": 0.40}]
        return {**parse, "intent": ranking[0], "intent_ranking": ranking}


@pytest.fixture
def vague_call(engine: DialogueEngine):
    """``call``, where 我想查账单 could be a credit-card bill or recent transactions."""

    async def _run(turns: list[dict[str, Any]]) -> dict[str, Any]:
        script = parse_script({"caller": KNOWN, "turns": turns}, Path("<test>"))
        return (await run_script(script, HeardAsTwoTopics(engine, VAGUE))).as_dict()

    return _run


def copy_project(root: Path, target: Path) -> Project:
    """A copy of a project's data and configuration (no models) to edit in a test."""
    for part in ("domain.yml", "config", "dialogue", "nlu_data", "knowledge"):
        src = root / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, target / part)
    return Project(target)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompts(result: dict[str, Any]) -> str:
    """Everything the bot said in a call, as one string."""
    said = list(result["greeting"])
    for turn in result["turns"]:
        said += turn.get("prompts", [])
    return "\n".join(said)


# --- the call log on each of its stores ------------------------------------------------
POSTGRES = os.environ.get("IVR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_database() -> Any:
    """A fresh database on the machine's PostgreSQL server for this test session. Skipped
    when no server answers, except in CI (.ci/run), where that is a failure."""
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as db:
            db.execute(sa.text("select 1"))
    except sa.exc.OperationalError as e:
        reason = f"no PostgreSQL server at {POSTGRES} ({str(e).splitlines()[0]})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason + "; set IVR_TEST_POSTGRES to run these tests")
    name = f"ivr_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as db:
        db.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as db:
        db.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


REDIS = os.environ.get("IVR_TEST_REDIS", "redis://127.0.0.1:6379/9")


def _this_workers(url: str) -> str:
    """Under ``pytest -n`` each worker empties a Redis database of its own (gw0 the one
    named, gw1 the next, ...): one worker's flush must not empty another's test."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    base, _, db = url.rpartition("/")
    return f"{base}/{int(db) + worker}" if worker and db.isdigit() else url


@pytest.fixture
def redis_url() -> Any:
    """An emptied database of the machine's Redis server. Skipped when none answers, except
    in CI (.ci/run), where that is a failure."""
    import redis

    url = _this_workers(REDIS)
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        reason = f"no Redis server at {url} ({e})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason + "; set IVR_TEST_REDIS to run these tests")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_log(postgres_database: str) -> Any:
    """The session's PostgreSQL database for one test's call log, emptied after it (the
    next test must not see its calls)."""
    yield postgres_database
    import sqlalchemy as sa

    from ivr.calllog.schema import metadata

    engine = sa.create_engine(postgres_database)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A call log URL: an SQLite file, then a PostgreSQL database (emptied after each
    test), so every test using it runs on both stores."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'calls.sqlite3'}"
        return
    yield request.getfixturevalue("postgres_log")


@pytest.fixture(scope="session")
def altered_ko_model(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deliberately different Korean model: complaints taught as fraud reports, so calls
    that went to `complaints` would now go to `fraud` (about a minute to train)."""
    root = tmp_path_factory.mktemp("altered")
    copy_project(project.root, root)
    data = root / "nlu_data" / "ko" / "banking.yml"
    text = data.read_text(encoding="utf-8")
    assert "- intent: complaint\n" in text
    data.write_text(text.replace("- intent: complaint\n", "- intent: fraud_report\n"),
                    encoding="utf-8")
    return train(Project(root, "ko")).model


@pytest.fixture
def store(store_url: str) -> Any:
    """A call log on each store (see ``store_url``)."""
    from ivr.calllog.store import CallStore

    store = CallStore(store_url)
    yield store
    store.close()


@pytest.fixture
def recorder(store: Any, tmp_path: Path) -> Any:
    """The call log's writer into ``store``, recordings in a temp folder."""
    from ivr.calllog.recorder import CallRecorder

    recorder = CallRecorder(store, "engine-a", tmp_path / "recordings")
    yield recorder
    recorder.close()


def fill(disk: Path) -> Path:
    """Fill a file system to its last byte; the filler file, to delete to free it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        for block in (1 << 20, 4096, 1):
            try:
                while f.write(bytes(block)):
                    pass
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of its own, 16 MiB (tmpfs), to fill up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        reason = f"cannot mount a tmpfs to fill up ({mounted.stderr.strip()}): needs root"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


# --- the fault campaign (docs/faults.md): tests marked @pytest.mark.fault("what breaks") are
# listed at the end of the run, fault by fault, with their outcome.
def pytest_itemcollected(item: pytest.Item) -> None:
    for marker in item.iter_markers("fault"):
        item.user_properties.append(("fault", marker.args[0]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    outcomes: dict[str, dict[str, str]] = {}  # fault -> test -> outcome
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            for name, fault in report.user_properties:
                # the call's outcome, unless setup or teardown failed or skipped it
                if name == "fault" and (report.when == "call" or report.outcome != "passed"):
                    outcomes.setdefault(fault, {})[report.nodeid] = report.outcome
    if not outcomes:
        return
    tests = [outcome for by_test in outcomes.values() for outcome in by_test.values()]
    summary = ", ".join(f"{tests.count(o)} {o}" for o in ("passed", "failed", "skipped")
                        if o in tests)
    faults = f"{len(outcomes)} fault{'s' if len(outcomes) > 1 else ''}"
    terminalreporter.section(f"fault campaign: {faults} injected, {summary}")
    for fault, by_test in sorted(outcomes.items()):
        terminalreporter.write_line(fault)
        for nodeid, outcome in sorted(by_test.items()):
            terminalreporter.write_line(f"    {outcome:8} {nodeid}")


def scripted_zh_services(engine: DialogueEngine, project: Project, scripts: deque,
                         **settings: Any) -> Any:
    """Voice services for Mandarin calls whose recogniser hears the next script of
    ``scripts`` (a list of utterances per call), the prompts spoken by espeak-ng;
    ``settings``: the VoiceSettings the test needs (timers, playback grace)."""
    from ivr.voice.asr import ScriptedRecognizer
    from ivr.voice.session import VoiceServices, VoiceSettings
    from ivr.voice.tts import EspeakTts, PromptAudio
    from ivr.voice.voice_locale import load_voice_locales

    locales = load_voice_locales(project.root / "locales")
    return VoiceServices(
        engines={"zh": engine}, locales={"zh": locales["zh"]},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda locale: ScriptedRecognizer(
            scripts.popleft() if scripts else [], end_of_speech_ms=300),
        default_locale="zh", settings=VoiceSettings(**settings))


@pytest.fixture
def no_blocking_on_the_loop() -> Iterator[Any]:
    """Fails a test whose engine code blocks the main event loop: a file read or write, a
    stat, a sleep, a socket call from ``ivr`` while the loop runs (blockbuster, as aiohttp's
    own tests use it). The dialogue thread runs its own loop and is there to block (Rasa),
    so only the main thread is checked; a log line written to stderr is allowed."""
    from blockbuster import BlockBuster

    buster = BlockBuster(scanned_modules=["ivr"])
    for function in buster.functions.values():
        function.can_block_predicate = _off_the_main_thread_or(function.can_block_predicate)
    buster.functions["io.TextIOWrapper.write"].can_block_in("logging/__init__.py", {"emit"})
    buster.activate()
    try:
        yield buster
    finally:
        buster.deactivate()


def _off_the_main_thread_or(allowed: Any) -> Any:
    """Blocking is allowed off the main thread, or where blockbuster allows it anyway (a
    non-blocking socket, a read of /dev/urandom...)."""
    def can_block(*args: Any, **kwargs: Any) -> bool:
        return threading.current_thread() is not threading.main_thread() or bool(
            allowed(*args, **kwargs))
    return can_block
