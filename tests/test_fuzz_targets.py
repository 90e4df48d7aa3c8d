"""The atheris fuzz targets (fuzz/, docs/fuzzing.md): each seed corpus is real traffic the
target's checks accept, and a short coverage-guided run of each target finds no crash."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
DICTS = {"twilio": "json.dict", "websocket": "json.dict", "masking": "masking.dict"}
# What each seed gives through its target's check(): starts and events for the protocols,
# long digit runs for the masker. Pins the harnesses to real work, not just "no crash".
SEEDS = {
    "audiosocket": {"call.bin": 4, "pin.bin": 7, "asterisk_error.bin": 1, "slin16.bin": 0},
    "twilio": {"connected.json": 0, "start.json": 1, "media.json": 1, "dtmf.json": 1,
               "mark.json": 1, "stop.json": 1},
    "websocket": {"start.json": 1, "dtmf.json": 1, "mark.json": 1, "hangup.json": 1,
                  "audio.bin": 0},
    "masking": {"card_and_pin.txt": 2, "id_and_amounts.txt": 1, "mobile.txt": 1,
                "korean.txt": 1, "spoken_card.txt": 1},
}


@pytest.fixture(autouse=True)
def atheris_installed() -> None:
    if importlib.util.find_spec("atheris") is None:
        reason = ("atheris is not installed (pip install -e '.[dev]'; it ships Linux x86_64 "
                  "wheels only)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the fuzz targets")
        pytest.skip(reason)


def test_seed_corpora_are_real_traffic_the_targets_accept() -> None:
    # One fresh interpreter for all four: the targets instrument ivr as they import it.
    script = (
        "import json, runpy, sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])  # the targets' shared invariants\n"
        "out = {}\n"
        "for name in sys.argv[2:]:\n"
        "    check = runpy.run_path(f'{sys.argv[1]}/fuzz_{name}.py')['check']\n"
        "    corpus = Path(sys.argv[1], 'corpus', name)\n"
        "    out[name] = {p.name: check(p.read_bytes()) for p in sorted(corpus.iterdir())}\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(FUZZ), *SEEDS], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == SEEDS


def _rss_limit_mb() -> int:
    """libFuzzer's memory cap, 1 GB over this process's peak: on Linux a child's peak
    (getrusage) starts at its parent's, and the test process holds loaded models."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 1024


@pytest.mark.fault("malformed messages")
@pytest.mark.parametrize("name", list(SEEDS))
def test_short_fuzzing_run_finds_no_crash(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus" / name, corpus)  # libFuzzer adds to it: not the repo's
    args = [sys.executable, str(FUZZ / f"fuzz_{name}.py"), "-atheris_runs=100000",
            "-max_total_time=6", "-seed=1", f"-rss_limit_mb={_rss_limit_mb()}",
            f"-artifact_prefix={tmp_path}/", str(corpus)]
    if name in DICTS:
        args.insert(2, f"-dict={FUZZ / DICTS[name]}")
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert not list(tmp_path.glob("crash-*")), log[-4000:]
    done = re.search(r"Done (\d+) (?:runs )?in", log)
    assert done and int(done.group(1)) >= 1000, log[-2000:]  # it really fuzzed
    assert len(list(corpus.iterdir())) > len(SEEDS[name])  # and found new coverage
