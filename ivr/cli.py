"""The ``ivr`` command: train, parse, simulate, chat, evaluate, serve, models.

Every failure a user can cause ends in one ``error: ...`` line on stderr and a non-zero exit,
never a traceback (set IVR_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ivr.errors import IvrError
from ivr.project import Project
from ivr.zone import stamp  # every time printed: the bank's zone, with its offset

EXIT_ERROR = 1
DEFAULT_LOCALE = "zh"
OUTCOMES = ("self_service", "escalated", "hangup", "busy")  # how a logged call can end


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


async def _open_engine(project: Project, model: Path | None, bank: Any = None):
    """The locale's engine (ivr/engine_factory.py): the configured bank unless ``bank``."""
    from ivr.engine_factory import load_engine

    path = model or project.live_model()
    _loading(path)
    return await load_engine(project, path, bank=bank)


async def _close_engines(engines: Any) -> None:
    """A bank adapter's connections closed before the program ends (ivr/engine_factory.py)."""
    from ivr.engine_factory import close_engines

    await close_engines(engines)


def _loading(model: Path) -> None:
    """Say why nothing happens for a few seconds (stderr: stdout stays the results)."""
    if model.is_file():  # (a missing one is the one error line)
        print(f"loading model {model.name}…", file=sys.stderr, flush=True)


def _count_failures_in_call_log(engines: Any, recorder: Any) -> None:
    """Failed verifications count in the call log's database, as with `ivr serve`
    (an engine alone counts them in memory)."""
    from ivr.dialogue.lockout import SqlLockout

    lockout = SqlLockout(recorder.store.engine)
    for engine in engines:
        engine.lockout = lockout


def _open_call_log(project: Project):
    """The call log's writer for this command's calls ($IVR_CALL_LOG, else var/)."""
    from ivr.calllog.recorder import CallLogSettings, CallRecorder
    from ivr.calllog.store import CallStore

    settings = CallLogSettings.from_env(project.root, ":cli")
    return CallRecorder(CallStore(settings.url), settings.instance, settings.recordings)


def _open_store(project: Project):
    from ivr.calllog.recorder import CallLogSettings
    from ivr.calllog.store import CallStore

    settings = CallLogSettings.from_env(project.root)
    return CallStore(settings.url), settings


def parse_when(text: str) -> float:
    """A time for --since/--until: ISO date or date-time (UTC unless it says), or an age
    such as 30m, 12h, 7d."""
    import re
    import time
    from datetime import datetime, timezone

    age = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if age:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[age.group(2)]
        return time.time() - float(age.group(1)) * seconds
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise IvrError(f"time {text!r}: use 2026-11-24, 2026-11-24T09:30 or an age like 12h, "
                       "7d") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _parse_output(text: str, parse: dict[str, Any], locale: str) -> dict[str, Any]:
    from ivr.call import standard_dialect

    return {
        "text": text,
        "normalized": parse.get("normalized", text),
        "intent": parse["intent"]["name"],
        "confidence": round(float(parse["intent"]["confidence"]), 4),
        "entities": [{k: e[k] for k in ("entity", "value", "start", "end") if k in e}
                     for e in parse.get("entities", [])],
        "dialect": parse.get("dialect", standard_dialect(locale)),
        "intent_ranking": [{"name": r["name"], "confidence": round(float(r["confidence"]), 4)}
                           for r in parse.get("intent_ranking", [])[:5]],
    }


async def cmd_train(args: argparse.Namespace) -> int:
    from ivr.training import check_inputs, train, up_to_date

    project: Project = args.project_obj
    # No --locale: every locale with a config/<locale>.yml (scripts/setup.sh relies on it).
    projects = [project.with_locale(locale)
                for locale in ([args.locale] if args.locale else project.locales())]
    for each in projects:  # a broken file in any locale fails before minutes of training
        if args.force or not up_to_date(each):
            check_inputs(each)
    for each in projects:
        result = train(each, force=args.force, finetune=args.finetune)
        state = "trained" if result.trained else "up to date (inputs unchanged)"
        print(f"model {state}: {result.model}", flush=True)
        if result.made_live:
            print(f"  live: the first {each.locale} model (models/live.yml); later ones are "
                  "candidates for `ivr promote`", flush=True)
        elif result.trained:
            print("  a candidate: `ivr evaluate --candidate`, then `ivr promote`", flush=True)
    return 0


