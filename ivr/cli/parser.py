"""The ``ivr`` command's arguments: each command's options, and the function it runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ivr.cli.calls import cmd_calls, cmd_replay
from ivr.cli.common import DEFAULT_LOCALE, EXIT_ERROR
from ivr.cli.models import cmd_evaluate, cmd_models, cmd_promote, cmd_train
from ivr.cli.ops import cmd_users, cmd_verification
from ivr.cli.review import cmd_data, cmd_report, cmd_review
from ivr.cli.serving import cmd_chat, cmd_parse, cmd_serve, cmd_simulate

OUTCOMES = ("self_service", "escalated", "hangup", "busy")  # how a logged call can end


class _Parser(argparse.ArgumentParser):
    """Argument errors as every other error: one ``error: ...`` line, exit 1 (argparse's
    own: usage, then exit 2)."""

    def error(self, message: str) -> Any:
        print(f"error: {self.prog}: {message} (--help for usage)", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ivr")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    import ivr.cli

    parser = _Parser(prog="ivr", description=str(ivr.cli.__doc__).splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ivr {_version()}",
                        help="print the version and exit")
    parser.add_argument("--project", type=Path, help="project folder (default: found from cwd)")
    locale_help = (f"dialogue locale, e.g. zh or ko (default: {DEFAULT_LOCALE}; "
                   "`train` without it trains every locale)")
    parser.add_argument("--locale", help=locale_help)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], Awaitable[int]], help: str,
            model: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        # Also after the command (`ivr evaluate --locale ko`); SUPPRESS keeps the global one.
        p.add_argument("--locale", default=argparse.SUPPRESS, help=locale_help)
        if model:
            p.add_argument("--model", type=Path,
                           help="model file (default: the locale's live model, models/live.yml)")
        return p

    p = add("train", cmd_train, "train the model if its data changed", model=False)
    p.add_argument("--force", action="store_true", help="train even if up to date")
    p.add_argument("--finetune", action="store_true",
                   help="start from the live model (a fifth of the epochs; new examples, "
                        "not new intents)")

    p = add("parse", cmd_parse, "understand utterances (TEXT, or one per line on stdin)")
    p.add_argument("text", nargs="?", help="the utterance; omit to read stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")

    p = add("simulate", cmd_simulate, "run scripted calls through the real engine")
    p.add_argument("scripts", nargs="+", help="call scripts (YAML)")
    p.add_argument("--json", action="store_true", help="one JSON object per call")
    p.add_argument("--acd-url", default=os.environ.get("IVR_ACD_URL"),
                   help="ACD webhook for handoffs (default: $IVR_ACD_URL; none: not sent)")
    p.add_argument("--acd-timeout", type=float, default=3.0, help="seconds per attempt")

    p = add("chat", cmd_chat, "be the caller at the terminal")
    p.add_argument("--caller", default="+8613800000001", help="caller id (phone number)")
    p.add_argument("--json", action="store_true", help="print the call result as JSON at the end")

    p = add("serve", cmd_serve, "answer calls: Twilio, AudioSocket and plain WebSocket",
            model=False)
    p.add_argument("--host", default="127.0.0.1", help="HTTP/WebSocket interface")
    p.add_argument("--port", type=int, default=8080, help="HTTP/WebSocket port")
    p.add_argument("--audiosocket-host", default="127.0.0.1",
                   help="interface Asterisk AudioSocket connects to")
    p.add_argument("--audiosocket-port", type=int, default=9092,
                   help="AudioSocket TCP port (-1: none)")
    p.add_argument("--acd-url", help="ACD webhook for handoffs (default: $IVR_ACD_URL)")
    p.add_argument("--max-calls", type=int, help="calls taken at once, past it the busy "
                   "prompt; 0: no limit (default: $IVR_MAX_CALLS, else the measured "
                   "var/capacity.json)")
    p.add_argument("--drain-s", type=float, help="on SIGTERM, how long live calls may go "
                   "on (default: $IVR_DRAIN_S, else 300)")

    add("models", cmd_models, "check each locale's dialogue, speech and TTS models",
        model=False)

    p = add("calls", cmd_calls, "the call log: list, show, label, purge, dead letters",
          model=False)
    calls = p.add_subparsers(dest="action", required=True)
    q = calls.add_parser("list", help="calls, newest first")
    q.add_argument("--since", help="from (2026-11-24, 2026-11-24T09:00, or an age: 12h, 7d)")
    q.add_argument("--until", help="until (same forms)")
    q.add_argument("--outcome", choices=OUTCOMES, help="only calls that ended so")
    q.add_argument("--locale", default=argparse.SUPPRESS,  # (also `ivr --locale ko calls`)
                   help="only calls in this locale (zh, ko; default: every locale)")
    for name in ("queue", "intent", "caller", "status"):
        q.add_argument(f"--{name}", help=f"only calls with this {name}")
    q.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    q.add_argument("--json", action="store_true", help="one JSON object per call")
    q = calls.add_parser("show", help="a call's turn-by-turn timeline")
    q.add_argument("call_id", help="call id (or its first 6+ characters)")
    q.add_argument("--json", action="store_true", help="the call and all its events")
    q = calls.add_parser("label", help="say what was right for a call (replay reports use it)")
    q.add_argument("call_id", help="call id (or its first 6+ characters)")
    q.add_argument("--intent", help="the intent the caller meant")
    q.add_argument("--queue", help="the queue the call should have gone to")
    q.add_argument("--by", default=os.environ.get("USER", "trainer"), help="who says so")
    q.add_argument("--note", help="a free-text remark kept with the label")
    q = calls.add_parser("dead-letters", help="events the store refused, set aside")
    q.add_argument("--since", help="set aside from (same forms as list --since)")
    q.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    q.add_argument("--json", action="store_true", help="one JSON object per event, in full")
    q = calls.add_parser("purge", help="delete calls (and recordings) past retention")
    q.add_argument("--older-than", type=float, help="days (default: $IVR_RETENTION_DAYS, 180)")
    q.add_argument("--dry-run", action="store_true",
                   help="list the calls that would go; delete nothing")
    q.add_argument("--yes", action="store_true",
                   help="do not ask for confirmation (needed without a terminal: cron)")

    p = add("replay", cmd_replay, "re-run a logged call (or every call --since) with a model")
    p.add_argument("call_id", nargs="?", help="call id (or its first 6+ characters)")
    p.add_argument("--since", help="replay every finished call from then: regression report")
    p.add_argument("--until", help="with --since: up to then")
    p.add_argument("--json", action="store_true", help="the report as JSON")

    p = add("report", cmd_report, "the monthly voice-of-the-customer export (CSV and chart)",
            model=False)
    p.add_argument("kind", choices=["voc"], help="voc: what callers asked for, where they "
                   "were failed")
    p.add_argument("--month", help="2026-11 (default: this month, in the bank's time zone)")
    p.add_argument("--out", default="reports/voc", help="folder for the CSV and the PNG "
                   "(voc-<month>-<locale>.*; one locale a report, --locale, default zh)")

    p = add("review", cmd_review, "trainers' review queue: misrouted utterances, clustered, "
            "to label", model=False)
    review = p.add_subparsers(dest="action", required=True)
    by = {"default": os.environ.get("USER", "trainer"), "help": "who labels"}

    def period(q: argparse.ArgumentParser) -> None:
        q.add_argument("--since", default="7d", help="calls from (default 7d; 2026-11-24 ...)")
        q.add_argument("--until", help="calls until")

    q = review.add_parser("list", help="clusters, most calls affected first")
    period(q)
    q.add_argument("--json", action="store_true", help="one JSON object per cluster")
    q = review.add_parser("show", help="a cluster's utterances in full")
    q.add_argument("cluster", help="cluster id (or its first characters)")
    period(q)
    q.add_argument("--json", action="store_true", help="the cluster as JSON")
    q = review.add_parser("label", help="the intent callers meant: examples in labelled.yml")
    q.add_argument("target", help="a cluster id, or CALL_ID:TURN for one utterance")
    q.add_argument("--intent", required=True, help="the intent the callers meant")
    q.add_argument("--by", **by)
    period(q)
    q.add_argument("--json", action="store_true", help="the outcome as JSON")
    q = review.add_parser("asr", help="record what the caller really said (an ASR error)")
    q.add_argument("target", help="CALL_ID:TURN")
    q.add_argument("--said", required=True, help="what the caller actually said")
    q.add_argument("--intent", help="also add what they said as an example of this intent")
    q.add_argument("--by", **by)
    q.add_argument("--json", action="store_true", help="the outcome as JSON")
    q = review.add_parser("synonym", help="a dialect phrase (dialects.yml) or an ASR "
                          "near-homophone (asr: its term goes to lexicon.yml)")
    q.add_argument("key", help="the phrase as callers say it (or as ASR hears it)")
    q.add_argument("mandarin", help="its Mandarin")
    q.add_argument("--dialect", required=True, help="yue, sc, db, wu, minnan (as in "
                   "dialects.yml) or asr")
    q.add_argument("--item", help="the cluster id or CALL_ID:TURN it resolves (leaves the "
                   "queue)")
    q.add_argument("--force", action="store_true",
                   help="add it even if it rewrites Mandarin training examples")
    q.add_argument("--by", **by)
    period(q)

    p = add("verification", cmd_verification, "phone verification locks: list, unlock",
            model=False)
    verification = p.add_subparsers(dest="action", required=True)
    q = verification.add_parser("locks", help="accounts locked after too many failed "
                                "verifications ($IVR_PIN_MAX_FAILURES within $IVR_PIN_WINDOW_H)")
    q.add_argument("--all", action="store_true", help="also accounts with failures, not locked")
    q.add_argument("--json", action="store_true", help="one JSON object per account")
    q = verification.add_parser("unlock", help="clear an account's failures (audited)")
    q.add_argument("account", help="as listed: customer:ID or caller:PHONE (a bare phone "
                   "number is a caller, anything else a customer id)")
    q.add_argument("--by", default=os.environ.get("USER", "ops"), help="who clears it")

    p = add("users", cmd_users, "console logins: add, list, disable, enable, set-role",
            model=False)
    p.add_argument("action", choices=["add", "list", "disable", "enable", "set-role"],
                   help="add NAME --role R (password from $IVR_PASSWORD or asked), list, "
                   "disable NAME, enable NAME, set-role NAME --role R")
    p.add_argument("name", nargs="?", help="the login name (all but list)")
    p.add_argument("--role", help="ops, trainer or admin (add, set-role)")
    p.add_argument("--by", default=os.environ.get("USER", "admin"),
                   help="who makes the change, for the audit log (default: $USER)")

    p = add("data", cmd_data, "check the project's data: domain, NLU data, rules, locales, "
            "knowledge, live models", model=False)
    p.add_argument("action", choices=["validate"],
                   help="validate: every problem as path:line: message; exit 1 if any")

    p = add("evaluate", cmd_evaluate, "score the model on the held-out test set")
    p.add_argument("--test", help="held-out file (default: nlu_data/heldout/<locale>.yml)")
    p.add_argument("--out", help="where the report and image go (default: reports/<locale>)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--candidate", nargs="?", const="", metavar="PATH",
                   help="compare PATH (default: the newest model) with the live model")

    p = add("promote", cmd_promote, "make a model live (refused if worse on the held-out set)",
            model=False)
    p.add_argument("model_file", nargs="?", type=Path, metavar="MODEL",
                   help="the model (default: the locale's newest in models/)")
    p.add_argument("--force", action="store_true", help="promote even if it is worse")
    p.add_argument("--by", default=os.environ.get("USER", "trainer"), help="who promotes")
    p.add_argument("--server", default=os.environ.get("IVR_SERVER"),
                   help="a running `ivr serve` to swap it in now (default: $IVR_SERVER)")
    return parser
