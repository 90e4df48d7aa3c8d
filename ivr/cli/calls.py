"""Commands on the call log: ``calls`` (list, show, label, dead letters, purge) and
``replay`` (re-run logged calls with a model)."""

from __future__ import annotations

import argparse

from ivr.cli.common import open_store, parse_when
from ivr.cli.printing import print_json, print_regression, print_replay
from ivr.core.zone import stamp  # every time printed: the bank's zone, with its offset
from ivr.errors import IvrError


async def cmd_calls(args: argparse.Namespace) -> int:
    """List, show, label and purge logged calls."""
    import time

    from ivr.calllog.store import CallFilter
    from ivr.calllog.timeline import render
    from ivr.core.events import to_json

    store, settings = open_store(args.project_obj)
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
                print_json(row)
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
            print_json({"call": call, "events": [to_json(e) for e in events]})
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
                print_json(row)
                continue
            when = stamp(row["at"])
            print(f"#{row['id']}  {when}  call {row['call_id'] or '-'}  event "
                  f"#{row['seq']} {row['kind'] or '-'}  {row['error'][:200]}")
        if not args.json:
            print(f"({len(letters)} event{'s' if len(letters) != 1 else ''} set aside, newest "
                  "first; --json shows each event)")
    elif args.action == "purge":
        from ivr.cli.ops import purge

        days = args.older_than if args.older_than is not None else settings.retention_days
        return purge(store, settings, days, args.dry_run, args.yes)
    return 0


async def cmd_replay(args: argparse.Namespace) -> int:
    """Re-run logged calls through the engine (a new model) and say what changes."""
    from ivr.calllog.replay import Replayer
    from ivr.dialogue.engine_factory import offline_recognizers
    from ivr.voice.voice_locale import load_voice_locales

    if bool(args.call_id) == bool(args.since):
        raise IvrError("give a call id, or --since for a regression report over many calls")
    store, settings = open_store(args.project_obj)
    root = args.project_obj.root
    replayer = Replayer(store, root, load_voice_locales(root / "locales"), settings.recordings,
                        offline_recognizers(root))
    try:
        if args.call_id:
            report = await replayer.replay(args.call_id, args.model)
            print_json(report) if args.json else print_replay(report)
            return 0
        report = await replayer.regression(
            parse_when(args.since), parse_when(args.until) if args.until else None,
            args.project_obj.locale, args.model)
        print_json(report) if args.json else print_regression(report)
        return 0
    finally:
        replayer.close()