async def cmd_parse(args: argparse.Namespace) -> int:
    from ivr.nlu_only import load_nlu_engine

    # The NLU part of the model alone; eager for one utterance (ivr/nlu_only.py).
    model = args.model or args.project_obj.live_model()
    _loading(model)
    engine = await load_nlu_engine(model, eager=args.text is not None)
    texts = [args.text] if args.text is not None else (line.rstrip("\n") for line in sys.stdin)
    for text in texts:
        if not text.strip():
            continue
        out = _parse_output(text, await engine.parse(text), args.project_obj.locale)
        if args.json:
            _print_json(out)
        else:
            print(f"{out['intent']} ({out['confidence']:.2f}) [{out['dialect']}] "
                  f"{out['normalized']}")
    return 0


async def cmd_simulate(args: argparse.Namespace) -> int:
    from ivr.handoff import AcdWebhook
    from ivr.simulate import load_script

    scripts = [load_script(Path(p)) for p in args.scripts]  # all checked before the model loads
    project: Project = args.project_obj
    engines = {}  # one per locale the scripts speak, loaded once; --model is --locale's
    for locale in dict.fromkeys(s.locale for s in scripts):
        model = args.model if locale == project.locale else None
        engines[locale] = await _open_engine(project.with_locale(locale), model)
    acd = AcdWebhook(args.acd_url, timeout_s=args.acd_timeout) if args.acd_url else None
    recorder = _open_call_log(project)
    try:
        _count_failures_in_call_log(engines.values(), recorder)
        return await _simulate(args, scripts, engines, acd, recorder)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)
        await _close_engines(engines.values())


async def _simulate(args: argparse.Namespace, scripts: list, engines: dict, acd: Any,
                    recorder: Any) -> int:
    from ivr.simulate import run_script

    failed = 0
    for script in scripts:
        result = await run_script(script, engines[script.locale], acd, recorder.record)
        if args.json:
            _print_json(result)
        else:
            _print_call(result)
        delivery = result.get("delivery")
        if delivery and delivery["status"] != "delivered":
            failed += 1
            print(f"error: {script.path}: handoff not delivered: {delivery['error']}",
                  file=sys.stderr)
    return EXIT_ERROR if failed else 0


def _print_call(result: dict[str, Any]) -> None:
    print(f"== {result['script']} (caller {result['caller'] or 'unknown'})")
    for prompt in result["greeting"]:
        print(f"  bot:    {prompt}")
    for turn in result["turns"]:
        said = turn["input"]
        shown = said.get("say") or (f"#{said['dtmf']}" if "dtmf" in said else
                                    "(silence)" if "silence" in said else "(hangs up)")
        understood = f"  -> {turn['intent']} {turn.get('confidence', 0):.2f}" if turn.get(
            "intent") else ""
        print(f"  caller: {shown}{understood}")
        for prompt in turn.get("prompts", []):
            print(f"  bot:    {prompt}")
    line = f"  => {result['outcome']}, topic {result['intent']}"
    if result["outcome"] == "escalated":
        line += (f", queue {result['queue']}, reason {result['reason']}, "
                 f"priority {result['priority']}, skills {result['skills']}")
    print(line)


async def cmd_chat(args: argparse.Namespace) -> int:
    import uuid

    from ivr.call import Call
    from ivr.calllog import emitter, end_summary

    engine = await _open_engine(args.project_obj, args.model)
    recorder = _open_call_log(args.project_obj)
    _count_failures_in_call_log([engine], recorder)
    print("Caller at the phone: type what you say; #1234 presses keys; an empty line is "
          "silence; Ctrl-D hangs up.")
    call_id = uuid.uuid4().hex
    emit = emitter(recorder.record, call_id)
    call = Call(engine, caller_id=args.caller, locale=args.project_obj.locale, call_id=call_id,
                transport="chat", emit=emit)
    try:
        await _chat(call)
    finally:
        result = call.result()
        emit("end", **end_summary({**result, "transport": "chat"}))
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)
        await _close_engines([engine])
    print(f"== {result['outcome']}" + (f" -> {result['queue']} ({result['reason']})"
                                      if result["outcome"] == "escalated" else ""))
    print(f"call log: ivr calls show {call_id}")
    if args.json:
        _print_json(result)
    return 0


