"""Commands that take calls: ``parse`` (one utterance), ``simulate`` (scripted calls),
``chat`` (the caller at the terminal) and ``serve`` (the telephony server)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ivr.cli.common import (
    EXIT_ERROR,
    close_engines,
    count_failures_in_call_log,
    open_call_log,
    open_engine,
    say_loading,
)
from ivr.cli.printing import parse_output, print_call, print_json
from ivr.project import Project


async def cmd_parse(args: argparse.Namespace) -> int:
    from ivr.dialogue.nlu_only import load_nlu_engine

    # The NLU part of the model alone; eager for one utterance (ivr/dialogue/nlu_only.py).
    model = args.model or args.project_obj.live_model()
    say_loading(model)
    engine = await load_nlu_engine(model, eager=args.text is not None)
    texts = [args.text] if args.text is not None else (line.rstrip("\n") for line in sys.stdin)
    for text in texts:
        if not text.strip():
            continue
        out = parse_output(text, await engine.parse(text), args.project_obj.locale)
        if args.json:
            print_json(out)
        else:
            print(f"{out['intent']} ({out['confidence']:.2f}) [{out['dialect']}] "
                  f"{out['normalized']}")
    return 0


async def cmd_simulate(args: argparse.Namespace) -> int:
    from ivr.dialogue.handoff import AcdWebhook
    from ivr.dialogue.simulate import load_script

    scripts = [load_script(Path(p)) for p in args.scripts]  # all checked before the model loads
    project: Project = args.project_obj
    engines = {}  # one per locale the scripts speak, loaded once; --model is --locale's
    for locale in dict.fromkeys(s.locale for s in scripts):
        model = args.model if locale == project.locale else None
        engines[locale] = await open_engine(project.with_locale(locale), model)
    acd = AcdWebhook(args.acd_url, timeout_s=args.acd_timeout) if args.acd_url else None
    recorder = open_call_log(project)
    try:
        count_failures_in_call_log(engines.values(), recorder)
        return await _simulate(args, scripts, engines, acd, recorder)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)
        await close_engines(engines.values())


async def _simulate(args: argparse.Namespace, scripts: list, engines: dict, acd: Any,
                    recorder: Any) -> int:
    from ivr.dialogue.simulate import run_script

    failed = 0
    for script in scripts:
        report = await run_script(script, engines[script.locale], acd, recorder.record)
        if args.json:
            print_json(report.as_dict())
        else:
            print_call(report)
        delivery = report.delivery
        if delivery and delivery["status"] != "delivered":
            failed += 1
            print(f"error: {script.path}: handoff not delivered: {delivery['error']}",
                  file=sys.stderr)
    return EXIT_ERROR if failed else 0


async def cmd_chat(args: argparse.Namespace) -> int:
    import uuid

    from ivr.core.events import emitter
    from ivr.dialogue.call import Call

    engine = await open_engine(args.project_obj, args.model)
    recorder = open_call_log(args.project_obj)
    count_failures_in_call_log([engine], recorder)
    print("Caller at the phone: type what you say; #1234 presses keys; an empty line is "
          "silence; Ctrl-D hangs up.")
    call_id = uuid.uuid4().hex
    emit = emitter(recorder.record, call_id)
    call = Call(engine, caller_id=args.caller, locale=args.project_obj.locale, call_id=call_id,
                transport="chat", emit=emit)
    try:
        await _chat(call)
    finally:
        report = await call.finish()
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)
        await close_engines([engine])
    print(f"== {report.outcome}" + (f" -> {report.queue} ({report.reason})"
                                   if report.outcome == "escalated" else ""))
    print(f"call log: ivr calls show {call_id}")
    if args.json:
        print_json(report.as_dict())
    return 0


async def _chat(call: Any) -> None:
    """The caller at the terminal, until they hang up or the call ends."""
    from ivr.core.inputs import Hangup, Keys, Say, Silence
    from ivr.dialogue.call import InputError

    for prompt in await call.start():
        print(f"bot: {prompt}")
    loop = asyncio.get_running_loop()
    while not call.ended:
        line = await loop.run_in_executor(None, _read_line)
        if line is None:
            await call.take(Hangup())
            break
        try:
            if line.startswith("#"):
                turn = await call.take(Keys(line[1:].strip() or "#"))
            elif not line.strip():
                turn = await call.take(Silence())
            else:
                turn = await call.take(Say(line.strip()))
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
