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

EXIT_ERROR = 1
DEFAULT_LOCALE = "zh"


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


async def _open_engine(project: Project, model: Path | None):
    from ivr.bank import DemoBank
    from ivr.dialogue.engine import DialogueEngine
    from ivr.knowledge import KnowledgeBase

    kb = KnowledgeBase.load(project.knowledge)
    return await DialogueEngine.load(model or project.latest_model(), DemoBank(), kb)


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
        result = train(each, force=args.force)
        state = "trained" if result.trained else "up to date (inputs unchanged)"
        print(f"model {state}: {result.model}", flush=True)
    return 0


async def cmd_parse(args: argparse.Namespace) -> int:
    engine = await _open_engine(args.project_obj, args.model)
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
    from ivr.simulate import load_script, run_script

    scripts = [load_script(Path(p)) for p in args.scripts]  # all checked before the model loads
    project: Project = args.project_obj
    engines = {}  # one per locale the scripts speak, loaded once; --model is --locale's
    for locale in dict.fromkeys(s.locale for s in scripts):
        model = args.model if locale == project.locale else None
        engines[locale] = await _open_engine(project.with_locale(locale), model)
    acd = AcdWebhook(args.acd_url, timeout_s=args.acd_timeout) if args.acd_url else None
    failed = 0
    for script in scripts:
        result = await run_script(script, engines[script.locale], acd)
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
    from ivr.call import Call, InputError

    engine = await _open_engine(args.project_obj, args.model)
    print("Caller at the phone: type what you say; #1234 presses keys; an empty line is "
          "silence; Ctrl-D hangs up.")
    call = Call(engine, caller_id=args.caller, locale=args.project_obj.locale)
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
    result = call.result()
    print(f"== {result['outcome']}" + (f" -> {result['queue']} ({result['reason']})"
                                      if result["outcome"] == "escalated" else ""))
    if args.json:
        _print_json(result)
    return 0


def _read_line() -> str | None:
    try:
        return input("you: ")
    except EOFError:
        return None


async def cmd_evaluate(args: argparse.Namespace) -> int:
    from ivr.evaluation import evaluate, load_heldout, save_confusion_matrix

    project = args.project_obj
    examples = load_heldout(Path(args.test) if args.test else project.heldout)
    engine = await _open_engine(project, args.model)
    report = await evaluate(engine, examples)
    out_dir = Path(args.out) if args.out else Path("reports") / project.locale
    image = save_confusion_matrix(report.pop("pairs"), out_dir / "confusion_matrix.png")
    report["confusion_matrix"] = str(image)
    (out_dir / "evaluation.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.json:
        _print_json(report)
        return 0
    print(f"held-out examples: {report['examples']}  model: {report['model']}")
    print(f"intent accuracy: {report['accuracy']:.3f}   dialect/ASR part: "
          f"{report['dialect_and_asr_accuracy']:.3f} (n={report['dialect_and_asr_examples']})")
    print("per form:   " + "  ".join(f"{k} {v['accuracy']:.3f} (n={v['n']})"
                                     for k, v in report["per_form"].items()))
    print("per intent:")
    for name, v in report["per_intent"].items():
        print(f"  {name:22s} {v['accuracy']:.3f} (n={v['n']})")
    print(f"confusion matrix: {image}; full report: {out_dir / 'evaluation.json'}")
    return 0


async def cmd_serve(args: argparse.Namespace) -> int:
    from ivr.server import ServerSettings, serve

    settings = ServerSettings(host=args.host, port=args.port,
                              audiosocket_host=args.audiosocket_host,
                              audiosocket_port=args.audiosocket_port)
    if args.acd_url:
        settings.acd_url = args.acd_url
    await serve(settings, args.project_obj.root)
    return 0


async def cmd_models(args: argparse.Namespace) -> int:
    """Each locale's dialogue model, speech model and TTS voice: found, or what to do."""
    from ivr.errors import ModelNotFoundError
    from ivr.voice.asr import SpeechModel, SpeechModelError
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
            print(f"  dialogue model  {args.project_obj.with_locale(name).latest_model()}")
        except ModelNotFoundError as e:
            missing += 1
            print(f"  dialogue model  MISSING: {e}")
        if not voice.asr_model:
            print("  speech model    none configured: calls take keys only")
        else:
            loop = asyncio.get_running_loop()
            try:
                model = await loop.run_in_executor(None, SpeechModel.load, name, voice.asr_model)
            except SpeechModelError as e:
                missing += 1
                print(f"  speech model    MISSING: {e}; calls take keys only (docs/voice.md)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description=__doc__.splitlines()[0])
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
                           help="model file (default: the locale's newest in models/)")
        return p

    p = add("train", cmd_train, "train the model if its data changed", model=False)
    p.add_argument("--force", action="store_true", help="train even if up to date")

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

    add("models", cmd_models, "check each locale's dialogue, speech and TTS models",
        model=False)

    p = add("evaluate", cmd_evaluate, "score the model on the held-out test set")
    p.add_argument("--test", help="held-out file (default: nlu_data/heldout/<locale>.yml)")
    p.add_argument("--out", help="where the report and image go (default: reports/<locale>)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
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