async def _chat(call: Any) -> None:
    """The caller at the terminal, until they hang up or the call ends."""
    from ivr.call import InputError

    for prompt in await call.start():
        print(f"bot: {prompt}")
    loop = asyncio.get_running_loop()
    while not call.ended:
        line = await loop.run_in_executor(None, _read_line)
        if line is None:
            await call.hangup()
            break
        try:
            if line.startswith("#"):
                turn = await call.press(line[1:].strip() or "#")
            elif not line.strip():
                turn = await call.silence()
            else:
                turn = await call.say(line.strip())
        except InputError as e:
            print(f"error: {e}")
            continue
        if turn.intent:
            print(f"     [{turn.intent} {turn.confidence:.2f}, {turn.dialect or '-'}]")
        for prompt in turn.prompts:
            print(f"bot: {prompt}")


def _read_line() -> str | None:
    try:
        return input("you: ")
    except EOFError:
        return None


async def cmd_calls(args: argparse.Namespace) -> int:
    """List, show, label and purge logged calls."""
    import time

    from ivr.calllog.store import CallFilter
    from ivr.calllog.timeline import render

    store, settings = _open_store(args.project_obj)
    if args.action == "list":
        rows = store.list_calls(CallFilter(
            since=parse_when(args.since) if args.since else None,
            until=parse_when(args.until) if args.until else None, outcome=args.outcome,
            queue=args.queue, intent=args.intent, caller=args.caller, status=args.status,
            locale=args.locale, limit=args.limit))
        if not args.json:  # (the same columns as each row below)
            print(f"{'call id':12s}  {'started':{len(stamp(time.time()))}s}  {'transport':9s} "
                  f"{'caller':15s} {'loc':3s} {'status':10s} {'outcome':12s} queue or topic")
        for row in rows:
            if args.json:
                _print_json(row)
                continue
            when = stamp(row["started_at"])
            route = row.get("queue") or row.get("intent") or ""
            print(f"{row['call_id'][:12]}  {when}  {row.get('transport') or '-':9s} "
                  f"{row.get('caller') or '-':15s} {row.get('locale') or '-':3s} "
                  f"{row.get('status'):10s} {row.get('outcome') or '-':12s} {route}")
        if not args.json:
            print(f"({len(rows)} call{'s' if len(rows) != 1 else ''}, newest first)")
    elif args.action == "show":
        call = store.find_call(args.call_id)
        events = store.events(call["call_id"])
        if args.json:
            _print_json({"call": call, "events": events})
        else:
            print(render(call, events))
    elif args.action == "label":
        if not (args.intent or args.queue):
            raise IvrError("say what was right: --intent and/or --queue")
        call = store.find_call(args.call_id)
        store.add_label(call["call_id"], by=args.by, intent=args.intent, queue=args.queue,
                        note=args.note)
        print(f"labelled {call['call_id']}")
    elif args.action == "dead-letters":
        letters = store.dead_letters(since=parse_when(args.since) if args.since else None,
                                     limit=args.limit)
        for row in letters:
            if args.json:
                _print_json(row)
                continue
            when = stamp(row["at"])
            print(f"#{row['id']}  {when}  call {row['call_id'] or '-'}  event "
                  f"#{row['seq']} {row['kind'] or '-'}  {row['error'][:200]}")
        if not args.json:
            print(f"({len(letters)} event{'s' if len(letters) != 1 else ''} set aside, newest "
                  "first; --json shows each event)")
    elif args.action == "purge":
        from ivr.cli_ops import purge

        days = args.older_than if args.older_than is not None else settings.retention_days
        return purge(store, settings, days, args.dry_run, args.yes)
    return 0


async def cmd_replay(args: argparse.Namespace) -> int:
    """Re-run logged calls through the engine (a new model) and say what changes."""
    from ivr.calllog.replay import Replayer
    from ivr.engine_factory import offline_recognizers
    from ivr.voice.voice_locale import load_voice_locales

    if bool(args.call_id) == bool(args.since):
        raise IvrError("give a call id, or --since for a regression report over many calls")
    store, settings = _open_store(args.project_obj)
    root = args.project_obj.root
    replayer = Replayer(store, root, load_voice_locales(root / "locales"), settings.recordings,
                        offline_recognizers(root))
    try:
        if args.call_id:
            report = await replayer.replay(args.call_id, args.model)
            _print_json(report) if args.json else _print_replay(report)
            return 0
        report = await replayer.regression(
            parse_when(args.since), parse_when(args.until) if args.until else None,
            args.project_obj.locale, args.model)
        _print_json(report) if args.json else _print_regression(report)
        return 0
    finally:
        replayer.close()


def _print_replay(report: dict[str, Any]) -> None:
    from ivr.calllog.replay import route_of

    print(f"replay of {report['call_id']} ({report['locale']}) from its {report['source']}: "
          f"recorded with {report['recorded_model'] or '?'}, replayed with {report['model']}")
    for turn in report["turns"]:
        rec, new = turn["recorded"], turn["replayed"] or {}
        mark = "≠" if turn["differs"] else "="
        print(f"  {mark} turn {turn['n']}: {turn['input']} “{rec.get('heard', '')}”")
        said = ", ".join(map(str, rec.get("prompt_names") or []))
        print(f"      recorded: {rec.get('intent')}  {said}")
        if turn["replayed"] is None:
            print(f"      replayed: {turn.get('note')}")
        elif turn["differs"]:
            heard = f"“{new.get('heard')}” " if new.get("heard") != rec.get("heard") else ""
            print(f"      replayed: {heard}{new.get('intent')}  "
                  f"{', '.join(map(str, new.get('prompt_names') or []))}")
    before, after = route_of(report["recorded"]), route_of(report["replayed"])
    print(f"route: {before} → {after}" + ("  (CHANGED)" if report["route_changed"] else
                                          "  (same)"))


def _print_regression(report: dict[str, Any]) -> None:
    print(f"regression report: {report['calls']} {report['locale']} call(s) replayed with "
          f"{report['model']}")
    print(f"  would route elsewhere: {report['changed']}  (better {report['better']}, worse "
          f"{report['worse']}, no label {report['unlabelled']})")
    for c in report["changes"]:
        when = stamp(c["started_at"], seconds=False)
        label = f"  label: {c['label']}" if c.get("label") else ""
        print(f"  {c['direction']:8s} {c['call_id'][:12]}  {when}  {c['from']} → {c['to']}{label}")
    for f in report["failed"]:
        print(f"  not replayed: {f['call_id'][:12]}: {f['error']}")


async def cmd_report(args: argparse.Namespace) -> int:
    """The monthly voice-of-the-customer export: a CSV and a chart image."""
    from ivr.voc import Month, export, this_month

    month = Month.parse(args.month or this_month())
    store, _ = _open_store(args.project_obj)
    # One locale per report (the global one, zh by default): two caller populations'
    # figures summed under shared intent names would describe neither.
    locale = args.project_obj.locale
    csv_path, chart, rows = export(store, month, Path(args.out), locale)
    total = rows[-1]
    print(f"{month.name} ({locale}): {total['calls']} calls, containment "
          f"{total['containment']:.1%}, {total['misrouted_calls']} with a misroute signal")
    for row in rows[:-1][:10]:
        print(f"  {row['intent']:22s} {row['calls']:6d} calls  containment "
              f"{row['containment']:.0%}  misrouted {row['misrouted_calls']}")
    print(f"written: {csv_path} and {chart}")
    return 0


async def cmd_review(args: argparse.Namespace) -> int:
    """The trainers' review queue: list and show clusters, label them (docs/review.md)."""
    from ivr import labelling
    from ivr.review import find_cluster, find_item, resolve, review_queue

    project: Project = args.project_obj
    store, _ = _open_store(project)
    since = parse_when(args.since) if getattr(args, "since", None) else None
    until = parse_when(args.until) if getattr(args, "until", None) else None
    words = project.locale_file  # how its callers correct themselves (review_signals.py)
    if args.action == "list":
        clusters = review_queue(store, project.locale, since, until, words)
        for cluster in clusters:
            s = cluster.summary()
            if args.json:
                _print_json(s)
                continue
            print(f"{s['id']}  {s['score']:5.1f}  {s['intent']:20s} {s['calls']:4d} call(s) "
                  f"{s['items']:4d} utterance(s)  {' | '.join(s['texts'][:3])}  "
                  f"[{', '.join(f'{k} {v}' for k, v in s['signals'].items())}]")
        if not args.json:
            print(f"({len(clusters)} cluster(s), weightiest first; why: `ivr review show ID`)")
    elif args.action == "show":
        cluster = find_cluster(review_queue(store, project.locale, since, until, words),
                               args.cluster)
        _print_json(cluster.as_dict()) if args.json else _print_cluster(cluster)
    elif args.action == "label":
        items, cluster_id = resolve(store, args.target, project.locale, since, until, words)
        result = labelling.label_intent(project.with_locale(items[0].locale), store, items,
                                        args.intent, args.by, cluster=cluster_id)
        return _print_label(result, args.json)
    elif args.action == "asr":
        item = find_item(store, args.target, words)
        result = labelling.mark_asr_error(project.with_locale(item.locale), store, item,
                                          args.said, args.by, intent=args.intent)
        if not args.json:
            print(f"ASR error recorded for {item.key} (heard “{item.text}”)")
        return _print_label(result, args.json)
    elif args.action == "synonym":
        items, cluster_id = (resolve(store, args.item, project.locale, since, until, words)
                             if args.item else ([], None))
        done = labelling.add_synonym(project, store, args.key, args.mandarin, args.dialect,
                                     args.by, items, cluster=cluster_id, force=args.force)
        print(f"added {done.dialect}: {done.key} → {done.mandarin} to {done.file}; "
              "it takes effect at the next `ivr train`")
    return 0


def _print_cluster(cluster: Any) -> None:
    s = cluster.summary()
    print(f"cluster {s['id']}: predicted {s['intent']}, {s['calls']} call(s), "
          f"{s['items']} utterance(s), weight {s['score']:g}")
    for item in cluster.items:
        when = stamp(item.started_at, seconds=False)
        print(f"  {item.key}  {when}  “{item.text}”"
              + (f" → “{item.normalized}”" if item.normalized != item.text else "")
              + (f"  [{item.dialect}]" if item.dialect else ""))
        ranking = ", ".join(f"{r['name']} {r['confidence']:.2f}" for r in item.ranking)
        print(f"      NLU  {item.intent} {item.confidence or 0:.2f}"
              + (f"  [{ranking}]" if ranking else ""))
        for why in item.why:  # what queued it, and where it shows
            said = f" “{why['text']}”" if why["text"] and why["turn"] != item.n else ""
            meant = f" → {why['intent']}" if said and why["intent"] else ""
            print(f"      why  {why['weight']:g} {why['signal']} ({why['en']}), turn "
                  f"{why['turn']}{said}{meant}")
        if item.likely_intent:
            print(f"      meant probably {item.likely_intent}")
        asr = item.asr or {}
        if asr.get("alternatives"):
            print("      ASR  " + " | ".join(f"{a['text']} ({a['score']})"
                                            for a in asr["alternatives"]))
        if asr.get("recording"):
            print(f"      audio {asr['recording']} {asr.get('audio_ms')} ms")
        following, call = item.next["turn"], item.next["call"]
        if following:
            print(f"      next {following['input']} → {following['intent']}")
        print(f"      call {call['outcome']}" + (f" → {call['queue']} ({call['reason']})"
                                                  if call.get("queue") else ""))
        for f in item.next["feedback"]:
            print(f"      agent desktop: {f['kind']} {f['from_queue']} → {f['to_queue']}")


def _print_label(result: Any, as_json: bool) -> int:
    """Each utterance's fate; an error exit when any label contradicts an example."""
    if as_json:
        _print_json(result.as_dict())
    else:
        for o in result.outcomes:
            print(f"  {o.status:8s} {o.key}  “{o.text}”" + (f"  {o.detail}" if o.detail else ""))
        if result.intent and result.outcomes:
            print(f"{result.intent}: {result.count('added')} example(s) added"
                  + (f" to {result.file}" if result.count("added") else "")
                  + f", {result.count('exists')} already there, {result.count('masked')} "
                  "masked (labelled, not added); the next `ivr train` uses them")
    conflicts = result.count("conflict")
    if conflicts:
        print(f"error: {conflicts} utterance(s) contradict existing examples: not added "
              "(see above)", file=sys.stderr)
        return EXIT_ERROR
    return 0


async def cmd_users(args: argparse.Namespace) -> int:
    """Console logins: ``ivr users add NAME --role ops|trainer|admin`` (password from
    $IVR_PASSWORD or asked for). Changing a user's role or password ends their sessions;
    the last enabled admin cannot be demoted."""
    import getpass

    from ivr.console.auth import ADMIN, MIN_PASSWORD, ROLES, hash_password

    if args.action != "add":
        from ivr.cli_ops import users

        return users(_open_store(args.project_obj)[0], args.action, args.name, args.role,
                     args.by)
    if not args.name:
        raise IvrError("ivr users add needs a user name")
    if args.role not in ROLES:
        raise IvrError(f"role must be one of {', '.join(ROLES)}")
    password = os.environ.get("IVR_PASSWORD")
    if not password:
        if sys.stdin is None or not sys.stdin.isatty():  # (getpass would read a pipe)
            raise IvrError("no password: set $IVR_PASSWORD or run at a terminal")
        password = getpass.getpass(f"password for {args.name}: ")
    if len(password) < MIN_PASSWORD:
        raise IvrError(f"a console password needs at least {MIN_PASSWORD} characters")
    store, _ = _open_store(args.project_obj)
    store.set_user(args.name, args.role, hash_password(password), keep_role=ADMIN)
    print(f"user {args.name} ({args.role}) saved")
    return 0


async def cmd_verification(args: argparse.Namespace) -> int:
    """Phone verification locks (ivr/dialogue/lockout.py): list them, clear one (audited)."""
    from ivr.dialogue.lockout import SqlLockout, account_key

    store, _ = _open_store(args.project_obj)
    lockout = SqlLockout(store.engine)
    if args.action == "unlock":
        account = account_key(args.account)
        cleared = lockout.unlock(account)
        store.audit(args.by, "verification_unlock", None, f"{account}: {cleared} failure(s)")
        print(f"{account}: {cleared} failure(s) cleared" if cleared else
              f"{account}: no failures to clear (see `ivr verification locks --all`)")
        return 0
    locks = lockout.locks(include_unlocked=args.all)
    policy = lockout.policy

    def when(at: float | None) -> str:
        return stamp(at) if at else "-"

    for lock in locks:
        if args.json:
            _print_json(lock.as_dict())
        else:
            state = (f"locked since {when(lock.locked_since)} until {when(lock.locked_until)}"
                     if lock.locked else "not locked")
            print(f"{lock.account}  {lock.failures} failure(s), last {when(lock.last_failure)}"
                  f"  {state}")
    if not args.json:
        print(f"({len(locks)} account(s); the limit: {policy.max_failures} failures within "
              f"{policy.window_h:g} h, times UTC)")
    return 0


async def cmd_evaluate(args: argparse.Namespace) -> int:
    from ivr.calibration import save_reliability_diagram
    from ivr.dialogue.confidence import ConfidenceBands
    from ivr.engine_factory import stand_in_bank
    from ivr.evaluation import evaluate, evaluate_calls, load_heldout, save_confusion_matrix

    project = args.project_obj
    if args.candidate is not None:
        return await _evaluate_candidate(args)
    examples = load_heldout(Path(args.test) if args.test else project.heldout)
    bank = stand_in_bank()  # the held-out calls are the demo customers'
    engine = await _open_engine(project, args.model, bank)
    report = await evaluate(engine, examples, ConfidenceBands.for_locale(project.locale_file))
    scripts = sorted(project.heldout_calls.glob("*.yml")) if not args.test else []
    if scripts:
        report["heldout_calls"] = await evaluate_calls(engine, scripts, bank.reset)
    out_dir = Path(args.out) if args.out else Path("reports") / project.locale
    image = save_confusion_matrix(report.pop("pairs"), out_dir / "confusion_matrix.png")
    report["confusion_matrix"] = str(image)
    calibration = report["calibration"]
    diagram = save_reliability_diagram(calibration["bins"], calibration["ece"],
                                       out_dir / "reliability.png")
    report["reliability_diagram"] = str(diagram)
    (out_dir / "evaluation.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.json:
        _print_json(report)
        return 0
    for line in format_evaluation(report):
        print(line)
    print(f"confusion matrix: {image}; reliability diagram: {diagram}; full report: "
          f"{out_dir / 'evaluation.json'}")
    return 0


def format_evaluation(report: dict[str, Any]) -> list[str]:
    """``ivr evaluate``'s report as text: accuracy, calibration, bands, per intent, errors."""
    lines = [f"held-out examples: {report['examples']}  model: {Path(report['model']).name}",
             f"intent accuracy: {report['accuracy']:.3f}   dialect/ASR part: "
             f"{report['dialect_and_asr_accuracy']:.3f} "
             f"(n={report['dialect_and_asr_examples']})",
             "per form:   " + "  ".join(f"{k} {v['accuracy']:.3f} (n={v['n']})"
                                       for k, v in report["per_form"].items())]
    if report["per_phenomenon"]:
        lines.append("per phenomenon:   " + "  ".join(
            f"{k} {v['accuracy']:.3f} (n={v['n']})" for k, v in report["per_phenomenon"].items()))
    bands, rejected = report["bands"], report["rejection"]
    t = bands["thresholds"]
    lines += [
        f"calibration: expected calibration error {report['calibration']['ece']:.3f}",
        f"bands (reject < {t['confirm']:g} <= confirm < {t['accept']:g} <= accept; costly "
        f"{t['costly_accept']:g}, yes/no and menu words {t['control_accept']:g}):",
        f"  accept   {bands['accept']:4d}   accepted wrongly {bands['accepted_wrongly']} "
        f"(false-accept rate {bands['false_accept_rate']:.3f})",
        f"  confirm  {bands['confirm']:4d}   confirmed needlessly "
        f"{bands['confirmed_needlessly']}, caught a wrong one {bands['confirmed_and_caught']} "
        f"(confirm rate {bands['confirm_rate']:.3f})",
        f"  reject   {bands['reject']:4d}   rejected though right {bands['rejected_but_right']}"]
    if rejected["n"]:
        lines.append(f"rejection set: {rejected['n']} utterances, declined "
                     f"{rejected['declined']:.3f}, acted on {rejected['false_accept_rate']:.3f}")
    lines.append(f"  {'intent':22s} {'accuracy':>8s} {'precision':>9s} {'recall':>6s} "
                 f"{'F1':>5s} {'n':>4s}")
    prf = report["precision_recall"]
    for name, v in report["per_intent"].items():
        m = prf.get("rejected" if name in ("nlu_fallback", "out_of_scope") else name, {})
        lines.append(f"  {name:22s} {v['accuracy']:8.3f} {m.get('precision', 0):9.3f} "
                     f"{m.get('recall', 0):6.3f} {m.get('f1', 0):5.3f} {v['n']:4d}")
    if report["errors"]:
        lines.append(f"misclassified ({len(report['errors'])}):")
        lines += [f"  {e['expected']:>20s} -> {e['predicted']:20s} {e['confidence']:.2f}  "
                  f"[{e['form']}] {e['text']}" for e in report["errors"]]
    if calls := report.get("heldout_calls"):
        lines.append(f"held-out calls: {calls['calls']}, as expected {calls['as_expected']:.3f}; "
                     f"with a confirmation {calls['with_confirmation']:.3f}")
        lines.append("  per tag:  " + "  ".join(f"{k} {v['as_expected']:.2f} (n={v['n']})"
                                               for k, v in calls["per_tag"].items()))
        for c in calls["not_as_expected"]:
            lines.append(f"  {c['call']}: " + ", ".join(
                f"{k} {w['got']!r} (expected {w['expected']!r})" for k, w in c["wrong"].items()))
    return lines


async def _evaluate_candidate(args: argparse.Namespace) -> int:
    """``evaluate --candidate``: the candidate and the live model (or --model) side by side
    on the held-out set and on the trainers' labelled utterances."""
    from ivr.evaluation import compare_models, format_comparison

    project = args.project_obj
    live = (args.model or project.live_model()).resolve()
    candidate = Path(args.candidate).resolve() if args.candidate else project.latest_model()
    if candidate == live:
        raise IvrError(f"the newest model {candidate.name} is the live one: name a candidate "
                       "(--candidate PATH) or train one")
    results = await compare_models(project, live, candidate)
    out_dir = Path(args.out) if args.out else Path("reports") / project.locale
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(
        json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.json:
        _print_json(results)
        return 0
    print(f"live: {live.name}   candidate: {candidate.name}")
    for name, result in results.items():
        print("\n".join(format_comparison(name, result["comparison"])))
    if "labelled" not in results:
        print(f"(no labelled utterances yet: {project.labelled})")
    print(f"full report: {out_dir / 'comparison.json'}")
    return 0


async def cmd_promote(args: argparse.Namespace) -> int:
    """Make a model live if it is no worse on the held-out set; tell a server to load it."""
    from ivr.promotion import promote, tell_server

    project = args.project_obj
    done = await promote(project, args.model_file, force=args.force, by=args.by)
    if done.previous == done.model:
        print(f"{done.model} is already live")
    else:
        figures = done.heldout
        gate = (f"held-out accuracy {figures['live']:.3f} -> {figures['candidate']:.3f} "
                f"({figures['delta']:+.3f})" if figures else "no live model to compare with")
        print(f"promoted {done.model} (was {done.previous or 'none'}): {gate}"
              + ("  [forced]" if done.forced and figures and figures["delta"] < 0 else ""))
    if args.server:
        reply = await tell_server(args.server, project.locale, os.environ.get("IVR_WS_TOKEN"))
        print(f"{args.server}: now serving {reply['reloaded'][0]['model']}")
    else:
        print("a running `ivr serve` picks it up within seconds (models/live.yml)")
    return 0


async def cmd_data(args: argparse.Namespace) -> int:
    """``ivr data validate``: one ``path:line: message`` line per problem (docs: README)."""
    from ivr.data_validation import summary, validate

    report = validate(args.project_obj)
    for problem in report.problems:
        print(problem)
    if report.problems:
        raise IvrError(f"{len(report.problems)} problem(s) in the project's data (above)")
    print(summary(report))
    return 0


async def cmd_serve(args: argparse.Namespace) -> int:
    from ivr.server.run import serve
    from ivr.server.settings import ServerSettings

    settings = ServerSettings(host=args.host, port=args.port,
                              audiosocket_host=args.audiosocket_host,
                              audiosocket_port=args.audiosocket_port)
    if args.acd_url:
        settings.acd_url = args.acd_url
    if args.max_calls is not None:
        settings.max_calls = args.max_calls
    if args.drain_s is not None:
        settings.drain_s = args.drain_s
    await serve(settings, args.project_obj.root)
    return 0


async def cmd_models(args: argparse.Namespace) -> int:
    """Each locale's dialogue model, speech model and TTS voice: found, or what to do."""
    from ivr.engine_factory import load_speech_model
    from ivr.errors import ModelNotFoundError
    from ivr.voice.asr import SpeechModelError
    from ivr.voice.tts import EspeakTts, TtsError
    from ivr.voice.voice_locale import load_voice_locales

    root = args.project_obj.root
    try:
        installed = EspeakTts().installed_voices()
    except TtsError:
        installed = frozenset()
    missing = 0
    for name, voice in load_voice_locales(root / "locales").items():
        print(f"{name}:")
        try:
            print(f"  dialogue model  {args.project_obj.with_locale(name).live_model()}")
        except ModelNotFoundError as e:
            missing += 1
            print(f"  dialogue model  MISSING: {e}")
        keys = "callers get its key menu" if voice.keypad else "calls take keys only"
        try:
            model = await asyncio.get_running_loop().run_in_executor(
                None, load_speech_model, name, voice)
        except SpeechModelError as e:
            missing += 1
            print(f"  speech model    MISSING: {e}; {keys} (docs/voice.md)")
        else:
            if model is None:
                print(f"  speech model    none configured: {keys}")
            else:
                print(f"  speech model    {model.path} ({len(model.vocabulary)} words, "
                      f"unknown word {model.unknown_word or 'none'})")
                unsayable = model.missing_words(voice.all_phrases())
                if unsayable:
                    missing += 1
                    print(f"  grammars        NOT IN VOCABULARY: {', '.join(unsayable)}")
        found = voice.tts_voice.split("+")[0] in installed
        if not found:
            missing += 1
        print(f"  tts voice       espeak-ng {voice.tts_voice}: "
              f"{'ok' if found else 'MISSING (scripts/setup.sh installs espeak-ng)'}")
    return EXIT_ERROR if missing else 0


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
    parser = _Parser(prog="ivr", description=__doc__.splitlines()[0])
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


def quiet_cli_warnings() -> None:
    """TensorFlow, JAX and Rasa warn about themselves at every start, and some of them reset
    warning filters: send warnings to a logger that only shows errors instead."""
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("IVR_DEBUG"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        quiet_cli_warnings()
    locale = args.locale or DEFAULT_LOCALE
    args.project_obj = (Project(args.project.resolve(), locale) if args.project
                        else Project.discover(locale))
    try:
        if args.locale and args.locale not in args.project_obj.locales():
            raise IvrError(f"no locale {args.locale!r}: there is no {args.project_obj.config}")
        return asyncio.run(args.fn(args))
    except IvrError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: still one line for the user, the trace with IVR_DEBUG=1
        if debug:
            raise
        print(f"error: internal error ({type(e).__name__}: {e}); rerun with IVR_DEBUG=1",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
